import KeylessCore

/// The access server's policy: which accounts and roles exist, who may assume which, and which claims become session tags.
///
/// Built once by `parse(_:file:)` with its indexes, then only read: a value is cheap to copy (one reference) and safe to
/// share between requests.
public struct AccessPolicy: Sendable {
    let storage: PolicyStorage

    init(storage: PolicyStorage) { self.storage = storage }

    /// Parses and checks the text of a policy file; every mistake is a `.configInvalid` error reading
    /// "file:line:column: reason".
    public static func parse(_ text: String, file: String) throws -> AccessPolicy {
        AccessPolicy(storage: try PolicyParser(file: file, text: text).parse())
    }

    /// Reads and parses the policy file at `path`.
    public static func load(path: String) throws -> AccessPolicy {
        guard let bytes = try Files.read(path) else { throw missingFile(path) }
        return try parse(String(decoding: bytes, as: UTF8.self), file: path)
    }

    static func missingFile(_ path: String) -> KeylessError {
        KeylessError(
            .configInvalid, "\(path): the policy file does not exist.",
            hint: "Create it (see docs/policy.example.yaml) or pass the right path.")
    }

    /// The accounts, in file order.
    public var accounts: [PolicyAccount] { storage.accounts }
    /// The roles, in file order.
    public var roles: [PolicyRole] { storage.roles }
    /// The region suggested where an account names none (`defaults.region`).
    public var defaultRegion: String { storage.defaultRegion }

    /// Every role `caller` may assume now through a standing grant, sorted by account (alias, else id) then role name,
    /// each once. Roles on request are not among them (see `eligibleEntitlements(for:)`).
    public func entitlements(for caller: PolicyCaller) -> [Entitlement] {
        storage.standingEntitlements(storage.matchingGrants(caller).filter { storage.grants[$0].eligibility == nil })
    }

    /// Every role `caller` may ask for through a grant on request and does not hold through a standing one, in the same
    /// order as `entitlements(for:)`, each with what the matching grants on request allow together.
    public func eligibleEntitlements(for caller: PolicyCaller) -> [EligibleEntitlement] {
        storage.split(storage.matchingGrants(caller)).onRequest
    }

    /// What `caller` may ask for the role `roleArn` (an ARN, or `alias/name`) on request; nil when no grant on request
    /// matching the caller covers it, or when the caller holds it through a standing grant.
    public func eligibility(_ caller: PolicyCaller, roleArn: String) -> (Entitlement, Eligibility)? {
        let storage = self.storage
        guard let index = storage.roleIndex(roleArn) else { return nil }
        let account = storage.roleAccount[index]
        let covering = storage.matchingGrants(caller).filter {
            storage.grants[$0].coverage.contains(role: index, account: account)
        }
        guard !covering.contains(where: { storage.grants[$0].eligibility == nil }) else { return nil }
        guard !covering.isEmpty else { return nil }
        return (storage.entitlements[index], storage.eligibility(grants: covering))
    }

    /// The groups whose members may approve requests for the role `roleArn`: the approver groups of every grant on
    /// request that covers it, whoever it is for (sorted; empty for an unknown role or one no such grant covers).
    public func approverGroups(roleArn: String) -> [String] {
        let storage = self.storage
        guard let index = storage.roleIndex(roleArn) else { return [] }
        let account = storage.roleAccount[index]
        let covering = storage.grants.indices.filter {
            storage.grants[$0].eligibility != nil && storage.grants[$0].coverage.contains(role: index, account: account)
        }
        return storage.eligibility(grants: covering).approverGroups
    }

    /// The roles `caller` may assume now and those they may ask for, together in the order of `entitlements(for:)`; a
    /// role on request comes with what may be asked.
    public func listing(for caller: PolicyCaller) -> [(entitlement: Entitlement, onRequest: Eligibility?)] {
        let storage = self.storage
        // The caller's grants are matched once: this answers every /api/v1/config and web-page load.
        let (standing, eligible) = storage.split(storage.matchingGrants(caller))
        guard !eligible.isEmpty else { return standing.map { ($0, nil) } }
        func rank(_ entitlement: Entitlement) -> Int { storage.rank[storage.roleByArn[entitlement.role.arn] ?? 0] }
        return (standing.map { ($0, nil) } + eligible.map { ($0.entitlement, $0.eligibility) })
            .sorted { rank($0.entitlement) < rank($1.entitlement) }
    }

    /// The role `roleArn` (an ARN, or `alias/name`) as an entitlement, whoever asks; nil when the policy lacks it.
    public func entitlement(roleArn: String) -> Entitlement? {
        storage.roleIndex(roleArn).map { storage.entitlements[$0] }
    }

    /// Whether `caller` may assume the role `roleArn` (an ARN, or `alias/name`), and if so with which session tags.
    /// With `approved`, the caller holds an approved request for the role, so the grants on request that match the
    /// caller count as well (a caller no longer eligible, after a policy change, is refused all the same).
    public func decide(_ caller: PolicyCaller, roleArn: String, approved: Bool = false) -> PolicyDecision {
        let storage = self.storage
        guard let index = storage.roleIndex(roleArn) else {
            return .denied(.unknownRole, "role \(roleArn) is not in the access policy")
        }
        let entitlement = storage.entitlements[index]
        let label = "role \(entitlement.account.displayName)/\(entitlement.role.name) (\(entitlement.role.arn))"
        let covering = storage.matchingGrants(caller).filter {
            storage.grants[$0].coverage.contains(role: index, account: storage.roleAccount[index])
        }
        let granted = covering.contains { approved || storage.grants[$0].eligibility == nil }
        if !granted && !covering.isEmpty {
            let reference = "\(entitlement.account.displayName)/\(entitlement.role.name)"
            return .denied(
                .approvalRequired,
                "\(label) is available to \(caller.subject) on request, with an approval, and no approved request of theirs grants it now; ask for it: keyless request \(reference) --for 1h --reason \"...\""
            )
        }
        guard granted else {
            return .denied(
                .notGranted, "\(caller.subject) is not granted \(label): \(storage.whatGrants(role: index, to: caller))"
            )
        }
        if entitlement.role.phishingResistantRequired && !caller.phishingResistant {
            return .denied(
                .phishingResistantRequired,
                "\(label) needs a passkey sign-in (phishing-resistant); \(caller.subject) signed in with \(Self.describe(amr: caller.amr)). Sign in again with a passkey or security key (`keyless login`)"
            )
        }
        if entitlement.role.mfaRequired && !caller.mfa {
            return .denied(
                .mfaRequired,
                "\(label) requires MFA, and the token of \(caller.subject) does not show a second factor (amr); log in again with MFA"
            )
        }
        return .granted(entitlement, tags: sessionTags(for: caller))
    }

    /// How a token's `amr` (RFC 8176) reads in a sentence: "a password and a one-time code".
    public static func describe(amr: [String]) -> String {
        let names: [String: String] = [
            "pwd": "a password", "otp": "a one-time code", "sms": "a text-message code", "tel": "a phone call",
            "hwk": "a security key", "swk": "a synced passkey or other software-held key", "fido": "a FIDO2 key",
            "pin": "a PIN",
            "fpt": "a fingerprint", "face": "face recognition", "sc": "a smart card", "kba": "security questions",
            "fed": "another identity provider", "user": "a presence check", "wia": "Windows sign-in",
        ]
        let parts = amr.filter { $0 != "mfa" }.map { names[$0] ?? "'\($0)'" }
        switch parts.count {
        case 0: return "a method the token does not name (no amr)"
        case 1: return parts[0]
        default: return parts.dropLast().joined(separator: ", ") + " and " + parts.last!
        }
    }

    /// The STS session tags for `caller`, in policy order: claims the caller lacks give no tag, several values are joined
    /// with ":", characters STS refuses become "_", and values are cut to 256 characters.
    public func sessionTags(for caller: PolicyCaller) -> [SessionTag] {
        storage.tagRules.compactMap { rule in
            let values = caller.claims[rule.claim]?.texts ?? []
            guard !values.isEmpty else { return nil }
            let value = values.map(STSTagText.sanitize).joined(separator: ":")
            return SessionTag(key: rule.key, value: STSTagText.cut(value))
        }
    }
}

/// Which roles a grant gives: all of them, all of some accounts', and some named ones.
struct Coverage: Sendable {
    var all = false
    var accounts = Set<Int>()
    var roles = Set<Int>()

    func contains(role: Int, account: Int) -> Bool { all || roles.contains(role) || accounts.contains(account) }
}

/// A claim matcher: the claim's value (or any of its values) matches any of the patterns.
struct ClaimMatcher: Sendable {
    let claim: String
    let patterns: [Glob]

    func matches(_ claims: [String: JSONValue]) -> Bool {
        guard let value = claims[claim] else { return false }
        return value.texts.contains { text in patterns.contains { $0.matches(text) } }
    }
}

/// A grant as evaluated: its conditions and the roles it covers.
struct CompiledGrant: Sendable {
    let groups: [String]
    let claims: [ClaimMatcher]
    /// The issuer without trailing slashes, or nil for any issuer.
    let issuer: String?
    let coverage: Coverage
    /// For a grant on request (`eligible: true`): what it allows; nil for a standing grant.
    var eligibility: GrantEligibility? = nil

    /// Whether the conditions other than group membership hold (groups are checked through the index).
    func matchesBeyondGroups(_ caller: PolicyCaller) -> Bool {
        if let issuer, trimmedIssuer(caller.issuer) != issuer { return false }
        return claims.allSatisfy { $0.matches(caller.claims) }
    }
}

/// What one grant on request says.
struct GrantEligibility: Sendable, Equatable {
    let maxDurationSeconds: Int
    let approvers: Approvers
    let reasonRequired: Bool
}

/// A name compared by its exact Unicode scalars (its UTF-8 bytes), never by canonical equivalence: a group spelled
/// with U+212A KELVIN SIGN is not the group spelled with "K", as the claim matcher already holds.
struct ExactName: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ name: String) { bytes = Array(name.utf8) }
}

/// A `session_tags` entry.
struct TagRule: Sendable, Equatable {
    let key: String
    let claim: String
}

func trimmedIssuer(_ issuer: String) -> String {
    var text = Substring(issuer)
    while text.hasSuffix("/") { text = text.dropLast() }
    return String(text)
}

/// The parsed policy and the indexes that keep decisions independent of its size.
final class PolicyStorage: Sendable {
    let accounts: [PolicyAccount]
    let roles: [PolicyRole]
    let defaultRegion: String
    /// For each role (by index), the account index it belongs to.
    let roleAccount: [Int]
    /// For each role (by index), its entitlement, built once.
    let entitlements: [Entitlement]
    /// For each role (by index), its position in the listing order.
    let rank: [Int]
    /// Every entitlement in listing order (the answer for a grant of "*").
    let sortedEntitlements: [Entitlement]
    /// Role indices of each account.
    let rolesByAccount: [[Int]]
    let roleByArn: [String: Int]
    /// "alias/name" and "id/name" to role index.
    let roleByReference: [String: Int]
    let grants: [CompiledGrant]
    /// Group name (exact scalars) to the grants that name it.
    let grantsByGroup: [ExactName: [Int]]
    /// Grants without groups (claims only): evaluated for every caller.
    let claimOnlyGrants: [Int]
    /// The grants naming each role, each account with "alias/*", and "*": what covers a role, for denial reasons.
    let grantsByRole: [[Int]]
    let grantsByAccount: [[Int]]
    let grantsForAll: [Int]
    let tagRules: [TagRule]

    init(
        accounts: [PolicyAccount], roles: [PolicyRole], roleAccount: [Int], defaultRegion: String,
        grants: [CompiledGrant], tagRules: [TagRule]
    ) {
        self.accounts = accounts
        self.roles = roles
        self.roleAccount = roleAccount
        self.defaultRegion = defaultRegion
        self.grants = grants
        self.tagRules = tagRules

        var entitlements: [Entitlement] = []
        entitlements.reserveCapacity(roles.count)
        var byArn: [String: Int] = [:], byReference: [String: Int] = [:]
        var byAccount = Array(repeating: [Int](), count: accounts.count)
        for (index, role) in roles.enumerated() {
            let account = accounts[roleAccount[index]]
            entitlements.append(
                Entitlement(
                    role: role, account: account, region: account.region ?? defaultRegion,
                    profileName: Self.profileName(account: account, role: role)))
            byArn[role.arn] = index
            byReference["\(account.id)/\(role.name)"] = index
            if let alias = account.alias { byReference["\(alias)/\(role.name)"] = index }
            byAccount[roleAccount[index]].append(index)
        }
        // Without regard to case first, as people read a list; then exactly, so the order is total.
        let keys = entitlements.map { e in
            (
                e.account.displayName.lowercased(), e.account.displayName, e.role.name.lowercased(), e.role.name,
                e.role.arn
            )
        }
        let order = roles.indices.sorted { keys[$0] < keys[$1] }
        var rank = Array(repeating: 0, count: roles.count)
        for (position, index) in order.enumerated() { rank[index] = position }
        self.entitlements = entitlements
        self.rank = rank
        self.sortedEntitlements = order.map { entitlements[$0] }
        self.rolesByAccount = byAccount
        self.roleByArn = byArn
        self.roleByReference = byReference

        var byGroup: [ExactName: [Int]] = [:], claimOnly: [Int] = []
        var forRole = Array(repeating: [Int](), count: roles.count),
            forAccount = Array(repeating: [Int](), count: accounts.count)
        var forAll: [Int] = []
        for (index, grant) in grants.enumerated() {
            if grant.groups.isEmpty { claimOnly.append(index) }
            for group in grant.groups { byGroup[ExactName(group), default: []].append(index) }
            if grant.coverage.all { forAll.append(index) }
            for account in grant.coverage.accounts { forAccount[account].append(index) }
            for role in grant.coverage.roles { forRole[role].append(index) }
        }
        self.grantsByGroup = byGroup
        self.claimOnlyGrants = claimOnly
        self.grantsByRole = forRole
        self.grantsByAccount = forAccount
        self.grantsForAll = forAll
    }

    /// The suggested profile name for a role: `<alias or id>-<name>`, lowercase, other characters as "-".
    static func profileName(account: PolicyAccount, role: PolicyRole) -> String {
        let raw = "\(account.displayName)-\(role.name)".lowercased()
        return String(
            String.UnicodeScalarView(
                raw.unicodeScalars.map { scalar in
                    switch scalar {
                    case "a"..."z", "0"..."9", ".", "_", "-": return scalar
                    default: return "-"
                    }
                }))
    }

    /// The role named by an ARN or `alias/name` (`id/name`).
    func roleIndex(_ reference: String) -> Int? { roleByArn[reference] ?? roleByReference[reference] }

    /// The entitlements standing grants give, in listing order (all of them, already sorted, when one grant gives "*").
    func standingEntitlements(_ standing: [Int]) -> [Entitlement] {
        if standing.contains(where: { grants[$0].coverage.all }) { return sortedEntitlements }
        return coveredRoles(standing).map { entitlements[$0] }
    }

    /// The matching grants `matching` as what they give: standing entitlements, and the roles on request the caller
    /// does not hold through a standing grant, each with what only the grants on request covering it allow.
    func split(_ matching: [Int]) -> (standing: [Entitlement], onRequest: [EligibleEntitlement]) {
        let standingGrants = matching.filter { grants[$0].eligibility == nil }
        let standing = standingEntitlements(standingGrants)
        let onRequest = matching.filter { grants[$0].eligibility != nil }
        guard !onRequest.isEmpty else { return (standing, []) }
        // A standing "*" holds every role already.
        if standingGrants.contains(where: { grants[$0].coverage.all }) { return (standing, []) }
        let held = Set(coveredRoles(standingGrants))
        let eligible = coveredRoles(onRequest).filter { !held.contains($0) }.map { role in
            let covering = onRequest.filter { grants[$0].coverage.contains(role: role, account: roleAccount[role]) }
            return EligibleEntitlement(entitlement: entitlements[role], eligibility: eligibility(grants: covering))
        }
        return (standing, eligible)
    }

    /// The roles `grants` cover, each once, in listing order.
    func coveredRoles(_ grants: [Int]) -> [Int] {
        var chosen = Set<Int>()
        for grant in grants {
            let coverage = self.grants[grant].coverage
            if coverage.all { return roles.indices.sorted { rank[$0] < rank[$1] } }
            for account in coverage.accounts { chosen.formUnion(rolesByAccount[account]) }
            chosen.formUnion(coverage.roles)
        }
        return chosen.sorted { rank[$0] < rank[$1] }
    }

    /// What the grants on request among `grants` (those covering one role) allow together.
    func eligibility(grants: [Int]) -> Eligibility {
        var maximum = 0, groups = Set<String>(), selfApproval = false, reason = false
        for grant in grants {
            guard let eligibility = self.grants[grant].eligibility else { continue }
            maximum = max(maximum, eligibility.maxDurationSeconds)
            switch eligibility.approvers {
            case .groups(let names): groups.formUnion(names)
            case .requester: selfApproval = true
            }
            reason = reason || eligibility.reasonRequired
        }
        return Eligibility(
            maxDurationSeconds: maximum, approverGroups: groups.sorted(), selfApproval: selfApproval,
            reasonRequired: reason)
    }

    /// The grants whose conditions `caller` meets, each once: those indexed under the caller's groups, then the
    /// claim-only ones.
    func matchingGrants(_ caller: PolicyCaller) -> [Int] {
        var result: [Int] = []
        var seen = Set<Int>()
        for group in caller.groups {
            guard let indices = grantsByGroup[ExactName(group)] else { continue }
            for index in indices where seen.insert(index).inserted && grants[index].matchesBeyondGroups(caller) {
                result.append(index)
            }
        }
        for index in claimOnlyGrants where grants[index].matchesBeyondGroups(caller) { result.append(index) }
        return result
    }

    /// What would give `role` to `caller`, for a denial: the groups of the grants covering it, the conditions that
    /// failed in grants for groups the caller is in, and the claims of claim-only grants.
    func whatGrants(role: Int, to caller: PolicyCaller) -> String {
        var groups = Set<String>(), claimNames = Set<String>(), unmet: [String] = []
        let callerGroups = Set(caller.groups.map(ExactName.init))
        let covering = Set(grantsForAll + grantsByAccount[roleAccount[role]] + grantsByRole[role]).sorted()
        for grant in covering.map({ grants[$0] }) {
            guard !grant.groups.isEmpty else {
                claimNames.formUnion(grant.claims.map(\.claim))
                continue
            }
            groups.formUnion(grant.groups)
            guard !callerGroups.isDisjoint(with: grant.groups.map(ExactName.init)) else { continue }
            if let issuer = grant.issuer, trimmedIssuer(caller.issuer) != issuer, !unmet.contains("issuer \(issuer)") {
                unmet.append("issuer \(issuer)")
            }
            for matcher in grant.claims
            where !matcher.matches(caller.claims) && !unmet.contains("claim \(matcher.claim)") {
                unmet.append("claim \(matcher.claim)")
            }
        }
        var parts: [String] = []
        if !groups.isEmpty {
            let mine = caller.groups.isEmpty ? "none" : caller.groups.sorted().joined(separator: ", ")
            parts.append("it is granted to members of \(Self.list(groups.sorted())) (the caller's groups: \(mine))")
        }
        if !unmet.isEmpty {
            parts.append(
                "the grant for the caller's group also requires a matching \(unmet.joined(separator: " and "))")
        }
        if !claimNames.isEmpty {
            parts.append(
                "\(parts.isEmpty ? "it is granted" : "or") to callers whose claims \(Self.list(claimNames.sorted(), last: "and")) match"
            )
        }
        if caller.hasUnverifiedEmail && (claimNames.contains("email") || unmet.contains("claim email")) {
            parts.append(
                "the token's email is not verified by its provider (email_verified is false), so it counts as absent")
        }
        return parts.isEmpty ? "no grant in the policy gives this role to anyone" : parts.joined(separator: "; ")
    }

    /// "a", "a or b", "a, b or c", at most 5 names then "and N more".
    static func list(_ names: [String], last: String = "or") -> String {
        let shown = Array(names.prefix(5))
        var text =
            shown.count > 1 ? shown.dropLast().joined(separator: ", ") + " \(last) " + shown.last! : shown.joined()
        if names.count > shown.count { text = shown.joined(separator: ", ") + " and \(names.count - shown.count) more" }
        return text
    }
}
