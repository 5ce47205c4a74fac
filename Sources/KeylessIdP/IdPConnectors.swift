import Foundation
import KeylessCore
import KeylessDirectory
import KeylessHTTP
import KeylessLDAP
import KeylessOIDC
import KeylessYAML
import Logging
import NIOCore
import Yams

extension IdPConfiguration {
    /// Where people sign in from (`connectors:` in idp.yaml): the users written in the file (`type: local`), an
    /// LDAP directory / Active Directory (`type: ldap`), or another OpenID Provider (`type: oidc`: "Sign in with …").
    /// Without `connectors:` the file's users are the only one.
    public struct Connector: Codable, Sendable, Equatable {
        /// Short id (letters, digits, `-`, `_`): the login form's value, the prefix of subjects and groups.
        public var id: String
        /// `local` or `ldap`.
        public var type: String
        /// What the login page calls it ("Example Corp directory").
        public var name: String?
        /// Put before every group name from this connector, so groups of two connectors never mix: `<id>:` for a
        /// directory unless set (`""` turns it off), nothing for the local users.
        public var groupsPrefix: String?

        // LDAP / Active Directory.
        /// `ldaps://host[:636]` or `ldap://host[:389]` (with `start_tls: true` unless the host is loopback).
        public var url: String?
        public var startTLS: Bool?
        /// PEM file of the CAs that sign the directory's certificate (default: the system's).
        public var caFile: String?
        /// The service account that finds people.
        public var bindDN: String?
        /// A file holding the service account's password, mode 0600 and owned by the provider's user.
        public var bindPasswordFile: String?
        /// Or the name of an environment variable holding it.
        public var bindPasswordEnv: String?
        /// Where people are.
        public var userBase: String?
        /// How a typed name finds one person: `{u}` is the name, escaped (RFC 4515).
        public var userFilter: String?
        /// Which attribute becomes which claim.
        public var attributes: Attributes?
        /// How groups are found.
        public var groups: Groups?
        /// Active Directory: its defaults, its account flags (disabled, locked, expired) and its bind diagnostics.
        public var activeDirectory: Bool?
        /// Seconds for every network step (default 5).
        public var timeout: Double?
        /// Idle connections kept for reuse (default 4).
        public var poolSize: Int?

        // An upstream OpenID Provider (brokering).
        /// Its issuer URL (discovery at `/.well-known/openid-configuration`).
        public var issuer: String?
        /// keyless idp's client id there; the redirect URI to register is `<keyless issuer>/callback/<id>`.
        public var clientID: String?
        /// A file (0600) holding the client secret, or the environment variable holding it; neither: a public client
        /// (PKCE only).
        public var clientSecretFile: String?
        public var clientSecretEnv: String?
        /// Scopes to ask for (default: openid and what discovery lists of email, profile, groups, offline_access).
        public var scopes: [String]?
        /// Which upstream claim becomes which (defaults: preferred_username, email, name, groups).
        public var claims: Claims?
        /// Only people in at least one of these upstream groups may sign in, and only these groups are kept.
        public var allowedGroups: [String]?
        /// Only verified email addresses in these domains may sign in.
        public var emailDomains: [String]?
        /// Google Workspace: the `hd` claim must be this domain.
        public var hostedDomain: String?
        /// Microsoft Entra ID: the `tid` claim must be this tenant.
        public var tenantID: String?

        /// More claims for the ID token and userinfo (claim name → the attribute or upstream claim holding it), released
        /// with the `profile` scope: `{department: departmentNumber, employee_id: employeeNumber}`.
        public var extraClaims: [String: String]?
        /// AWS claims in the ID token, for roles that trust keyless idp directly (`AssumeRoleWithWebIdentity`):
        /// session tags and the source identity, from the person's attributes (LDAP) or claims (upstream).
        public var aws: AWSClaims?

        /// Which attribute or claim feeds each AWS claim.
        public struct AWSClaims: Codable, Sendable, Equatable {
            /// Session tag key → the attribute (LDAP) or upstream claim holding its value (`Department: department`).
            public var principalTags: [String: String]?
            /// Tag keys that pass on through role chaining.
            public var transitiveTagKeys: [String]?
            /// The attribute or claim that becomes the source identity (`uid`, `sAMAccountName`, `email`).
            public var sourceIdentity: String?

            enum CodingKeys: String, CodingKey {
                case principalTags = "principal_tags"
                case transitiveTagKeys = "transitive_tag_keys"
                case sourceIdentity = "source_identity"
            }

            public init(
                principalTags: [String: String]? = nil, transitiveTagKeys: [String]? = nil,
                sourceIdentity: String? = nil
            ) {
                self.principalTags = principalTags; self.transitiveTagKeys = transitiveTagKeys
                self.sourceIdentity = sourceIdentity
            }

            /// The attribute or claim names read.
            var sources: [String] { Array((principalTags ?? [:]).values) + (sourceIdentity.map { [$0] } ?? []) }
        }

        /// Upstream claim names.
        public struct Claims: Codable, Sendable, Equatable {
            public var username: String?
            public var email: String?
            public var name: String?
            public var groups: String?

            public init(username: String? = nil, email: String? = nil, name: String? = nil, groups: String? = nil) {
                self.username = username; self.email = email; self.name = name; self.groups = groups
            }
        }

        /// Attribute names.
        public struct Attributes: Codable, Sendable, Equatable {
            /// `sub` (stable across renames): `entryUUID`, AD's `objectGUID`.
            public var subject: String?
            /// `preferred_username`: `uid`, AD's `sAMAccountName`.
            public var username: String?
            /// `email`: `mail`.
            public var email: String?
            /// `name`: `cn`, AD's `displayName`.
            public var name: String?

            public init(subject: String? = nil, username: String? = nil, email: String? = nil, name: String? = nil) {
                self.subject = subject; self.username = username; self.email = email; self.name = name
            }
        }

        /// Where groups come from.
        public struct Groups: Codable, Sendable, Equatable {
            /// `member_of` (the entry's memberOf), `search` (a search under `base` with `filter`, `{dn}` the
            /// person's DN), or `in_chain` (Active Directory's transitive membership).
            public var from: String?
            public var base: String?
            public var filter: String?
            /// Follow groups in groups (default true).
            public var nested: Bool?
            /// The attribute naming a group (default `cn`, read from the DN).
            public var nameAttribute: String?

            enum CodingKeys: String, CodingKey {
                case from, base, filter, nested
                case nameAttribute = "name_attribute"
            }

            public init(
                from: String? = nil, base: String? = nil, filter: String? = nil, nested: Bool? = nil,
                nameAttribute: String? = nil
            ) {
                self.from = from; self.base = base; self.filter = filter; self.nested = nested
                self.nameAttribute = nameAttribute
            }
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case id, type, name, url, attributes, groups, timeout
            case groupsPrefix = "groups_prefix"
            case startTLS = "start_tls"
            case caFile = "ca_file"
            case bindDN = "bind_dn"
            case bindPasswordFile = "bind_password_file"
            case bindPasswordEnv = "bind_password_env"
            case userBase = "user_base"
            case userFilter = "user_filter"
            case activeDirectory = "active_directory"
            case poolSize = "pool_size"
            case issuer, scopes, claims, aws
            case extraClaims = "extra_claims"
            case clientID = "client_id"
            case clientSecretFile = "client_secret_file"
            case clientSecretEnv = "client_secret_env"
            case allowedGroups = "allowed_groups"
            case emailDomains = "email_domains"
            case hostedDomain = "hosted_domain"
            case tenantID = "tenant_id"
        }

        /// A connector from values (tests, tools).
        public init(id: String, type: String, name: String? = nil) {
            self.id = id; self.type = type; self.name = name
        }

        /// What the login page shows.
        public var displayName: String {
            name ?? (type == "local" ? "Provider accounts" : id)
        }

        /// The prefix of this connector's group names.
        public var effectiveGroupsPrefix: String { groupsPrefix ?? (type == "local" ? "" : id + ":") }

        /// The prefix of this connector's subjects (`sub`): none for the local users, `<id>:` otherwise, so that two
        /// connectors never give two people the same subject.
        public var subjectPrefix: String { type == "local" ? "" : id + ":" }

        static let localKeys: Set<String> = ["id", "type", "name", "groups_prefix"]
        /// Claims keyless idp sets itself, which `extra_claims` may not name.
        static let reservedClaims: Set<String> = [
            "iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "amr", "acr", "azp", "at_hash", "c_hash",
            "jti", "sid", "email", "email_verified", "preferred_username", "name", "groups", "scope", "client_id",
        ]
        static let ldapKeys: Set<String> = localKeys.union([
            "url", "start_tls", "ca_file", "bind_dn", "bind_password_file", "bind_password_env", "user_base",
            "user_filter", "attributes", "groups", "active_directory", "timeout", "pool_size", "aws", "extra_claims",
        ])
        static let oidcKeys: Set<String> = localKeys.union([
            "issuer", "client_id", "client_secret_file", "client_secret_env", "scopes", "claims", "allowed_groups",
            "email_domains", "hosted_domain", "tenant_id", "aws", "extra_claims",
        ])

        /// The LDAP connector's settings (defaults filled in), with the service account's password.
        public func ldapConfiguration(bindPassword: String) -> LDAPConnectorConfiguration {
            let ad = activeDirectory ?? false
            let base = userBase ?? ""
            let groupsFrom = groups?.from ?? (ad ? "in_chain" : "member_of")
            let nested = groups?.nested ?? true
            let source: LDAPConnectorConfiguration.Groups =
                switch groupsFrom {
                case "search":
                    .search(base: groups?.base ?? base, filter: groups?.filter ?? "(member={dn})", nested: nested)
                case "in_chain": .activeDirectoryInChain(base: groups?.base ?? base)
                default: .memberOf(nested: nested)
                }
            return LDAPConnectorConfiguration(
                url: url ?? "", startTLS: startTLS ?? false, caFile: caFile, bindDN: bindDN ?? "",
                bindPassword: bindPassword, userBase: base,
                userFilter: userFilter
                    ?? (ad
                        ? "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={u})(userPrincipalName={u})))"
                        : "(&(objectClass=*)(|(uid={u})(mail={u})))"),
                subjectAttribute: attributes?.subject ?? (ad ? "objectGUID" : "entryUUID"),
                usernameAttribute: attributes?.username ?? (ad ? "sAMAccountName" : "uid"),
                emailAttribute: attributes?.email ?? "mail",
                nameAttribute: attributes?.name ?? (ad ? "displayName" : "cn"), groups: source,
                groupNameAttribute: groups?.nameAttribute ?? "cn",
                extraAttributes: (aws?.sources ?? []) + Array((extraClaims ?? [:]).values),
                activeDirectory: ad,
                timeout: .milliseconds(Int64((timeout ?? 5) * 1000)), poolSize: poolSize ?? 4)
        }
    }

    /// The connectors in force: those declared, or the local users alone.
    public var effectiveConnectors: [Connector] {
        connectors ?? [Connector(id: "local", type: "local")]
    }

    /// The connector with this id.
    public func connector(_ id: String) -> Connector? { effectiveConnectors.first { $0.id == id } }

    /// Checks `connectors:`; every error names the line and what to write instead.
    func checkConnectors(root: Node, path: String) throws {
        guard let connectors else { return }
        func fail(_ keys: [Any], _ reason: String, _ hint: String) -> KeylessError {
            YAMLFile.error(Self.node(at: keys, in: root), in: path, reason, hint: hint)
        }
        guard !connectors.isEmpty else {
            throw fail(
                ["connectors"], "connectors: is empty, so nobody could sign in.",
                "List at least one connector, or remove connectors: to use the users of this file.")
        }
        var seen = Set<String>()
        for (index, connector) in connectors.enumerated() {
            let id = connector.id
            guard !id.isEmpty, id.utf8.count <= 40,
                id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }),
                seen.insert(id).inserted
            else {
                throw fail(
                    ["connectors", index, "id"], "connector id '\(id)' is empty, declared twice or not a short name.",
                    "Use a unique id of letters, digits, - and _ (it prefixes the subjects and groups of its people).")
            }
            let node = Self.node(at: ["connectors", index], in: root)
            let keys = node?.mapping?.keys.compactMap(\.string) ?? []
            let allowed: Set<String> =
                switch connector.type {
                case "local": Connector.localKeys
                case "ldap": Connector.ldapKeys
                case "oidc": Connector.oidcKeys
                default: Set(Connector.CodingKeys.allCases.map(\.rawValue))
                }
            for key in keys where !allowed.contains(key) {
                throw fail(
                    ["connectors", index, key], "connector '\(id)' (\(connector.type)) has no setting '\(key)'.",
                    "Remove it or fix its spelling; the settings are listed in README, \"Directories\".")
            }
            if let aws = connector.aws { try checkAWS(aws, connector: connector, index: index, fail: fail) }
            for (claim, source) in (connector.extraClaims ?? [:]).sorted(by: { $0.key < $1.key })
            where Connector.reservedClaims.contains(claim) || claim.hasPrefix("https://aws.amazon.com/")
                || claim.isEmpty
                || source.isEmpty
            {
                throw fail(
                    ["connectors", index, "extra_claims"],
                    "connector '\(id)' maps the claim '\(claim)', which keyless idp sets itself (or an empty name).",
                    "Choose another claim name; email, name, preferred_username and groups come from attributes:/claims:."
                )
            }
            switch connector.type {
            case "local":
                continue
            case "ldap":
                try checkLDAP(connector, index: index, fail: fail)
            case "oidc":
                try checkOIDC(connector, index: index, fail: fail)
            default:
                throw fail(
                    ["connectors", index, "type"], "connector '\(id)' has an unknown type '\(connector.type)'.",
                    "Use local (the users of this file), ldap (an LDAP directory or Active Directory) or oidc (another OpenID Provider)."
                )
            }
        }
        for (index, user) in users.enumerated() {
            let subject = user.subject ?? user.username
            if let other = connectors.first(where: { $0.type != "local" && subject.hasPrefix($0.subjectPrefix) }) {
                throw fail(
                    ["users", index],
                    "user '\(user.username)' has the subject \(subject), which is how connector '\(other.id)' names its people.",
                    "Give the user another subject (or username), so that tokens never mistake one person for another.")
            }
        }
        if !users.isEmpty, !connectors.contains(where: { $0.type == "local" }) {
            throw fail(
                ["users"], "users are declared but no connector of type local offers them.",
                "Add `- {id: local, type: local}` under connectors:, or remove the users.")
        }
    }

    /// Tag keys as STS takes them (docs.aws.amazon.com/STS/latest/APIReference/API_Tag.html): 1-128 characters of
    /// letters, spaces, digits and `_ . : / = + - @`, not starting with `aws:`; at most 50 tags.
    private func checkAWS(
        _ aws: Connector.AWSClaims, connector c: Connector, index: Int, fail: ([Any], String, String) -> KeylessError
    ) throws {
        let at: [Any] = ["connectors", index, "aws"]
        let tags = aws.principalTags ?? [:]
        guard tags.count <= 50 else {
            throw fail(at, "connector '\(c.id)' maps \(tags.count) session tags; STS takes at most 50.", "Map fewer.")
        }
        for key in tags.keys.sorted() where !AWSClaimValues.isTagKey(key) {
            throw fail(
                at, "connector '\(c.id)' has the session tag key '\(key)', which STS refuses.",
                "Use 1-128 letters, digits, spaces and _ . : / = + - @, not starting with aws:.")
        }
        for key in aws.transitiveTagKeys ?? [] where tags[key] == nil {
            throw fail(
                at, "connector '\(c.id)' lists transitive tag key '\(key)', which principal_tags does not map.",
                "Add it to principal_tags, or remove it from transitive_tag_keys.")
        }
        for source in aws.sources where source.isEmpty {
            throw fail(at, "connector '\(c.id)' maps an AWS claim from an empty name.", "Name an attribute or claim.")
        }
    }

    private func checkOIDC(_ c: Connector, index: Int, fail: ([Any], String, String) -> KeylessError) throws {
        let at: (String) -> [Any] = { ["connectors", index, $0] }
        let issuer = c.issuer ?? ""
        guard
            issuer.hasPrefix("https://") || issuer.hasPrefix("http://127.0.0.1") || issuer.hasPrefix("http://localhost")
        else {
            throw fail(
                issuer.isEmpty ? ["connectors", index] : at("issuer"),
                "connector '\(c.id)' needs the upstream provider's https issuer URL\(issuer.isEmpty ? "" : ", not \(issuer)").",
                "Write issuer: https://accounts.google.com (or your provider's; plain http only on loopback).")
        }
        guard !(c.clientID ?? "").isEmpty else {
            throw fail(
                ["connectors", index], "connector '\(c.id)' needs client_id.",
                "Register keyless idp as a web application there, with the redirect URI <issuer>/callback/\(c.id).")
        }
        if c.clientSecretFile != nil, c.clientSecretEnv != nil {
            throw fail(
                at("client_secret_env"), "connector '\(c.id)' names both client_secret_file and client_secret_env.",
                "Keep one of them.")
        }
        for domain in c.emailDomains ?? [] where domain.isEmpty || domain.contains("@") {
            throw fail(
                at("email_domains"), "connector '\(c.id)' email domain '\(domain)' is not a domain.",
                "Write domains without @, e.g. example.com.")
        }
    }

    private func checkLDAP(_ c: Connector, index: Int, fail: ([Any], String, String) -> KeylessError) throws {
        let at: (String) -> [Any] = { ["connectors", index, $0] }
        for (key, value) in [("url", c.url), ("bind_dn", c.bindDN), ("user_base", c.userBase)]
        where (value ?? "").isEmpty {
            throw fail(
                at(key), "connector '\(c.id)' needs \(key).",
                key == "url"
                    ? "Write ldaps://HOST (or ldap://HOST with start_tls: true)."
                    : key == "bind_dn"
                        ? "Name the service account that may search for people (its password goes in bind_password_file)."
                        : "Name the subtree where people's entries are, e.g. ou=people,dc=example,dc=org.")
        }
        let url = c.url ?? ""
        guard url.hasPrefix("ldaps://") || url.hasPrefix("ldap://") else {
            throw fail(
                at("url"), "connector '\(c.id)' url \(url) is not ldap:// or ldaps://.", "Write ldaps://HOST[:636].")
        }
        if url.hasPrefix("ldap://"), c.startTLS != true {
            let host = URLComponents(string: url)?.host ?? ""
            guard ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) else {
                throw fail(
                    at("url"),
                    "connector '\(c.id)' would send people's passwords to \(host) in clear text (ldap:// without start_tls).",
                    "Use ldaps://, or set start_tls: true.")
            }
        }
        if c.startTLS == true, url.hasPrefix("ldaps://") {
            throw fail(
                at("start_tls"), "connector '\(c.id)' uses ldaps:// and start_tls together.",
                "Drop start_tls (ldaps:// is already TLS), or use ldap:// with it.")
        }
        switch (c.bindPasswordFile, c.bindPasswordEnv) {
        case (nil, nil):
            throw fail(
                ["connectors", index], "connector '\(c.id)' has no password for its service account.",
                "Set bind_password_file (a file of mode 0600) or bind_password_env; never the password itself.")
        case (.some, .some):
            throw fail(
                at("bind_password_env"), "connector '\(c.id)' names both bind_password_file and bind_password_env.",
                "Keep one of them.")
        default: break
        }
        if let timeout = c.timeout, !(timeout > 0 && timeout <= 120) {
            throw fail(
                at("timeout"), "connector '\(c.id)' timeout \(timeout) is out of range.", "Use 1 to 120 seconds.")
        }
        if let size = c.poolSize, !(0...64).contains(size) {
            throw fail(at("pool_size"), "connector '\(c.id)' pool_size \(size) is out of range.", "Use 0 to 64.")
        }
        if let from = c.groups?.from, !["member_of", "search", "in_chain"].contains(from) {
            throw fail(
                ["connectors", index, "groups", "from"], "connector '\(c.id)' reads groups from unknown '\(from)'.",
                "Use member_of, search (with base and filter) or in_chain (Active Directory).")
        }
        if c.groups?.from == "search", (c.groups?.filter ?? "").isEmpty {
            throw fail(
                ["connectors", index, "groups"], "connector '\(c.id)' searches for groups without a filter.",
                "Add filter: \"(member={dn})\" (or \"(memberUid={u})\"-style filters with {dn}).")
        }
        do {
            // Parses the URL and the filter templates; opens nothing.
            _ = try LDAPConnector(c.ldapConfiguration(bindPassword: "x"))
        } catch let error as LDAPError {
            throw fail(
                ["connectors", index], "connector '\(c.id)': \(error.message)",
                "Fix the url or the filter (RFC 4515 syntax, with {u} for the typed name and {dn} for a person's DN).")
        }
    }
}

/// The connectors of a running provider, opened from the configuration: each directory reads its service account's
/// password, and each upstream provider its client secret (from a 0600 file or the environment), once, at start.
public struct Connectors: Sendable {
    /// The LDAP connectors by id.
    public let ldap: [String: LDAPConnector]
    /// The upstream OpenID Providers by id.
    public let upstream: [String: OIDCClient]

    /// No directory (the local users only).
    public static let none = Connectors(ldap: [:])

    public init(ldap: [String: LDAPConnector], upstream: [String: OIDCClient] = [:]) {
        self.ldap = ldap
        self.upstream = upstream
    }

    /// Opens every connector of `config`. `environment` holds the variables `bind_password_env` and
    /// `client_secret_env` name; `http` reaches upstream providers (nil: upstream connectors are not opened, as for
    /// `idp check`).
    public static func open(
        _ config: IdPConfiguration, environment: Environment, http: (any HTTPTransport)? = nil,
        clock: WallClock = .system, logger: Logger = Logger(label: "keyless.idp.connectors")
    ) throws -> Connectors {
        var ldap: [String: LDAPConnector] = [:]
        var upstream: [String: OIDCClient] = [:]
        for connector in config.effectiveConnectors {
            switch connector.type {
            case "ldap":
                let password = try bindPassword(connector, environment: environment)
                ldap[connector.id] = try LDAPConnector(connector.ldapConfiguration(bindPassword: password))
            case "oidc":
                guard let http else { continue }
                let configuration = OIDCClientConfiguration(
                    issuer: connector.issuer ?? "", clientID: connector.clientID ?? "",
                    clientSecret: try clientSecret(connector, environment: environment), scopes: connector.scopes,
                    refreshTokens: true)
                upstream[connector.id] = OIDCClient(
                    configuration: configuration, http: http, clock: clock, logger: logger)
            default: continue
            }
        }
        return Connectors(ldap: ldap, upstream: upstream)
    }

    static func clientSecret(_ connector: IdPConfiguration.Connector, environment: Environment) throws -> String? {
        if let path = connector.clientSecretFile {
            guard let bytes = try Files.read(path, requirePrivate: true) else {
                throw KeylessError(
                    .configInvalid, "the client_secret_file \(path) of connector '\(connector.id)' does not exist.",
                    hint: "Create it holding the client secret, mode 0600, owned by the provider's user.")
            }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        if let name = connector.clientSecretEnv {
            guard let secret = environment[name] else {
                throw KeylessError(
                    .configInvalid,
                    "the environment variable \(name) (client_secret_env of connector '\(connector.id)') is not set.",
                    hint: "Set it to the client secret the upstream provider gave keyless idp.")
            }
            return secret
        }
        return nil
    }

    static func bindPassword(_ connector: IdPConfiguration.Connector, environment: Environment) throws -> String {
        let password: String
        if let path = connector.bindPasswordFile {
            guard let bytes = try Files.read(path, requirePrivate: true) else {
                throw KeylessError(
                    .configInvalid, "the bind_password_file \(path) of connector '\(connector.id)' does not exist.",
                    hint: "Create it holding the service account's password, mode 0600, owned by the provider's user.")
            }
            password = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        } else {
            password = environment[connector.bindPasswordEnv ?? ""] ?? ""
        }
        guard !password.isEmpty else {
            throw KeylessError(
                .configInvalid,
                "the service account's password of connector '\(connector.id)' is empty (\(connector.bindPasswordFile.map { "file \($0)" } ?? "environment variable \(connector.bindPasswordEnv ?? "")")).",
                hint: "An empty password is an anonymous bind, not a service account: put the password there.")
        }
        return password
    }

    /// Closes every connection.
    public func shutdown() async {
        for connector in ldap.values { await connector.shutdown() }
    }
}

/// What STS accepts in the AWS claims; a person's value that it would refuse is left out of the token (logging nothing
/// of it), so one odd attribute does not cost the person every role.
enum AWSClaimValues {
    static func allowed(_ scalar: Unicode.Scalar) -> Bool {
        if "_.:/=+-@".unicodeScalars.contains(scalar) { return true }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter, .spaceSeparator,
            .decimalNumber, .letterNumber, .otherNumber:
            return true
        default: return false
        }
    }

    static func isTagKey(_ key: String) -> Bool {
        (1...128).contains(key.utf16.count) && key.unicodeScalars.allSatisfy(allowed)
            && !key.lowercased().hasPrefix("aws:")
    }

    /// A tag value STS takes: at most 256 characters of the same set (it may be empty).
    static func tagValue(_ value: String) -> String? {
        value.utf16.count <= 256 && value.unicodeScalars.allSatisfy(allowed) ? value : nil
    }

    /// A source identity STS takes: 2-64 characters of letters, digits and `+ = , . @ -` (API_AssumeRole.html,
    /// SourceIdentity: `[\w+=,.@-]*`).
    static func sourceIdentity(_ value: String) -> String? {
        guard (2...64).contains(value.utf8.count) else { return nil }
        let ok = value.unicodeScalars.allSatisfy {
            $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_+=,.@-".unicodeScalars.contains($0))
        }
        return ok && !value.lowercased().hasPrefix("aws:") ? value : nil
    }

    /// The tags and source identity `aws` maps, from `value(name)` (an attribute or claim's first value).
    static func claims(_ aws: IdPConfiguration.Connector.AWSClaims?, value: (String) -> String?) -> (
        tags: [String: String]?, sourceIdentity: String?
    ) {
        guard let aws else { return (nil, nil) }
        var tags: [String: String] = [:]
        for (key, source) in aws.principalTags ?? [:] {
            if let raw = value(source), let clean = tagValue(raw) { tags[key] = clean }
        }
        let source = aws.sourceIdentity.flatMap(value).flatMap(sourceIdentity)
        return (aws.principalTags == nil ? nil : tags, source)
    }
}
