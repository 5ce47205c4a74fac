import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore
import KeylessOIDC
import KeylessTrust

/// Why a role's trust policy lets a token in or not: the evaluation `keyless explain` prints and `keyless doctor` uses.
struct RoleTrustExplanation {
    /// "Role ARN, token from ISSUER, sub SUB", with a note when the token has expired.
    let header: String
    /// The statement-by-statement explanation.
    let text: String
    /// Whether the policy allows the token.
    let allowed: Bool

    /// Evaluates `roleArn`'s trust policy (from `policyFile`, else IAM GetRole with the caller's own AWS credentials) for `token`.
    static func explain(
        roleArn: String, token: String, policyFile: String?, iamEndpoint: String?, context: ClientContext
    ) async throws -> RoleTrustExplanation {
        try STSClient.validateRoleArn(roleArn)
        guard let claims = UnverifiedJWT.claims(token, as: [String: JSONValue].self), let issuer = claims["iss"]?.text
        else {
            throw KeylessError(
                .tokenInvalid, "The token is not a JWT with an iss claim.",
                hint: "Pass the ID token or web-identity token itself.")
        }
        let arnParts = roleArn.split(separator: ":", omittingEmptySubsequences: false)
        let account = String(arnParts[4])
        let roleName = String(roleArn.split(separator: "/").last!)
        let document: String
        if let policyFile {
            guard let bytes = try Files.read(policyFile) else {
                throw KeylessError(
                    .usage, "The policy file \(policyFile) does not exist.",
                    hint: "Pass the trust policy JSON (aws iam get-role --query Role.AssumeRolePolicyDocument).")
            }
            document = String(decoding: bytes, as: UTF8.self)
        } else {
            let chain = DefaultCredentialChain(
                environment: context.environment, home: context.paths.home, http: context.http, clock: context.clock)
            let own = try await chain.resolve(logger: context.logger)
            let iam = IAMClient(
                endpoint: IAMClient.endpoint(
                    explicit: iamEndpoint, region: context.environment["AWS_REGION"], environment: context.environment),
                http: context.http, logger: context.logger)
            document = try await iam.trustPolicy(
                roleName: roleName, credentials: own.credentials, date: context.clock.now())
        }
        let partition = String(arnParts[1])
        let explanation = TrustEvaluator.explain(
            try TrustPolicy.parse(document),
            context: WebIdentityContext.forToken(claims: claims, issuer: issuer, account: account, partition: partition)
        )
        var header = "Role \(roleArn), token from \(issuer)"
        if let sub = claims["sub"]?.text { header += ", sub \(sub)" }
        if let exp = claims["exp"], case .number(let seconds) = exp, seconds < context.clock.now().timeIntervalSince1970
        {
            header +=
                "\n(the token has expired: STS would refuse it with ExpiredTokenException whatever the policy says)"
        }
        return RoleTrustExplanation(header: header, text: explanation.text, allowed: explanation.allowed)
    }
}
