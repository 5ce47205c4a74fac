import Foundation
import KeylessLDAP
import KeylessTestSupport
import Testing

@testable import KeylessDirectory

/// The connector against a real Samba Active Directory domain controller (Debian), started once for the suite: it
/// takes 10 to 45 seconds and owns ports 389 and 636.
@Suite(
    "LDAP connector against Samba Active Directory", .serialized,
    .enabled(if: SambaADServer.unavailable == nil, "\(SambaADServer.unavailable ?? "")"))
struct ActiveDirectoryConnectorTests {
    static func configuration(_ samba: SambaADServer, url: String = SambaADServer.ldapsURL, startTLS: Bool = false)
        -> LDAPConnectorConfiguration
    {
        LDAPConnectorConfiguration(
            url: url, startTLS: startTLS, caFile: samba.caFile, bindDN: SambaADServer.bindDN,
            bindPassword: SambaADServer.bindPassword, userBase: "CN=Users,DC=example,DC=test",
            userFilter: "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={u})(userPrincipalName={u})))",
            subjectAttribute: "objectGUID", usernameAttribute: "sAMAccountName",
            groups: .activeDirectoryInChain(base: SambaADServer.base),
            activeDirectory: true, timeout: .seconds(10))
    }

    @Test(
        "sAMAccountName and UPN logins over LDAPS and StartTLS: objectGUID subject, nested groups by IN_CHAIN, a disabled account and a wrong password refused, a plain bind explained"
    )
    func activeDirectory() async throws {
        let samba = try SambaADServer.start()
        defer { samba.stopAndRemove() }

        let connector = try LDAPConnector(Self.configuration(samba))
        let alice = try await connector.authenticate(username: "alice", password: "Passw0rd-A1")
        #expect(alice.dn == "CN=Alice Test,CN=Users,DC=example,DC=test")
        #expect(alice.email == "alice@example.test" && alice.name == "Alice Test" && alice.username == "alice")
        // objectGUID is 16 bytes, written as a GUID.
        #expect(alice.subject.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/) != nil)
        #expect(alice.groups == ["admins", "developers"])
        #expect(try await connector.authenticate(username: "alice@example.test", password: "Passw0rd-A1") == alice)
        // carol is in platform, platform in admins: LDAP_MATCHING_RULE_IN_CHAIN returns both in one search.
        let carol = try await connector.authenticate(username: "carol", password: "Passw0rd-C1")
        #expect(carol.groups == ["admins", "platform"])
        // dave is disabled (userAccountControl 514): AD's bind answer says so ("data 533") to his right password only.
        await #expect(throws: DirectoryLoginError.accountDisabled) {
            try await connector.authenticate(username: "dave", password: "Passw0rd-D1")
        }
        await #expect(throws: DirectoryLoginError.invalidCredentials) {
            try await connector.authenticate(username: "dave", password: "Passw0rd-A1")
        }
        await #expect(throws: DirectoryLoginError.invalidCredentials) {
            try await connector.authenticate(username: "alice", password: "Passw0rd-B1")
        }
        await #expect(throws: DirectoryLoginError.invalidCredentials) {
            try await connector.authenticate(username: "*", password: "Passw0rd-A1")
        }
        #expect(try await connector.refresh(dn: carol.dn)?.groups == ["admins", "platform"])
        await connector.shutdown()

        let startTLS = try LDAPConnector(Self.configuration(samba, url: SambaADServer.url, startTLS: true))
        #expect(try await startTLS.authenticate(username: "bob", password: "Passw0rd-B1").groups == ["developers"])
        await startTLS.shutdown()

        // Samba, as a hardened AD, refuses simple binds without TLS (result 8, strongerAuthRequired).
        let plain = try LDAPConnector(Self.configuration(samba, url: SambaADServer.url))
        do {
            _ = try await plain.authenticate(username: "alice", password: "Passw0rd-A1")
            Issue.record("a plain simple bind worked")
        } catch DirectoryLoginError.unavailable(let reason) {
            #expect(reason.contains("result 8"), "\(reason)")
        }
        await plain.shutdown()
    }
}
