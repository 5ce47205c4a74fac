import ArgumentParser
import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore

extension Keyless {
    /// `keyless console`: the AWS console, signed in as a role.
    struct Console: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Open the AWS console as a role (through the keyless server when the profile uses one, else with federation directly)."
        )

        @Option(
            name: .customLong("profile"), help: "The profile in ~/.aws/config whose credential_process runs keyless.")
        var profile: String?

        @OptionGroup var provider: ProviderOptions
        @OptionGroup var role: RoleOptions

        @Flag(
            name: .customLong("print"),
            help: "Print the sign-in URL instead of opening a browser (it works once, for 15 minutes).")
        var printOnly = false

        @Option(
            name: .customLong("destination"),
            help: "The console page to open (default: the console home of the region).")
        var destination: String?

        @Option(
            name: .customLong("federation-endpoint"),
            help:
                "The AWS federation endpoint (default: $KEYLESS_FEDERATION_ENDPOINT, else the region's partition's signin endpoint)."
        )
        var federationEndpoint: String?

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                var provider = self.provider
                var roleSettings: RoleSettings
                if let name = profile ?? (role.roleArn == nil ? context.environment["AWS_PROFILE"] : nil) {
                    let loaded = try KeylessProfile.load(name, context: context)
                    provider = loaded.provider
                    roleSettings = try loaded.role.settings()
                    let narrowed = try role.scope.sessionScope()
                    if !narrowed.isEmpty { roleSettings.scope = narrowed }
                    roleSettings.region = role.region ?? loaded.region
                    if let server = role.server { roleSettings.server = server }
                } else {
                    roleSettings = try role.settings()
                }
                let broker = CredentialBroker(
                    login: try provider.settings(),
                    store: try context.store(self.provider.secretStore ?? provider.secretStore), context: context)
                let url: String
                if let server = roleSettings.server {
                    // The server's console link is the role's full session: never hand it out for a narrowed ask.
                    guard roleSettings.scope.isEmpty else {
                        throw KeylessError(
                            .usage, "A narrowed console link is not available through a keyless server yet.",
                            hint: "Drop --session-policy/--policy-arn, or use a profile without --server.")
                    }
                    url = try await ServerSession(server: server, broker: broker, context: context).console(
                        roleArn: roleSettings.roleArn, destination: destination)
                } else {
                    let cached = try await broker.credentials(for: roleSettings)
                    let credentials = AWSCredentials(
                        accessKeyId: cached.accessKeyId, secretAccessKey: cached.secretAccessKey,
                        sessionToken: cached.sessionToken,
                        expiration: Date(timeIntervalSince1970: cached.expiration))
                    let endpoint =
                        federationEndpoint ?? context.environment["KEYLESS_FEDERATION_ENDPOINT"]
                        ?? ConsoleFederation.defaultEndpoint(region: roleSettings.region)
                    url = try await ConsoleFederation(endpoint: endpoint, issuerName: "keyless", http: context.http)
                        .loginURL(
                            credentials: credentials,
                            destination: destination
                                ?? ConsoleFederation.defaultDestination(region: roleSettings.region))
                }
                let presenter = TerminalPresenter(
                    terminal: context.terminal, environment: context.environment, browserCommand: provider.browser,
                    noBrowser: printOnly)
                if !printOnly && presenter.openBrowser(url) {
                    context.terminal.say("Opened the AWS console as \(roleSettings.roleArn) in your browser.")
                } else {
                    print(url)
                }
            }
        }
    }
}
