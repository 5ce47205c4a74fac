import Foundation
import KeylessCore
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A child process a test starts (a server, a script), with stdout and stderr in a log file; stopped by its own PID only.
///
/// Started with posix_spawn: the child gets /dev/null as stdin, the log as stdout and stderr, no other descriptor of the
/// test process, default signal handling and an empty signal mask. This process reaps it with waitpid on its PID, so
/// the PID stays ours (never reused) until we have seen it exit.
public final class PartnerProcess: @unchecked Sendable {
    /// The child's process id.
    public let pid: Int32
    /// The file that receives the child's stdout and stderr.
    public let logPath: String
    /// The command line, for messages.
    public let commandLine: String

    private let lock = NSLock()
    private var reapedStatus: Int32?
    private var stopped = false

    /// Starts `executable` (a path, or a name looked up in PATH) with `arguments`; `environment` is added to
    /// (or, with `inheritEnvironment: false`, replaces) this process's environment; output goes to `logPath`
    /// (a new temporary file when nil); with `stderrPath`, stderr goes there instead, apart from stdout.
    public init(
        executable: String, arguments: [String] = [], environment: [String: String] = [:],
        inheritEnvironment: Bool = true, currentDirectory: String? = nil, logPath: String? = nil,
        stderrPath: String? = nil
    ) throws {
        guard let resolved = Tooling.path(of: executable) else {
            throw TestSupportError("\(executable) not found in PATH (run scripts/test to install the test partners)")
        }
        let name = (resolved as NSString).lastPathComponent
        let log =
            logPath
            ?? (NSTemporaryDirectory() as NSString)
            .appendingPathComponent("keyless-\(name)-\(UUID().uuidString.prefix(8)).log")
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard logFD >= 0 else {
            throw TestSupportError("cannot create log file \(log): \(String(cString: strerror(errno)))")
        }
        defer { close(logFD) }
        let errFD = stderrPath.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) } ?? logFD
        guard errFD >= 0 else {
            throw TestSupportError("cannot create \(stderrPath ?? ""): \(String(cString: strerror(errno)))")
        }
        defer { if errFD != logFD { close(errFD) } }
        let nullFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard nullFD >= 0 else { throw TestSupportError("cannot open /dev/null: \(String(cString: strerror(errno)))") }
        defer { close(nullFD) }

        var childEnvironment = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        childEnvironment.merge(environment) { _, new in new }

        var spawn = ChildProcess(executable: resolved, argv: [resolved] + arguments, environment: childEnvironment)
        (spawn.standardInput, spawn.standardOutput, spawn.standardError) = (nullFD, logFD, errFD)
        spawn.currentDirectory = currentDirectory
        let child: pid_t
        do { child = try spawn.spawn() } catch { throw TestSupportError("cannot start \(resolved): \(error)") }
        self.pid = child
        self.logPath = log
        self.commandLine = ([resolved] + arguments).joined(separator: " ")
    }

    /// Runs a command to completion (killing it after `timeout` seconds) and returns its exit status and combined output.
    public static func run(
        _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
        currentDirectory: String? = nil, timeout: TimeInterval = 120
    ) throws -> (status: Int32, output: String) {
        let child = try PartnerProcess(
            executable: executable, arguments: arguments, environment: environment,
            currentDirectory: currentDirectory)
        defer { try? FileManager.default.removeItem(atPath: child.logPath) }
        let status = child.waitForExit(timeout: timeout)
        if status == nil { child.stop() }
        let output = child.log()
        guard let status else {
            throw TestSupportError("\(child.commandLine) did not finish within \(Int(timeout)) s; output:\n\(output)")
        }
        return (status, output)
    }

    /// Reaps the child if it has exited (non-blocking); returns its status once it has.
    private func reap() -> Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let reapedStatus { return reapedStatus }
        var raw: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &raw, WNOHANG) } while result == -1 && errno == EINTR
        if result == pid {
            reapedStatus = ChildProcess.exitStatus(raw)
        } else if result == -1 {
            reapedStatus = -1  // not our child any more (SIGCHLD ignored, or reaped elsewhere)
        }
        return reapedStatus
    }

    /// Whether the child is still running.
    public var isRunning: Bool { reap() == nil }

    /// The exit status once the child has exited (128 + N when signal N killed it; -1 if unknown), else nil.
    public var exitStatus: Int32? { reap() }

    /// Waits up to `timeout` seconds for the child to exit on its own; returns its exit status, or nil if it is still running.
    @discardableResult
    public func waitForExit(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = reap() { return status }
            if Date() >= deadline { return nil }
            usleep(10_000)
        }
    }

    /// The log so far (stdout and stderr).
    public func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// The last `lines` lines of the log, for error messages.
    public func logTail(_ lines: Int = 30) -> String {
        log().split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Sends SIGTERM and waits up to `timeout` for a graceful exit; returns that exit status (nil if it had to be killed).
    @discardableResult
    public func terminate(timeout: TimeInterval = 10) -> Int32? {
        if reap() == nil { kill(pid, SIGTERM) }
        let status = waitForExit(timeout: timeout)
        stop()
        return status
    }

    /// Polls `url` until it answers 200 (true), the process exits, or `timeout` passes (false).
    public func waitUntilHealthy(_ url: String, timeout: TimeInterval = 30) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard isRunning else { return false }
            if let answer = try? await PartnerHTTP.send("GET", url, timeout: 2), answer.status == 200 { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Sends SIGTERM to the child's PID, then SIGKILL if it is still running after 3 s, and waits for it to exit. Idempotent.
    public func stop() {
        lock.lock()
        let first = !stopped
        stopped = true
        lock.unlock()
        guard first, reap() == nil else { return }
        kill(pid, SIGTERM)  // not yet reaped, so the PID is still our child's
        if waitForExit(timeout: 3) == nil {
            kill(pid, SIGKILL)
            while reap() == nil { usleep(10_000) }
        }
    }

    deinit { stop() }
}

/// Stops a process this test does not parent (a daemon a script started) by its PID: SIGTERM, SIGKILL after 3 s, then waits.
func stopProcess(pid: Int32) {
    guard pid > 0, processExists(pid) else { return }
    kill(pid, SIGTERM)
    let deadline = Date().addingTimeInterval(3)
    while processExists(pid) && Date() < deadline { usleep(20_000) }
    if processExists(pid) {
        kill(pid, SIGKILL)
        let hardDeadline = Date().addingTimeInterval(5)
        while processExists(pid) && Date() < hardDeadline { usleep(20_000) }
    }
}

/// Whether `pid` names a live (not zombie) process.
func processExists(_ pid: Int32) -> Bool {
    guard kill(pid, 0) == 0 || errno == EPERM else { return false }
    #if os(Linux)
        // A zombie still answers kill(0); /proc/PID/stat's third field is its state.
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        {
            let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
            return state != "Z" && state != "X"
        }
    #endif
    return true
}

/// A `keyless server` or `keyless idp serve` a test started: its process, and the directory that holds its files.
public protocol KeylessServerProcess: Sendable {
    var process: PartnerProcess { get }
    var directory: String { get }
}

extension KeylessServerProcess {
    /// Stops the server (SIGTERM: graceful shutdown) and waits for it; returns its exit status.
    @discardableResult
    public func stop(timeout: TimeInterval = 10) -> Int32? {
        process.terminate(timeout: timeout)
    }

    /// Stops the server and deletes its directory.
    public func stopAndRemove() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
