import KeylessCore
import KeylessYAML
import Yams

/// Walks the YAML node tree of a policy file (never Codable, so every mistake keeps its line and column) and builds
/// the checked model. The first mistake found throws.
struct PolicyParser {
    let file: String
    let text: String

    static let hint = "Fix the policy at the position shown; docs/policy.example.yaml documents every field."
    static let topKeys = ["defaults", "accounts", "roles", "grants", "session_tags"]
    static let defaultsKeys = ["region", "credentials", "max_session"]
    static let accountKeys = ["id", "alias", "region"]
    static let roleKeys = ["arn", "name", "description", "max_session", "mfa_required", "credentials"]
    static let grantKeys = [
        "description", "groups", "claims", "issuer", "roles", "eligible", "max_duration", "approvers",
        "reason_required",
    ]
    /// What a grant on request (`eligible: true`) adds.
    static let eligibleKeys = ["max_duration", "approvers", "reason_required"]
    /// How long an approved request may last: 15 minutes to a day (longer access is a standing grant).
    static let grantRange = 900...86400
    static let tagKeys = ["tag", "claim"]
    static let sessionRange = 900...43200

    /// A key of a mapping with its value.
    struct Entry {
        let key: String
        let keyNode: Node
        let value: Node
    }

    /// A mapping's entries by key.
    struct Entries {
        let byKey: [String: Entry]

        subscript(key: String) -> Entry? { byKey[key] }

        /// The entry's value unless it is absent or YAML null (`key:`, `key: ~`).
        func value(_ key: String) -> Node? {
            guard let entry = byKey[key], !PolicyParser.isNull(entry.value) else { return nil }
            return entry.value
        }
    }

    /// Policy-wide defaults (`defaults:`).
    struct Defaults {
        var region = "us-east-1"
        var credentials = CredentialMode.webIdentity
        var maxSession = 3600
    }

    /// The accounts, with where each id and alias was written.
    struct Accounts {
        var list: [PolicyAccount] = []
        var byID: [String: (index: Int, node: Node)] = [:]
        var byAlias: [String: (index: Int, node: Node)] = [:]
    }

    /// The roles, each with its account's index and the node of its name, and the lookups grants use.
    struct Roles {
        var list: [PolicyRole] = []
        var account: [Int] = []
        var nodes: [Node] = []
        var byArn: [String: Int] = [:]
        /// "accountIndex/name" → role index.
        var byName: [String: Int] = [:]
    }

    func parse() throws -> PolicyStorage {
        let root = try compose()
        let top = try entries(root, of: "the policy", allowed: Self.topKeys)
        let defaults = try parseDefaults(top)
        let accounts = try parseAccounts(top, root: root)
        let roles = try parseRoles(top, root: root, defaults: defaults, accounts: accounts)
        let grants = try (top.value("grants").map { try sequence($0, of: "grants") } ?? []).map {
            try parseGrant($0, accounts: accounts, roles: roles)
        }
        let tagRules = try parseSessionTags(top)
        return PolicyStorage(
            accounts: accounts.list, roles: roles.list, roleAccount: roles.account, defaultRegion: defaults.region,
            grants: grants, tagRules: tagRules)
    }

    /// The YAML document's root mapping, after the size, node and alias checks.
    func compose() throws -> Node {
        // Policies grow with an organisation: room for far more than 10,000 roles, but no aliases and bounded nesting.
        let composed = try YAMLFile.compose(
            text, file: file, hint: Self.hint, limits: YAMLGuard.Limits(maxBytes: 32 << 20, maxNodes: 2_000_000),
            basicResolver: true)  // values are read from their text here, and it spares a regex per scalar
        guard let root = composed else {
            throw KeylessError(
                .configInvalid, "\(file):1:1: the policy is empty; it needs at least accounts: and roles:",
                hint: Self.hint)
        }
        guard case .mapping = root else {
            throw fail(root, "the policy must be a mapping with the keys \(Self.topKeys.joined(separator: ", "))")
        }
        return root
    }

    func parseDefaults(_ top: Entries) throws -> Defaults {
        var defaults = Defaults()
        guard let node = top.value("defaults") else { return defaults }
        let fields = try entries(node, of: "defaults", allowed: Self.defaultsKeys)
        if let value = fields.value("region") { defaults.region = try region(value) }
        if let value = fields.value("credentials") { defaults.credentials = try credentialMode(value) }
        if let value = fields.value("max_session") { defaults.maxSession = try duration(value) }
        return defaults
    }

    func parseAccounts(_ top: Entries, root: Node) throws -> Accounts {
        guard let accountsNode = top.value("accounts") else {
            throw fail(root, "the policy lists no accounts; add accounts: with each account's 12-digit id")
        }
        var accounts = Accounts()
        var aliasSeen: [String: Node] = [:]
        for item in try sequence(accountsNode, of: "accounts") {
            let fields = try entries(item, of: "an account", allowed: Self.accountKeys)
            guard let idNode = fields.value("id") else {
                throw fail(item, "this account has no id; add id: \"123456789012\"")
            }
            let id = try accountID(idNode)
            if let first = accounts.byID[id] {
                throw fail(idNode, "account \(id) is listed twice (first at \(position(first.node)))")
            }
            var alias: String? = nil
            if let aliasNode = fields.value("alias") {
                let text = try string(aliasNode, of: "alias")
                if let problem = Self.aliasProblem(text) { throw fail(aliasNode, "alias '\(text)' \(problem)") }
                if let first = aliasSeen[text.lowercased()] {
                    throw fail(aliasNode, "alias '\(text)' is used twice (first at \(position(first)))")
                }
                aliasSeen[text.lowercased()] = aliasNode
                alias = text
            }
            let accountRegion = try fields.value("region").map(region)
            accounts.byID[id] = (accounts.list.count, idNode)
            if let alias { accounts.byAlias[alias] = (accounts.list.count, item) }
            accounts.list.append(PolicyAccount(id: id, alias: alias, region: accountRegion))
        }
        guard !accounts.list.isEmpty else {
            throw fail(accountsNode, "accounts: is empty; list each account's 12-digit id")
        }
        return accounts
    }

    func parseRoles(_ top: Entries, root: Node, defaults: Defaults, accounts: Accounts) throws -> Roles {
        guard let rolesNode = top.value("roles") else {
            throw fail(root, "the policy lists no roles; add roles: with each role's arn")
        }
        var roles = Roles()
        var arnSeen: [String: Node] = [:]
        var nameSeen: [String: Node] = [:]
        for item in try sequence(rolesNode, of: "roles") {
            let fields = try entries(item, of: "a role", allowed: Self.roleKeys)
            guard let arnNode = fields.value("arn") else {
                throw fail(item, "this role has no arn; add arn: arn:aws:iam::<account id>:role/<name>")
            }
            let arn = try string(arnNode, of: "arn")
            let parsed: (accountID: String, roleName: String)
            switch Self.parseRoleArn(arn) {
            case .success(let value): parsed = value
            case .failure(let problem):
                throw fail(
                    arnNode,
                    "'\(arn)' is not a role ARN: \(problem.text); expected arn:aws:iam::<12-digit account id>:role/<name>"
                )
            }
            guard let account = accounts.byID[parsed.accountID] else {
                throw fail(
                    arnNode,
                    "role \(arn) is in account \(parsed.accountID), which is not listed under accounts:; add it there")
            }
            if let first = arnSeen[arn] {
                throw fail(arnNode, "role \(arn) is listed twice (first at \(position(first)))")
            }
            arnSeen[arn] = arnNode
            var name = parsed.roleName
            var nameNode = arnNode
            if let node = fields.value("name") {
                name = try string(node, of: "name")
                if let problem = Self.roleNameProblem(name) { throw fail(node, "role name '\(name)' \(problem)") }
                nameNode = node
            }
            let nameKey = "\(account.index)/\(name.lowercased())"
            if let first = nameSeen[nameKey] {
                throw fail(
                    nameNode,
                    "role name '\(name)' is used twice in account \(accounts.list[account.index].displayName) (first at \(position(first))); give one of them another name:"
                )
            }
            nameSeen[nameKey] = nameNode
            let description = try fields.value("description").map { try string($0, of: "description") }
            let maxSession = try fields.value("max_session").map(duration) ?? defaults.maxSession
            let mfa = try fields.value("mfa_required").map(mfaRequirement) ?? .none
            let mode = try fields.value("credentials").map(credentialMode) ?? defaults.credentials
            roles.list.append(
                PolicyRole(
                    arn: arn, name: name, accountID: parsed.accountID, description: description,
                    maxSessionSeconds: maxSession, mfaRequired: mfa != .none,
                    phishingResistantRequired: mfa == .phishingResistant, credentials: mode))
            roles.account.append(account.index)
            roles.nodes.append(nameNode)
        }
        guard !roles.list.isEmpty else { throw fail(rolesNode, "roles: is empty; list each role's arn") }
        var profileSeen: [String: Int] = [:]
        for (index, role) in roles.list.enumerated() {
            let profile = PolicyStorage.profileName(account: accounts.list[roles.account[index]], role: role)
            if let first = profileSeen[profile] {
                throw fail(
                    roles.nodes[index],
                    "role \(role.arn) would get the profile name '\(profile)', as does \(roles.list[first].arn) (\(position(roles.nodes[first]))); give one of them another name:"
                )
            }
            profileSeen[profile] = index
        }
        for (index, role) in roles.list.enumerated() {
            roles.byArn[role.arn] = index
            roles.byName["\(roles.account[index])/\(role.name)"] = index
        }
        return roles
    }

    /// One item of `grants:`.
    func parseGrant(_ item: Node, accounts: Accounts, roles: Roles) throws -> CompiledGrant {
        let fields = try entries(item, of: "a grant", allowed: Self.grantKeys)
        if let node = fields.value("description") { _ = try string(node, of: "description") }
        var groups: [String] = []
        if let node = fields.value("groups") {
            for groupNode in try stringList(node, of: "groups") {
                let group = try string(groupNode, of: "a group")
                guard !group.isEmpty else { throw fail(groupNode, "a group name is empty") }
                if !groups.contains(where: { $0.utf8.elementsEqual(group.utf8) }) { groups.append(group) }
            }
        }
        let claims = try fields.value("claims").map(parseClaims) ?? []
        var issuer: String? = nil
        if let node = fields.value("issuer") {
            let text = trimmedIssuer(try string(node, of: "issuer"))
            guard !text.isEmpty else {
                throw fail(node, "issuer is empty; give the issuer URL, as in https://idp.example.com")
            }
            issuer = text
        }
        if groups.isEmpty && claims.isEmpty {
            throw fail(
                item,
                "this grant has neither groups nor claims; say who it is for with groups: [...] or claims: {...} (everyone from one issuer: claims: {sub: \"*\"} and issuer:)"
            )
        }
        guard let rolesValue = fields.value("roles") else {
            throw fail(item, "this grant has no roles; add roles: [<arn>, <alias>/<name>, <alias>/*, or *]")
        }
        let coverage = try parseCoverage(rolesValue, accounts: accounts, roles: roles)
        let eligible = try fields.value("eligible").map { try bool($0, of: "eligible") } ?? false
        guard eligible else {
            for key in Self.eligibleKeys {
                if let entry = fields[key] {
                    throw fail(
                        entry.keyNode,
                        "\(key) applies only to a grant on request; add eligible: true to this grant or remove \(key)")
                }
            }
            return CompiledGrant(groups: groups, claims: claims, issuer: issuer, coverage: coverage)
        }
        let eligibility = try parseEligibility(fields, item: item)
        for index in roles.list.indices
        where coverage.contains(role: index, account: roles.account[index])
            && roles.list[index].credentials == .webIdentity
        {
            throw fail(
                rolesValue,
                "role \(roles.list[index].arn) is granted on request here, so its credentials must come from this server: set credentials: server on the role (with web-identity, its trust policy lets anyone the provider vouches for assume it without asking)"
            )
        }
        return CompiledGrant(
            groups: groups, claims: claims, issuer: issuer, coverage: coverage, eligibility: eligibility)
    }

    /// What a grant on request says: who approves, how long a grant may last, whether a reason is required.
    func parseEligibility(_ fields: Entries, item: Node) throws -> GrantEligibility {
        guard let approversNode = fields.value("approvers") else {
            throw fail(
                item,
                "this grant on request names no approvers; add approvers: {groups: [<group>, ...]} (members of those groups approve) or approvers: self (break-glass: the requester approves their own request, always audited)"
            )
        }
        let approvers: Approvers
        if case .scalar = approversNode {
            guard try string(approversNode, of: "approvers") == "self" else {
                throw fail(approversNode, "approvers must be self or a mapping such as {groups: [platform-admins]}")
            }
            approvers = .requester
        } else {
            let approverFields = try entries(approversNode, of: "approvers", allowed: ["groups"])
            guard let groupsNode = approverFields.value("groups") else {
                throw fail(approversNode, "approvers needs groups: [<group>, ...] (or write approvers: self)")
            }
            var groups: [String] = []
            for groupNode in try stringList(groupsNode, of: "approvers.groups") {
                let group = try string(groupNode, of: "an approver group")
                guard !group.isEmpty else { throw fail(groupNode, "an approver group name is empty") }
                if !groups.contains(where: { $0.utf8.elementsEqual(group.utf8) }) { groups.append(group) }
            }
            guard !groups.isEmpty else { throw fail(groupsNode, "approvers.groups is empty; name at least one group") }
            approvers = .groups(groups)
        }
        let maxDuration =
            try fields.value("max_duration").map { try duration($0, what: "max_duration", range: Self.grantRange) }
            ?? 3600
        // A break-glass approval is the requester's own word: it always needs a reason.
        let reasonAsked = try fields.value("reason_required").map { try bool($0, of: "reason_required") } ?? false
        let reasonRequired = approvers == .requester || reasonAsked
        return GrantEligibility(maxDurationSeconds: maxDuration, approvers: approvers, reasonRequired: reasonRequired)
    }

    /// A grant's `claims:` mapping.
    func parseClaims(_ node: Node) throws -> [ClaimMatcher] {
        guard case .mapping(let mapping) = node else {
            throw fail(node, "claims: must be a mapping of claim names to patterns, as in email: \"*@example.com\"")
        }
        var claims: [ClaimMatcher] = []
        for (keyNode, valueNode) in mapping {
            let claim = try string(keyNode, of: "a claim name")
            guard !claim.isEmpty else { throw fail(keyNode, "a claim name is empty") }
            let patterns = try stringList(valueNode, of: "claim \(claim)").map {
                Glob(try string($0, of: "a pattern of claim \(claim)"))
            }
            guard !patterns.isEmpty else {
                throw fail(valueNode, "claim \(claim) lists no patterns; give at least one, as in \"*\"")
            }
            claims.append(ClaimMatcher(claim: claim, patterns: patterns))
        }
        return claims
    }

    /// The roles a grant's `roles:` names: ARNs, `<alias or id>/<name>`, `<alias or id>/*`, or `*`.
    func parseCoverage(_ node: Node, accounts: Accounts, roles: Roles) throws -> Coverage {
        var coverage = Coverage()
        let references = try stringList(node, of: "roles")
        guard !references.isEmpty else { throw fail(node, "roles: is empty; name at least one role") }
        for referenceNode in references {
            let reference = try string(referenceNode, of: "a role")
            if reference == "*" {
                coverage.all = true
            } else if reference.hasPrefix("arn:") {
                guard let index = roles.byArn[reference] else {
                    throw fail(referenceNode, "grant names role \(reference), which is not listed under roles:")
                }
                coverage.roles.insert(index)
            } else if let slash = reference.firstIndex(of: "/") {
                let accountName = String(reference[..<slash]),
                    roleName = String(reference[reference.index(after: slash)...])
                guard let account = accounts.byAlias[accountName]?.index ?? accounts.byID[accountName]?.index else {
                    throw fail(
                        referenceNode,
                        "grant names account '\(accountName)' in '\(reference)', which is neither an alias nor an id under accounts:"
                    )
                }
                if roleName == "*" {
                    coverage.accounts.insert(account)
                } else if let index = roles.byName["\(account)/\(roleName)"] {
                    coverage.roles.insert(index)
                } else {
                    throw fail(
                        referenceNode,
                        "grant names role '\(roleName)' in account \(accounts.list[account].displayName), which has no role of that name"
                    )
                }
            } else {
                throw fail(
                    referenceNode, "'\(reference)' does not name a role; write an ARN, <alias>/<name>, <alias>/* or *")
            }
        }
        return coverage
    }

    func parseSessionTags(_ top: Entries) throws -> [TagRule] {
        var tagRules: [TagRule] = []
        var tagSeen: [String: Node] = [:]
        for item in try top.value("session_tags").map({ try sequence($0, of: "session_tags") }) ?? [] {
            let fields = try entries(item, of: "a session tag", allowed: Self.tagKeys)
            if tagRules.count == STSTagText.maxTags {
                throw fail(
                    item,
                    "STS accepts at most \(STSTagText.maxTags) session tags; this is tag \(STSTagText.maxTags + 1)")
            }
            guard let keyNode = fields.value("tag") else {
                throw fail(item, "this session tag has no tag:; add tag: <key> (and claim: <claim name>)")
            }
            let key = try string(keyNode, of: "tag")
            if let problem = STSTagText.problem(withKey: key) {
                throw fail(keyNode, "session tag key '\(key)' \(problem)")
            }
            // STS treats keys that differ only in case as the same key.
            if let first = tagSeen[key.lowercased()] {
                throw fail(
                    keyNode,
                    "session tag key '\(key)' is used twice (first at \(position(first))); STS compares keys without case"
                )
            }
            tagSeen[key.lowercased()] = keyNode
            var claim = key
            if let node = fields.value("claim") {
                claim = try string(node, of: "claim")
                guard !claim.isEmpty else {
                    throw fail(node, "claim is empty; name the claim whose value becomes tag '\(key)'")
                }
            }
            tagRules.append(TagRule(key: key, claim: claim))
        }
        return tagRules
    }
}

// MARK: - Reading nodes

extension PolicyParser {
    func position(_ node: Node) -> String { YAMLFile.position(node) }

    func fail(_ node: Node, _ reason: String) -> KeylessError {
        YAMLFile.error(node, in: file, reason, hint: Self.hint)
    }

    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .scalar: return isNull(node) ? "nothing" : "text"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The entries of a mapping, refusing keys not in `allowed` (with a suggestion for a near miss).
    func entries(_ node: Node, of what: String, allowed: [String]) throws -> Entries {
        guard case .mapping(let mapping) = node else {
            throw fail(
                node,
                "\(what) must be a mapping with the keys \(allowed.joined(separator: ", ")), not \(Self.kind(node))")
        }
        var byKey: [String: Entry] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                throw fail(keyNode, "a key in \(what) must be a plain name, not \(Self.kind(keyNode))")
            }
            let key = scalar.string
            guard allowed.contains(key) else {
                let suggestion = Self.nearest(key, in: allowed).map { " (did you mean '\($0)'?)" } ?? ""
                throw fail(
                    keyNode,
                    "unknown key '\(key)' in \(what)\(suggestion); allowed keys: \(allowed.joined(separator: ", "))")
            }
            byKey[key] = Entry(key: key, keyNode: keyNode, value: value)
        }
        return Entries(byKey: byKey)
    }

    /// The elements of a list (YAML null counts as an empty list).
    func sequence(_ node: Node, of what: String) throws -> [Node] {
        if Self.isNull(node) { return [] }
        guard case .sequence(let sequence) = node else {
            throw fail(node, "\(what): must be a list (items starting with \"- \"), not \(Self.kind(node))")
        }
        return Array(sequence)
    }

    /// A list, or a single scalar taken as a list of one.
    func stringList(_ node: Node, of what: String) throws -> [Node] {
        switch node {
        case .scalar: return Self.isNull(node) ? [] : [node]
        case .sequence(let sequence): return Array(sequence)
        default: throw fail(node, "\(what) must be text or a list, not \(Self.kind(node))")
        }
    }

    func string(_ node: Node, of what: String) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw fail(node, "\(what) must be text, not \(Self.kind(node))")
        }
        return scalar.string
    }

    func bool(_ node: Node, of what: String) throws -> Bool {
        switch try string(node, of: what).lowercased() {
        case "true": return true
        case "false": return false
        default: throw fail(node, "\(what) must be true or false, not '\(try string(node, of: what))'")
        }
    }

    enum MFARequirement { case none, any, phishingResistant }

    /// `mfa_required`: true, false, or `phishing-resistant` (a passkey or security key).
    func mfaRequirement(_ node: Node) throws -> MFARequirement {
        switch try string(node, of: "mfa_required").lowercased() {
        case "true": return .any
        case "false": return .none
        case "phishing-resistant": return .phishingResistant
        default:
            throw fail(
                node,
                "mfa_required must be true, false or phishing-resistant, not '\(try string(node, of: "mfa_required"))'")
        }
    }

    func credentialMode(_ node: Node) throws -> CredentialMode {
        let text = try string(node, of: "credentials")
        guard let mode = CredentialMode(rawValue: text) else {
            throw fail(node, "credentials must be web-identity or server, not '\(text)'")
        }
        return mode
    }

    func accountID(_ node: Node) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw fail(node, "account id must be 12 digits, not \(Self.kind(node))")
        }
        let id = scalar.string
        guard id.utf8.count == 12, id.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw fail(node, "account id '\(id)' must be exactly 12 digits")
        }
        // Unquoted, YAML reads a leading zero as an octal or plain integer and drops it; other tools reading this file would too.
        if scalar.style == .plain && id.hasPrefix("0") {
            throw fail(
                node, "account id \(id) starts with 0, which YAML drops from an unquoted number; quote it: \"\(id)\"")
        }
        return id
    }

    func region(_ node: Node) throws -> String {
        let text = try string(node, of: "region")
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let valid =
            parts.count >= 3 && parts.allSatisfy { !$0.isEmpty }
            && parts.dropLast().allSatisfy { $0.utf8.allSatisfy { $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") } }
            && parts.last!.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard valid else {
            throw fail(node, "region '\(text)' is not an AWS region name such as us-east-1 or eu-west-1")
        }
        return text
    }

    /// Seconds from 3600, "3600s", "45m", "1h", "1h30m"; within what STS allows.
    func duration(_ node: Node) throws -> Int { try duration(node, what: "max_session", range: Self.sessionRange) }

    /// Seconds of `what` within `range` (STS's 900…43200 for sessions).
    func duration(_ node: Node, what: String, range: ClosedRange<Int>) throws -> Int {
        let text = try string(node, of: what)
        guard let seconds = Self.seconds(text) else {
            throw fail(
                node,
                "\(what) '\(text)' is not a duration; write seconds (3600) or a number with h, m or s (1h, 45m, 3600s)"
            )
        }
        guard range.contains(seconds) else {
            let allowed =
                range == Self.sessionRange
                ? "STS allows 900 (15m) to 43200 (12h)"
                : "it must be from \(range.lowerBound) (\(range.lowerBound / 60)m) to \(range.upperBound) (\(range.upperBound / 3600)h)"
            throw fail(node, "\(what) \(text) is \(seconds) seconds; \(allowed)")
        }
        return seconds
    }

    static func seconds(_ text: String) -> Int? {
        if !text.isEmpty, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return text.count <= 9 ? Int(text) : nil
        }
        var total = 0, number = "", units = Set<Character>()
        for character in text {
            if character.isASCII && character.isNumber {
                number.append(character)
            } else if let factor = ["h": 3600, "m": 60, "s": 1][character], !number.isEmpty, number.count <= 9,
                units.insert(character).inserted
            {
                total += Int(number)! * factor
                number = ""
            } else {
                return nil
            }
        }
        return number.isEmpty && !units.isEmpty ? total : nil
    }

    static func aliasProblem(_ alias: String) -> String? {
        if alias.isEmpty { return "is empty" }
        if alias.count > 63 { return "is longer than 63 characters" }
        let allowed = alias.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "-", "_", ".": return true
            default: return false
            }
        }
        if !allowed {
            return
                "may contain only letters, digits, '-', '_' and '.' (it is used in role references and profile names)"
        }
        if alias.utf8.count == 12 && alias.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return "looks like an account id; choose a name"
        }
        return nil
    }

    static func roleNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.count > 64 { return "is longer than 64 characters" }
        let allowed = name.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", "+", "=", ",", ".", "@", "_", "-": return true
            default: return false
            }
        }
        return allowed ? nil : "may contain only letters, digits and + = , . @ _ - (as IAM role names)"
    }

    struct ArnProblem: Error { let text: String }

    /// The account id and role name of `arn:<partition>:iam::<account>:role/<path/><name>`.
    static func parseRoleArn(_ arn: String) -> Result<(accountID: String, roleName: String), ArnProblem> {
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "arn" else {
            return .failure(ArnProblem(text: "it must have six parts separated by ':' and start with arn:"))
        }
        let partition = parts[1]
        guard
            partition == "aws"
                || (partition.hasPrefix("aws-")
                    && partition.dropFirst(4).allSatisfy({ ("a"..."z").contains($0) || $0 == "-" }))
        else {
            return .failure(ArnProblem(text: "'\(partition)' is not an AWS partition (aws, aws-cn, aws-us-gov, ...)"))
        }
        guard parts[2] == "iam" else { return .failure(ArnProblem(text: "the service must be iam, not '\(parts[2])'")) }
        guard parts[3].isEmpty else {
            return .failure(ArnProblem(text: "IAM ARNs have no region, but this one has '\(parts[3])'"))
        }
        let account = parts[4]
        guard account.utf8.count == 12, account.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else {
            return .failure(ArnProblem(text: "the account id '\(account)' must be 12 digits"))
        }
        let resource = parts[5]
        guard resource.hasPrefix("role/") else {
            return .failure(ArnProblem(text: "the resource must start with role/, not '\(resource)'"))
        }
        let segments = resource.dropFirst(5).split(separator: "/", omittingEmptySubsequences: false)
        guard let name = segments.last, roleNameProblem(String(name)) == nil else {
            return .failure(ArnProblem(text: "the role name '\(segments.last ?? "")' is not a valid IAM role name"))
        }
        for segment in segments.dropLast()
        where segment.isEmpty || !segment.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value <= 0x7E }) {
            return .failure(ArnProblem(text: "the role path has an empty or invalid segment"))
        }
        return .success((String(account), String(name)))
    }

    /// The allowed key closest to `key` by edit distance, when it is a plausible typo.
    static func nearest(_ key: String, in allowed: [String]) -> String? {
        let scored = allowed.map { ($0, editDistance(Array(key.lowercased()), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= max(1, min(2, key.count / 3)) else { return nil }
        return best.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
