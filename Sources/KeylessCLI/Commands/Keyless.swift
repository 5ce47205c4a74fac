import ArgumentParser
import Foundation
import KeylessAWS
import KeylessBuildInfo
import KeylessClient
import KeylessCore
import KeylessOIDC

/// The `keyless` command.
public struct Keyless: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keyless",
        abstract: "Short-lived AWS credentials from your OpenID Connect identity.",
        discussion: """
            Exit codes: 0 ok, 1 keyless doctor found a problem, 2 usage or configuration, 3 login needed or failed, 4 AWS refused, \
            5 identity provider or AWS unreachable, 6 local store or lock problem, 7 nested exec refused.
            """,
        version: "keyless " + BuildInfo.versionLine,
        subcommands: [
            Login.self, CredsProcess.self, Exec.self, Env.self, Token.self, Status.self, Logout.self, Configure.self,
            Roles.self, Request.self, Requests.self, Approve.self, Deny.self, Revoke.self, Console.self, Explain.self,
            Thumbprint.self, Server.self, IdP.self, Bootstrap.self, Doctor.self,
            Completion.self, Version.self,
        ]
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

    @Option(
        name: .customLong("scopes"), parsing: .upToNextOption,
        help:
            "Scopes to request (default for people: those given at the last login, else openid and those of email, profile, groups, offline_access the provider lists as supported (groups only when listed); openid always added; for --client-credentials: none unless given)."
    )
    var scopes: [String] = []

    @Option(
        name: .customLong("auth-param"),
        help: ArgumentHelp(
            "A provider-specific authorization parameter KEY=VALUE (repeatable): audience (Auth0), idp (Okta), domain_hint or login_hint (Entra), prompt.",
            discussion: "Kept with the login, so a login that creds-process starts later asks the same.",
            valueName: "key=value"))
    var authParams: [String] = []

    @Option(
        name: .customLong("client-secret"),
        help: ArgumentHelp(
            "The client secret itself, for installed-app clients whose secret is public by design (Google's Desktop app clients); never logged. Prefer --client-secret-file for real secrets.",
            valueName: "secret"))
    var clientSecret: String?

    @Option(
        name: .customLong("session-name-claim"),
        help: ArgumentHelp(
            "The ID-token claim that names the STS session (default: email unless email_verified is false, else preferred_username, else upn, else sub).",
            valueName: "claim"))
    var sessionNameClaim: String?

    @Option(
        name: .customLong("provider"),
        help: ArgumentHelp(
            "The provider's dialect: auto (default: Google and Entra ID recognised by their issuer), generic, google, entra.",
            valueName: "kind"))
    var provider: String?

    @Flag(name: .customLong("device"), help: "Log in with the device flow (for SSH and headless machines).")
    var device = false

    @Flag(name: .customLong("no-browser"), help: "Print the login URL instead of opening a browser.")
    var noBrowser = false

    @Option(
        name: .customLong("browser"),
        help: "The command that opens the login URL (default: $BROWSER, then xdg-open/open).")
    var browser: String?

    @Option(
        name: .customLong("redirect-port"),
        help: "Fixed loopback port for the redirect (for providers that match redirect URIs exactly).")
    var redirectPort: Int = 0

    @Option(name: .customLong("timeout"), help: "Seconds to wait for a browser login.")
    var timeout: Double = 300

    @Option(
        name: .customLong("secret-store"),
        help: "Where tokens are kept: file (encrypted, default), secret-service, keychain, plaintext.")
    var secretStore: String?

    @Flag(name: .shortAndLong, help: "More logging on stderr (repeat for more; secrets are never logged).")
    var verbose: Int

    @Flag(
        name: .customLong("client-credentials"),
        help:
            "A service, not a person: the client_credentials grant at --issuer-url with --client-id and --client-secret-file or --client-key-file."
    )
    var clientCredentials = false

    @Option(
        name: .customLong("client-secret-file"),
        help:
            "A file (mode 0600) holding the client secret: client_secret_basic with --client-credentials, else a person's confidential client."
    )
    var clientSecretFile: String?

    @Option(
        name: .customLong("client-key-file"),
        help: "A PEM private key file (RSA or P-256, mode 0600) for private_key_jwt client authentication.")
    var clientKeyFile: String?

    @Option(
        name: .customLong("web-identity-token-file"),
        help: "A service's OIDC token in a file others keep fresh (Kubernetes, CI); read on every refresh.")
    var webIdentityTokenFile: String?

    @Option(
        name: .customLong("token-command"),
        help: "A command (run with /bin/sh -c) whose trimmed stdout is the service's OIDC token.")
    var tokenCommand: String?

    @Option(
        name: .customLong("token-command-timeout"), help: "Seconds the --token-command may run before it is stopped.")
    var tokenCommandTimeout: Double = 30

    func validate() throws {
        let sources = [
            clientCredentials ? "--client-credentials" : nil,
            webIdentityTokenFile.map { _ in "--web-identity-token-file" },
            tokenCommand.map { _ in "--token-command" },
        ].compactMap { $0 }
        guard sources.count <= 1 else {
            throw ValidationError(
                "Use one of \(sources.joined(separator: ", ")): each is a different source of the service's token.")
        }
        if clientCredentials {
            guard issuerURL != nil, clientID != nil else {
                throw ValidationError(
                    "--client-credentials needs --issuer-url and --client-id (the provider and the service's client).")
            }
            guard (clientSecretFile == nil) != (clientKeyFile == nil) else {
                throw ValidationError(
                    "--client-credentials needs exactly one of --client-secret-file (client_secret_basic) or --client-key-file (private_key_jwt)."
                )
            }
        } else if clientKeyFile != nil || (clientSecretFile != nil && !sources.isEmpty) {
            throw ValidationError(
                "--client-key-file and --client-secret-file authenticate a service: use them with --client-credentials."
            )
        }
        if !sources.isEmpty && device {
            throw ValidationError(
                "--device logs a person in; \(sources[0]) is for services, which never log in interactively.")
        }
        guard tokenCommandTimeout > 0 else {
            throw ValidationError("--token-command-timeout must be more than 0 seconds.")
        }
        if clientSecret != nil && (clientSecretFile != nil || !sources.isEmpty) {
            throw ValidationError(
                "--client-secret is for a person's installed-app client; use --client-secret-file alone (and for services)."
            )
        }
        for text in authParams {
            do { _ = try AuthorizationParameter.parse(text) } catch let error as KeylessError {
                throw ValidationError("\(error.reason) \(error.hint ?? "")")
            }
        }
        if let provider, provider != "auto", ProviderDialect(rawValue: provider) == nil {
            throw ValidationError(
                "--provider \(provider) is not one of auto, \(ProviderDialect.allCases.map(\.rawValue).joined(separator: ", "))."
            )
        }
    }

    /// The service's token source, if these flags name one.
    var workload: WorkloadSource? {
        if clientCredentials {
            let authentication: WorkloadSource.ClientAuthentication =
                clientKeyFile.map { .privateKeyFile($0) } ?? .secretFile(clientSecretFile ?? "")
            return .clientCredentials(authentication, scopes: splitScopes)
        }
        if let webIdentityTokenFile { return .tokenFile(webIdentityTokenFile) }
        if let tokenCommand { return .tokenCommand(tokenCommand, timeout: tokenCommandTimeout) }
        return nil
    }

    var splitScopes: [String] { scopes.flatMap { $0.split(separator: " ").map(String.init) } }

    func settings() throws -> LoginSettings {
        if let workload, !clientCredentials {
            // A token handed over by CI or Kubernetes: no provider or client needed (--issuer-url, when given, is checked against the token).
            return LoginSettings(
                oidc: .init(issuer: issuerURL ?? "", clientID: clientID ?? ""), timeout: timeout, workload: workload)
        }
        guard let issuerURL, let clientID else {
            throw KeylessError(
                .usage, "Both --issuer-url and --client-id are needed.",
                hint: "Pass them, or use --profile NAME for a profile in ~/.aws/config.")
        }
        guard (0...65535).contains(redirectPort) else {
            throw KeylessError(
                .usage, "--redirect-port \(redirectPort) is not a port.",
                hint: "Use 1–65535, or leave it out for a random free port.")
        }
        var secret = clientSecret
        if workload == nil, let clientSecretFile {
            // A person logging in through a confidential client.
            secret = String(decoding: try PrivateFile.read(clientSecretFile, what: "client secret file"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let oidc = OIDCClientConfiguration(
            issuer: issuerURL, clientID: clientID, clientSecret: secret,
            scopes: splitScopes.isEmpty ? nil : splitScopes,
            authorizationParameters: try authParams.map(AuthorizationParameter.parse),
            dialect: provider.flatMap { ProviderDialect(rawValue: $0) })
        return LoginSettings(
            oidc: oidc, device: device, noBrowser: noBrowser, browser: browser, redirectPort: redirectPort,
            timeout: timeout,
            workload: workload, sessionNameClaim: sessionNameClaim)
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

    @Option(
        name: .customLong("sts-endpoint"),
        help: "STS endpoint URL (default: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, or the regional one).")
    var stsEndpoint: String?

    @Option(
        name: .customLong("server"),
        help: "A keyless server URL: it issues the credentials (policy, session tags) instead of STS directly.")
    var server: String?

    @OptionGroup var scope: ScopeOptions

    func settings() throws -> RoleSettings {
        guard let roleArn else {
            throw KeylessError(
                .usage, "--aws-role-arn is needed.", hint: "Pass --aws-role-arn arn:aws:iam::ACCOUNT:role/NAME.")
        }
        return RoleSettings(
            roleArn: roleArn, durationSeconds: duration, region: region, stsEndpoint: stsEndpoint, server: server,
            scope: try scope.sessionScope())
    }
}

/// `--session-policy` and `--policy-arn`: a session narrower than the role (STS `Policy` / `PolicyArns`).
struct ScopeOptions: ParsableArguments {
    @Option(
        name: .customLong("session-policy"),
        help: ArgumentHelp(
            "A session policy narrowing the credentials: a file, or the JSON itself (starting with {).",
            discussion:
                "STS gives the session only what both the role and this policy allow. Cached apart from the role's full sessions.",
            valueName: "file|json"))
    var sessionPolicy: String?

    @Option(
        name: .customLong("policy-arn"),
        help: ArgumentHelp(
            "A managed policy narrowing the credentials (repeatable, at most 10).", valueName: "arn"))
    var policyArns: [String] = []

    /// The scope these flags ask for (the broker checks it as STS would, before anything is sent).
    func sessionScope() throws -> SessionScope {
        var policy: String?
        if let sessionPolicy {
            let trimmed = sessionPolicy.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("{") {
                policy = trimmed
            } else {
                guard let bytes = try Files.read(trimmed), bytes.count <= 64 * 1024 else {
                    throw KeylessError(
                        .usage, "The session policy file \(trimmed) does not exist or is larger than 64 KiB.",
                        hint: "Pass a policy file, or the policy JSON itself.")
                }
                policy = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return SessionScope(policy: policy, policyArns: policyArns)
    }
}

/// The entry point the executable calls after the fast path declined.
public enum KeylessEntry {
    /// Parses the command line and runs the command.
    public static func run() async {
        await Keyless.main()
    }
}
