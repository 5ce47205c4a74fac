import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore

extension Keyless {
    /// `keyless logout`: clear tokens and credentials and revoke the refresh token.
    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove cached tokens and credentials, revoking the refresh token where the provider supports it."
        )

        @OptionGroup var provider: ProviderOptions

        @Option(name: .customLong("profile"), help: "Take the provider and client from this profile.")
        var profile: String?

        @Flag(name: .customLong("all"), help: "Remove every entry of the store.")
        var all = false

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                if all {
                    let store = try context.store(provider.secretStore)
                    for header in try store.headers() { try store.delete(header.name) }
                    context.terminal.say("Removed every cached token and credential.")
                    return
                }
                let broker = try provider.broker(profile: profile, context: context)
                let done = try await broker.logout()
                context.terminal.say(
                    done.isEmpty
                        ? "Nothing was cached for this provider and client."
                        : done.map { "- " + $0 }.joined(separator: "\n"))
            }
        }
    }
}
