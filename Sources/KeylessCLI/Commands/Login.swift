import ArgumentParser
import Foundation
import KeylessCore

extension Keyless {
    /// `keyless login`: log in and keep the tokens.
    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Log in with your OpenID Provider (browser with PKCE, or --device).")

        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await reporting {
                let context = try CommandContext.live(verbose: provider.verbose)
                let broker = CredentialBroker(login: try provider.settings(), store: try context.store(provider.secretStore), context: context)
                let (_, claims) = try await broker.loginNow()
                context.terminal.say("Logged in as \(claims.displayName) (ID token valid until \(claims.expiresAt)).")
            }
        }
    }
}
