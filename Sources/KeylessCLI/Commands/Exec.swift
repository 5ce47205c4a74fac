import ArgumentParser
import Foundation
import KeylessCore
#if canImport(Glibc)
import Glibc
#endif

extension Keyless {
    /// `keyless exec`: run a command with credentials in its environment.
    struct Exec: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run a command with the profile's AWS credentials in its environment.")

        @OptionGroup var options: ProfileOption

        @Argument(parsing: .captureForPassthrough, help: "The command and its arguments (after --).")
        var command: [String] = []

        func run() async throws {
            try await reporting {
                let context = try CommandContext.live(verbose: options.verbose)
                var argv = command
                if argv.first == "--" { argv.removeFirst() }
                if let outer = context.environment["KEYLESS_EXEC_PROFILE"] {
                    throw KeylessError(.nested, "This shell already runs under keyless exec (profile \(outer)); nesting would mix credentials.",
                                       hint: "Exit that shell first, or run the command directly.")
                }
                if argv.isEmpty { argv = [context.environment["SHELL"] ?? "/bin/sh"] }
                let name = try options.resolvedName(context)
                let profile = try KeylessProfile.load(name, context: context)
                let resolved = try await profile.credentials(context: context, secretStore: options.secretStore)
                var environment = context.environment.values
                for variable in ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "KEYLESS_FILE_PASSPHRASE"] { environment.removeValue(forKey: variable) }
                for (name, value) in resolved.variables { environment[name] = value }
                environment["KEYLESS_EXEC_PROFILE"] = name
                try execute(argv, environment: environment)
            }
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
            throw KeylessError(.usage, "Cannot run \(argv[0]): \(Files.errnoString()).", hint: "Check the command name and PATH.")
        }
    }
}
