import Foundation
import KeylessCore
import KeylessHTTP
import KeylessSigV4
import Logging

/// Temporary AWS credentials as STS returns them.
public struct AWSCredentials: Codable, Sendable, Equatable {
    /// `ASIA…` access key id.
    public var accessKeyId: String
    /// The secret access key.
    public var secretAccessKey: String
    /// The session token.
    public var sessionToken: String
    /// When they stop working.
    public var expiration: Date
    /// The assumed-role ARN STS reported, when known.
    public var assumedRoleArn: String?

    /// Creates credentials.
    public init(
        accessKeyId: String, secretAccessKey: String, sessionToken: String, expiration: Date,
        assumedRoleArn: String? = nil
    ) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.assumedRoleArn = assumedRoleArn
    }
}

/// Where STS lives: `--sts-endpoint`, `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, else the regional endpoint.
public enum STSEndpoint {
    /// Resolves the endpoint URL for `region`.
    public static func resolve(explicit: String?, region: String?, environment: Environment) -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        if let url = environment["AWS_ENDPOINT_URL_STS"] { return url }
        if let url = environment["AWS_ENDPOINT_URL"] { return url }
        let region = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1"
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return "https://sts.\(region).\(suffix)"
    }
}

/// STS `RoleSessionName` rules: 2–64 characters from `[\w+=,.@-]`.
public enum SessionName {
    /// The session name for a person: email, else login name, else subject; sanitised.
    public static func from(email: String?, preferredUsername: String?, subject: String) -> String {
        sanitize(email ?? preferredUsername ?? subject)
    }

    /// Replaces characters STS rejects with `-`, cuts to 64, pads to 2.
    public static func sanitize(_ raw: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-")
        var name = String(raw.map { allowed.contains($0) ? $0 : "-" }.prefix(64))
        while name.count < 2 { name += "-" }
        return name
    }
}

/// A parameter set for `AssumeRoleWithWebIdentity`.
public struct WebIdentityRequest: Sendable, Equatable {
    /// The role to assume.
    public var roleArn: String
    /// The session name (already sanitised).
    public var sessionName: String
    /// The OIDC ID token.
    public var webIdentityToken: String
    /// Requested lifetime in seconds (900 to the role's maximum).
    public var durationSeconds: Int?
    /// The issuer, for error messages only.
    public var issuer: String
    /// A narrower session than the role (session policies).
    public var scope: SessionScope

    public init(
        roleArn: String, sessionName: String, webIdentityToken: String, durationSeconds: Int?, issuer: String,
        scope: SessionScope = .none
    ) {
        self.roleArn = roleArn
        self.sessionName = sessionName
        self.webIdentityToken = webIdentityToken
        self.durationSeconds = durationSeconds
        self.issuer = issuer
        self.scope = scope
    }

    /// The form body STS receives (unsigned: the token is the credential).
    public var formBody: String {
        var pairs = [
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleArn),
            ("RoleSessionName", sessionName), ("WebIdentityToken", webIdentityToken),
        ]
        if let durationSeconds { pairs.append(("DurationSeconds", String(durationSeconds))) }
        return FormEncoding.encode(pairs + scope.formPairs)
    }
}

/// An `AssumeRole` call made with the caller's own AWS credentials (the access server's path).
public struct AssumeRoleRequest: Sendable, Equatable {
    public var roleArn: String
    /// `RoleSessionName`.
    public var sessionName: String
    /// `DurationSeconds` (900 to the role's maximum).
    public var durationSeconds: Int?
    /// `SourceIdentity`: who the session is for, kept by AWS across role chaining and in CloudTrail.
    public var sourceIdentity: String?
    /// Session tags, in order.
    public var tags: [(key: String, value: String)]
    /// A narrower session than the role (session policies).
    public var scope: SessionScope

    /// A request.
    public init(
        roleArn: String, sessionName: String, durationSeconds: Int? = nil, sourceIdentity: String? = nil,
        tags: [(key: String, value: String)] = [], scope: SessionScope = .none
    ) {
        self.roleArn = roleArn; self.sessionName = sessionName; self.durationSeconds = durationSeconds
        self.sourceIdentity = sourceIdentity; self.tags = tags; self.scope = scope
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.roleArn == b.roleArn && a.sessionName == b.sessionName && a.durationSeconds == b.durationSeconds
            && a.sourceIdentity == b.sourceIdentity && a.tags.elementsEqual(b.tags) { $0 == $1 } && a.scope == b.scope
    }

    /// The form body STS receives.
    public var formBody: String {
        var pairs = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", roleArn), ("RoleSessionName", sessionName),
        ]
        if let durationSeconds { pairs.append(("DurationSeconds", String(durationSeconds))) }
        if let sourceIdentity { pairs.append(("SourceIdentity", sourceIdentity)) }
        for (index, tag) in tags.enumerated() {
            pairs.append(("Tags.member.\(index + 1).Key", tag.key))
            pairs.append(("Tags.member.\(index + 1).Value", tag.value))
        }
        return FormEncoding.encode(pairs + scope.formPairs)
    }
}

/// The STS client.
public struct STSClient: Sendable {
    let endpoint: String
    let http: any HTTPTransport
    let logger: Logger

    /// Creates a client for `endpoint`.
    public init(endpoint: String, http: any HTTPTransport, logger: Logger) {
        self.endpoint = endpoint
        self.http = http
        self.logger = logger
    }

    /// Checks a role ARN's shape before anything is sent.
    public static func validateRoleArn(_ arn: String) throws {
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn", parts[2] == "iam", parts[4].count == 12,
            parts[4].allSatisfy { $0.isASCII && $0.isNumber },
            parts[5].hasPrefix("role/"), parts[5].count > 5
        else {
            throw KeylessError(
                .usage, "'\(arn)' is not an IAM role ARN.", hint: "Use the form arn:aws:iam::123456789012:role/NAME.")
        }
    }

    /// Calls `AssumeRoleWithWebIdentity`.
    public func assumeRoleWithWebIdentity(_ request: WebIdentityRequest) async throws -> AWSCredentials {
        try Self.validateRoleArn(request.roleArn)
        if let duration = request.durationSeconds, !(900...43200).contains(duration) {
            throw KeylessError(
                .usage,
                "--duration \(duration) is outside what STS allows (900 to 43200 seconds, and at most the role's maximum).",
                hint: "Pass a duration between 900 and the role's MaxSessionDuration.")
        }
        logger.debug(
            "sts request",
            metadata: [
                "sts.action": "AssumeRoleWithWebIdentity", "sts.role": "\(request.roleArn)",
                "sts.session": "\(request.sessionName)", "sts.endpoint": "\(endpoint)",
            ])
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "POST", url: endpoint,
                headers: ["content-type": "application/x-www-form-urlencoded; charset=utf-8", "accept": "text/xml"],
                body: Array(request.formBody.utf8))
        } catch {
            throw KeylessError(
                .stsUnreachable, "Cannot reach AWS STS at \(endpoint): \(error).",
                hint: "Check the network, --sts-endpoint / AWS_ENDPOINT_URL_STS and --region, then retry.")
        }
        let fields = XMLFields.parse(response.body)
        guard response.status == 200 else {
            throw Self.mapError(status: response.status, fields: fields, request: request)
        }
        return try Self.credentials(fields)
    }

    /// Calls `AssumeRole`, signed with SigV4 by `credentials` for `region` at `date`.
    public func assumeRole(_ request: AssumeRoleRequest, credentials: SigV4Credentials, region: String, date: Date)
        async throws -> AWSCredentials
    {
        try Self.validateRoleArn(request.roleArn)
        let body = Array(request.formBody.utf8)
        let unsigned = [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"), ("Accept", "text/xml")]
        guard
            let added = SigV4.sign(
                SigV4Request(method: "POST", url: endpoint, headers: unsigned, body: body), credentials: credentials,
                region: region, service: "sts", date: date)
        else {
            throw KeylessError(
                .configInvalid, "the STS endpoint \(endpoint) is not an absolute URL.",
                hint: "Use https://sts.REGION.amazonaws.com or the endpoint of your STS.")
        }
        var headers: [String: String] = [:]
        for (name, value) in unsigned + added { headers[name.lowercased()] = value }
        logger.debug(
            "sts request",
            metadata: [
                "sts.action": "AssumeRole", "sts.role": "\(request.roleArn)", "sts.session": "\(request.sessionName)",
                "sts.endpoint": "\(endpoint)",
            ])
        let response: HTTPResponseData
        do {
            response = try await http.send(method: "POST", url: endpoint, headers: headers, body: body)
        } catch {
            throw KeylessError(
                .stsUnreachable, "Cannot reach AWS STS at \(endpoint): \(error).",
                hint: "Check the network and the STS endpoint, then retry.")
        }
        let fields = XMLFields.parse(response.body)
        guard response.status == 200 else {
            let code = fields["Code"] ?? "HTTP \(response.status)"
            let message = fields["Message"] ?? ""
            if code == "AccessDenied" {
                throw KeylessError(
                    .stsAccessDenied, "STS refused AssumeRole of \(request.roleArn): \(message)",
                    hint:
                        "The role's trust policy must allow this server's AWS principal sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity."
                )
            }
            throw KeylessError(
                .stsError, "STS answered \(code) to AssumeRole of \(request.roleArn): \(message)",
                hint: "Check the role ARN, the duration against the role's maximum, and the server's AWS credentials.")
        }
        return try Self.credentials(fields)
    }

    /// The credentials in a successful STS answer (any Assume* action).
    static func credentials(_ fields: [String: String]) throws -> AWSCredentials {
        guard let accessKeyId = fields["AccessKeyId"], let secret = fields["SecretAccessKey"],
            let token = fields["SessionToken"],
            let expirationText = fields["Expiration"], let expiration = parseDate(expirationText)
        else {
            throw KeylessError(
                .stsError, "STS answered without complete credentials.",
                hint: "Retry; if it persists, check --sts-endpoint (or the server's STS endpoint).")
        }
        return AWSCredentials(
            accessKeyId: accessKeyId, secretAccessKey: secret, sessionToken: token, expiration: expiration,
            assumedRoleArn: fields["Arn"])
    }

    /// An AWS date (STS, IMDS, container endpoints): RFC 3339 through the one bounded parser (ICU's
    /// ISO8601DateFormatter traps on about 50 fractional digits and misreads about 30).
    static func parseDate(_ text: String) -> Date? {
        FlatJSON.parseRFC3339(text).map(Date.init(timeIntervalSince1970:))
    }

    static func mapError(status: Int, fields: [String: String], request: WebIdentityRequest) -> KeylessError {
        let code = fields["Code"] ?? "HTTP \(status)"
        let message = fields["Message"] ?? ""
        switch code {
        case "ExpiredTokenException":
            return KeylessError(
                .stsExpiredToken, "STS says the ID token has expired: \(message)", hint: "Log in again: keyless login.")
        case "AccessDenied":
            return KeylessError(
                .stsAccessDenied, "STS refused role \(request.roleArn) to tokens from \(request.issuer): \(message)",
                hint:
                    "The role's trust policy must allow sts:AssumeRoleWithWebIdentity for the IAM OIDC provider of this issuer, with your client id as aud."
            )
        case "InvalidIdentityToken":
            return KeylessError(
                .stsInvalidIdentityToken, "STS rejected the ID token from \(request.issuer): \(message)",
                hint:
                    "AWS needs an IAM OIDC provider for \(request.issuer) listing the client id as audience, and must be able to fetch its keys."
            )
        case "IDPCommunicationError":
            return KeylessError(
                .stsError, "STS could not reach \(request.issuer) to check the token: \(message)",
                hint: "Retry in a moment; AWS must reach the issuer's JWKS over the internet.")
        case "ValidationError":
            return KeylessError(
                .stsError, "STS rejected the request: \(message)",
                hint: "Check --duration against the role's maximum session and the role ARN.")
        default:
            return KeylessError(
                .stsError, "STS answered \(code): \(message)",
                hint: "Retry; if it persists, check the role and --sts-endpoint.")
        }
    }
}

/// Leaf element texts of a small XML document, by element name (the last one wins). STS answers are
/// flat, namespace-free leaf elements; reading them by hand keeps libxml2 (and the ICU it loads) out of
/// the binary's start-up, which the cached `credential_process` path pays for on every call.
enum XMLFields {
    static func parse(_ bytes: [UInt8]) -> [String: String] {
        let text = String(decoding: bytes, as: UTF8.self)
        var fields: [String: String] = [:]
        var index = text.startIndex
        var lastOpen: (name: String, contentStart: String.Index)?
        while let open = text[index...].firstIndex(of: "<") {
            guard let close = text[open...].firstIndex(of: ">") else { break }
            let tag = text[text.index(after: open)..<close]
            if tag.hasPrefix("/") {
                let name = tag.dropFirst().trimmingCharacters(in: .whitespaces)
                if let last = lastOpen, last.name == name {
                    let value = unescape(String(text[last.contentStart..<open])).trimmingCharacters(
                        in: .whitespacesAndNewlines)
                    if !value.isEmpty { fields[name] = value }
                }
                lastOpen = nil
            } else if !tag.hasPrefix("?") && !tag.hasPrefix("!") && !tag.hasSuffix("/") {
                let name = String(tag.prefix { $0 != " " && $0 != "\t" && $0 != "\n" })
                lastOpen = (name, text.index(after: close))
            }
            index = text.index(after: close)
        }
        return fields
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        var out = ""
        var rest = Substring(text)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";"), rest.distance(from: amp, to: semi) <= 10 else {
                out += rest[amp...]
                return out
            }
            let entity = rest[rest.index(after: amp)..<semi]
            switch entity {
            case "amp": out += "&"
            case "lt": out += "<"
            case "gt": out += ">"
            case "quot": out += "\""
            case "apos": out += "'"
            default:
                let scalar: UInt32?
                if entity.hasPrefix("#x") {
                    scalar = UInt32(entity.dropFirst(2), radix: 16)
                } else if entity.hasPrefix("#") {
                    scalar = UInt32(entity.dropFirst())
                } else {
                    scalar = nil
                }
                if let scalar, let value = Unicode.Scalar(scalar) {
                    out.unicodeScalars.append(value)
                } else {
                    out += "&\(entity);"
                }
            }
            rest = rest[rest.index(after: semi)...]
        }
        return out + rest
    }
}
