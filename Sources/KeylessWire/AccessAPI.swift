/// The access server's `/api/v1` bodies, as the server writes them and the CLI reads them (the OpenAPI document at
/// `/openapi.yaml` describes the same). Codable only: no Foundation here. The server writes `/api/v1/config` with a
/// fast encoder of its own (its benchmark, bench/server-config, is why); a test holds that encoder to these types byte
/// for byte (as `JSONEncoder` writes them with `.sortedKeys` and `.withoutEscapingSlashes`).

/// `GET /api/v1/config`: the caller, how to log in, and every role they may assume by account.
public struct ServerConfigDocument: Codable, Sendable, Equatable {
    /// One assumable role with what `configure` writes for it.
    public struct Role: Codable, Sendable, Equatable {
        public var arn: String
        public var name: String
        public var description: String?
        public var maxSessionSeconds: Int
        public var mfaRequired: Bool
        /// True when the MFA must be a passkey or security key (`mfa_required: phishing-resistant`); absent otherwise.
        public var passkeyRequired: Bool?
        /// Present when the caller may have the role only on request (`keyless request`), with what a request may ask.
        public var onRequest: OnRequest?
        /// "server" (the access server assumes the role) or "web-identity" (the CLI does, with the ID token).
        public var credentials: String
        public var region: String
        public var profile: String
        public var credentialProcess: String

        public init(
            arn: String, name: String, description: String?, maxSessionSeconds: Int, mfaRequired: Bool,
            credentials: String, region: String, profile: String, credentialProcess: String,
            passkeyRequired: Bool? = nil, onRequest: OnRequest? = nil
        ) {
            self.onRequest = onRequest
            self.arn = arn
            self.name = name
            self.description = description
            self.maxSessionSeconds = maxSessionSeconds
            self.mfaRequired = mfaRequired
            self.passkeyRequired = passkeyRequired
            self.credentials = credentials
            self.region = region
            self.profile = profile
            self.credentialProcess = credentialProcess
        }

        enum CodingKeys: String, CodingKey {
            case arn, name, description
            case maxSessionSeconds = "max_session_seconds", mfaRequired = "mfa_required"
            case passkeyRequired = "passkey_required", onRequest = "on_request"
            case credentials, region, profile
            case credentialProcess = "credential_process"
        }
    }

    /// What a request for a role on request may ask, and who approves it.
    public struct OnRequest: Codable, Sendable, Equatable {
        /// The longest grant a request may ask for, in seconds.
        public var maxDurationSeconds: Int
        /// The groups whose members approve (empty when only the requester does).
        public var approverGroups: [String]
        /// Whether the requester may approve their own request (break-glass, audited).
        public var selfApproval: Bool
        /// Whether a request must give a reason.
        public var reasonRequired: Bool

        public init(maxDurationSeconds: Int, approverGroups: [String], selfApproval: Bool, reasonRequired: Bool) {
            self.maxDurationSeconds = maxDurationSeconds
            self.approverGroups = approverGroups
            self.selfApproval = selfApproval
            self.reasonRequired = reasonRequired
        }

        enum CodingKeys: String, CodingKey {
            case maxDurationSeconds = "max_duration_seconds", approverGroups = "approver_groups"
            case selfApproval = "self_approval", reasonRequired = "reason_required"
        }
    }

    /// An account and its roles.
    public struct Account: Codable, Sendable, Equatable {
        public var id: String
        /// Written as null when the account has none.
        public var alias: String?
        public var roles: [Role]

        public init(id: String, alias: String?, roles: [Role]) {
            self.id = id
            self.alias = alias
            self.roles = roles
        }
        /// The alias when there is one, else the id.
        public var label: String { alias ?? id }
        /// "alias (id)", or the id.
        public var heading: String { alias.map { "\($0) (\(id))" } ?? id }

        enum CodingKeys: String, CodingKey { case id, alias, roles }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(alias, forKey: .alias)  // null, not absent: the server has always written it
            try container.encode(roles, forKey: .roles)
        }
    }

    /// The caller as the server sees them.
    public struct CallerInfo: Codable, Sendable, Equatable {
        public var subject: String
        public var name: String
        public var groups: [String]
        public var mfa: Bool

        public init(subject: String, name: String, groups: [String], mfa: Bool) {
            self.subject = subject
            self.name = name
            self.groups = groups
            self.mfa = mfa
        }
    }

    public var issuer: String
    public var clientID: String
    public var serverURL: String
    public var defaultRegion: String
    public var caller: CallerInfo
    public var accounts: [Account]

    public init(
        issuer: String, clientID: String, serverURL: String, defaultRegion: String, caller: CallerInfo,
        accounts: [Account]
    ) {
        self.issuer = issuer
        self.clientID = clientID
        self.serverURL = serverURL
        self.defaultRegion = defaultRegion
        self.caller = caller
        self.accounts = accounts
    }

    enum CodingKeys: String, CodingKey {
        case issuer
        case clientID = "client_id", serverURL = "server_url", defaultRegion = "default_region"
        case caller, accounts
    }

    /// Every role, with its account.
    public var allRoles: [(account: Account, role: Role)] {
        accounts.flatMap { account in account.roles.map { (account, $0) } }
    }
}

/// `POST /api/v1/credentials`'s request.
public struct CredentialsRequest: Codable, Sendable, Equatable {
    public var roleArn: String
    /// Capped at the role's longest session; the role's default when absent.
    public var durationSeconds: Int?
    /// An inline session policy (JSON text) narrowing the session.
    public var sessionPolicy: String?
    /// Managed policies narrowing the session.
    public var policyArns: [String]?
    /// An agent acting for the caller: the session is named for both and tagged `keyless-agent`.
    public var agent: String?

    public init(
        roleArn: String, durationSeconds: Int? = nil, sessionPolicy: String? = nil, policyArns: [String]? = nil,
        agent: String? = nil
    ) {
        self.roleArn = roleArn
        self.durationSeconds = durationSeconds
        self.sessionPolicy = sessionPolicy
        self.policyArns = policyArns
        self.agent = agent
    }

    enum CodingKeys: String, CodingKey {
        case roleArn = "role_arn", durationSeconds = "duration_seconds", sessionPolicy = "session_policy"
        case policyArns = "policy_arns", agent
    }
}

/// `POST /api/v1/credentials`'s answer: the `credential_process` document (Version 1) with the role.
public struct CredentialsDocument: Codable, Sendable, Equatable {
    public var version: Int
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String
    /// RFC 3339, UTC, whole seconds.
    public var expiration: String
    public var roleArn: String
    /// The assumed-role ARN STS answered, when it did.
    public var assumedRoleArn: String?

    public init(
        accessKeyId: String, secretAccessKey: String, sessionToken: String, expiration: String, roleArn: String,
        assumedRoleArn: String?
    ) {
        self.version = 1
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.roleArn = roleArn
        self.assumedRoleArn = assumedRoleArn
    }

    enum CodingKeys: String, CodingKey {
        case version = "Version", accessKeyId = "AccessKeyId", secretAccessKey = "SecretAccessKey"
        case sessionToken = "SessionToken", expiration = "Expiration", roleArn = "RoleArn"
        case assumedRoleArn = "AssumedRoleArn"
    }
}

/// `POST /api/v1/console`'s request.
public struct ConsoleRequest: Codable, Sendable, Equatable {
    public var roleArn: String
    /// An AWS console URL to open; the server's default when absent.
    public var destination: String?

    public init(roleArn: String, destination: String? = nil) {
        self.roleArn = roleArn
        self.destination = destination
    }

    enum CodingKeys: String, CodingKey { case roleArn = "role_arn", destination }
}

/// `POST /api/v1/console`'s answer.
public struct ConsoleDocument: Codable, Sendable, Equatable {
    public var url: String

    public init(url: String) { self.url = url }
}

/// `POST /api/v1/requests`: ask for a role on request.
public struct AccessRequestCreate: Codable, Sendable, Equatable {
    /// The role's ARN or `alias/name`.
    public var roleArn: String
    /// How long the grant should last once approved; one hour (or the most allowed, if less) when absent.
    public var durationSeconds: Int?
    /// Why, for the approver and the audit log.
    public var reason: String?

    public init(roleArn: String, durationSeconds: Int? = nil, reason: String? = nil) {
        self.roleArn = roleArn
        self.durationSeconds = durationSeconds
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey { case roleArn = "role_arn", durationSeconds = "duration_seconds", reason }
}

/// `POST /api/v1/requests/{id}/approve`, `/deny` and `/revoke`: the approver's note, the reason of a denial (required),
/// or why a grant ends early.
public struct AccessRequestAction: Codable, Sendable, Equatable {
    public var reason: String?

    public init(reason: String? = nil) { self.reason = reason }
}

/// One access request as the API shows it. Times are RFC 3339, UTC, with milliseconds.
public struct AccessRequestDocument: Codable, Sendable, Equatable {
    /// Someone who acted on a request.
    public struct Person: Codable, Sendable, Equatable {
        public var name: String
        public var subject: String

        public init(name: String, subject: String) {
            self.name = name
            self.subject = subject
        }
    }

    public var id: String
    /// pending, approved, denied, cancelled, expired or revoked.
    public var status: String
    public var roleArn: String
    /// `alias/name` of the role, when the policy still lists it.
    public var role: String?
    public var requester: Person
    public var reason: String
    public var durationSeconds: Int
    public var createdAt: String
    public var pendingUntil: String
    public var decidedBy: Person?
    public var decidedAt: String?
    /// The approver's note, or the reason of a denial.
    public var decisionNote: String?
    public var selfApproved: Bool
    public var startsAt: String?
    public var endsAt: String?
    public var endedBy: Person?
    public var endNote: String?
    public var endedAt: String?

    public init(
        id: String, status: String, roleArn: String, role: String?, requester: Person, reason: String,
        durationSeconds: Int, createdAt: String, pendingUntil: String, decidedBy: Person? = nil,
        decidedAt: String? = nil, decisionNote: String? = nil, selfApproved: Bool = false, startsAt: String? = nil,
        endsAt: String? = nil, endedBy: Person? = nil, endNote: String? = nil, endedAt: String? = nil
    ) {
        self.id = id
        self.status = status
        self.roleArn = roleArn
        self.role = role
        self.requester = requester
        self.reason = reason
        self.durationSeconds = durationSeconds
        self.createdAt = createdAt
        self.pendingUntil = pendingUntil
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.decisionNote = decisionNote
        self.selfApproved = selfApproved
        self.startsAt = startsAt
        self.endsAt = endsAt
        self.endedBy = endedBy
        self.endNote = endNote
        self.endedAt = endedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, status, role, requester, reason
        case roleArn = "role_arn", durationSeconds = "duration_seconds", createdAt = "created_at"
        case pendingUntil = "pending_until", decidedBy = "decided_by", decidedAt = "decided_at"
        case decisionNote = "decision_note", selfApproved = "self_approved", startsAt = "starts_at", endsAt = "ends_at"
        case endedBy = "ended_by", endNote = "end_note", endedAt = "ended_at"
    }
}

/// `GET /api/v1/requests`: the caller's own requests, those waiting for their approval, and the grants in force they
/// may end early.
public struct AccessRequestsDocument: Codable, Sendable, Equatable {
    /// The caller's requests, newest first (the last 50, and every one still pending or in force).
    public var mine: [AccessRequestDocument]
    /// Pending requests of others for roles the caller approves, oldest first.
    public var toApprove: [AccessRequestDocument]
    /// Approved grants in force for roles the caller approves (others'), ending soonest first.
    public var active: [AccessRequestDocument]

    public init(mine: [AccessRequestDocument], toApprove: [AccessRequestDocument], active: [AccessRequestDocument]) {
        self.mine = mine
        self.toApprove = toApprove
        self.active = active
    }

    enum CodingKeys: String, CodingKey { case mine, toApprove = "to_approve", active }
}

/// Every `/api/v1` refusal: a stable code, a sentence for people, and the request id to quote to an administrator.
public struct APIErrorDocument: Codable, Sendable, Equatable {
    public var error: String
    public var errorDescription: String
    /// Absent from refusals made before a request id exists (an unknown path, a body too large).
    public var requestID: String?

    public init(error: String, errorDescription: String, requestID: String?) {
        self.error = error
        self.errorDescription = errorDescription
        self.requestID = requestID
    }

    enum CodingKeys: String, CodingKey {
        case error, errorDescription = "error_description", requestID = "request_id"
    }
}
