import Foundation
import KeylessTestSupport
import Testing

/// `keyless idp serve` brokering another OpenID Provider (glewlwyd, started by the test): "Sign in with Glewlwyd" on
/// keyless idp's page in headless Chromium, glewlwyd's own login and consent, back to keyless idp, which maps the
/// upstream claims and groups and issues its own tokens; moto and the AWS CLI take them.
@Suite("keyless idp brokering glewlwyd, end to end", .serialized)
struct BrokeredLoginEndToEndTests {
    static let brokerClient = "keyless-broker"
    static let brokerSecret = "broker-secret-123"

    /// Two connectors on the same glewlwyd client: `glew` (alice's domain, her two groups allowed) and `glew-org`
    /// (only example.org addresses). ID tokens live 120 s, so every `keyless` command refreshes through glewlwyd.
    static func connectorsYAML(_ glewlwyd: GlewlwydServer, secretFile: String) -> String {
        """
        lifetimes:
          id_token: 120
        connectors:
          - {id: local, type: local}
          - id: glew
            type: oidc
            name: Glewlwyd
            issuer: \(glewlwyd.issuer)
            client_id: \(brokerClient)
            client_secret_file: \(secretFile)
            scopes: [openid, email, profile, offline_access]
            allowed_groups: [developers, aws-admins]
            email_domains: [example.com]
          - id: glew-org
            type: oidc
            name: Glewlwyd for example.org
            issuer: \(glewlwyd.issuer)
            client_id: \(brokerClient)
            client_secret_file: \(secretFile)
            scopes: [openid, email, profile, offline_access]
            email_domains: [example.org]
        """
    }

    /// glewlwyd with keyless idp registered as its client (both connectors' redirect URIs), and keyless idp brokering
    /// it with the client secret in a 0600 file; all stopped by PID after `body`.
    func withBroker(_ body: (GlewlwydServer, EmbeddedIdP) async throws -> Void) async throws {
        let glewlwyd = try await GlewlwydServer.start(redirectPort: try freePort())
        defer { glewlwyd.stopAndRemove() }
        let directory = try makeTemporaryDirectory(prefix: "keyless-broker")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let secretFile = directory + "/glewlwyd-secret"
        try #require(
            FileManager.default.createFile(
                atPath: secretFile, contents: Data((Self.brokerSecret + "\n").utf8),
                attributes: [.posixPermissions: 0o600]), "cannot write \(secretFile)")
        let idp = try await EmbeddedIdP.start(extraTopLevel: Self.connectorsYAML(glewlwyd, secretFile: secretFile))
        defer { idp.stopAndRemove() }
        try await glewlwyd.registerClient(
            id: Self.brokerClient, secret: Self.brokerSecret,
            redirectURIs: [idp.issuer + "/callback/glew", idp.issuer + "/callback/glew-org"])
        try await body(glewlwyd, idp)
    }

    @Test(
        "Sign in with glewlwyd through both providers in Chromium: upstream groups mapped and prefixed, the AWS CLI gets the role; the person deleted upstream ends the keyless session at the next refresh"
    )
    func brokeredLogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        try await withBroker { glewlwyd, idp in
            let moto = try await MotoServer.start()
            defer { moto.stop() }
            let role = try await moto.createRole(name: "dev")
            let harness = try KeylessHarness(moto: moto)
            let provider = ["--issuer-url", idp.issuer, "--client-id", idp.clientID]

            var browser = Tooling.browserLoginCommand(user: "alice", password: GlewlwydUser.alice.password)
            browser.environment["KEYLESS_TEST_UPSTREAM"] = "glew"
            let login = try harness.run(["login", "--browser", browser.command] + provider, extra: browser.environment)
            try #require(login.status == 0, "\(login)\n\(idp.process.logTail(20))")
            #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")

            let token = try harness.run(["token", "--json", "--no-browser"] + provider)
            try #require(token.status == 0, "\(token)")
            let claims = try EmbeddedIdPEndToEndTests.claims(
                try #require(try credentialJSON(token.stdout)["id_token"] as? String))
            #expect((claims["sub"] as? String)?.hasPrefix("glew:") == true, "\(claims)")
            #expect(claims["iss"] as? String == idp.issuer)
            #expect(claims["email"] as? String == "alice@example.com")
            #expect(claims["groups"] as? [String] == ["glew:aws-admins", "glew:developers"])

            let line = (["creds-process", "--aws-role-arn", role, "--no-browser"] + provider).joined(separator: " ")
            try "[profile dev]\nregion = us-east-1\ncredential_process = \(harness.binary) \(line)\n".write(
                toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
            let arn = try harness.runProgram(
                "aws", ["sts", "get-caller-identity", "--profile", "dev", "--query", "Arn", "--output", "text"])
            #expect(arn.status == 0, "\(arn)")
            #expect(
                arn.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")

            // Offboarded upstream: keyless's next refresh asks glewlwyd, which refuses; the keyless login ends there.
            try await glewlwyd.deleteUser("alice")
            let refused = try harness.run(["token", "--no-browser"] + provider)
            #expect(refused.status != 0, "\(refused)")
            #expect(refused.stderr.contains("no longer accepts the session"), "\(refused)")
        }
    }

    @Test("a connector that allows only example.org refuses alice@example.com after glewlwyd signed her in, saying why")
    func domainRefused() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        try await withBroker { glewlwyd, idp in
            let harness = try KeylessHarness(moto: nil)
            var browser = Tooling.browserLoginCommand(user: "alice", password: GlewlwydUser.alice.password)
            browser.environment["KEYLESS_TEST_UPSTREAM"] = "glew-org"
            browser.environment["KEYLESS_TEST_BROWSER_TIMEOUT"] = "15"
            let login = try harness.run(
                [
                    "login", "--browser", browser.command, "--timeout", "20", "--issuer-url", idp.issuer, "--client-id",
                    idp.clientID,
                ], extra: browser.environment)
            #expect(login.status != 0, "\(login)")
            #expect(
                login.stderr.contains(
                    "Only verified addresses at example.org may sign in with Glewlwyd for example.org"),
                "\(login)")
            #expect(idp.process.logTail(40).contains("upstream sign-in refused"))
        }
    }
}
