import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore

extension Keyless {
    /// `keyless doctor`: checks the whole chain of a login without logging in.
    struct Doctor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check a provider, a client and this machine without logging in; each problem is printed with its fix.",
            discussion: """
                Checks the discovery document, this machine's clock against the provider's, the JWKS and signing algorithms, the \
                scopes and grants keyless would use, whether the token endpoint knows the client, the redirect and device \
                endpoints, the secret store, and with --profile the role's trust policy (keyless explain, with the ID token \
                already held). Exit status 0 when nothing failed, 1 when something did.
                """)

        @OptionGroup var provider: ProviderOptions

        @Option(
            name: .customLong("profile"),
            help: "A profile in ~/.aws/config: its provider flags, and its role's trust policy checked too.")
        var profile: String?

        @Option(
            name: .customLong("iam-endpoint"),
            help:
                "The IAM endpoint for the trust-policy check (default: AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL, the global one)."
        )
        var iamEndpoint: String?

        func run() async throws {
            var failed = false
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let loaded = try profile.map { try KeylessProfile.load($0, context: context) }
                let options = loaded?.provider ?? provider
                let login = try options.settings()
                guard login.workload == nil || options.clientCredentials else {
                    throw KeylessError(
                        .usage,
                        "keyless doctor checks a provider and client; a token file or command has none to check.",
                        hint: "Pass --issuer-url and --client-id (keyless explain checks a token against a role).")
                }
                let doctor = LoginDoctor(
                    login: login, context: context, secretStore: provider.secretStore ?? options.secretStore)
                var findings = await doctor.providerFindings()
                findings.append(doctor.storeFinding())
                if let loaded { findings.append(await trustFinding(loaded, login: login, context: context)) }
                for finding in findings { print(finding.text) }
                failed = findings.contains { $0.status == .failed }
                print(
                    failed
                        ? "Something failed: fix the lines marked FAIL, then run keyless doctor again."
                        : "Nothing failed.")
            }
            if failed { throw ExitCode(1) }
        }

        /// The profile's role against the ID token keyless already holds (no login, no refresh).
        func trustFinding(_ profile: KeylessProfile, login: LoginSettings, context: ClientContext) async
            -> DoctorFinding
        {
            guard let roleArn = profile.role.roleArn else {
                return DoctorFinding("trust policy", .skipped, "profile \(profile.name) names no role")
            }
            if profile.role.server != nil {
                return DoctorFinding(
                    "trust policy", .skipped,
                    "profile \(profile.name) gets credentials from a keyless server, whose policy decides (keyless roles lists yours)"
                )
            }
            do {
                let broker = CredentialBroker(
                    login: login, store: try context.store(provider.secretStore ?? profile.provider.secretStore),
                    context: context)
                guard let tokens = try broker.storedTokens() else {
                    return DoctorFinding(
                        "trust policy", .skipped, "no ID token is held for this provider and client yet",
                        fix:
                            "Log in first (aws sts get-caller-identity --profile \(profile.name) logs you in through keyless), then run keyless doctor --profile \(profile.name) again."
                    )
                }
                let explanation = try await RoleTrustExplanation.explain(
                    roleArn: roleArn, token: tokens.idToken, policyFile: nil,
                    iamEndpoint: iamEndpoint, context: context)
                let text = explanation.text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(
                    of: "\n", with: "\n       ")
                return explanation.allowed
                    ? DoctorFinding("trust policy", .ok, "\(roleArn) allows your ID token: \(text)")
                    : DoctorFinding(
                        "trust policy", .failed, "\(roleArn) would refuse your ID token:\n       \(text)",
                        fix:
                            "Change the role's trust policy (keyless bootstrap) or log in as someone it allows; keyless explain --role-arn \(roleArn) --profile \(profile.name) shows the same."
                    )
            } catch let error as KeylessError {
                return DoctorFinding(
                    "trust policy", .skipped, "cannot read the role's trust policy: \(error.reason)", fix: error.hint)
            } catch {
                return DoctorFinding("trust policy", .skipped, "cannot read the role's trust policy: \(error)")
            }
        }
    }
}
