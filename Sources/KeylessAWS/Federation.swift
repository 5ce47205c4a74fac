import Foundation
import KeylessCore
import KeylessHTTP

/// AWS console federation: trades temporary credentials for a sign-in token, then builds the login URL
/// (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_enable-console-custom-url.html).
public struct ConsoleFederation: Sendable {
    let endpoint: String
    let issuerName: String
    let http: any HTTPTransport

    /// A client for `endpoint` (https://signin.aws.amazon.com/federation, or a stub in tests).
    public init(endpoint: String, issuerName: String, http: any HTTPTransport) {
        self.endpoint = endpoint; self.issuerName = issuerName; self.http = http
    }

    /// The one-time console URL for `credentials` that opens `destination`.
    public func loginURL(credentials: AWSCredentials, destination: String) async throws -> String {
        let session = try JSONWriter.text([
            "sessionId": credentials.accessKeyId, "sessionKey": credentials.secretAccessKey,
            "sessionToken": credentials.sessionToken,
        ])
        // The session travels in the query string of a GET: that is the documented interface. It goes only to the
        // federation endpoint over TLS and is never logged.
        let tokenURL = endpoint + "?" + FormEncoding.encode([("Action", "getSigninToken"), ("Session", session)])
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "GET", url: tokenURL, headers: ["accept": "application/json"], body: nil)
        } catch {
            throw KeylessError(
                .stsUnreachable, "Cannot reach the AWS federation endpoint \(endpoint): \(error).",
                hint: "Check the server's network and console.federation_endpoint.")
        }
        guard response.status == 200,
            let token = JSONValue.members(of: response.body)["SigninToken"]?.string, !token.isEmpty
        else {
            throw KeylessError(
                .stsError, "The AWS federation endpoint answered HTTP \(response.status) without a sign-in token.",
                hint:
                    "The role's credentials may be too short-lived or the endpoint wrong; check console.federation_endpoint."
            )
        }
        return endpoint + "?"
            + FormEncoding.encode([
                ("Action", "login"), ("Issuer", issuerName), ("Destination", destination), ("SigninToken", token),
            ])
    }

    /// The federation endpoint of the partition `region` is in.
    public static func defaultEndpoint(region: String?) -> String {
        let region = region ?? ""
        if region.hasPrefix("cn-") { return "https://signin.amazonaws.cn/federation" }
        if region.hasPrefix("us-gov-") { return "https://signin.amazonaws-us-gov.com/federation" }
        return "https://signin.aws.amazon.com/federation"
    }

    /// The console's start page in the partition `region` is in.
    public static func defaultDestination(region: String?) -> String {
        let region = region ?? ""
        if region.hasPrefix("cn-") { return "https://console.amazonaws.cn/" }
        if region.hasPrefix("us-gov-") { return "https://console.amazonaws-us-gov.com/" }
        return "https://console.aws.amazon.com/" + (region.isEmpty ? "" : "?region=\(region)")
    }

    /// Whether `destination` is an https URL on one of `hosts` or their subdomains (no open redirects through AWS sign-in).
    public static func allowed(_ destination: String, hosts: [String]) -> Bool {
        guard let url = URL(string: destination), let host = url.host?.lowercased(), url.user == nil,
            url.password == nil
        else { return false }
        guard url.scheme == "https" || (url.scheme == "http" && ["127.0.0.1", "localhost"].contains(host)) else {
            return false
        }
        return hosts.contains { allowed in
            let allowed = allowed.lowercased()
            return host == allowed || host.hasSuffix("." + allowed)
        }
    }
}
