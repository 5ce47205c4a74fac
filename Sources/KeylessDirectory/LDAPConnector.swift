import KeylessCore
import KeylessLDAP
import NIOCore

/// How the LDAP connector reaches a directory and reads a person from it (the `ldap` connector of `idp.yaml`).
public struct LDAPConnectorConfiguration: Sendable, Equatable {
    /// How a person's groups are found.
    public enum Groups: Sendable, Equatable {
        /// The user entry's `memberOf` values (OpenLDAP's memberof overlay, Active Directory); with `nested`, each
        /// group's own `memberOf` is followed upwards (OpenLDAP keeps `memberOf` direct).
        case memberOf(nested: Bool)
        /// A search under `base` with `filter` (`{dn}` is the user's DN, escaped), e.g. `(member={dn})`; with `nested`,
        /// repeated for each group found.
        case search(base: String, filter: String, nested: Bool)
        /// Active Directory's transitive membership in one search: `(member:1.2.840.113556.1.4.1941:={dn})` under
        /// `base` (LDAP_MATCHING_RULE_IN_CHAIN).
        case activeDirectoryInChain(base: String)
    }

    public var url: String
    public var startTLS: Bool
    /// PEM file of the CAs that sign the directory's certificate (nil: the system's).
    public var caFile: String?
    /// The service account the connector searches as.
    public var bindDN: String
    public var bindPassword: String
    /// Where people are, and how a login name finds one: `{u}` is the name typed, escaped (RFC 4515).
    public var userBase: String
    public var userFilter: String
    /// The attribute whose value is the `sub` claim: stable across renames (`entryUUID`, AD's `objectGUID`).
    public var subjectAttribute: String
    /// The login name tokens carry (`preferred_username`): `uid`, AD's `sAMAccountName`.
    public var usernameAttribute: String
    public var emailAttribute: String
    public var nameAttribute: String
    public var groups: Groups
    /// A group's name: this attribute of the group entry, or the value of its DN's first RDN (`cn=developers,…`).
    public var groupNameAttribute: String
    /// More attributes to read from the person's entry (for AWS claims), given back in `DirectoryIdentity.attributes`.
    public var extraAttributes: [String]
    /// Active Directory: refuse disabled, locked-out and expired accounts and expired passwords from the entry's
    /// `userAccountControl` and `msDS-User-Account-Control-Computed`, and read AD's bind diagnostics.
    public var activeDirectory: Bool
    /// Every network step (connect, TLS, each request).
    public var timeout: TimeAmount
    /// Idle connections kept open for reuse.
    public var poolSize: Int

    public init(
        url: String, startTLS: Bool = false, caFile: String? = nil, bindDN: String, bindPassword: String,
        userBase: String, userFilter: String, subjectAttribute: String = "entryUUID", usernameAttribute: String = "uid",
        emailAttribute: String = "mail",
        nameAttribute: String = "cn", groups: Groups = .memberOf(nested: true), groupNameAttribute: String = "cn",
        extraAttributes: [String] = [], activeDirectory: Bool = false, timeout: TimeAmount = .seconds(5),
        poolSize: Int = 4
    ) {
        self.url = url
        self.startTLS = startTLS
        self.caFile = caFile
        self.bindDN = bindDN
        self.bindPassword = bindPassword
        self.userBase = userBase
        self.userFilter = userFilter
        self.subjectAttribute = subjectAttribute
        self.usernameAttribute = usernameAttribute
        self.emailAttribute = emailAttribute
        self.nameAttribute = nameAttribute
        self.groups = groups
        self.groupNameAttribute = groupNameAttribute
        self.extraAttributes = extraAttributes
        self.activeDirectory = activeDirectory
        self.timeout = timeout
        self.poolSize = poolSize
    }
}

/// A person as the directory describes them at this moment.
public struct DirectoryIdentity: Sendable, Equatable {
    /// Where the entry is; what a refresh reads again.
    public var dn: String
    /// The stable identifier (`sub`).
    public var subject: String
    /// The login name (`preferred_username`), when the entry has the username attribute.
    public var username: String?
    public var email: String?
    public var name: String?
    /// Group names, sorted, without duplicates.
    public var groups: [String]
    /// The first value of each of `extraAttributes` the entry has, by the attribute's name as configured.
    public var attributes: [String: String] = [:]
}

/// Why a directory login or refresh failed. `invalidCredentials` is all a login page may say about a name or password.
public enum DirectoryLoginError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Unknown name, wrong password, or an ambiguous name (several entries match): indistinguishable to the person.
    case invalidCredentials
    case accountDisabled
    case accountLocked
    case passwordExpired
    /// The directory cannot be asked now (down, slow, TLS, the service account refused): never a login.
    case unavailable(String)

    public var description: String {
        switch self {
        case .invalidCredentials: "wrong user name or password"
        case .accountDisabled: "the account is disabled in the directory"
        case .accountLocked: "the account is locked in the directory"
        case .passwordExpired: "the password has expired: change it where the organisation's passwords are changed"
        case .unavailable(let reason): "the directory cannot be reached: \(reason)"
        }
    }
}

/// Logs a person in against an LDAP directory or Active Directory: the service account finds the entry, the person's
/// own bind checks the password (never a hash read), and groups come from the directory at every login and refresh.
public actor LDAPConnector {
    public let configuration: LDAPConnectorConfiguration
    let endpoint: LDAPEndpoint
    /// Connections bound as the service account.
    var serviceIdle: [LDAPConnection] = []
    /// Connections used for people's binds (each bind replaces the last identity on it).
    var bindIdle: [LDAPConnection] = []

    /// Nested groups are followed this deep at most (a loop in the directory ends there too).
    static let maximumNesting = 10

    public init(_ configuration: LDAPConnectorConfiguration) throws {
        self.configuration = configuration
        endpoint = try LDAPEndpoint(
            url: configuration.url, startTLS: configuration.startTLS, caFile: configuration.caFile)
        _ = try LDAPFilter.template(configuration.userFilter, substituting: "x")
        if case .search(_, let filter, _) = configuration.groups {
            _ = try LDAPFilter.template(filter, substituting: "x", placeholder: "{dn}")
        }
    }

    /// Checks `username` and `password` and reads the person. Throws `DirectoryLoginError`.
    public func authenticate(username: String, password: String) async throws -> DirectoryIdentity {
        // An empty password would be an unauthenticated bind, which LDAP servers answer with success.
        guard !password.isEmpty, !username.isEmpty, username.utf8.count <= 256, !username.contains("\u{0}") else {
            throw DirectoryLoginError.invalidCredentials
        }
        let filter: LDAPFilter
        do { filter = try LDAPFilter.template(configuration.userFilter, substituting: username) } catch {
            throw DirectoryLoginError.invalidCredentials
        }
        let search = LDAPSearch(
            base: configuration.userBase, sizeLimit: 2, timeLimitSeconds: Self.seconds(configuration.timeout),
            filter: filter, attributes: userAttributes)
        let entries = try await withService { connection in
            do {
                return try await connection.search(search)
            } catch let error as LDAPError where error.resultCode == LDAPResult.sizeLimitExceeded {
                return []  // more than two people match the name: as ambiguous as two
            }
        }
        guard entries.count == 1, let entry = entries.first else {
            // An unknown (or ambiguous) name still costs a bind, so the answer's timing does not tell which names
            // exist: a DN under the user base that no entry has, with the password given.
            try? await bindAsUser(dn: "cn=keyless-no-such-person," + configuration.userBase, password: password)
            throw DirectoryLoginError.invalidCredentials
        }
        // The password first: only someone who knows it learns that the account is disabled, locked or expired
        // (Active Directory says so in the bind's answer only for the right password, and the flags are read after).
        try await bindAsUser(dn: entry.dn, password: password)
        try checkAccount(entry)
        return try await identity(of: entry)
    }

    /// Reads the person at `dn` again (a token refresh): nil when the entry is gone; throws `accountDisabled` (and the
    /// other account states) as a login would.
    public func refresh(dn: String) async throws -> DirectoryIdentity? {
        guard let entry = try await readEntry(dn, attributes: userAttributes) else { return nil }
        try checkAccount(entry)
        return try await identity(of: entry)
    }

    /// Checks that the service account can bind and read the user base (`keyless idp check`); throws
    /// `DirectoryLoginError.unavailable` saying what failed.
    public func probe() async throws {
        guard try await readEntry(configuration.userBase, attributes: ["1.1"]) != nil else {
            throw DirectoryLoginError.unavailable(
                "the user base \(configuration.userBase) is not in the directory (or the service account cannot read it)"
            )
        }
    }

    /// Closes every pooled connection.
    public func shutdown() async {
        let all = serviceIdle + bindIdle
        serviceIdle = []
        bindIdle = []
        for connection in all { await connection.close() }
    }

    var userAttributes: [String] {
        var attributes =
            [
                configuration.subjectAttribute, configuration.usernameAttribute, configuration.emailAttribute,
                configuration.nameAttribute, "memberOf",
            ] + configuration.extraAttributes
        if configuration.activeDirectory {
            attributes += ["userAccountControl", "msDS-User-Account-Control-Computed"]
        }
        return attributes
    }

    /// Active Directory's account flags (MS-ADTS 2.2.16): ACCOUNTDISABLE 0x2, LOCKOUT 0x10, PASSWORD_EXPIRED 0x800000.
    func checkAccount(_ entry: LDAPEntry) throws {
        guard configuration.activeDirectory else { return }
        let control = entry.string("userAccountControl").flatMap(Int.init) ?? 0
        let computed = entry.string("msDS-User-Account-Control-Computed").flatMap(Int.init) ?? 0
        if control & 0x2 != 0 { throw DirectoryLoginError.accountDisabled }
        if (control | computed) & 0x10 != 0 { throw DirectoryLoginError.accountLocked }
        if (control | computed) & 0x80_0000 != 0 { throw DirectoryLoginError.passwordExpired }
    }

    func bindAsUser(dn: String, password: String) async throws {
        let connection = try await take(service: false)
        do {
            try await connection.bind(name: dn, password: password)
            giveBack(connection, service: false)
        } catch let error as LDAPError where error.code == .result {
            giveBack(connection, service: false)
            throw Self.bindFailure(error, activeDirectory: configuration.activeDirectory)
        } catch let error as LDAPError {
            await connection.close()
            throw DirectoryLoginError.unavailable(error.message)
        }
    }

    /// Active Directory says why a bind failed in the diagnostic message (`80090308: LdapErr: …, data 52e, …`).
    static func bindFailure(_ error: LDAPError, activeDirectory: Bool) -> DirectoryLoginError {
        guard error.resultCode == LDAPResult.invalidCredentials else {
            return .unavailable("the directory answered the bind with result \(error.resultCode ?? -1)")
        }
        guard activeDirectory, let message = error.diagnosticMessage?.lowercased() else { return .invalidCredentials }
        if message.contains("data 533") || message.contains("data 701") { return .accountDisabled }
        if message.contains("data 775") { return .accountLocked }
        if message.contains("data 532") || message.contains("data 773") { return .passwordExpired }
        return .invalidCredentials
    }

    func identity(of entry: LDAPEntry) async throws -> DirectoryIdentity {
        guard let subject = Self.subject(entry, attribute: configuration.subjectAttribute) else {
            throw DirectoryLoginError.unavailable(
                "the entry \(entry.dn) has no \(configuration.subjectAttribute) (the subject attribute); ask for it by name or choose another"
            )
        }
        let groups = try await groupNames(of: entry)
        var attributes: [String: String] = [:]
        for name in configuration.extraAttributes {
            if let value = Self.subject(entry, attribute: name) { attributes[name] = value }
        }
        return DirectoryIdentity(
            dn: entry.dn, subject: subject, username: entry.string(configuration.usernameAttribute),
            email: entry.string(configuration.emailAttribute),
            name: entry.string(configuration.nameAttribute), groups: groups, attributes: attributes)
    }

    /// The subject: text as it is, except Active Directory's binary `objectGUID`, written as a GUID
    /// (MS-DTYP 2.3.4: the first three fields little-endian).
    static func subject(_ entry: LDAPEntry, attribute: String) -> String? {
        guard let bytes = entry.attributes[attribute.lowercased()]?.first, !bytes.isEmpty else { return nil }
        if attribute.lowercased() == "objectguid", bytes.count == 16 {
            let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15]
            let hex = order.map { Hex.encode([bytes[$0]]) }
            return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }
                .joined(separator: "-")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func groupNames(of entry: LDAPEntry) async throws -> [String] {
        var groupDNs: Set<String> = []
        switch configuration.groups {
        case .memberOf(let nested):
            var frontier = Set(entry.strings("memberOf"))
            groupDNs = frontier
            var depth = 0
            while nested, !frontier.isEmpty, depth < Self.maximumNesting {
                depth += 1
                var next: Set<String> = []
                for group in frontier {
                    let parents = try await readEntry(group, attributes: ["memberOf"])?.strings("memberOf") ?? []
                    for parent in parents where !groupDNs.contains(parent) {
                        next.insert(parent)
                    }
                }
                groupDNs.formUnion(next)
                frontier = next
            }
        case .search(let base, let filter, let nested):
            var frontier: Set<String> = [entry.dn]
            var depth = 0
            repeat {
                depth += 1
                var next: Set<String> = []
                for member in frontier {
                    let query = try LDAPFilter.template(filter, substituting: member, placeholder: "{dn}")
                    let found = try await withService { connection in
                        try await connection.search(LDAPSearch(base: base, filter: query, attributes: ["1.1"]))
                    }
                    for group in found.map(\.dn) where !groupDNs.contains(group) { next.insert(group) }
                }
                groupDNs.formUnion(next)
                frontier = next
            } while nested && !frontier.isEmpty && depth < Self.maximumNesting
        case .activeDirectoryInChain(let base):
            let found = try await withService { connection in
                try await connection.search(
                    LDAPSearch(
                        base: base,
                        filter: .extensible(
                            matchingRule: "1.2.840.113556.1.4.1941", attribute: "member", value: Array(entry.dn.utf8),
                            dnAttributes: false),
                        attributes: ["1.1"]))
            }
            groupDNs = Set(found.map(\.dn))
        }
        var names: Set<String> = []
        for dn in groupDNs {
            if configuration.groupNameAttribute.lowercased() == "cn", let name = LDAPDN.firstValue(dn) {
                names.insert(name)
            } else {
                let entry = try await readEntry(dn, attributes: [configuration.groupNameAttribute])
                if let name = entry?.string(configuration.groupNameAttribute) { names.insert(name) }
            }
        }
        return names.sorted()
    }

    /// The entry at `dn` with `attributes` (a base search as the service account); nil when there is none.
    func readEntry(_ dn: String, attributes: [String]) async throws -> LDAPEntry? {
        let search = LDAPSearch(
            base: dn, scope: .base, sizeLimit: 1, timeLimitSeconds: Self.seconds(configuration.timeout),
            filter: .present(attribute: "objectClass"), attributes: attributes)
        return try await withService { try await $0.search(search) }.first
    }

    // MARK: Connections

    /// Runs `body` on a connection bound as the service account; a connection that failed is closed, not pooled.
    func withService<T: Sendable>(_ body: @Sendable (LDAPConnection) async throws -> T) async throws -> T {
        let connection = try await take(service: true)
        do {
            let result = try await body(connection)
            giveBack(connection, service: true)
            return result
        } catch let error as LDAPError {
            if error.code == .result { giveBack(connection, service: true) } else { await connection.close() }
            throw DirectoryLoginError.unavailable(Self.explain(error, endpoint: endpoint))
        }
    }

    func take(service: Bool) async throws -> LDAPConnection {
        while let connection = service ? serviceIdle.popLast() : bindIdle.popLast() {
            if connection.isActive { return connection }
        }
        let connection: LDAPConnection
        do {
            connection = try await LDAPConnection.connect(to: endpoint, timeout: configuration.timeout)
        } catch let error as LDAPError {
            throw DirectoryLoginError.unavailable(Self.explain(error, endpoint: endpoint))
        }
        guard service else { return connection }
        do {
            try await connection.bind(name: configuration.bindDN, password: configuration.bindPassword)
        } catch let error as LDAPError {
            await connection.close()
            if error.code == .result {
                throw DirectoryLoginError.unavailable(
                    "the directory refused the service account \(configuration.bindDN) (result \(error.resultCode ?? -1)); check bind_dn and its password"
                )
            }
            throw DirectoryLoginError.unavailable(Self.explain(error, endpoint: endpoint))
        }
        return connection
    }

    func giveBack(_ connection: LDAPConnection, service: Bool) {
        guard connection.isActive else { return }
        if service, serviceIdle.count < configuration.poolSize {
            serviceIdle.append(connection)
        } else if !service, bindIdle.count < configuration.poolSize {
            bindIdle.append(connection)
        } else {
            Task { await connection.close() }
        }
    }

    static func explain(_ error: LDAPError, endpoint: LDAPEndpoint) -> String {
        switch error.code {
        case .result:
            "the directory at \(endpoint.url) answered result \(error.resultCode ?? -1)\(error.diagnosticMessage.map { $0.isEmpty ? "" : " (\($0))" } ?? "")"
        default: error.message
        }
    }

    static func seconds(_ amount: TimeAmount) -> Int { max(1, Int(amount.nanoseconds / 1_000_000_000)) }
}
