import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore

extension Keyless {
    /// `keyless creds-process`: the `credential_process` helper.
    struct CredsProcess: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "creds-process",
            abstract: "Print AWS credentials as credential_process JSON (for ~/.aws/config).",
            discussion: "stdout carries only the JSON; messages go to the terminal or stderr.")

        @OptionGroup var provider: ProviderOptions
        @OptionGroup var role: RoleOptions

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let broker = CredentialBroker(
                    login: try provider.settings(), store: try context.store(provider.secretStore), context: context)
                let credentials = try await broker.credentials(for: try role.settings())
                FileHandle.standardOutput.write(Data((credentials.credentialProcessJSON + "\n").utf8))
            }
        }
    }
}
