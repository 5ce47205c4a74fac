import Foundation
import KeylessCore
import Logging
#if canImport(Glibc)
    import Glibc
#endif

/// A command whose trimmed stdout is the token. Run as `/bin/sh -c COMMAND`: the command comes from the user's own
/// configuration, never from data keyless received. Its stdin is /dev/null and its stderr is kept for the error message.
public struct TokenCommandSource: WorkloadTokenSource {
    /// The shell command.
    public let command: String
    /// Seconds before the command (and everything it started) is killed.
    public let timeout: Double
    /// Its environment.
    public let environment: [String: String]

    public init(command: String, timeout: Double, environment: [String: String]) {
        self.command = command
        self.timeout = timeout
        self.environment = environment
    }

    public func token(logger: Logger) async throws -> String {
        let result = try await run()
        guard let status = result.status else {
            throw KeylessError(
                .tokenInvalid, "The --token-command did not finish within \(Self.seconds(timeout)) s and was stopped.",
                hint: "Run it by hand to see why it hangs, or raise --token-command-timeout.")
        }
        let stderr = Self.tail(result.stderr)
        guard status == 0 else {
            throw KeylessError(
                .tokenInvalid,
                "The --token-command exited with status \(status)\(stderr.isEmpty ? "" : ": \(stderr)").",
                hint: "Run it by hand to see why it fails; its stdout must be the token and its exit status 0.")
        }
        let token = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KeylessError(
                .tokenInvalid, "The --token-command printed nothing on stdout.", hint: "Its stdout must be the token.")
        }
        logger.debug("ran the token command", metadata: ["workload.exit": "\(status)"])
        return token
    }

    static func seconds(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }

    static func tail(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count > 400 ? "…" + String(text.suffix(400)) : text
    }

    /// Runs the command in its own process group (so a timeout stops everything it started); output goes to unlinked
    /// temporary files, so a child left holding them cannot block us.
    func run() async throws -> (status: Int32?, stdout: [UInt8], stderr: [UInt8]) {
        let out = try Self.scratchFile()
        defer { close(out) }
        let err = try Self.scratchFile()
        defer { close(err) }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }

        var child = ChildProcess(executable: "/bin/sh", argv: ["/bin/sh", "-c", command], environment: environment)
        (child.standardInput, child.standardOutput, child.standardError) = (null >= 0 ? null : nil, out, err)
        child.ownProcessGroup = true
        let pid: pid_t
        do {
            pid = try child.spawn()
        } catch {
            throw KeylessError(
                .io, "Cannot start /bin/sh for the --token-command: \(error).", hint: "Check that /bin/sh exists.")
        }

        let deadline = monotonicSeconds() + timeout
        var status: Int32?
        while status == nil {
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = ChildProcess.exitStatus(raw)
            } else if result == -1 && errno != EINTR {
                status = -1
            } else if monotonicSeconds() >= deadline || Task.isCancelled {
                // The command's own process group, which we created; its leader is not reaped yet, so the id is still ours.
                kill(-pid, SIGKILL)
                var ignored: Int32 = 0
                while waitpid(pid, &ignored, 0) == -1 && errno == EINTR {}
                return (nil, [], Self.readAll(err))
            } else {
                try? await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        return (status, Self.readAll(out), Self.readAll(err))
    }

    /// An unlinked 0600 temporary file.
    static func scratchFile() throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "/keyless-token-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw KeylessError(
                .io, "Cannot create a temporary file for the --token-command: \(Files.errnoString()).",
                hint: "Check TMPDIR.")
        }
        unlink(String(cString: template))
        return fd
    }

    static func readAll(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return bytes
    }
}
