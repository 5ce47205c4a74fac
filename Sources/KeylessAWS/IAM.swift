import Foundation
import KeylessCore
import KeylessHTTP
import KeylessSigV4
import Logging

/// The IAM calls keyless makes, signed with SigV4 (IAM is global: it signs for us-east-1 in the aws partition).
public struct IAMClient: Sendable {
    let endpoint: String
    let http: any HTTPTransport
    let logger: Logger

    /// A client for `endpoint`.
    public init(endpoint: String, http: any HTTPTransport, logger: Logger) {
        self.endpoint = endpoint; self.http = http; self.logger = logger
    }

    /// `--iam-endpoint`, `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL`, else the partition's global endpoint.
    public static func endpoint(explicit: String?, region: String?, environment: Environment) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let url = environment["AWS_ENDPOINT_URL_IAM"] ?? environment["AWS_ENDPOINT_URL"] { return url }
        if region?.hasPrefix("cn-") == true { return "https://iam.cn-north-1.amazonaws.com.cn" }
        if region?.hasPrefix("us-gov-") == true { return "https://iam.us-gov.amazonaws.com" }
        return "https://iam.amazonaws.com"
    }

    /// The role's trust policy (its `AssumeRolePolicyDocument`, as JSON text).
    public func trustPolicy(roleName: String, credentials: SigV4Credentials, date: Date) async throws -> String {
        guard
            let xml = try await send(
                [("Action", "GetRole"), ("RoleName", roleName)], credentials: credentials, date: date,
                what: "GetRole \(roleName)", missingIsNil: true)
        else {
            throw KeylessError(
                .configInvalid, "IAM says there is no such entity for GetRole \(roleName).", hint: "Check the role ARN."
            )
        }
        guard let document = XMLFields.parse(Array(xml.utf8))["AssumeRolePolicyDocument"] else {
            throw KeylessError(
                .stsError, "IAM answered GetRole \(roleName) without a trust policy.",
                hint: "Check the role name and the IAM endpoint.")
        }
        return document.removingPercentEncoding ?? document
    }
}
