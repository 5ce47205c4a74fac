import Foundation
import KeylessAWS
import KeylessCore
import KeylessOIDC
import KeylessPolicy
import KeylessSigV4
import Logging

/// A verified caller: the token's claims, the issuer's settings and the policy's view of them.
public struct Caller: Sendable {
    /// The verified token.
    public var bearer: VerifiedBearer
    /// The trusted issuer that signed it.
    public var issuer: ServerIssuer
    /// What the policy matches on.
    public var policyCaller: PolicyCaller
    /// Email, else login name, else subject.
    public var name: String
}

/// Where a request came from, for the audit log.
public struct RequestOrigin: Sendable {
    /// The TCP peer's address.
    public var address: String
    /// The request id.
    public var requestID: String

    /// An origin.
    public init(address: String, requestID: String) { self.address = address; self.requestID = requestID }
}

/// A refusal the API renders as JSON with a status, an error code and a sentence.
public struct AccessError: Error, Sendable, Equatable {
    /// The HTTP status.
    public var status: Int
    /// A stable code: unauthorized, forbidden reasons (not_granted, mfa_required, unknown_role), invalid_request, upstream_error, ...
    public var code: String
    /// What happened and what to do, for the caller.
    public var message: String

    /// An error.
    public init(_ status: Int, _ code: String, _ message: String) { self.status = status; self.code = code; self.message = message }
}

/// The access server's logic, free of HTTP: authenticate, list what a caller may do, issue credentials and console links.
/// Every grant and refusal of credentials or a console link is in the audit log before the answer is sent.
public final class AccessService: Sendable {
    let configuration: ServerConfiguration
    let policy: PolicyStore
    let verifier: BearerVerifier
    let awsCredentials: any AWSCredentialProvider
    let sts: STSClient
    let federation: ConsoleFederation
    let audit: AuditLog
    let clock: WallClock
    let logger: Logger
    let issuersByURL: [String: ServerIssuer]

    /// Wires the parts together.
    public init(configuration: ServerConfiguration, policy: PolicyStore, verifier: BearerVerifier, awsCredentials: any AWSCredentialProvider,
                sts: STSClient, federation: ConsoleFederation, audit: AuditLog, clock: WallClock, logger: Logger) {
        self.configuration = configuration; self.policy = policy; self.verifier = verifier; self.awsCredentials = awsCredentials
        self.sts = sts; self.federation = federation; self.audit = audit; self.clock = clock; self.logger = logger
        issuersByURL = Dictionary(configuration.issuers.map { ($0.trusted.issuer, $0) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: Authentication

    /// Verifies a bearer token and maps its claims to a caller.
    public func authenticate(_ token: String) async throws -> Caller {
        let bearer: VerifiedBearer
        do {
            bearer = try await verifier.verify(token)
        } catch let rejection as BearerRejection {
            throw AccessError(401, "invalid_token", "The bearer token was rejected: \(rejection.reason). Log in again (keyless login) and retry.")
        } catch let error as KeylessError {
            throw AccessError(503, "issuer_unavailable", "The server cannot check tokens right now: \(error.reason) Retry in a moment.")
        }
        guard let issuer = issuersByURL[bearer.issuer] else {
            throw AccessError(401, "invalid_token", "The bearer token was rejected: unknown issuer.")
        }
        return Self.caller(bearer, issuer: issuer)
    }

    static func caller(_ bearer: VerifiedBearer, issuer: ServerIssuer) -> Caller {
        let claims = bearer.claims
        let groups = claims[issuer.groupsClaim]?.texts ?? []
        let amr = claims["amr"]?.texts ?? []
        let name = claims["email"]?.text ?? claims["preferred_username"]?.text ?? bearer.subject
        return Caller(bearer: bearer, issuer: issuer,
                      policyCaller: PolicyCaller(issuer: bearer.issuer, subject: bearer.subject, groups: groups, claims: claims,
                                                 mfa: amr.contains { issuer.mfaMethods.contains($0) }),
                      name: name)
    }

    // MARK: Config

    /// What `configure` needs: the caller, the issuer and client id to log in with, and every role they may assume
    /// grouped by account, each with a suggested profile and its `credential_process` line.
    public func configDocument(for caller: Caller) -> String {
        let current = policy.current
        let entitlements = current.entitlements(for: caller.policyCaller)
        var text = "{\"issuer\":" + jsonString(caller.issuer.trusted.issuer) + ",\"client_id\":" + jsonString(caller.issuer.clientID)
        text += ",\"server_url\":" + jsonString(configuration.publicURL) + ",\"default_region\":" + jsonString(current.defaultRegion)
        text += ",\"caller\":{\"subject\":" + jsonString(caller.bearer.subject) + ",\"name\":" + jsonString(caller.name)
        text += ",\"groups\":[" + caller.policyCaller.groups.map(jsonString).joined(separator: ",") + "],\"mfa\":" + (caller.policyCaller.mfa ? "true" : "false") + "}"
        text += ",\"accounts\":["
        var first = true
        var index = 0
        while index < entitlements.count {
            let account = entitlements[index].account
            if !first { text += "," }
            first = false
            text += "{\"id\":" + jsonString(account.id) + ",\"alias\":" + (account.alias.map(jsonString) ?? "null") + ",\"roles\":["
            var firstRole = true
            while index < entitlements.count, entitlements[index].account.id == account.id {
                let entitlement = entitlements[index]
                if !firstRole { text += "," }
                firstRole = false
                text += roleJSON(entitlement, caller: caller)
                index += 1
            }
            text += "]}"
        }
        return text + "]}"
    }

    func roleJSON(_ entitlement: Entitlement, caller: Caller) -> String {
        let role = entitlement.role
        var text = "{\"arn\":" + jsonString(role.arn) + ",\"name\":" + jsonString(role.name)
        if let description = role.description { text += ",\"description\":" + jsonString(description) }
        text += ",\"max_session_seconds\":" + String(role.maxSessionSeconds) + ",\"mfa_required\":" + (role.mfaRequired ? "true" : "false")
        text += ",\"credentials\":" + jsonString(role.credentials == .server ? "server" : "web-identity")
        text += ",\"region\":" + jsonString(entitlement.region) + ",\"profile\":" + jsonString(entitlement.profileName)
        text += ",\"credential_process\":" + jsonString(credentialProcess(entitlement, caller: caller)) + "}"
        return text
    }

    /// The `credential_process` line `configure` writes for a role.
    func credentialProcess(_ entitlement: Entitlement, caller: Caller) -> String {
        CredentialProcessLine.make(server: entitlement.role.credentials == .server ? configuration.publicURL : nil, issuer: caller.issuer.trusted.issuer,
                                   clientID: caller.issuer.clientID, roleArn: entitlement.role.arn, region: entitlement.region)
    }

    // MARK: Credentials

    /// Decides, audits, then assumes the role on the caller's behalf.
    public func credentials(for caller: Caller, roleArn: String, durationSeconds: Int?, origin: RequestOrigin, action: String = "credentials")
        async throws -> (AWSCredentials, Entitlement) {
        let decision = policy.current.decide(caller.policyCaller, roleArn: roleArn)
        let entitlement: Entitlement
        let tags: [SessionTag]
        switch decision {
        case .denied(let reason, let message):
            try await record(action, "denied", caller, role: roleArn, origin: origin, reason: "\(reason.rawValue): \(message)")
            throw AccessError(403, reason.rawValue, message)
        case .granted(let granted, let grantedTags):
            entitlement = granted; tags = grantedTags
        }
        let maximum = entitlement.role.maxSessionSeconds
        if let durationSeconds, durationSeconds < 900 || durationSeconds > 43200 {
            throw AccessError(400, "invalid_request", "duration_seconds must be between 900 and 43200 (the role allows up to \(maximum)).")
        }
        let duration = min(durationSeconds ?? min(3600, maximum), maximum)
        let sessionName = SessionName.sanitize(caller.name)
        let request = AssumeRoleRequest(roleArn: entitlement.role.arn, sessionName: sessionName, durationSeconds: duration,
                                        sourceIdentity: sessionName, tags: tags.map { (key: $0.key, value: $0.value) })
        let credentials: AWSCredentials
        do {
            let own = try await awsCredentials.resolve(logger: logger)
            credentials = try await sts.assumeRole(request, credentials: own.credentials, region: configuration.region, date: clock.now())
        } catch let error as KeylessError {
            try await record(action, "failed", caller, role: entitlement.role.arn, origin: origin, reason: error.reason)
            throw AccessError(502, "upstream_error", "AWS did not issue credentials for \(entitlement.role.arn): \(error.reason) Retry in a moment; if it persists, ask the server's administrator.")
        }
        try await record(action, "granted", caller, role: entitlement.role.arn, origin: origin,
                         reason: "granted by policy for \(duration) s", sessionName: sessionName)
        return (credentials, entitlement)
    }

    /// Credentials as the API returns them (the `credential_process` shape plus the role).
    public static func credentialsJSON(_ credentials: AWSCredentials, roleArn: String) -> String {
        "{\"Version\":1,\"AccessKeyId\":" + jsonString(credentials.accessKeyId) + ",\"SecretAccessKey\":" + jsonString(credentials.secretAccessKey)
            + ",\"SessionToken\":" + jsonString(credentials.sessionToken) + ",\"Expiration\":" + jsonString(AuditRecord.timestamp(credentials.expiration))
            + ",\"RoleArn\":" + jsonString(roleArn) + (credentials.assumedRoleArn.map { ",\"AssumedRoleArn\":" + jsonString($0) } ?? "") + "}"
    }

    // MARK: Console

    /// A console sign-in URL for the role, opening `destination` (default from the configuration).
    public func consoleURL(for caller: Caller, roleArn: String, destination: String?, origin: RequestOrigin) async throws -> String {
        let destination = destination ?? configuration.consoleDestination
        guard ConsoleFederation.allowed(destination, hosts: configuration.consoleDestinationHosts) else {
            throw AccessError(400, "invalid_request", "destination \(destination) is not an AWS console URL this server opens (allowed hosts: \(configuration.consoleDestinationHosts.joined(separator: ", "))).")
        }
        let (credentials, entitlement) = try await self.credentials(for: caller, roleArn: roleArn, durationSeconds: nil, origin: origin, action: "console")
        do {
            return try await federation.loginURL(credentials: credentials, destination: destination)
        } catch let error as KeylessError {
            try await record("console", "failed", caller, role: entitlement.role.arn, origin: origin, reason: error.reason)
            throw AccessError(502, "upstream_error", "The AWS sign-in service did not give a console link: \(error.reason)")
        }
    }

    // MARK: Audit

    func record(_ action: String, _ outcome: String, _ caller: Caller, role: String?, origin: RequestOrigin, reason: String, sessionName: String? = nil) async throws {
        let entry = AuditRecord(time: clock.now(), action: action, outcome: outcome, issuer: caller.bearer.issuer, subject: caller.bearer.subject,
                                name: caller.name, role: role, sourceAddress: origin.address, requestID: origin.requestID, reason: reason, sessionName: sessionName)
        do {
            try await audit.append(entry)
        } catch {
            logger.error("audit log write failed; refusing the request", metadata: ["error": .string(String(describing: error))])
            throw AccessError(500, "audit_unavailable", "The server could not record the decision, so it refuses the request. Ask its administrator to check the audit log.")
        }
    }

    /// Whether the server can work: the policy is loaded and its own AWS credentials resolve.
    public func readiness() async -> (ready: Bool, detail: String) {
        do {
            let own = try await awsCredentials.resolve(logger: logger)
            return (true, "policy loaded with \(policy.current.roles.count) roles; AWS credentials from \(own.source)")
        } catch {
            return (false, "no AWS credentials: \((error as? KeylessError)?.reason ?? String(describing: error))")
        }
    }
}

/// The `credential_process = keyless creds-process ...` line for a role, the same from the server and from `configure`.
public enum CredentialProcessLine {
    /// The line: through `server` when given, else AssumeRoleWithWebIdentity directly.
    public static func make(server: String?, issuer: String, clientID: String, roleArn: String, region: String) -> String {
        var words = ["keyless", "creds-process"]
        if let server { words += ["--server", server] }
        words += ["--issuer-url", issuer, "--client-id", clientID, "--role-arn", roleArn, "--region", region]
        return words.map(quoted).joined(separator: " ")
    }

    /// Quotes a word for botocore's credential_process splitting (shlex-like) only when it needs it.
    static func quoted(_ word: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,%")
        if !word.isEmpty && word.allSatisfy(safe.contains) { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
