import Foundation
import KeylessTestSupport
import NIOCore
import Testing

@testable import KeylessLDAP

/// Against a real OpenLDAP slapd (Debian) started per test on loopback.
@Suite("LDAP client against OpenLDAP slapd", .serialized)
struct LDAPConnectionTests {
    static let people = "ou=people,dc=example,dc=com"

    func withSlapd(_ body: (SlapdServer) async throws -> Void) async throws {
        let slapd = try await SlapdServer.start()
        defer { slapd.stopAndRemove() }
        try await body(slapd)
    }

    func userSearch(_ name: String) throws -> LDAPSearch {
        LDAPSearch(
            base: Self.people, sizeLimit: 2, timeLimitSeconds: 5,
            filter: try LDAPFilter.template("(&(objectClass=inetOrgPerson)(|(uid={u})(mail={u})))", substituting: name),
            attributes: ["uid", "mail", "cn", "memberOf"])
    }

    @Test(
        "over StartTLS the service account finds a user by uid or mail with its groups, and the user's own bind checks the password"
    )
    func startTLSLogin() async throws {
        try await withSlapd { slapd in
            let endpoint = try LDAPEndpoint(url: slapd.url, startTLS: true, caFile: slapd.caFile)
            let connection = try await LDAPConnection.connect(to: endpoint)
            try await connection.bind(name: SlapdServer.bindDN, password: SlapdServer.bindPassword)
            let byUID = try await connection.search(try userSearch("alice"))
            let byMail = try await connection.search(try userSearch("alice@example.com"))
            #expect(byUID.map(\.dn) == ["uid=alice,ou=people,dc=example,dc=com"])
            #expect(byMail == byUID)
            let alice = try #require(byUID.first)
            #expect(alice.string("mail") == "alice@example.com" && alice.string("CN") == "Alice Test")
            #expect(
                Set(alice.strings("memberOf"))
                    == ["cn=developers,ou=groups,dc=example,dc=com", "cn=admins,ou=groups,dc=example,dc=com"])
            await connection.close()

            let user = try await LDAPConnection.connect(to: endpoint)
            try await user.bind(name: alice.dn, password: "Passw0rd-A1")
            await user.close()
            let log = try String(contentsOfFile: slapd.logFile, encoding: .utf8)
            #expect(log.contains("STARTTLS") && log.contains("BIND dn=\"uid=alice,ou=people,dc=example,dc=com\""))
        }
    }

    @Test("a wrong password is result 49 and an empty one is refused before anything is sent")
    func wrongAndEmptyPasswords() async throws {
        try await withSlapd { slapd in
            let endpoint = try LDAPEndpoint(url: slapd.ldapsURL, caFile: slapd.caFile)
            let connection = try await LDAPConnection.connect(to: endpoint)
            defer { Task { await connection.close() } }
            do {
                try await connection.bind(name: "uid=alice,ou=people,dc=example,dc=com", password: "Passw0rd-B1")
                Issue.record("a wrong password was accepted")
            } catch let error as LDAPError {
                #expect(error.code == .result && error.resultCode == LDAPResult.invalidCredentials, "\(error)")
            }
            do {
                try await connection.bind(name: "uid=alice,ou=people,dc=example,dc=com", password: "")
                Issue.record("an empty password was sent")
            } catch let error as LDAPError {
                #expect(error.code == .refused, "\(error)")
            }
            // The connection is still good after a failed bind.
            try await connection.bind(name: SlapdServer.bindDN, password: SlapdServer.bindPassword)
            #expect(try await connection.search(try userSearch("bob")).count == 1)
        }
    }

    @Test("an injection attempt in the user name finds nothing, where the same text as a filter would find everyone")
    func injection() async throws {
        try await withSlapd { slapd in
            let connection = try await LDAPConnection.connect(
                to: try LDAPEndpoint(url: slapd.url, startTLS: true, caFile: slapd.caFile))
            defer { Task { await connection.close() } }
            try await connection.bind(name: SlapdServer.bindDN, password: SlapdServer.bindPassword)
            for attempt in ["*", "*)(uid=*", "alice)(|(uid=*", "*)(objectClass=*"] {
                #expect(try await connection.search(try userSearch(attempt)).isEmpty, "\(attempt)")
            }
            var everyone = try userSearch("x")
            everyone.filter = try LDAPFilter(parsing: "(uid=*)")
            everyone.sizeLimit = 0
            #expect(try await connection.search(everyone).count == 3)
        }
    }

    @Test("LDAPS without the directory's CA is a TLS error; a certificate for another host too")
    func untrustedCertificate() async throws {
        try await withSlapd { slapd in
            do {
                _ = try await LDAPConnection.connect(to: try LDAPEndpoint(url: slapd.ldapsURL))
                Issue.record("an untrusted certificate was accepted")
            } catch let error as LDAPError {
                #expect(error.code == .tls, "\(error)")
            }
            // The certificate names 127.0.0.1 and localhost; 127.0.0.2 reaches the same server under another name.
            do {
                _ = try await LDAPConnection.connect(
                    to: LDAPEndpoint(host: "127.0.0.2", port: slapd.ldapsPort, security: .ldaps, caFile: slapd.caFile))
                Issue.record("a certificate for another address was accepted")
            } catch let error as LDAPError {
                #expect(error.code == .tls || error.code == .unreachable, "\(error)")
            }
        }
    }

    @Test("the directory stopped: a request on an open connection fails at once and a new connection is unreachable")
    func directoryStopped() async throws {
        try await withSlapd { slapd in
            let endpoint = try LDAPEndpoint(url: slapd.url, startTLS: true, caFile: slapd.caFile)
            let connection = try await LDAPConnection.connect(to: endpoint, timeout: .seconds(10))
            try await connection.bind(name: SlapdServer.bindDN, password: SlapdServer.bindPassword)
            slapd.stop()
            let started = ContinuousClock.now
            do {
                _ = try await connection.search(try userSearch("alice"))
                Issue.record("a search succeeded after slapd stopped")
            } catch let error as LDAPError {
                #expect(error.code == .closed, "\(error)")
            }
            #expect(ContinuousClock.now - started < .seconds(5))
            do {
                _ = try await LDAPConnection.connect(to: endpoint)
                Issue.record("connected to a stopped directory")
            } catch let error as LDAPError {
                #expect(error.code == .unreachable, "\(error)")
            }
        }
    }

    @Test("a server that accepts the connection and never answers is a timeout, not a hang")
    func silentServer() async throws {
        let listener = try SilentListener()
        defer { listener.close() }
        let started = ContinuousClock.now
        do {
            let connection = try await LDAPConnection.connect(
                to: LDAPEndpoint(host: "127.0.0.1", port: listener.port, security: .none), timeout: .milliseconds(500))
            try await connection.bind(name: "cn=x", password: "y")
            Issue.record("a bind to a silent server returned")
        } catch let error as LDAPError {
            #expect(error.code == .timeout, "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        do {
            _ = try await LDAPConnection.connect(
                to: LDAPEndpoint(host: "127.0.0.1", port: listener.port, security: .startTLS),
                timeout: .milliseconds(500))
            Issue.record("StartTLS with a silent server returned")
        } catch let error as LDAPError {
            #expect(error.code == .timeout, "\(error)")
        }
    }

    @Test("URLs: default ports, IPv6, StartTLS only on ldap://, nothing but scheme, host and port")
    func urls() throws {
        #expect(
            try LDAPEndpoint(url: "ldap://dc1.example.com")
                == LDAPEndpoint(host: "dc1.example.com", port: 389, security: .none))
        #expect(try LDAPEndpoint(url: "LDAPS://dc1/") == LDAPEndpoint(host: "dc1", port: 636, security: .ldaps))
        #expect(
            try LDAPEndpoint(url: "ldap://[::1]:1389", startTLS: true)
                == LDAPEndpoint(host: "::1", port: 1389, security: .startTLS))
        for bad in ["http://x", "ldap://", "ldap://x:0", "ldap://x:port", "ldap://x/dc=example", "ldap://u@x"] {
            #expect(throws: LDAPError.self, "\(bad)") { try LDAPEndpoint(url: bad) }
        }
        #expect(throws: LDAPError.self) { try LDAPEndpoint(url: "ldaps://x", startTLS: true) }
    }
}

/// A TCP socket on 127.0.0.1 that listens and never accepts: connections complete (the kernel's backlog) and get no
/// answer.
final class SilentListener {
    let descriptor: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0, listen(fd, 16) == 0 else {
            if fd >= 0 { _ = Glibc.close(fd) }
            throw TestSupportError("cannot listen on 127.0.0.1")
        }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        descriptor = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { _ = Glibc.close(descriptor) }
}
