import Foundation
import KeylessTestSupport
import Testing

/// keyless against its own provider, `keyless idp serve`, as a newcomer runs it: Chromium and the device flow
/// for people, moto's AssumeRoleWithWebIdentity and the AWS CLI for AWS, joserfc as an outside token checker.
@Suite("keyless idp end to end", .serialized)
struct EmbeddedIdPEndToEndTests {
    /// The payload of a JWT as JSON.
    static func claims(_ jwt: String) throws -> [String: Any] { try segment(jwt, 1) }

    /// One base64url JSON segment of a JWT (0: header, 1: payload).
    static func segment(_ jwt: String, _ index: Int) throws -> [String: Any] {
        let segment = jwt.split(separator: ".")[index]
        var base64 = segment.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        let data = try #require(Data(base64Encoded: base64))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func awsArn(_ harness: KeylessHarness, idp: EmbeddedIdP, roleArn: String) throws -> KeylessHarness.Run {
        let line = [
            harness.binary, "creds-process", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--aws-role-arn",
            roleArn, "--no-browser",
        ]
        .joined(separator: " ")
        try "[profile dev]\nregion = us-east-1\ncredential_process = \(line)\n".write(
            toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
        return try harness.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", "dev", "--query", "Arn", "--output", "text"])
    }

    @Test(
        "keyless login through headless Chromium on keyless idp's page; moto accepts the ID token and the AWS CLI sees the role"
    )
    func browserLogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "dev")
        let harness = try KeylessHarness(moto: moto)
        let browser = Tooling.browserLoginCommand(user: "alice", password: EmbeddedIdPUser.alice.password)
        let login = try harness.run(
            ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--browser", browser.command],
            extra: browser.environment)
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")

        let cli = try awsArn(harness, idp: idp, roleArn: role)
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")
    }

    @Test(
        "a user with TOTP logs in through Chromium with the one-time code, and the ID token's amr says pwd, otp and mfa"
    )
    func totpLogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let idp = try await EmbeddedIdP.start(signingAlgorithm: "ES256")
        defer { idp.stopAndRemove() }
        let harness = try KeylessHarness(moto: nil)
        let bob = EmbeddedIdPUser.bob
        let browser = Tooling.browserLoginCommand(user: bob.name, password: bob.password)
        let login = try harness.run(
            ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--browser", browser.command],
            extra: browser.environment.merging(["KEYLESS_TEST_TOTP_SECRET": bob.totpSecret!]) { _, new in new })
        #expect(login.status == 0, "\(login)")
        let token = try harness.run([
            "token", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--no-browser", "--json",
        ])
        #expect(token.status == 0, "\(token)")
        let idToken = try #require(try credentialJSON(token.stdout)["id_token"] as? String)
        let claims = try Self.claims(idToken)
        #expect(claims["amr"] as? [String] == ["pwd", "otp", "mfa"])
        #expect(claims["groups"] as? [String] == ["developers", "admins"])
        #expect(try Self.segment(idToken, 0)["alg"] as? String == "ES256")
    }

    @Test("keyless login --device approved on keyless idp's /device page gives credentials the AWS CLI uses")
    func deviceLogin() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "dev")
        let harness = try KeylessHarness(moto: moto)
        let result = try await harness.deviceLogin(idp)
        #expect(result.status == 0, "\(result)")
        let cli = try awsArn(harness, idp: idp, roleArn: role)
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")
    }

    @Test(
        "a third-party relying party (Python stdlib + joserfc) logs in with PKCE and validates both tokens and every required claim against the JWKS"
    )
    func thirdPartyClient() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let script = repositoryRoot() + "/scripts/partners/oidc_client_check.py"
        let result = try PartnerProcess.run(
            Tooling.python(), [script, idp.issuer, idp.clientID, "alice", EmbeddedIdPUser.alice.password], timeout: 60)
        #expect(result.status == 0, "\(result.output)")
        let summary = try credentialJSON(String(result.output.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""))
        #expect(summary["kid_in_jwks"] as? Bool == true)
        #expect(summary["access_token_typ"] as? String == "at+jwt")
        let claims = try #require(summary["claims"] as? [String: Any])
        #expect(claims["iss"] as? String == idp.issuer)
        #expect(claims["amr"] as? [String] == ["pwd"])
    }

    @Test(
        "a service gets a client_credentials token whose aud is the configured audience, and moto assumes a role with it"
    )
    func clientCredentials() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "deploy")
        let basic = Data("\(idp.serviceClientID):\(idp.serviceClientSecret)".utf8).base64EncodedString()
        let answer = try await idp.send(
            "POST", "/token", headers: ["Authorization": "Basic \(basic)"], form: [("grant_type", "client_credentials")]
        )
        #expect(answer.status == 200, "\(answer.text)")
        let token = try #require(try credentialJSON(answer.text)["access_token"] as? String)
        let claims = try Self.claims(token)
        #expect(claims["aud"] as? String == "sts.amazonaws.com")
        #expect(claims["sub"] as? String == "deployer")
        #expect(claims["scope"] as? String == "deploy")

        let harness = try KeylessHarness(moto: moto)
        let sts = try harness.runProgram(
            "aws",
            [
                "sts", "assume-role-with-web-identity", "--role-arn", role, "--role-session-name", "deployer",
                "--web-identity-token", token, "--query", "AssumedRoleUser.Arn", "--output", "text",
            ])
        #expect(sts.status == 0, "\(sts)")
        #expect(
            sts.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/deploy/deployer")
    }

    @Test("publish writes the discovery document and JWKS at the paths AWS fetches, equal to what the server serves")
    func publish() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let out = idp.directory + "/site"
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.runProgram(
            try EmbeddedIdP.keylessCLI(), ["idp", "publish", "--out", out] + idp.storeArguments,
            extra: idp.storeEnvironment)
        #expect(run.status == 0, "\(run)")
        let discovery = try credentialJSON(
            try String(contentsOfFile: out + "/.well-known/openid-configuration", encoding: .utf8))
        #expect(discovery["issuer"] as? String == idp.issuer)
        #expect(discovery["jwks_uri"] as? String == idp.issuer + "/jwks.json")
        let published = try credentialJSON(try String(contentsOfFile: out + "/jwks.json", encoding: .utf8))
        let served = try credentialJSON(try await idp.send("GET", "/jwks.json").text)
        let kids = { (jwks: [String: Any]) in
            ((jwks["keys"] as? [[String: Any]]) ?? []).compactMap { $0["kid"] as? String }.sorted()
        }
        #expect(!kids(published).isEmpty)
        #expect(kids(published) == kids(served))
    }

    @Test("SIGTERM stops keyless idp gracefully: exit status 0 and a stopped line in its JSON log")
    func gracefulShutdown() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let status = idp.stop()
        #expect(status == 0, "\(idp.process.logTail())")
        let lines = idp.process.log().split(separator: "\n")
        #expect(
            lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil },
            "every log line is JSON")
        #expect(lines.contains { $0.contains("\"msg\":\"stopped\"") }, "\(idp.process.logTail())")
    }
}
