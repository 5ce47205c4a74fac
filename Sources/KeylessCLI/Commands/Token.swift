import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessFastPath
import KeylessOIDC

extension Keyless {
    /// `keyless token`: print a valid ID token for other tools.
    struct Token: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a valid ID token (refreshing or logging in if needed).")

        @OptionGroup var provider: ProviderOptions

        @Option(
            name: .customLong("profile"),
            help: "Take the provider and client from this profile's credential_process line.")
        var profile: String?

        @Flag(name: .customLong("json"), help: "Print JSON with the token, its expiry and subject.")
        var json = false

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let broker = try provider.broker(profile: profile, context: context)
                let tokens = try await broker.tokens()
                if json {
                    let claims = UnverifiedJWT.claims(tokens.idToken)
                    let text =
                        try JSONWriter.text([
                            "id_token": tokens.idToken, "expires_at": rfc3339(claims?.exp ?? 0),
                            "subject": claims?.sub ?? "",
                        ]) + "\n"
                    FileHandle.standardOutput.write(Data(text.utf8))
                } else {
                    FileHandle.standardOutput.write(Data((tokens.idToken + "\n").utf8))
                }
            }
        }
    }
}
