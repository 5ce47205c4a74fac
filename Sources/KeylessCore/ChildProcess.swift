#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why posix_spawn could not start a child: its error number.
public struct SpawnFailure: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public var description: String { String(cString: strerror(code)) }
}

/// keyless's one way to start a child process (`exec`'s command, a `--token-command`, the browser, a test's partner).
///
/// posix_spawn with an empty signal mask and default handling for every signal keyless ignores or catches (an ignored
/// signal would otherwise stay ignored across exec), descriptors 0-2 as asked and every other one closed where glibc
/// can (2.34+), optionally in a process group of its own and another working directory. The caller owns the PID and
/// reaps it with waitpid; `exitStatus` reads what waitpid returned.
public struct ChildProcess: Sendable {
    /// The path of the program to run (see `executablePath`).
    public var executable: String
    /// The whole argument vector, argv[0] first.
    public var argv: [String]
    /// The child's whole environment.
    public var environment: [String: String]
    /// Descriptors to place at 0, 1 and 2; nil leaves this process's own.
    public var standardInput: Int32?
    public var standardOutput: Int32?
    public var standardError: Int32?
    /// Starts the child as the leader of a new process group, so `kill(-pid, …)` reaches everything it starts.
    public var ownProcessGroup = false
    /// The child's working directory; nil keeps this process's.
    public var currentDirectory: String?

    public init(executable: String, argv: [String], environment: [String: String]) {
        self.executable = executable
        self.argv = argv
        self.environment = environment
    }

    /// The signals a child gets back at their default action.
    static let resetSignals = [SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD, SIGALRM, SIGUSR1, SIGUSR2]

    /// Starts the child and returns its PID.
    public func spawn() throws(SpawnFailure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (source, target) in [(standardInput, 0), (standardOutput, 1), (standardError, 2)] as [(Int32?, Int32)] {
            if let source { posix_spawn_file_actions_adddup2(&actions, source, target) }
        }
        if let closeFrom = SpawnExtensions.addCloseFrom { _ = closeFrom(&actions, 3) }
        var program = executable
        var vector = argv
        if let currentDirectory {
            if let addChdir = SpawnExtensions.addChdir {
                _ = addChdir(&actions, currentDirectory)
            } else {  // no posix_spawn chdir here: the shell changes directory, then execs the program
                program = "/bin/sh"
                vector = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", currentDirectory, executable] + argv.dropFirst()
            }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Self.resetSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArgv: [UnsafeMutablePointer<CChar>?] = vector.map { strdup($0) } + [nil]
        let cEnvironment: [UnsafeMutablePointer<CChar>?] =
            environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnvironment.forEach { free($0) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, program, &actions, &attributes, cArgv, cEnvironment)
        guard result == 0 else { throw SpawnFailure(code: result) }
        return pid
    }

    /// The path `command` names: itself when it holds a slash, else the first regular, executable file of that name
    /// in `searchPath` (a PATH value); nil when there is none.
    public static func executablePath(_ command: String, searchPath: String?) -> String? {
        if command.contains("/") { return isExecutableFile(command) ? command : nil }
        for directory in (searchPath ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(command)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG && access(path, X_OK) == 0
    }

    /// What a shell would report for a wait status: the exit code, or 128 + the signal that ended the child.
    public static func exitStatus(_ waitStatus: Int32) -> Int32 {
        let signal = waitStatus & 0x7f
        return signal == 0 ? (waitStatus >> 8) & 0xff : 128 + signal
    }
}

/// glibc's posix_spawn extensions, looked up at run time (Swift's Glibc module does not import the GNU declarations).
private enum SpawnExtensions {
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), if present.
    static let addCloseFrom: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+), if present.
    static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")

    private static func symbol<T>(_ name: String) -> T? {
        #if os(Linux)
            guard let address = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }  // RTLD_DEFAULT
            return unsafeBitCast(address, to: T.self)
        #else
            return nil
        #endif
    }
}
