import Foundation
import KeylessLDAP
import KeylessTestSupport
import Testing

@testable import KeylessDirectory

/// The connector against a real OpenLDAP slapd (Debian), one per test, on loopback.
@Suite("LDAP connector against OpenLDAP slapd", .serialized)
struct LDAPConnectorTests {
    static func configuration(_ slapd: SlapdServer, groups: LDAPConnectorConfiguration.Groups = .memberOf(nested: true))
        -> LDAPConnectorConfiguration
    {
        LDAPConnectorConfiguration(
            url: slapd.url, startTLS: true, caFile: slapd.caFile, bindDN: SlapdServer.bindDN,
            bindPassword: SlapdServer.bindPassword, userBase: "ou=people,dc=example,dc=com",
            userFilter: "(&(objectClass=inetOrgPerson)(|(uid={u})(mail={u})))", groups: groups)
    }

    func withConnector(
        memberOf: String = "overlay", groups: LDAPConnectorConfiguration.Groups = .memberOf(nested: true),
        _ body: (SlapdServer, LDAPConnector) async throws -> Void
    ) async throws {
        let slapd = try await SlapdServer.start(memberOf: memberOf)
        defer { slapd.stopAndRemove() }
        let connector = try LDAPConnector(Self.configuration(slapd, groups: groups))
        do {
            try await body(slapd, connector)
        } catch {
            await connector.shutdown()
            throw error
        }
        await connector.shutdown()
    }

    @Test("a login by uid or mail reads the subject (entryUUID), email, name and groups, nested ones through memberOf")
    func login() async throws {
        try await withConnector { _, connector in
            let alice = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            #expect(alice.dn == "uid=alice,ou=people,dc=example,dc=com")
            #expect(alice.subject.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/) != nil)
            #expect(alice.email == "alice@example.com" && alice.name == "Alice Test" && alice.username == "alice")
            #expect(alice.groups == ["admins", "developers"])
            #expect(try await connector.authenticate(username: "alice@example.com", password: "Passw0rd-A1") == alice)
            // carol is in platform, and platform in admins: memberOf is direct in OpenLDAP, the connector walks up.
            let carol = try await connector.authenticate(username: "carol", password: "Passw0rd-C1")
            #expect(carol.groups == ["admins", "platform"])
        }
    }

    @Test("without nesting only direct groups; with a group search (member={dn}) nested groups again")
    func groupModes() async throws {
        try await withConnector(groups: .memberOf(nested: false)) { _, connector in
            let carol = try await connector.authenticate(username: "carol", password: "Passw0rd-C1")
            #expect(carol.groups == ["platform"])
        }
        let search = LDAPConnectorConfiguration.Groups.search(
            base: "ou=groups,dc=example,dc=com", filter: "(member={dn})", nested: true)
        try await withConnector(groups: search) { _, connector in
            let carol = try await connector.authenticate(username: "carol", password: "Passw0rd-C1")
            let bob = try await connector.authenticate(username: "bob", password: "Passw0rd-B1")
            #expect(carol.groups == ["admins", "platform"])
            #expect(bob.groups == ["developers"])
        }
    }

    @Test("slapd's dynlist computes memberOf through nesting: read as it is")
    func dynlist() async throws {
        try await withConnector(memberOf: "dynlist", groups: .memberOf(nested: false)) { _, connector in
            let carol = try await connector.authenticate(username: "carol", password: "Passw0rd-C1")
            #expect(carol.groups == ["admins", "platform"])
        }
    }

    @Test("a wrong password, an unknown user, an empty password and injection attempts are all 'invalid credentials'")
    func refusals() async throws {
        try await withConnector { slapd, connector in
            let aliceBind = "BIND dn=\"uid=alice,ou=people,dc=example,dc=com\" method=128"
            func aliceBinds() throws -> Int {
                try String(contentsOfFile: slapd.logFile, encoding: .utf8).components(separatedBy: aliceBind).count - 1
            }
            let before = try aliceBinds()
            for (name, password) in [
                ("alice", "Passw0rd-B1"), ("nobody", "Passw0rd-A1"), ("alice", ""), ("*", "Passw0rd-A1"),
                ("*)(uid=*", "Passw0rd-A1"), ("alice)(|(uid=*", "Passw0rd-A1"), ("", "x"),
            ] {
                await #expect(throws: DirectoryLoginError.invalidCredentials, "\(name)") {
                    try await connector.authenticate(username: name, password: password)
                }
            }
            // alice's wrong password cost one bind as alice; her empty password none (it would be an anonymous bind).
            #expect(try aliceBinds() - before == 1)
        }
    }

    @Test("an unknown name costs a bind too (to a DN no entry has), so timing does not tell which names exist")
    func unknownNameBinds() async throws {
        try await withConnector { slapd, connector in
            let dummyBind = "BIND dn=\"cn=keyless-no-such-person,ou=people,dc=example,dc=com\" method=128"
            func dummyBinds() throws -> Int {
                try String(contentsOfFile: slapd.logFile, encoding: .utf8).components(separatedBy: dummyBind).count - 1
            }
            await #expect(throws: DirectoryLoginError.invalidCredentials) {
                try await connector.authenticate(username: "nobody", password: "Passw0rd-A1")
            }
            #expect(try dummyBinds() == 1)
            _ = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            #expect(try dummyBinds() == 1, "a known name binds as the person, not the dummy")
        }
    }

    @Test(
        "a name that matches two or more people is 'invalid credentials' (never a login as one of them, never 'unavailable')"
    )
    func ambiguousName() async throws {
        let slapd = try await SlapdServer.start()
        defer { slapd.stopAndRemove() }
        for filter in ["(|(uid={u})(uid=bob))", "(|(uid={u})(objectClass=inetOrgPerson))"] {
            var configuration = Self.configuration(slapd)
            configuration.userFilter = filter  // two matches; then all three (the server's answer: size limit exceeded)
            let connector = try LDAPConnector(configuration)
            await #expect(throws: DirectoryLoginError.invalidCredentials, "\(filter)") {
                try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            }
            await connector.shutdown()
        }
    }

    @Test("a refresh reads the groups again (a removal counts at once) and a deleted user is gone")
    func refresh() async throws {
        try await withConnector { slapd, connector in
            let alice = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            try slapd.modify(
                """
                dn: cn=developers,ou=groups,dc=example,dc=com
                changetype: modify
                delete: member
                member: uid=alice,ou=people,dc=example,dc=com

                """)
            #expect(try await connector.refresh(dn: alice.dn)?.groups == ["admins"])
            let bob = try await connector.authenticate(username: "bob", password: "Passw0rd-B1")
            try slapd.modify(
                """
                dn: uid=bob,ou=people,dc=example,dc=com
                changetype: delete

                """)
            #expect(try await connector.refresh(dn: bob.dn) == nil)
            await #expect(throws: DirectoryLoginError.invalidCredentials) {
                try await connector.authenticate(username: "bob", password: "Passw0rd-B1")
            }
        }
    }

    @Test("the directory stopped mid-way: logins and refreshes fail as 'unavailable', at once, never from stale data")
    func directoryDown() async throws {
        try await withConnector { slapd, connector in
            let alice = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            slapd.stop()
            let started = ContinuousClock.now
            for attempt in 0..<2 {
                do {
                    _ = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
                    Issue.record("a login succeeded with the directory stopped (attempt \(attempt))")
                } catch let error as DirectoryLoginError {
                    guard case .unavailable(let reason) = error else {
                        Issue.record("\(error)")
                        continue
                    }
                    #expect(reason.contains("127.0.0.1:\(slapd.port)") || reason.contains("closed"), "\(reason)")
                }
            }
            await #expect(throws: DirectoryLoginError.self) { try await connector.refresh(dn: alice.dn) }
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    @Test("a wrong service-account password is 'unavailable' naming the account, not a person's wrong password")
    func wrongServicePassword() async throws {
        let slapd = try await SlapdServer.start()
        defer { slapd.stopAndRemove() }
        var configuration = Self.configuration(slapd)
        configuration.bindPassword = "not-the-password"
        let connector = try LDAPConnector(configuration)
        do {
            _ = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
            Issue.record("a login worked with a wrong service password")
        } catch DirectoryLoginError.unavailable(let reason) {
            #expect(reason.contains(SlapdServer.bindDN), "\(reason)")
        }
        await connector.shutdown()
    }

    @Test("a broken user filter or URL is refused when the connector is made")
    func configurationErrors() {
        let base = LDAPConnectorConfiguration(
            url: "ldap://127.0.0.1:1", bindDN: "cn=x", bindPassword: "y", userBase: "dc=x", userFilter: "(uid={u})")
        var badFilter = base
        badFilter.userFilter = "(uid={u}"
        #expect(throws: LDAPError.self) { try LDAPConnector(badFilter) }
        var badURL = base
        badURL.url = "http://127.0.0.1"
        #expect(throws: LDAPError.self) { try LDAPConnector(badURL) }
    }

    @Test("Active Directory's bind diagnostics map to account states; other directories' 49 is a wrong password")
    func activeDirectoryDiagnostics() {
        func failure(_ message: String, ad: Bool = true) -> DirectoryLoginError {
            LDAPConnector.bindFailure(
                LDAPError(.result, "", resultCode: 49, diagnosticMessage: message), activeDirectory: ad)
        }
        let prefix = "80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, "
        #expect(failure(prefix + "data 52e, v4563") == .invalidCredentials)
        #expect(failure(prefix + "data 533, v4563") == .accountDisabled)
        #expect(failure(prefix + "data 775, v4563") == .accountLocked)
        #expect(failure(prefix + "data 532, v4563") == .passwordExpired)
        #expect(failure(prefix + "data 773, v4563") == .passwordExpired)
        #expect(failure(prefix + "data 533, v4563", ad: false) == .invalidCredentials)
    }

    @Test("DN values: the first RDN's value with RFC 4514 escapes undone")
    func dnValues() {
        #expect(LDAPDN.firstValue("cn=developers,ou=groups,dc=example,dc=com") == "developers")
        #expect(LDAPDN.firstValue("CN=Smith\\, John,OU=People") == "Smith, John")
        #expect(LDAPDN.firstValue("cn=caf\\c3\\a9,dc=x") == "café")
        #expect(LDAPDN.firstValue("cn=a+uid=b,dc=x") == "a")
        #expect(LDAPDN.firstValue("") == nil)
        #expect(LDAPDN.firstValue("cn=") == nil)
    }
}
