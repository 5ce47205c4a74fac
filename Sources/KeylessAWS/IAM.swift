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
        let fields = try await call([("Action", "GetRole"), ("RoleName", roleName), ("Version", "2010-05-08")], credentials: credentials, date: date,
                                    what: "GetRole \(roleName)")
        guard let document = fields["AssumeRolePolicyDocument"] else {
            throw KeylessError(.stsError, "IAM answered GetRole \(roleName) without a trust policy.", hint: "Check the role name and the IAM endpoint.")
        }
        return document.removingPercentEncoding ?? document
    }

    func call(_ form: [(String, String)], credentials: SigV4Credentials, date: Date, what: String) async throws -> [String: String] {
        let body = Array(FormEncoding.encode(form).utf8)
        let unsigned = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")]
        let region = endpoint.contains(".amazonaws.com.cn") ? "cn-north-1" : endpoint.contains("us-gov") ? "us-gov-west-1" : "us-east-1"
        guard let added = SigV4.sign(SigV4Request(method: "POST", url: endpoint, headers: unsigned, body: body), credentials: credentials,
                                     region: region, service: "iam", date: date) else {
            throw KeylessError(.configInvalid, "The IAM endpoint \(endpoint) is not an absolute URL.", hint: "Use https://iam.amazonaws.com or your IAM endpoint.")
        }
        var headers: [String: String] = [:]
        for (name, value) in unsigned + added { headers[name.lowercased()] = value }
        logger.debug("iam request", metadata: ["iam.call": "\(what)", "iam.endpoint": "\(endpoint)"])
        let response: HTTPResponseData
        do {
            response = try await http.send(method: "POST", url: endpoint, headers: headers, body: body)
        } catch {
            throw KeylessError(.stsUnreachable, "Cannot reach IAM at \(endpoint): \(error).", hint: "Check the network and AWS_ENDPOINT_URL_IAM, then retry.")
        }
        let fields = XMLFields.parse(response.body)
        guard response.status == 200 else {
            let code = fields["Code"] ?? "HTTP \(response.status)"
            if code == "NoSuchEntity" {
                throw KeylessError(.configInvalid, "IAM says there is no such entity for \(what): \(fields["Message"] ?? "").", hint: "Check the role ARN.")
            }
            throw KeylessError(code == "AccessDenied" ? .stsAccessDenied : .stsError, "IAM refused \(what): \(code) \(fields["Message"] ?? "")",
                               hint: "Your AWS credentials need iam:GetRole on the role; or pass --policy-file with the trust policy.")
        }
        return fields
    }
}
