import Foundation
import KeylessCore
import KeylessDirectory
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import KeylessTestSupport
import Testing

/// The provider with an `ldap` connector beside its own users, against a real OpenLDAP slapd started per test.
@Suite("login through a directory connector (OpenLDAP slapd)", .serialized)
struct DirectoryLoginTests {
    /// idp.yaml's connectors: the local users, then the directory (StartTLS with the test CA), parsed as a file is.
    static func config(_ slapd: SlapdServer, passwordFile: String) throws -> IdPConfiguration {
        let base = Fixture.config()
        var parsed = try IdPConfiguration.parse(
            """
            issuer: \(Fixture.issuer)
            connectors:
              - {id: local, type: local}
              - id: corp
                type: ldap
                name: Example Corp directory
                url: \(slapd.url)
                start_tls: true
                ca_file: \(slapd.caFile)
                bind_dn: \(SlapdServer.bindDN)
                bind_password_file: \(passwordFile)
                user_base: ou=people,dc=example,dc=com
                user_filter: "(&(objectClass=inetOrgPerson)(|(uid={u})(mail={u})))"
                timeout: 3
                aws:
                  principal_tags: {CostCenter: uidNumber, Department: departmentNumber}
                  transitive_tag_keys: [CostCenter, Department]
                  source_identity: uid
                extra_claims: {employee_number: uidNumber, given_name: givenName, room: roomNumber}
            """, path: "idp.yaml")
        parsed.users = base.users
        parsed.groups = base.groups
        parsed.clients = base.clients
        parsed.lifetimes = base.lifetimes
        parsed.signingAlgorithm = base.signingAlgorithm
        return parsed
    }

    func withProvider(_ body: (SlapdServer, EngineFixture) async throws -> Void) async throws {
        let slapd = try await SlapdServer.start()
        defer { slapd.stopAndRemove() }
        let passwordFile = try slapd.bindPasswordFile()
        let config = try Self.config(slapd, passwordFile: passwordFile)
        let connectors = try Connectors.open(config, environment: Environment())
        let f = try await EngineFixture(config: config, connectors: connectors)
        do {
            try await body(slapd, f)
        } catch {
            await connectors.shutdown()
            throw error
        }
        await connectors.shutdown()
    }

    @Test(
        "a directory login: sub is corp:<entryUUID>, the ID token carries the directory's email, name, uid and groups (prefixed corp:), userinfo too; local users still log in"
    )
    func login() async throws {
        try await withProvider { _, f in
            let auth = try await f.engine.login(
                connector: "corp", username: "alice", password: "Passw0rd-A1", otp: nil, address: Fixture.address
            ).get()
            #expect(
                auth.subject.wholeMatch(of: /corp:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/) != nil)
            #expect(auth.amr == ["pwd"])
            #expect(auth.identity?.reference == "uid=alice,ou=people,dc=example,dc=com")
            let tokens = try await f.redeem(try await f.code(authentication: auth).code)
            let id = try jwtClaims(try #require(tokens.idToken))
            #expect(id["sub"] as? String == auth.subject)
            #expect(id["email"] as? String == "alice@example.com")
            #expect(id["name"] as? String == "Alice Test")
            #expect(id["preferred_username"] as? String == "alice")
            #expect(id["groups"] as? [String] == ["corp:admins", "corp:developers"])
            // AWS claims for AssumeRoleWithWebIdentity: uidNumber as a tag (departmentNumber: alice has none, so
            // neither the tag nor its transitive key), uid as the source identity.
            let tags = try #require(id["https://aws.amazon.com/tags"] as? [String: Any])
            #expect(tags["principal_tags"] as? [String: [String]] == ["CostCenter": ["10001"]])
            #expect(tags["transitive_tag_keys"] as? [String] == ["CostCenter"])
            #expect(id["https://aws.amazon.com/source_identity"] as? String == "alice")
            // extra_claims with the profile scope: those alice's entry has (she has no roomNumber).
            #expect(id["employee_number"] as? String == "10001" && id["given_name"] as? String == "Alice")
            #expect(id["room"] == nil)
            let access = try jwtClaims(tokens.accessToken)
            #expect(access["groups"] as? [String] == ["corp:admins", "corp:developers"])
            let info = try await f.engine.userinfo(bearer: tokens.accessToken)
            #expect(info.sub == auth.subject && info.email == "alice@example.com" && info.name == "Alice Test")
            #expect(info.groups == ["corp:admins", "corp:developers"] && info.preferredUsername == "alice")
            // The local users are the other connector, and the default one.
            let local = try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address
            ).get()
            #expect(local.subject == "alice" && local.identity == nil)
            // A local password is not a directory password, and the other way round.
            #expect(
                await f.engine.login(
                    connector: "corp", username: "alice", password: Fixture.alicePassword, otp: nil,
                    address: Fixture.address) == .failure(.invalid))
            #expect(
                await f.engine.login(
                    connector: "local", username: "alice", password: "Passw0rd-A1", otp: nil, address: Fixture.address)
                    == .failure(.invalid))
            #expect(
                await f.engine.login(
                    connector: "nope", username: "alice", password: "Passw0rd-A1", otp: nil, address: Fixture.address)
                    == .failure(.invalid))
        }
    }

    @Test("a wrong password, an empty one, and filter injections in the name are all .invalid, never a login")
    func refusals() async throws {
        try await withProvider { _, f in
            for (username, password) in [
                ("alice", "wrong"), ("alice", ""), ("*", "Passw0rd-A1"), ("alice)(uid=*", "Passw0rd-A1"),
                ("*)(|(uid=*", "Passw0rd-A1"), ("al*", "Passw0rd-A1"), ("alice\u{0}", "Passw0rd-A1"),
            ] {
                let result = await f.engine.login(
                    connector: "corp", username: username, password: password, otp: nil, address: Fixture.address)
                #expect(result == .failure(.invalid), "\(username.debugDescription)")
            }
        }
    }

    @Test("the throttle counts a directory name without regard to case or spaces, as the directory matches it")
    func throttleIgnoresCase() async throws {
        try await withProvider { _, f in
            for name in ["alice", "ALICE", " Alice "] {
                #expect(
                    await f.engine.login(
                        connector: "corp", username: name, password: "wrong", otp: nil, address: Fixture.address)
                        == .failure(.invalid))
            }
            // The fourth failure in a row for the same person from the same address waits, whatever the spelling.
            let fourth = await f.engine.login(
                connector: "corp", username: "aLiCe", password: "Passw0rd-A1", otp: nil, address: Fixture.address)
            guard case .failure(.throttled) = fourth else {
                Issue.record("expected throttled, got \(fourth)")
                return
            }
        }
    }

    @Test(
        "freshness: a group removed in the directory is gone from the next refresh's tokens; a deleted person's refresh is invalid_grant, ends the family, and their session no longer signs in"
    )
    func freshness() async throws {
        try await withProvider { slapd, f in
            let auth = try await f.engine.login(
                connector: "corp", username: "alice", password: "Passw0rd-A1", otp: nil, address: Fixture.address
            ).get()
            let session = try await f.engine.startSession(auth)
            let first = try await f.redeem(try await f.code(authentication: auth).code)
            try slapd.modify(
                """
                dn: cn=developers,ou=groups,dc=example,dc=com
                changetype: modify
                delete: member
                member: uid=alice,ou=people,dc=example,dc=com

                """)
            f.clock.advance(by: 60)
            let second = try await f.refresh(first.refreshToken)
            #expect(try jwtClaims(try #require(second.idToken))["groups"] as? [String] == ["corp:admins"])
            #expect(try jwtClaims(second.accessToken)["groups"] as? [String] == ["corp:admins"])
            // The browser session reads the directory again too.
            #expect(try await f.engine.session(cookie: session)?.identity?.groups == ["corp:admins"])

            try slapd.modify(
                """
                dn: uid=alice,ou=people,dc=example,dc=com
                changetype: delete

                """)
            let error = await expectOAuthError("invalid_grant") { try await f.refresh(second.refreshToken) }
            #expect(error?.detail.contains("no longer exists in the directory") == true, "\(String(describing: error))")
            // The whole login ended: the presented token no longer rotates.
            let rotation = try await f.store.rotateRefreshToken(
                hash: OAuthEngine.hash(second.refreshToken ?? ""), now: f.clock.now,
                successor: RefreshSuccessor(
                    tokenHash: OAuthEngine.hash("next"), issuedAt: f.clock.now, expiresAt: f.clock.now + 60))
            #expect(rotation == .revoked)
            #expect(try await f.engine.session(cookie: session) == nil)
        }
    }

    @Test(
        "the directory stopped: the login page's failure names the directory, a refresh is a 503 that leaves the token unspent, and a session does not sign in"
    )
    func directoryDown() async throws {
        try await withProvider { slapd, f in
            let auth = try await f.engine.login(
                connector: "corp", username: "bob", password: "Passw0rd-B1", otp: nil, address: Fixture.address
            ).get()
            let session = try await f.engine.startSession(auth)
            let tokens = try await f.redeem(try await f.code(authentication: auth).code)
            slapd.stop()
            let result = await f.engine.login(
                connector: "corp", username: "bob", password: "Passw0rd-B1", otp: nil, address: Fixture.address)
            guard case .failure(.directoryUnavailable(let connector, let reason)) = result else {
                Issue.record("expected directoryUnavailable, got \(result)")
                return
            }
            #expect(connector == "Example Corp directory")
            #expect(reason.contains("127.0.0.1:\(slapd.port)") || reason.contains("closed"), "\(reason)")
            await expectOAuthError("temporarily_unavailable", status: 503) { try await f.refresh(tokens.refreshToken) }
            // The token was not spent: it still rotates (a retry once the directory is back is not a replay).
            let rotation = try await f.store.rotateRefreshToken(
                hash: OAuthEngine.hash(tokens.refreshToken ?? ""), now: f.clock.now,
                successor: RefreshSuccessor(
                    tokenHash: OAuthEngine.hash("next"), issuedAt: f.clock.now, expiresAt: f.clock.now + 60))
            guard case .valid = rotation else {
                Issue.record("the refused refresh spent the token: \(rotation)")
                return
            }
            #expect(try await f.engine.session(cookie: session) == nil)
        }
    }
}
