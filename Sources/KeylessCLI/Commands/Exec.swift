import ArgumentParser
import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore
#if canImport(Glibc)
    import Glibc
#endif

extension Keyless {
    /// `keyless exec`: run a command with credentials in its environment.
    struct Exec: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run a command with the profile's AWS credentials in its environment, or served to it with --server.")

        @OptionGroup var options: ProfileOption

        @Flag(
            name: .customLong("server"),
            help: ArgumentHelp(
                "Serve refreshing credentials to the command through the AWS container-credentials protocol instead of putting them in its environment.",
                discussion:
                    "For jobs that outlive one session: keyless stays the parent, listens on 127.0.0.1 with a random port and a random token, and the SDKs in the command refresh through it."
            ))
        var server = false

        @Option(
            name: .customLong("agent"),
            help: ArgumentHelp(
                "Run the command as an agent acting for you (an AI assistant, a script): a session named agent=NAME,<you>, read-only unless --session-policy or --policy-arn say otherwise.",
                discussion:
                    "Through a keyless server the session is also tagged keyless-agent=NAME and keeps you as SourceIdentity, so CloudTrail shows both.",
                valueName: "name"))
        var agent: String?

        @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
        var command: [String] = []

        func validate() throws {
            // The pass-through argument captures --help too; before any command (or --) it asks for ours.
            if let first = command.first, first == "--help" || first == "-h" { throw CleanExit.helpRequest(self) }
        }

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: options.verbose)
                var argv = command
                if argv.first == "--" { argv.removeFirst() }
                if let outer = context.environment["KEYLESS_EXEC_PROFILE"] {
                    throw KeylessError(
                        .nested,
                        "This shell already runs under keyless exec (profile \(outer)); nesting would mix credentials.",
                        hint: "Exit that shell first, or run the command directly.")
                }
                if argv.isEmpty { argv = [context.environment["SHELL"] ?? "/bin/sh"] }
                let name = try options.resolvedName(context)
                if server {
                    try await serve(argv, profile: name, context: context)
                    return
                }
                let profile = try KeylessProfile.load(name, context: context)
                let resolved = try await profile.credentials(
                    context: context, secretStore: options.secretStore, scope: try scope())
                var environment = context.environment.values
                for variable in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "KEYLESS_FILE_PASSPHRASE"] {
                    environment.removeValue(forKey: variable)
                }
                for (name, value) in resolved.variables { environment[name] = value }
                environment["KEYLESS_EXEC_PROFILE"] = name
                try execute(argv, environment: environment)
            }
        }

        /// The session the command gets: the flags' policies, and the agent it runs as.
        func scope() throws -> SessionScope {
            var scope = try options.scope.sessionScope()
            scope.agent = agent
            return scope
        }

        /// Replaces this process with the command (execvp): signals and exit status are the command's own.
        func execute(_ argv: [String], environment: [String: String]) throws {
            let cArgs = argv.map { strdup($0) } + [nil]
            let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            if argv[0].contains("/") {
                execve(argv[0], cArgs, cEnv)
            } else {
                let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
                for directory in path.split(separator: ":") {
                    execve("\(directory)/\(argv[0])", cArgs, cEnv)
                }
            }
            throw KeylessError(
                .usage, "Cannot run \(argv[0]): \(Files.errnoString()).", hint: "Check the command name and PATH.")
        }
    }
}

extension Keyless.Exec {
    /// Variables the child must not see: other credentials an SDK would prefer to the endpoint's, the profile
    /// that would send it back through credential_process, and keyless's own passphrase.
    static let serverRemovedVariables = [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "KEYLESS_FILE_PASSPHRASE",
    ]

    /// The child's environment under `--server`: `base` without other credentials, with the endpoint, its token,
    /// the profile's region and the nesting guard.
    static func serverEnvironment(_ base: [String: String], port: Int, token: String, profile: String, region: String?)
        -> [String: String]
    {
        var environment = base
        for variable in serverRemovedVariables { environment.removeValue(forKey: variable) }
        environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] =
            "http://127.0.0.1:\(port)\(ContainerCredentialsEndpoint.path)"
        environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
        if let region {
            environment["AWS_REGION"] = region
            environment["AWS_DEFAULT_REGION"] = region
        }
        environment["KEYLESS_EXEC_PROFILE"] = profile
        return environment
    }

    /// `--server`: serves the profile's credentials on 127.0.0.1 while the command runs, then exits as it did.
    func serve(_ argv: [String], profile name: String, context: ClientContext) async throws {
        let profile = try KeylessProfile.load(name, context: context)
        let secretStore = options.secretStore
        let scope = try scope()
        // The creds-process path on every request: the broker's cache answers while more than 15 minutes remain,
        // then it refreshes the ID token and calls STS (or logs in) under its lock.
        let source: @Sendable () async throws -> ContainerCredentials = {
            let resolved = try await KeylessProfile.load(name, context: context).credentials(
                context: context, secretStore: secretStore, scope: scope)
            return ContainerCredentials(resolved.credentials)
        }
        // Any login happens now, in the foreground, before the command starts.
        _ = try await source()
        let token = randomToken()
        let endpoint = ContainerCredentialsEndpoint(
            token: token, clock: context.clock, logger: context.logger, source: source)
        let server = ContainerCredentialsServer(endpoint: endpoint, logger: context.logger)
        let running = try await server.start()
        context.logger.info(
            "serving credentials",
            metadata: ["container.url": "http://127.0.0.1:\(running.port)\(ContainerCredentialsEndpoint.path)"])
        let environment = Self.serverEnvironment(
            context.environment.values, port: running.port, token: token, profile: name, region: profile.region)
        let status: Int32
        do {
            status = try await ForwardingChild.run(argv, environment: environment)
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
        if status != 0 { throw ExitCode(status) }
    }
}

/// A command run as keyless's child: default signal dispositions, no descriptor beyond 0–2, and SIGINT, SIGTERM
/// and SIGHUP passed on while it runs.
enum ForwardingChild {
    /// The signals passed on to the child.
    static let forwarded = [SIGINT, SIGTERM, SIGHUP]

    /// Runs `argv` and returns its exit status, or 128 + the signal that ended it.
    static func run(_ argv: [String], environment: [String: String]) async throws -> Int32 {
        let relay = SignalRelay()
        // Watch the signals before the child exists, so none that arrives in between is lost.
        var sources: [any DispatchSourceSignal] = []
        for number in forwarded {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { relay.deliver(number) }
            source.resume()
            sources.append(source)
        }
        defer { sources.forEach { $0.cancel() } }
        let pid = try spawn(argv, environment: environment)
        relay.started(pid)
        return await withCheckedContinuation { continuation in
            Thread {
                continuation.resume(returning: wait(for: pid, relay: relay))
            }.start()
        }
    }

    static func spawn(_ argv: [String], environment: [String: String]) throws -> pid_t {
        guard let program = ChildProcess.executablePath(argv[0], searchPath: environment["PATH"]) else {
            throw KeylessError(
                .usage, "Cannot run \(argv[0]): not found or not executable.", hint: "Check the command name and PATH.")
        }
        // Every descriptor above 2 (the listening socket, the store's files) stays out of the child.
        do {
            return try ChildProcess(executable: program, argv: argv, environment: environment).spawn()
        } catch {
            throw KeylessError(.usage, "Cannot run \(argv[0]): \(error).", hint: "Check the command name and PATH.")
        }
    }

    /// Blocks until the child exits. It is seen exited first and reaped only after the relay stops, so a
    /// late signal never reaches a process that reused the PID.
    static func wait(for pid: pid_t, relay: SignalRelay) -> Int32 {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) == -1 && errno == EINTR {}
        relay.finished()
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        return ChildProcess.exitStatus(raw)
    }
}

/// Passes signals to the child: holds those that arrive before it starts, drops those after it has exited.
final class SignalRelay: @unchecked Sendable {
    // @unchecked: every field is read and written under `lock`.
    private let lock = NSLock()
    private var pid: pid_t = 0
    private var pending: [Int32] = []
    private var done = false

    func deliver(_ number: Int32) {
        lock.lock()
        defer { lock.unlock() }
        if done { return }
        if pid == 0 { pending.append(number) } else { kill(pid, number) }
    }

    func started(_ child: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        pid = child
        pending.forEach { kill(child, $0) }
        pending = []
    }

    func finished() {
        lock.lock()
        defer { lock.unlock() }
        done = true
    }
}
