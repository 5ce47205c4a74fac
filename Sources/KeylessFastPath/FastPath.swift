#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import KeylessCore
import KeylessSecrets
import KeylessWire
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The cached `credential_process` answer, tried before any command parsing: no event loop, no
/// network, no prompt. It answers only when fresh credentials are in the cache and every argument
/// is one it understands; otherwise it returns `nil` and the full command runs.
public enum FastPath {
    /// Serves `arguments` (without the program name) from the cache; returns the exit status, or `nil` to fall through.
    public static func run(_ arguments: [String], environment: Environment, now: Date) -> Int32? {
        guard arguments.first == "creds-process", environment["KEYLESS_NO_FAST_PATH"] == nil,
            let options = parse(Array(arguments.dropFirst())),
            let role = options["--aws-role-arn"] ?? options["--role-arn"]
        else { return nil }
        // Workloads with a token file or command need no issuer or client id; their key has "" there, as in the full command.
        let workload = CacheKey.workloadSource(
            clientCredentials: options["--client-credentials"] != nil,
            tokenFile: options["--web-identity-token-file"], tokenCommand: options["--token-command"])
        guard let issuer = options["--issuer-url"] ?? (workload == nil ? nil : ""),
            let clientID = options["--client-id"] ?? (workload == nil ? nil : "")
        else { return nil }
        let duration: Int?
        if let text = options["--duration"] {
            guard let value = Int(text) else { return nil }; duration = value
        } else {
            duration = nil
        }
        do {
            let kind = try SecretStoreKind.parse(options["--secret-store"] ?? environment["KEYLESS_SECRET_STORE"])
            let store = try SecretStoreFactory.make(
                kind, paths: try KeylessPaths.resolve(environment), environment: environment, terminal: nil)
            let key = CacheKey(
                issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: duration,
                server: options["--server"],
                workload: workload)
            guard let credentials = try freshCredentials(store: store, key: key, now: now) else { return nil }
            let line = credentials.credentialProcessJSON + "\n"
            return writeAll(1, Array(line.utf8)) ? 0 : 1
        } catch {
            return nil
        }
    }

    static func parse(_ arguments: [String]) -> [String: String]? {
        var options: [String: String] = [:]
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if CredsProcessFlags.stepAsideValued.contains(argument)
                || CredsProcessFlags.stepAsideValued.contains { argument.hasPrefix($0 + "=") }
            {
                return nil
            } else if let equals = argument.firstIndex(of: "="), argument.hasPrefix("--") {
                let name = String(argument[..<equals])
                guard CredsProcessFlags.valued.contains(name) else { return nil }
                options[name] = String(argument[argument.index(after: equals)...])
            } else if CredsProcessFlags.valued.contains(argument) {
                guard index + 1 < arguments.count else { return nil }
                options[argument] = arguments[index + 1]
                index += 1
            } else if !CredsProcessFlags.plain.contains(argument) {
                return nil
            } else if CredsProcessFlags.keyedPlain.contains(argument) {
                options[argument] = ""
            }
            index += 1
        }
        return options
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
