import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessOIDC

extension Keyless {
    /// `keyless login`: log in and keep the tokens.
    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Log in with your OpenID Provider (browser with PKCE, or --device).")

        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let broker = CredentialBroker(
                    login: try provider.settings(), store: try context.store(provider.secretStore), context: context)
                let (_, claims) = try await broker.loginNow()
                context.terminal.say("Logged in as \(claims.displayName) (ID token valid until \(claims.expiresAt)).")
                if let tenant = claims.tid, Discovery.normalize(claims.iss) != broker.login.oidc.issuer {
                    // Entra's common endpoint: the token names the person's tenant, and that is the issuer AWS must trust.
                    context.terminal.say(
                        "Your ID tokens are issued by \(claims.iss) (tenant \(tenant)): that is the issuer "
                            + "AWS must trust (keyless bootstrap --issuer-url \(claims.iss)); --issuer-url \(claims.iss) also works here."
                    )
                }
            }
        }
    }
}
