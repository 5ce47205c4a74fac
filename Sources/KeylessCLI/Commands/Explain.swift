import ArgumentParser
import Foundation
import KeylessAWS
import KeylessCore
import KeylessOIDC
import KeylessTrust

extension Keyless {
    /// `keyless explain`: why a role's trust policy lets a token in, or what to change so it does.
    struct Explain: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Explain whether a role's trust policy allows AssumeRoleWithWebIdentity for a token, statement by statement.",
            discussion: """
            The token's claims are read without checking its signature (this is a diagnosis, not a login). The trust policy \
            comes from IAM (GetRole, with your AWS credentials from the usual chain) or from --policy-file. Exit status 0 when \
            allowed, 4 when not.
            """)

        @Option(name: [.customLong("role-arn"), .customLong("aws-role-arn")], help: "The role whose trust policy to evaluate.")
        var roleArn: String

        @Option(name: .customLong("token"), help: "The token (JWT) itself.")
        var token: String?

        @Option(name: .customLong("token-file"), help: "A file holding the token (a web-identity token file, CI's token).")
        var tokenFile: String?

        @Option(name: .customLong("profile"), help: "Use the ID token keyless holds for this profile's issuer and client.")
        var profile: String?

        @Option(name: .customLong("policy-file"), help: "Read the trust policy from this file instead of asking IAM.")
        var policyFile: String?

        @Option(name: .customLong("iam-endpoint"), help: "The IAM endpoint (default: AWS_ENDPOINT_URL_IAM, AWS_ENDPOINT_URL, the global one).")
        var iamEndpoint: String?

        func validate() throws {
            let sources = [token != nil, tokenFile != nil, profile != nil].filter { $0 }.count
            guard sources == 1 else { throw ValidationError("give exactly one of --token, --token-file or --profile") }
        }

        func run() async throws {
            var denied = false
            try await reporting {
                try STSClient.validateRoleArn(roleArn)
                let context = try CommandContext.live()
                let jwt = try await loadToken(context)
                guard let claims = UnverifiedJWT.claims(jwt, as: [String: JSONValue].self), let issuer = claims["iss"]?.text else {
                    throw KeylessError(.tokenInvalid, "The token is not a JWT with an iss claim.", hint: "Pass the ID token or web-identity token itself.")
                }
                let arnParts = roleArn.split(separator: ":", omittingEmptySubsequences: false)
                let account = String(arnParts[4])
                let roleName = String(roleArn.split(separator: "/").last!)
                let document: String
                if let policyFile {
                    guard let bytes = try Files.read(policyFile) else {
                        throw KeylessError(.usage, "The policy file \(policyFile) does not exist.", hint: "Pass the trust policy JSON (aws iam get-role --query Role.AssumeRolePolicyDocument).")
                    }
                    document = String(decoding: bytes, as: UTF8.self)
                } else {
                    let chain = DefaultCredentialChain(environment: context.environment, home: context.paths.home, http: context.http, clock: context.clock)
                    let own = try await chain.resolve(logger: context.logger)
                    let iam = IAMClient(endpoint: IAMClient.endpoint(explicit: iamEndpoint, region: context.environment["AWS_REGION"], environment: context.environment),
                                        http: context.http, logger: context.logger)
                    document = try await iam.trustPolicy(roleName: roleName, credentials: own.credentials, date: context.clock.now())
                }
                let partition = String(arnParts[1])
                let explanation = TrustEvaluator.explain(try TrustPolicy.parse(document),
                                                         context: WebIdentityContext.forToken(claims: claims, issuer: issuer, account: account, partition: partition))
                var header = "Role \(roleArn), token from \(issuer)"
                if let sub = claims["sub"]?.text { header += ", sub \(sub)" }
                if let exp = claims["exp"], case .number(let seconds) = exp, seconds < context.clock.now().timeIntervalSince1970 {
                    header += "\n(the token has expired: STS would refuse it with ExpiredTokenException whatever the policy says)"
                }
                print(header)
                print(explanation.text, terminator: "")
                denied = !explanation.allowed
            }
            if denied { throw ExitCode(4) }
        }

        func loadToken(_ context: CommandContext) async throws -> String {
            if let token { return token.trimmingCharacters(in: .whitespacesAndNewlines) }
            if let tokenFile {
                guard let bytes = try Files.read(tokenFile) else {
                    throw KeylessError(.usage, "The token file \(tokenFile) does not exist.", hint: "Pass the path of the token, or --token.")
                }
                return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let loaded = try KeylessProfile.load(profile!, context: context)
            let broker = CredentialBroker(login: try loaded.provider.settings(), store: try context.store(loaded.provider.secretStore), context: context)
            return try await broker.tokens().idToken
        }
    }
}
