import ArgumentParser
import Foundation
import KeylessCore

/// The `keyless` command.
public struct Keyless: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keyless",
        abstract: "Short-lived AWS credentials from your OpenID Connect identity.",
        discussion: """
        Exit codes: 0 ok, 2 usage or configuration, 3 login needed or failed, 4 AWS refused, \
        5 identity provider or AWS unreachable, 6 local store or lock problem, 7 nested exec refused.
        """,
        version: "0.1.0",
        subcommands: [Login.self, CredsProcess.self, Exec.self, Env.self, Token.self, Status.self, Logout.self, Configure.self, Roles.self, Console.self, Explain.self, Thumbprint.self, Server.self, IdP.self]
    )

    public init() {}
}

/// Runs a command body, turning `KeylessError`s into a message on stderr and their exit code.
func reporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as KeylessError {
        FileHandle.standardError.write(Data("keyless: \(error.description)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}

/// Which provider and client, and how to log in (aws-oidc's flag names).
struct ProviderOptions: ParsableArguments {
    @Option(name: .customLong("issuer-url"), help: "The OpenID Provider's issuer URL.")
    var issuerURL: String?

    @Option(name: .customLong("client-id"), help: "The OIDC client id registered for keyless.")
    var clientID: String?

    @Option(name: .customLong("scopes"), parsing: .upToNextOption, help: "Scopes to request (openid is always added).")
    var scopes: [String] = ["openid", "email", "profile", "offline_access"]

    @Flag(name: .customLong("device"), help: "Log in with the device flow (for SSH and headless machines).")
    var device = false

    @Flag(name: .customLong("no-browser"), help: "Print the login URL instead of opening a browser.")
    var noBrowser = false

    @Option(name: .customLong("browser"), help: "The command that opens the login URL (default: $BROWSER, then xdg-open/open).")
    var browser: String?

    @Option(name: .customLong("redirect-port"), help: "Fixed loopback port for the redirect (for providers that match redirect URIs exactly).")
    var redirectPort: Int = 0

    @Option(name: .customLong("timeout"), help: "Seconds to wait for a browser login.")
    var timeout: Double = 300

    @Option(name: .customLong("secret-store"), help: "Where tokens are kept: file (encrypted, default), secret-service, keychain, plaintext.")
    var secretStore: String?

    @Flag(name: .shortAndLong, help: "More logging on stderr (repeat for more; secrets are never logged).")
    var verbose: Int

    func settings() throws -> LoginSettings {
        guard let issuerURL, let clientID else {
            throw KeylessError(.usage, "Both --issuer-url and --client-id are needed.", hint: "Pass them, or use --profile NAME for a profile in ~/.aws/config.")
        }
        guard (0...65535).contains(redirectPort) else {
            throw KeylessError(.usage, "--redirect-port \(redirectPort) is not a port.", hint: "Use 1–65535, or leave it out for a random free port.")
        }
        return LoginSettings(oidc: .init(issuer: issuerURL, clientID: clientID, scopes: scopes.flatMap { $0.split(separator: " ").map(String.init) }),
                             device: device, noBrowser: noBrowser, browser: browser, redirectPort: redirectPort, timeout: timeout)
    }
}

/// Which role to assume.
struct RoleOptions: ParsableArguments {
    @Option(name: [.customLong("aws-role-arn"), .customLong("role-arn")], help: "The IAM role to assume.")
    var roleArn: String?

    @Option(name: .customLong("duration"), help: "Session length in seconds (900 to the role's maximum; default 3600).")
    var duration: Int?

    @Option(name: .customLong("region"), help: "AWS region, for the regional STS endpoint.")
    var region: String?

    @Option(name: .customLong("sts-endpoint"), help: "STS endpoint URL (default: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, or the regional one).")
    var stsEndpoint: String?

    @Option(name: .customLong("server"), help: "A keyless server URL: it issues the credentials (policy, session tags) instead of STS directly.")
    var server: String?

    func settings() throws -> RoleSettings {
        guard let roleArn else {
            throw KeylessError(.usage, "--aws-role-arn is needed.", hint: "Pass --aws-role-arn arn:aws:iam::ACCOUNT:role/NAME.")
        }
        return RoleSettings(roleArn: roleArn, durationSeconds: duration, region: region, stsEndpoint: stsEndpoint, server: server)
    }
}

/// The entry point the executable calls after the fast path declined.
public enum KeylessEntry {
    /// Parses the command line and runs the command.
    public static func run() async {
        await Keyless.main()
    }
}
