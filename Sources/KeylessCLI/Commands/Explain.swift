import ArgumentParser
import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore
import KeylessOIDC
import KeylessTrust

extension Keyless {
    /// `keyless explain`: why a role's trust policy lets a token in, or what to change so it does.
    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Explain whether a role's trust policy allows AssumeRoleWithWebIdentity for a token, statement by statement.",
            discussion: """
                The token's claims are read without checking its signature (this is a diagnosis, not a login). The trust policy \
                comes from IAM (GetRole, with your AWS credentials from the usual chain) or from --policy-file. Exit status 0 when \
                allowed, 4 when not.
                """)

        @Option(
            name: [.customLong("role-arn"), .customLong("aws-role-arn")],
            help: "The role whose trust policy to evaluate.")
        var roleArn: String

        @Option(
            name: .customLong("token"),
            help:
                "The token (JWT) itself. Other users of this machine can read it in the process list: prefer --token-file, or --token-file - to read it from standard input."
        )
        var token: String?

        @Option(
            name: .customLong("token-file"),
            help: "A file holding the token (a web-identity token file, CI's token), or - for standard input.")
        var tokenFile: String?

        @Option(
            name: .customLong("profile"), help: "Use the ID token keyless holds for this profile's issuer and client.")
        var profile: String?

        @Option(name: .customLong("policy-file"), help: "Read the trust policy from this file instead of asking IAM.")
        var policyFile: String?

        @Option(
            name: .customLong("iam-endpoint"),
            help: "The IAM endpoint (default: AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL, the global one).")
        var iamEndpoint: String?

        func validate() throws {
            let sources = [token != nil, tokenFile != nil, profile != nil].filter { $0 }.count
            guard sources == 1 else { throw ValidationError("give exactly one of --token, --token-file or --profile") }
        }

        func run() async throws {
            var denied = false
            try await reporting {
                try STSClient.validateRoleArn(roleArn)
                let context = try ClientContext.live()
                let jwt = try await loadToken(context)
                let explanation = try await RoleTrustExplanation.explain(
                    roleArn: roleArn, token: jwt, policyFile: policyFile,
                    iamEndpoint: iamEndpoint, context: context)
                print(explanation.header)
                print(explanation.text, terminator: "")
                denied = !explanation.allowed
            }
            if denied { throw ExitCode(4) }
        }

        func loadToken(_ context: ClientContext) async throws -> String {
            if let token { return token.trimmingCharacters(in: .whitespacesAndNewlines) }
            if tokenFile == "-" {
                let bytes = FileHandle.standardInput.readDataToEndOfFile().prefix(64 * 1024)
                let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard !text.isEmpty else {
                    throw KeylessError(
                        .usage, "No token arrived on standard input.",
                        hint: "Pipe the token in: `keyless explain --token-file - ... < token.jwt`.")
                }
                return text
            }
            if let tokenFile {
                guard let bytes = try Files.read(tokenFile) else {
                    throw KeylessError(
                        .usage, "The token file \(tokenFile) does not exist.",
                        hint: "Pass the path of the token, or --token.")
                }
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let loaded = try KeylessProfile.load(profile!, context: context)
            let broker = CredentialBroker(
                login: try loaded.provider.settings(), store: try context.store(loaded.provider.secretStore),
                context: context)
            return try await broker.tokens().idToken
        }
    }
}
