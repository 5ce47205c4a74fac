import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessTestSupport
import Testing

@Suite("idp.yaml: users, groups and clients, with errors that name the line")
struct IdPConfigurationTests {
    static let hash = (try? PasswordHash.make("alice-password-1", logN: 10, r: 8, p: 1).description) ?? "unavailable"

    static let valid = """
        issuer: http://127.0.0.1:9000/
        signing_algorithm: ES256
        groups: [engineers, admins]
        users:
          - username: alice
            password_hash: "\(hash)"
            email: alice@example.com
            groups: [engineers]
          - username: bob
            password_hash: "\(hash)"
            totp_secret: JBSWY3DPEHPK3PXP
        clients:
          - id: keyless-cli
            redirect_uris: ["http://127.0.0.1/callback"]
            grants: [authorization_code, refresh_token, device_code]
            scopes: [openid, email, profile, offline_access]
          - id: deployer
            secret_hash: "\(hash)"
            grants: [client_credentials]
            access_token_ttl: 600
        """

    @Test("an idp.yaml with a YAML alias is refused before it is composed, naming the line")
    func aliasRefused() throws {
        let error = #expect(throws: KeylessError.self) {
            try IdPConfiguration.parse("issuer: https://idp.example.com\nusers: &u []\nclients: *u\n", path: "idp.yaml")
        }
        #expect(error?.reason.hasPrefix("idp.yaml:3:10:") == true, "\(String(describing: error))")
    }

    @Test("a valid file parses into users, groups and clients, with the issuer normalised")
    func parsesValid() throws {
        let config = try IdPConfiguration.parse(Self.valid, path: "idp.yaml")
        #expect(config.issuer == "http://127.0.0.1:9000")
        #expect(config.signingAlgorithm == "ES256")
        #expect(config.users.map(\.username) == ["alice", "bob"])
        #expect(config.users[1].totpSecret == "JBSWY3DPEHPK3PXP")
        #expect(config.clients.map(\.id) == ["keyless-cli", "deployer"])
        #expect(config.clients[0].isPublic && !config.clients[1].isPublic)
        #expect(config.clients[1].accessTokenTTL == 600)
        #expect(PasswordHash(config.users[0].passwordHash)?.verify("alice-password-1") == true)
    }

    /// Replaces `old` by `new` in the valid file and expects an error that names `line` and says `message`.
    func expectError(
        _ old: String, _ new: String, line: Int, _ message: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let text = Self.valid.replacingOccurrences(of: old, with: new)
        #expect(text != Self.valid, "the test must really change the file", sourceLocation: sourceLocation)
        do {
            _ = try IdPConfiguration.parse(text, path: "idp.yaml")
            Issue.record("no error for: \(new)", sourceLocation: sourceLocation)
        } catch let error as KeylessError {
            #expect(error.code == .configInvalid, sourceLocation: sourceLocation)
            #expect(error.reason.hasPrefix("idp.yaml:\(line):"), "\(error.reason)", sourceLocation: sourceLocation)
            #expect(error.reason.contains(message), "\(error.reason)", sourceLocation: sourceLocation)
            #expect(error.hint?.isEmpty == false, sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("a plain password instead of a hash is refused at its line")
    func plainPassword() {
        expectError(
            "    password_hash: \"\(Self.hash)\"\n    email", "    password_hash: hunter2hunter2\n    email", line: 6,
            "not a keyless scrypt hash")
    }

    @Test("a duplicate user is refused at its line")
    func duplicateUser() { expectError("username: bob", "username: alice", line: 9, "declared twice") }

    @Test("an undeclared group is refused at the user's groups line")
    func unknownGroup() {
        expectError(
            "groups: [engineers]\n", "groups: [engineers, ops]\n", line: 8, "group 'ops', which is not declared")
    }

    @Test("an unknown grant is refused at that grant's line")
    func unknownGrant() {
        expectError(
            "grants: [client_credentials]", "grants: [client_credentials, password]", line: 19,
            "unknown grant 'password'")
    }

    @Test("a public client with client_credentials is refused")
    func publicClientCredentials() {
        expectError(
            "grants: [authorization_code, refresh_token, device_code]",
            "grants: [authorization_code, client_credentials]", line: 15, "public client 'keyless-cli'")
    }

    @Test("a plain-http redirect URI to another host is refused at its line")
    func badRedirect() {
        expectError(
            "[\"http://127.0.0.1/callback\"]", "[\"http://evil.example.com/callback\"]", line: 14,
            "redirect URI 'http://evil.example.com/callback'")
    }

    @Test("a missing username is reported at the user's entry")
    func missingKey() {
        expectError("  - username: bob\n", "  - name: bob\n", line: 9, "the key 'username' is missing")
    }

    @Test("a wrong type is reported at the value's line")
    func wrongType() {
        expectError("access_token_ttl: 600", "access_token_ttl: [600]", line: 20, "clients[1].access_token_ttl")
    }

    @Test("an unsupported signing algorithm is refused at its line")
    func badAlgorithm() {
        expectError("signing_algorithm: ES256", "signing_algorithm: HS256", line: 2, "HS256 is not supported")
    }

    @Test("broken YAML syntax is reported with its position")
    func brokenYAML() throws {
        #expect(throws: KeylessError.self) { try IdPConfiguration.parse("users: [alice\nclients: {", path: "idp.yaml") }
    }

    @Test("a missing file says so and what to do")
    func missingFile() {
        #expect { try IdPConfiguration.load(path: "/nonexistent/idp.yaml") } throws: { error in
            (error as? KeylessError)?.code == .configInvalid
                && (error as? KeylessError)?.reason.contains("does not exist") == true
        }
    }
}

@Suite("fuzz: idp.yaml")
struct IdPConfigurationFuzzTests {
    @Test("a mutated idp.yaml either parses or is refused with a KeylessError; it never crashes")
    func configurations() {
        Fuzzer.run(
            "idp.yaml", seeds: [IdPConfigurationTests.valid],
            tokens: [
                "&a ", "*a", "{", "[", ": ", "\n  - ", "totp_secret: ", "password_hash: ", "$scrypt$ln=99,r=8,p=1$",
            ]
        ) { bytes in
            do {
                _ = try IdPConfiguration.parse(String(decoding: bytes, as: UTF8.self), path: "idp.yaml")
            } catch is KeylessError {
            } catch {
                Issue.record("not a KeylessError: \(error)")
            }
        }
    }
}

@Suite("idp.yaml passkeys: settings")
struct PasskeySettingsTests {
    static func parse(_ passkeys: String) throws -> IdPConfiguration {
        try IdPConfiguration.parse(IdPConfigurationTests.valid + "\npasskeys:\n" + passkeys, path: "idp.yaml")
    }

    static func reason(_ passkeys: String) -> String {
        do {
            _ = try parse(passkeys)
            return "accepted"
        } catch let error as KeylessError {
            return error.reason
        } catch {
            return "\(error)"
        }
    }

    @Test("defaults: the RP ID is the issuer's host; settings are read; a parent domain is a valid RP ID")
    func accepted() throws {
        let plain = try IdPConfiguration.parse(IdPConfigurationTests.valid, path: "idp.yaml")
        #expect(plain.passkeys == nil)
        #expect(plain.passkeyRPID(issuer: "http://localhost:9000") == "localhost")
        #expect(plain.passkeysOff(issuer: "http://localhost:9000") == nil)
        let config = try Self.parse(
            """
              rp_name: Example Corp
              origins: ["http://localhost:9000"]
              signature_counter: report
            """)
        #expect(config.passkeys?.rpName == "Example Corp")
        #expect(config.passkeys?.signatureCounter == "report")
        let parent = try IdPConfiguration.parse(
            IdPConfigurationTests.valid.replacingOccurrences(
                of: "issuer: http://127.0.0.1:9000/", with: "issuer: https://login.example.com/")
                + "\npasskeys:\n  rp_id: example.com\n", path: "idp.yaml")
        #expect(parent.passkeyRPID(issuer: "https://login.example.com") == "example.com")
    }

    @Test(
        "an issuer at an IP address has passkeys off (browsers refuse IP addresses as RP IDs), saying so; an rp_id that is an IP address is refused"
    )
    func ipAddresses() throws {
        let plain = try IdPConfiguration.parse(IdPConfigurationTests.valid, path: "idp.yaml")
        for issuer in ["http://127.0.0.1:9000", "http://[::1]:9000", "https://10.1.2.3"] {
            #expect(plain.passkeyRPID(issuer: issuer) == nil, "\(issuer)")
            #expect(plain.passkeysOff(issuer: issuer)?.contains("IP address") == true, "\(issuer)")
        }
        #expect(plain.passkeyRPID(issuer: "https://1.example.com") == "1.example.com")
        #expect(Self.reason("  rp_id: 127.0.0.1\n").contains("is an IP address"))
    }

    @Test(
        "refused with the line and what to do: an RP ID the issuer is not under, an unknown setting, a bad origin, a bad AAGUID, an allow-list without roots, a bad counter policy"
    )
    func refused() {
        #expect(Self.reason("  rp_id: example.com\n").contains("is not the issuer's host"))
        #expect(Self.reason("  rp_idd: x\n").contains("passkeys: has no setting 'rp_idd'"))
        #expect(
            Self.reason("  origins: [\"https://x.example/path\"]\n").contains("is not an https://host[:port] origin"))
        #expect(Self.reason("  allowed_authenticators: [yubikey]\n").contains("'yubikey' is not an AAGUID"))
        #expect(
            Self.reason("  allowed_authenticators: [cb69481e-8ff7-4039-93ec-0a2729a154a8]\n").contains(
                "needs attestation_roots"))
        #expect(Self.reason("  signature_counter: ignore\n").contains("must be refuse or report"))
        #expect(Self.reason("  signature_counter: ignore\n").hasPrefix("idp.yaml:"))
    }
}
