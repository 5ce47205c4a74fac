import KeylessCore
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the launcher finds the full command-line program.
public enum Launcher {
    /// The companion executable's name.
    public static let companionName = "keyless-cli"

    /// `KEYLESS_CLI` when set, else `keyless-cli` in the directory of the running executable.
    public static func companionPath(environment: Environment) -> String {
        if let explicit = environment["KEYLESS_CLI"] { return explicit }
        return Files.parentDirectory(executablePath() ?? CommandLine.arguments[0]) + "/" + companionName
    }

    /// The running executable's path (nil when the platform cannot tell).
    public static func executablePath() -> String? {
        #if os(Linux)
            var buffer = [CChar](repeating: 0, count: 4096)
            let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #elseif canImport(Darwin)
            var size: UInt32 = 4096
            var buffer = [CChar](repeating: 0, count: Int(size))
            guard _NSGetExecutablePath(&buffer, &size) == 0, let resolved = realpath(buffer, nil) else { return nil }
            defer { free(resolved) }
            return String(cString: resolved)
        #else
            return nil
        #endif
    }
}
