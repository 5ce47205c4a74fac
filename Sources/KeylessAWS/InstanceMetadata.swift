import Foundation
import KeylessCore
import KeylessHTTP
import Logging

/// EC2 instance metadata, IMDSv2 only (botocore's `iam-role`). A session token is required: when the token request
/// fails there is no IMDSv1 fallback, because IMDSv1 is what SSRF bugs use to steal instance credentials.
struct InstanceMetadata {
    static let defaultEndpoint = "http://169.254.169.254"
    static let tokenTTL = "21600"
    /// Short, so a machine without IMDS (a laptop, a container elsewhere) gives up at once.
    static let timeout: Double = 1
    static let credentialsPath = "/latest/meta-data/iam/security-credentials/"

    /// What the last step of the chain found.
    enum Outcome {
        case found(ResolvedCredentials)
        /// No credentials here; the reason ends the chain's error message.
        case notFound(String)
    }

    let endpoint: String

    init(environment: Environment) {
        var endpoint = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? Self.defaultEndpoint
        while endpoint.hasSuffix("/") { endpoint.removeLast() }
        self.endpoint = endpoint
    }

    /// AWS_EC2_METADATA_DISABLED=true (any case), as botocore reads it.
    static func isDisabled(_ environment: Environment) -> Bool {
        environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true"
    }

    func fetch(http: any HTTPTransport, logger: Logger) async -> Outcome {
        logger.debug("aws credentials: asking instance metadata", metadata: ["aws.imds.endpoint": "\(endpoint)"])
        let token: String
        switch await send(
            http, "PUT", "/latest/api/token", headers: ["x-aws-ec2-metadata-token-ttl-seconds": Self.tokenTTL], body: []
        ) {
        case .failure(let reason):
            return .notFound(
                "instance metadata at \(endpoint) gave no IMDSv2 session token (\(reason); keyless does not fall back to IMDSv1)"
            )
        case .success(let body):
            token = String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !token.isEmpty else {
            return .notFound("instance metadata at \(endpoint) answered the IMDSv2 token request with an empty token")
        }
        let authorized = ["x-aws-ec2-metadata-token": token]
        let role: String
        switch await send(http, "GET", Self.credentialsPath, headers: authorized, body: nil) {
        case .failure(let reason):
            return .notFound(
                "instance metadata at \(endpoint) lists no IAM role (\(reason); is an instance profile attached?)")
        case .success(let body):
            role = String(decoding: body, as: UTF8.self).split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        }
        // The role name goes into a URL path: accept only what IAM allows in a name.
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-")
        guard !role.isEmpty, role.count <= 128, role.allSatisfy({ allowed.contains($0) }) else {
            return .notFound("instance metadata at \(endpoint) answered with no usable IAM role name")
        }
        switch await send(http, "GET", Self.credentialsPath + role, headers: authorized, body: nil) {
        case .failure(let reason):
            return .notFound("instance metadata at \(endpoint) gave no credentials for role \(role) (\(reason))")
        case .success(let body):
            guard let found = MetadataCredentials.parse(body, source: "instance-metadata") else {
                return .notFound(
                    "instance metadata at \(endpoint) answered for role \(role) without AccessKeyId, SecretAccessKey, Token and Expiration"
                )
            }
            return .found(found)
        }
    }

    /// One request with the short timeout; the failure is a phrase for the error message (never a response body).
    private func send(
        _ http: any HTTPTransport, _ method: String, _ path: String, headers: [String: String], body: [UInt8]?
    ) async -> Result<[UInt8], Failure> {
        let url = endpoint + path
        do {
            let response = try await withTimeout(seconds: Self.timeout) {
                try await http.send(method: method, url: url, headers: headers, body: body)
            }
            guard response.status == 200 else {
                return .failure(Failure(description: "\(method) \(path) answered HTTP \(response.status)"))
            }
            return .success(response.body)
        } catch {
            return .failure(Failure(description: "\(method) \(path) failed: \(error)"))
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }
}

/// The operation did not finish within its time limit.
struct TimedOut: Error, CustomStringConvertible {
    let seconds: Double
    var description: String {
        "no answer within \(seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)) s"
    }
}

/// Runs `operation`, cancelling it after `seconds`: `HTTPTransport` has no per-request timeout, and an unreachable
/// link-local address otherwise takes the transport's full connect timeout.
func withTimeout<T: Sendable>(seconds: Double, _ operation: @escaping @Sendable () async throws -> T) async throws -> T
{
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await operation() }
        group.addTask {
            try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            throw TimedOut(seconds: seconds)
        }
        defer { group.cancelAll() }
        guard let first = try await group.next() else { throw CancellationError() }
        return first
    }
}
