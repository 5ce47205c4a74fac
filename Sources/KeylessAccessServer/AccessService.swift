import Foundation
import KeylessAWS
import KeylessCore
import KeylessOIDC
import KeylessPolicy
import KeylessSigV4
import KeylessStorage
import KeylessWire
import Logging
import NIOCore
import Synchronization

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
    /// SHA-256 of the bearer token, when the caller came from one: the key of answers cached per token.
    public var tokenDigest: TokenDigest? { bearer.tokenDigest }
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
    public var statusCode: Int
    /// A stable code: unauthorized, forbidden reasons (not_granted, mfa_required, unknown_role), invalid_request, upstream_error, ...
    public var code: String
    /// What happened and what to do, for the caller.
    public var message: String

    /// An error.
    public init(_ status: Int, _ code: String, _ message: String) {
        self.statusCode = status; self.code = code; self.message = message
    }
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
    /// Access requests and the grants they became, shared by replicas.
    let requests: any AccessRequestStore
    /// Where request events go (the webhook), if anywhere.
    let events: (any RequestEventSink)?
    let issuersByURL: [String: ServerIssuer]
    /// The role objects of /api/v1/config as rendered, by issuer and role ARN (see `configDocument`).
    let roleFragments = Mutex<[RoleFragmentKey: RoleFragment]>([:])
    static let configCacheLimit = 4096
    /// `/api/v1/config` answers by token and policy generation: the same token under the same policy gets the same bytes.
    let configBodies = Mutex<[TokenDigest: (generation: Int, expiresAt: Date, body: ByteBuffer)]>([:])

    /// Wires the parts together.
    public init(
        configuration: ServerConfiguration, policy: PolicyStore, verifier: BearerVerifier,
        awsCredentials: any AWSCredentialProvider,
        sts: STSClient, federation: ConsoleFederation, audit: AuditLog, clock: WallClock, logger: Logger,
        requests: any AccessRequestStore = MemoryAccessRequestStore(), events: (any RequestEventSink)? = nil
    ) {
        self.requests = requests; self.events = events
        self.configuration = configuration; self.policy = policy; self.verifier = verifier;
        self.awsCredentials = awsCredentials
        self.sts = sts; self.federation = federation; self.audit = audit; self.clock = clock; self.logger = logger
        issuersByURL = Dictionary(
            configuration.issuers.map { ($0.trusted.issuer, $0) }, uniquingKeysWith: { first, _ in first })
    }

    // MARK: Authentication

    /// Verifies a bearer token and maps its claims to a caller.
    public func authenticate(_ token: String) async throws -> Caller {
        let bearer: VerifiedBearer
        do {
            bearer = try await verifier.verify(token)
        } catch let rejection as BearerRejection {
            throw AccessError(
                401, "invalid_token",
                "The bearer token was rejected: \(rejection.reason). Log in again (keyless login) and retry.")
        } catch let error as KeylessError {
            throw AccessError(
                503, "issuer_unavailable",
                "The server cannot check tokens right now: \(error.reason) Retry in a moment.")
        }
        guard let issuer = issuersByURL[bearer.issuer] else {
            throw AccessError(
                401, "invalid_token",
                "The bearer token was rejected: unknown issuer. Log in with an issuer this server trusts (its administrator can tell you which)."
            )
        }
        return Self.caller(bearer, issuer: issuer)
    }

    static func caller(_ bearer: VerifiedBearer, issuer: ServerIssuer) -> Caller {
        let claims = bearer.claims
        let groups = claims[issuer.groupsClaim]?.texts ?? []
        let amr = claims["amr"]?.texts ?? []
        // The policy caller leaves out an email the provider marks unverified (it may be one the user typed): it never
        // satisfies a grant, becomes a session tag, or names the session.
        let acr = claims["acr"]?.text
        let policyCaller = PolicyCaller(
            issuer: bearer.issuer, subject: bearer.subject, groups: groups, claims: claims,
            mfa: amr.contains { issuer.mfaMethods.contains($0) },
            phishingResistant: amr.contains { issuer.phishingResistantMethods.contains($0) }
                || acr.map { issuer.phishingResistantACR.contains($0) } ?? false, amr: amr)
        let name = policyCaller.claims["email"]?.text ?? claims["preferred_username"]?.text ?? bearer.subject
        return Caller(bearer: bearer, issuer: issuer, policyCaller: policyCaller, name: name)
    }

    // MARK: Config

    /// The `/api/v1/config` body for `caller`, from the cache while the token and the policy are the ones it was made for.
    public func configBody(for caller: Caller) -> ByteBuffer {
        let generation = policy.snapshot.generation
        guard let digest = caller.tokenDigest else { return ByteBuffer(string: configDocument(for: caller)) }
        if let hit = configBodies.withLock({ $0[digest] }), hit.generation == generation { return hit.body }
        let body = ByteBuffer(string: configDocument(for: caller))
        let now = clock.now()
        configBodies.withLock { cache in
            // At most about 4,096 answers of a few kilobytes each: tens of megabytes at worst.
            if cache.count >= Self.configCacheLimit {
                cache = cache.filter { $0.value.expiresAt > now && $0.value.generation == generation }
                if cache.count >= Self.configCacheLimit { cache.removeAll(keepingCapacity: true) }
            }
            cache[digest] = (generation, caller.bearer.expiresAt, body)
        }
        return body
    }

    /// What `configure` needs: the caller, the issuer and client id to log in with, and every role they may assume
    /// grouped by account, each with a suggested profile and its `credential_process` line.
    ///
    /// Hand-built JSON, the one place in the server: it answers every `configure`, `roles` and web-page load, and
    /// bench/server-config measured Codable's encoder at several times its cost. It is KeylessWire's
    /// `ServerConfigDocument` byte for byte as JSONEncoder writes it with sorted keys (WireFormatTests holds it to that).
    public func configDocument(for caller: Caller) -> String {
        let current = policy.current
        let listing = current.listing(for: caller.policyCaller)
        let entitlements = listing.map(\.entitlement)
        // Built on every request: one buffer appended in place, and the credential_process words every role shares
        // quoted once, instead of temporary strings per field and per word.
        var text = ""
        text.reserveCapacity(512 + 400 * entitlements.count)
        text += "{\"accounts\":["
        // A role's object depends only on its entitlement and the issuer, so it is rendered once and kept with the
        // entitlement it came from; an entry whose entitlement differs from the policy's now (a reload changed the role)
        // is rendered again, so the cache needs no hook into reloads. Bounded by the policy's roles times the issuers.
        let issuer = caller.issuer.trusted.issuer, clientID = caller.issuer.clientID
        var prefixes: (server: String, webIdentity: String)?
        let fragments = roleFragments.withLock { cache in
            if cache.count > 4 * current.roles.count + 1024 { cache.removeAll() }  // roles dropped by reloads
            return listing.map { entitlement, onRequest in
                let key = RoleFragmentKey(issuer: issuer, arn: entitlement.role.arn)
                if let hit = cache[key], hit.entitlement == entitlement, hit.onRequest == onRequest { return hit.json }
                let shared =
                    prefixes ?? (
                        server: CredentialProcessLine.prefix(
                            server: configuration.publicURL, issuer: issuer, clientID: clientID),
                        webIdentity: CredentialProcessLine.prefix(server: nil, issuer: issuer, clientID: clientID)
                    )
                prefixes = shared
                var json = ""
                appendRole(entitlement, onRequest: onRequest, prefixes: shared, to: &json)
                cache[key] = RoleFragment(entitlement: entitlement, onRequest: onRequest, json: json)
                return json
            }
        }
        var first = true
        var index = 0
        while index < entitlements.count {
            let account = entitlements[index].account
            if !first { text += "," }
            first = false
            text += "{\"alias\":"
            if let alias = account.alias { appendJSON(alias, to: &text) } else { text += "null" }
            text += ",\"id\":"; appendJSON(account.id, to: &text)
            text += ",\"roles\":["
            var firstRole = true
            while index < entitlements.count, entitlements[index].account.id == account.id {
                if !firstRole { text += "," }
                firstRole = false
                text += fragments[index]
                index += 1
            }
            text += "]}"
        }
        text += "],\"caller\":{\"groups\":["
        for (position, group) in caller.policyCaller.groups.enumerated() {
            if position > 0 { text += "," }
            appendJSON(group, to: &text)
        }
        text += caller.policyCaller.mfa ? "],\"mfa\":true" : "],\"mfa\":false"
        text += ",\"name\":"; appendJSON(caller.name, to: &text)
        text += ",\"subject\":"; appendJSON(caller.bearer.subject, to: &text)
        text += "},\"client_id\":"; appendJSON(caller.issuer.clientID, to: &text)
        text += ",\"default_region\":"; appendJSON(current.defaultRegion, to: &text)
        text += ",\"issuer\":"; appendJSON(caller.issuer.trusted.issuer, to: &text)
        text += ",\"server_url\":"; appendJSON(configuration.publicURL, to: &text)
        text += "}"
        return text
    }

    func appendRole(
        _ entitlement: Entitlement, onRequest: Eligibility?, prefixes: (server: String, webIdentity: String),
        to text: inout String
    ) {
        let role = entitlement.role
        text += "{\"arn\":"; appendJSON(role.arn, to: &text)
        text += ",\"credential_process\":"
        appendJSON(
            (role.credentials == .server ? prefixes.server : prefixes.webIdentity)
                + CredentialProcessLine.quoted(role.arn) + " --region "
                + CredentialProcessLine.quoted(entitlement.region), to: &text)
        text += role.credentials == .server ? ",\"credentials\":\"server\"" : ",\"credentials\":\"web-identity\""
        if let description = role.description { text += ",\"description\":"; appendJSON(description, to: &text) }
        text += ",\"max_session_seconds\":"; text += String(role.maxSessionSeconds)
        text += role.mfaRequired ? ",\"mfa_required\":true" : ",\"mfa_required\":false"
        text += ",\"name\":"; appendJSON(role.name, to: &text)
        if let onRequest {
            text += ",\"on_request\":{\"approver_groups\":["
            for (position, group) in onRequest.approverGroups.enumerated() {
                if position > 0 { text += "," }
                appendJSON(group, to: &text)
            }
            text += "],\"max_duration_seconds\":" + String(onRequest.maxDurationSeconds)
            text += onRequest.reasonRequired ? ",\"reason_required\":true" : ",\"reason_required\":false"
            text += onRequest.selfApproval ? ",\"self_approval\":true}" : ",\"self_approval\":false}"
        }
        if role.phishingResistantRequired { text += ",\"passkey_required\":true" }
        text += ",\"profile\":"; appendJSON(entitlement.profileName, to: &text)
        text += ",\"region\":"; appendJSON(entitlement.region, to: &text)
        text += "}"
    }

    /// `jsonString(value)` appended to `text`, without the temporary string when nothing needs escaping.
    func appendJSON(_ value: String, to text: inout String) {
        if value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            text += jsonString(value)
        } else {
            text += "\""; text += value; text += "\""
        }
    }

    // MARK: Credentials

    /// Decides, audits, then assumes the role on the caller's behalf.
    /// With `recordGrant` false the caller records the grant itself (the console link records it once the link exists,
    /// so a request that ends in a failure has no "granted" record).
    public func credentials(
        for caller: Caller, roleArn: String, durationSeconds: Int?, origin: RequestOrigin,
        action: String = "credentials", scope: SessionScope = .none,
        recordGrant: Bool = true
    ) async throws -> (AWSCredentials, Entitlement) {
        let issued = try await issue(
            for: caller, roleArn: roleArn, durationSeconds: durationSeconds, origin: origin, action: action,
            scope: scope, recordGrant: recordGrant)
        return (issued.credentials, issued.entitlement)
    }

    /// What `issue` gave: the credentials, the role, and the access request that granted it (nil for a standing grant).
    struct Issued {
        let credentials: AWSCredentials
        let entitlement: Entitlement
        let grant: AccessRequestRecord?
    }

    /// `credentials(for:…)`, with the access request that granted the role. A role on request is granted only while the
    /// caller holds an approved request for it, and the session never asks for more than the grant has left (STS's
    /// shortest session, 15 minutes, still applies).
    func issue(
        for caller: Caller, roleArn: String, durationSeconds: Int?, origin: RequestOrigin, action: String,
        scope: SessionScope, recordGrant: Bool
    ) async throws -> Issued {
        var decision = policy.current.decide(caller.policyCaller, roleArn: roleArn)
        var grant: AccessRequestRecord?
        if case .denied(.approvalRequired, let message) = decision {
            grant = try await activeGrant(
                for: caller, roleArn: roleArn, refusal: message, action: action, origin: origin)
            decision = policy.current.decide(caller.policyCaller, roleArn: roleArn, approved: true)
        }
        let entitlement: Entitlement
        let tags: [SessionTag]
        switch decision {
        case .denied(let reason, let message):
            try await record(
                action, "denied", caller, role: roleArn, origin: origin, reason: "\(reason.rawValue): \(message)")
            throw AccessError(403, reason.rawValue, message)
        case .granted(let granted, let grantedTags):
            entitlement = granted; tags = grantedTags
        }
        let maximum = entitlement.role.maxSessionSeconds
        if let durationSeconds, durationSeconds < 900 || durationSeconds > 43200 {
            throw AccessError(
                400, "invalid_request",
                "duration_seconds must be between 900 and 43200 (the role allows up to \(maximum)).")
        }
        var duration = min(durationSeconds ?? min(3600, maximum), maximum)
        if let endsAt = grant?.endsAt {
            duration = max(900, min(duration, Int(endsAt.timeIntervalSince(clock.now()).rounded(.down))))
        }
        // The person stays the source identity; an agent acting for them names the session and tags it.
        let person = SessionName.sanitize(caller.name)
        let sessionName = scope.agent.map { SessionScope.agentSessionName($0, person: person) } ?? person
        var sessionTags = tags.map { (key: $0.key, value: $0.value) }
        if let agent = scope.agent {
            sessionTags.removeAll { $0.key == SessionScope.agentTagKey }
            sessionTags.append((key: SessionScope.agentTagKey, value: agent))
        }
        let request = AssumeRoleRequest(
            roleArn: entitlement.role.arn, sessionName: sessionName, durationSeconds: duration,
            sourceIdentity: person, tags: sessionTags, scope: scope)
        let credentials: AWSCredentials
        do {
            let own = try await awsCredentials.resolve(logger: logger)
            credentials = try await sts.assumeRole(
                request, credentials: own.credentials, region: configuration.region, date: clock.now())
        } catch {
            // Any failure (not only KeylessError from our clients) is audited and answered 502, never a bare 500.
            let reason = (error as? KeylessError)?.reason ?? String(describing: error)
            try await record(action, "failed", caller, role: entitlement.role.arn, origin: origin, reason: reason)
            throw AccessError(
                502, "upstream_error",
                "AWS did not issue credentials for \(entitlement.role.arn): \(reason) Retry in a moment; if it persists, ask the server's administrator."
            )
        }
        if recordGrant {
            try await record(
                action, "granted", caller, role: entitlement.role.arn, origin: origin,
                reason: Self.grantedBy(grant) + " for \(duration) s" + Self.narrowing(scope), sessionName: sessionName,
                accessRequest: grant?.id)
        }
        return Issued(credentials: credentials, entitlement: entitlement, grant: grant)
    }

    /// How an audit record says what granted a role: the policy, or an approved access request.
    static func grantedBy(_ grant: AccessRequestRecord?) -> String {
        guard let grant else { return "granted by policy" }
        let approver = grant.selfApproved ? "the requester (break-glass)" : grant.decidedBy?.name ?? "?"
        return "granted by access request \(grant.id) (approved by \(approver)) until "
            + AuditRecord.timestamp(grant.endsAt ?? grant.createdAt)
    }

    /// How an audit record says a session was narrowed: the managed policies and the inline policy's digest.
    static func narrowing(_ scope: SessionScope) -> String {
        guard !scope.isEmpty else { return "" }
        let forAgent = scope.agent.map { ", for agent \($0) acting for the caller" } ?? ""
        var parts: [String] = []
        if !scope.policyArns.isEmpty { parts.append("policy ARNs " + scope.policyArns.joined(separator: ", ")) }
        if let identity = scope.cacheIdentity, scope.policy != nil {
            parts.append("an inline session policy (" + identity.dropFirst("scope:".count).prefix(16) + ")")
        }
        return forAgent + (parts.isEmpty ? "" : ", narrowed by " + parts.joined(separator: " and "))
    }

    /// Credentials as the API returns them (the `credential_process` shape plus the role).
    public static func credentialsDocument(_ credentials: AWSCredentials, roleArn: String) -> CredentialsDocument {
        CredentialsDocument(
            accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken, expiration: AuditRecord.timestamp(credentials.expiration),
            roleArn: roleArn, assumedRoleArn: credentials.assumedRoleArn)
    }

    // MARK: Console

    /// A console sign-in URL for the role, opening `destination` (default from the configuration).
    public func consoleURL(for caller: Caller, roleArn: String, destination: String?, origin: RequestOrigin)
        async throws -> String
    {
        let destination = destination ?? configuration.consoleDestination
        guard ConsoleFederation.allowed(destination, hosts: configuration.consoleDestinationHosts) else {
            throw AccessError(
                400, "invalid_request",
                "destination \(destination) is not an AWS console URL this server opens (allowed hosts: \(configuration.consoleDestinationHosts.joined(separator: ", ")))."
            )
        }
        let issued = try await issue(
            for: caller, roleArn: roleArn, durationSeconds: nil, origin: origin, action: "console", scope: .none,
            recordGrant: false)
        let (credentials, entitlement) = (issued.credentials, issued.entitlement)
        let url: String
        do {
            url = try await federation.loginURL(credentials: credentials, destination: destination)
        } catch {
            let reason = (error as? KeylessError)?.reason ?? String(describing: error)
            try await record("console", "failed", caller, role: entitlement.role.arn, origin: origin, reason: reason)
            throw AccessError(
                502, "upstream_error",
                "The AWS sign-in service did not give a console link: \(reason) Retry in a moment; if it persists, ask the server's administrator to check console.federation_endpoint."
            )
        }
        // One record per console request: granted only once the link exists.
        try await record(
            "console", "granted", caller, role: entitlement.role.arn, origin: origin,
            reason: Self.grantedBy(issued.grant) + "; console link to \(destination)",
            sessionName: SessionName.sanitize(caller.name), accessRequest: issued.grant?.id)
        return url
    }

    // MARK: Audit

    func record(
        _ action: String, _ outcome: String, _ caller: Caller, role: String?, origin: RequestOrigin, reason: String,
        sessionName: String? = nil, accessRequest: String? = nil
    ) async throws {
        try await append(
            AuditRecord(
                time: clock.now(), action: action, outcome: outcome, issuer: caller.bearer.issuer,
                subject: caller.bearer.subject,
                name: caller.name, role: role, sourceAddress: origin.address, requestID: origin.requestID,
                reason: reason, sessionName: sessionName, accessRequest: accessRequest))
    }

    /// Appends `entry` to the audit log; a log that cannot be written fails the request (500), closed.
    func append(_ entry: AuditRecord) async throws {
        do {
            try await audit.append(entry)
        } catch {
            logger.error(
                "audit log write failed; refusing the request", metadata: ["error": .string(String(describing: error))])
            throw AccessError(
                500, "audit_unavailable",
                "The server could not record the decision, so it refuses the request. Ask its administrator to check the audit log."
            )
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

/// Where a rendered role object of /api/v1/config is kept: the caller's issuer changes its credential_process line.
struct RoleFragmentKey: Hashable, Sendable {
    let issuer: String
    let arn: String
}

/// A rendered role object and the entitlement it was rendered from.
struct RoleFragment: Sendable {
    let entitlement: Entitlement
    let onRequest: Eligibility?
    let json: String
}
