import KeylessCore

/// Who is asking: the verified identity the access server took from a bearer token.
public struct PolicyCaller: Sendable, Hashable {
    /// The token's `iss`, the issuer that vouched for the caller.
    public var issuer: String
    /// The token's `sub`.
    public var subject: String
    /// The caller's groups, compared exactly with the `groups:` of grants.
    public var groups: [String]
    /// Every claim of the token, matched by the `claims:` of grants and read by `session_tags:`; without `email` when
    /// the provider says it is not verified.
    public var claims: [String: JSONValue]
    /// Whether the token shows that the caller used a second factor (from `amr`).
    public var mfa: Bool
    /// Whether the token shows a phishing-resistant sign-in (a passkey or security key: `amr` or `acr`).
    public var phishingResistant: Bool
    /// How the caller signed in, as the token's `amr` says (for explaining a refusal).
    public var amr: [String]
    /// Whether the token carried an `email` that its provider marks unverified (`email_verified: false`), left out of `claims`.
    public var hasUnverifiedEmail: Bool

    /// Creates a caller. An `email` whose `email_verified` is false (a boolean, or the string some providers send) may be
    /// one the person typed: it is absent for grants and session tags, as it is for the session name.
    public init(
        issuer: String, subject: String, groups: [String] = [], claims: [String: JSONValue] = [:], mfa: Bool = false,
        phishingResistant: Bool = false, amr: [String] = []
    ) {
        self.issuer = issuer
        self.subject = subject
        self.groups = groups
        let unverified =
            claims["email"] != nil
            && (claims["email_verified"] == .bool(false) || claims["email_verified"] == .string("false"))
        self.claims = unverified ? claims.filter { $0.key != "email" } : claims
        self.hasUnverifiedEmail = unverified
        self.mfa = mfa || phishingResistant
        self.phishingResistant = phishingResistant
        self.amr = amr
    }
}

/// An AWS account the policy knows.
public struct PolicyAccount: Sendable, Equatable {
    /// The 12-digit account id.
    public var id: String
    /// A short name people use for the account, as in `prod/admin`.
    public var alias: String?
    /// The region suggested for this account's profiles; nil means the policy's default region.
    public var region: String?

    public init(id: String, alias: String? = nil, region: String? = nil) {
        self.id = id
        self.alias = alias
        self.region = region
    }

    /// The alias, or the id when the account has none.
    public var displayName: String { alias ?? id }
}

/// How a `credential_process` line written by `keyless configure` obtains credentials for a role.
public enum CredentialMode: String, Sendable, Equatable, CaseIterable {
    /// The CLI trades the user's ID token with STS `AssumeRoleWithWebIdentity` itself.
    case webIdentity = "web-identity"
    /// The CLI asks the access server, which calls STS `AssumeRole` with its own credentials.
    case server
}

/// An IAM role the policy can grant.
public struct PolicyRole: Sendable, Equatable {
    /// The role's ARN, exactly as written in the policy.
    public var arn: String
    /// The role's short name, unique within its account (default: the last segment of the ARN).
    public var name: String
    /// The 12-digit id of the account the role belongs to.
    public var accountID: String
    /// A line for people choosing a role.
    public var description: String?
    /// The longest session to ask STS for, in seconds (900…43200).
    public var maxSessionSeconds: Int
    /// Whether the caller's token must show MFA.
    public var mfaRequired: Bool
    /// Whether the MFA must be phishing-resistant (`mfa_required: phishing-resistant`: a passkey or security key).
    public var phishingResistantRequired: Bool
    /// How `configure` sets up credentials for this role.
    public var credentials: CredentialMode

    public init(
        arn: String, name: String, accountID: String, description: String? = nil, maxSessionSeconds: Int = 3600,
        mfaRequired: Bool = false, phishingResistantRequired: Bool = false, credentials: CredentialMode = .webIdentity
    ) {
        self.arn = arn
        self.name = name
        self.accountID = accountID
        self.description = description
        self.maxSessionSeconds = maxSessionSeconds
        self.mfaRequired = mfaRequired || phishingResistantRequired
        self.phishingResistantRequired = phishingResistantRequired
        self.credentials = credentials
    }
}

/// A role a caller may assume, with what `configure` needs to write a profile for it.
public struct Entitlement: Sendable, Equatable {
    public var role: PolicyRole
    /// The account the role belongs to.
    public var account: PolicyAccount
    /// The suggested region: the account's, else the policy's default.
    public var region: String
    /// The suggested profile name, `<alias or id>-<role name>`, lowercase, of `[a-z0-9._-]` only.
    public var profileName: String

    public init(role: PolicyRole, account: PolicyAccount, region: String, profileName: String) {
        self.role = role
        self.account = account
        self.region = region
        self.profileName = profileName
    }
}

/// An STS session tag (`Tags.member.N.Key` / `.Value` of `AssumeRole`).
public struct SessionTag: Sendable, Equatable {
    /// The tag key.
    public var key: String
    /// The tag value.
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// Why a caller may not assume a role; the raw value goes into the audit log and API errors.
public enum DenialReason: String, Sendable {
    /// The policy lists no such role.
    case unknownRole = "unknown_role"
    /// No grant whose conditions the caller meets covers the role.
    case notGranted = "not_granted"
    /// The role is granted but needs MFA, which the caller's token does not show.
    case mfaRequired = "mfa_required"
    /// The role needs a phishing-resistant sign-in (passkey, security key), which the caller's token does not show.
    case phishingResistantRequired = "phishing_resistant_required"
    /// The caller may have the role only on request, and holds no approved request for it now.
    case approvalRequired = "approval_required"
}

/// Who approves the requests a grant on request allows.
public enum Approvers: Sendable, Equatable {
    /// Members of any of these groups (never the requester, even when in one of them).
    case groups([String])
    /// The requester themselves (`approvers: self`: break-glass, always audited).
    case requester
}

/// What a caller may ask for a role on request: the grants on request that match the caller and cover the role,
/// taken together (the longest duration, any approver group of any of them, self-approval if one allows it, a reason if
/// one requires it).
public struct Eligibility: Sendable, Equatable {
    /// The longest grant that may be asked for, in seconds.
    public var maxDurationSeconds: Int
    /// Groups whose members may approve (sorted).
    public var approverGroups: [String]
    /// Whether the requester may approve their own request (break-glass).
    public var selfApproval: Bool
    /// Whether a request must give a reason.
    public var reasonRequired: Bool

    public init(maxDurationSeconds: Int, approverGroups: [String], selfApproval: Bool, reasonRequired: Bool) {
        self.maxDurationSeconds = maxDurationSeconds; self.approverGroups = approverGroups
        self.selfApproval = selfApproval; self.reasonRequired = reasonRequired
    }
}

/// A role a caller may have on request.
public struct EligibleEntitlement: Sendable, Equatable {
    public var entitlement: Entitlement
    public var eligibility: Eligibility

    public init(entitlement: Entitlement, eligibility: Eligibility) {
        self.entitlement = entitlement; self.eligibility = eligibility
    }
}

/// The answer to "may this caller assume this role?".
public enum PolicyDecision: Sendable, Equatable {
    /// Yes, with the tags to pass to STS.
    case granted(Entitlement, tags: [SessionTag])
    /// No, with a sentence naming the role and what is missing.
    case denied(DenialReason, String)
}

/// What `PolicyStore.reloadIfChanged()` did.
public enum PolicyReload: Sendable, Equatable {
    /// The file's content is what was last seen; the policy stays.
    case unchanged
    /// The file changed and its new content is now the policy.
    case reloaded
    /// The file changed but cannot be used ("file:line:col: reason"); the previous policy stays.
    case rejected(String)
}
