import Foundation
import KeylessTestSupport
import Testing

/// keyless server's web page as a person uses it, in headless Chromium (scripts/partners/web_page_check.py): signed in
/// through keyless idp, with moto as AWS and the federation stub as the AWS sign-in service, all on 127.0.0.1.
@Suite("web page in Chromium", .serialized)
struct WebPageTests {
    static let developerArn = "arn:aws:iam::123456789012:role/developer"
    static let policy = """
        defaults:
          region: eu-west-1
          credentials: server
        accounts:
          - id: "123456789012"
            alias: sandbox
          - id: "210987654321"
            alias: production
        roles:
          - arn: \(developerArn)
            description: Build and test in the sandbox account
          - arn: arn:aws:iam::123456789012:role/deployer
            description: Deploy services & run migrations
            max_session: 30m
          - arn: arn:aws:iam::210987654321:role/read-only
            description: Read production dashboards and logs
            mfa_required: true
          - arn: arn:aws:iam::210987654321:role/admin
            description: Administer production
            mfa_required: true
        grants:
          - groups: [developers]
            roles: [sandbox/developer, sandbox/deployer, production/read-only]
          - groups: [admins]
            roles: ["production/*"]
        """

    /// Width and height of a PNG file (its IHDR chunk), or nil if it is not a PNG.
    static func pngSize(_ path: String) -> (Int, Int)? {
        guard let data = FileManager.default.contents(atPath: path), data.count >= 24,
            data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        else { return nil }
        let be = { (offset: Int) in data[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) } }
        return (be(16), be(20))
    }

    @Test(
        """
        alice signs in through keyless idp in Chromium, sees her roles by account, gets shell credentials that botocore uses \
        against moto, is refused an MFA role with the reason shown, opens the console through the federation stub and signs \
        out; forged POSTs get 403; the page passes accessibility basics and works with JavaScript off
        """)
    func webPageInChromium() async throws {
        guard Tooling.browserLoginAvailable(), let venvPython = Tooling.venvPython() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        // The provider's client for the page names the server's redirect URI, so the server's port comes first.
        let serverPort = try freePort()
        let idp = try await EmbeddedIdP.start(extraClients: EmbeddedIdP.webPageClient(serverPort: serverPort))
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let federation = try await FederationStub.start(stsEndpoint: moto.endpoint)
        defer { federation.stop() }
        let serverYAML = """
            listen: 127.0.0.1:PORT
            policy: policy.yaml
            audit_log: audit.log
            issuers:
              - issuer: \(idp.issuer)
                audiences: [\(idp.clientID), keyless-web]
                client_id: \(idp.clientID)
            web:
              client_id: keyless-web
            aws:
              region: us-east-1
              sts_endpoint: \(moto.endpoint)
            console:
              federation_endpoint: \(federation.endpoint)
              destination: \(federation.baseURL)/console
            """
        let server = try await AccessServer.start(
            serverYAML: serverYAML, policyYAML: Self.policy,
            environment: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"], port: serverPort)
        defer { server.stopAndRemove() }
        #expect(server.port == serverPort)
        let out = try makeTemporaryDirectory(prefix: "keyless-web-screenshots")
        defer { try? FileManager.default.removeItem(atPath: out) }

        let callerArn = "arn:aws:sts::123456789012:assumed-role/developer/alice@example.com"
        let run = try PartnerProcess.run(
            venvPython,
            [
                repositoryRoot() + "/scripts/partners/web_page_check.py", server.baseURL, "--out", out,
                "--sts-endpoint", moto.endpoint, "--federation", federation.baseURL, "--python", Tooling.python(),
                "--role", "developer in sandbox", "--refused-role", "read-only in production",
                "--expect-account", "production (210987654321)=read-only",
                "--expect-account", "sandbox (123456789012)=deployer,developer",
                "--expect-configure",
                "keyless configure --config-url \(server.baseURL) --issuer-url \(idp.issuer) --client-id \(idp.clientID)",
                "--expect-arn", callerArn,
            ],
            environment: [
                "KEYLESS_TEST_USER": EmbeddedIdPUser.alice.name,
                "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.alice.password,
            ], timeout: 240)
        #expect(run.status == 0, "\(run.output)\n--- server log\n\(server.process.logTail(20))")
        #expect(!run.output.contains(EmbeddedIdPUser.alice.password), "the script printed the password")

        let summaryText = try String(contentsOfFile: out + "/summary.json", encoding: .utf8)
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(summaryText.utf8)) as? [String: Any])
        #expect(summary["passed"] as? Bool == true, "\(run.output)")
        #expect(summary["caller_arn"] as? String == callerArn)
        #expect(summary["region"] as? String == "eu-west-1")
        #expect(summary["console_path"] as? String == "/federation")
        let checks = summary["checks"] as? [String] ?? []
        #expect(checks.contains { $0.hasPrefix("forged POST with no CSRF value: 403") }, "\(checks)")
        #expect(checks.contains { $0.hasPrefix("without JavaScript:") }, "\(checks)")

        // The federation stub saw exactly one console sign-in, with credentials STS (moto) accepted for the role.
        let stats = try await federation.stats()
        #expect(stats["getSigninToken"] as? Int == 1)
        #expect(stats["login"] as? Int == 1)
        #expect(stats["refused"] as? Int == 0)
        #expect(stats["last_arn"] as? String == callerArn)

        // Every grant is audited once; the forged POSTs were refused before any decision, so they left no record.
        let records = try server.auditRecords()
        let granted = { (action: String) in
            records.filter { $0["action"] as? String == action && $0["outcome"] as? String == "granted" }
        }
        // Shell credentials: the JavaScript run, its control POST with the page's CSRF value, and the JavaScript-off run.
        #expect(granted("credentials").count == 3, "\(records)")
        #expect(granted("console").count == 1, "\(records)")
        #expect(
            (granted("credentials") + granted("console")).allSatisfy { $0["role"] as? String == Self.developerArn },
            "\(records)")
        // The MFA role alice asked for without a second factor: one denial.
        let denied = records.filter { $0["outcome"] as? String == "denied" }
        #expect(
            denied.count == 1 && denied.first?["role"] as? String == "arn:aws:iam::210987654321:role/read-only",
            "\(records)")
        #expect(records.count == 5, "\(records)")
        #expect(records.allSatisfy { $0["name"] as? String == "alice@example.com" }, "\(records)")

        let screenshots = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".png") }
            .sorted()
        #expect(
            screenshots == [
                "01-sign-in.png", "02-roles.png", "03-credentials.png", "04-refused.png", "05-console.png",
                "06-signed-out.png",
                "07-roles-no-javascript.png",
            ])
        for name in screenshots {
            let size = Self.pngSize(out + "/" + name)
            #expect(size.map { $0 == (1280, 800) } == true, "\(name) is \(String(describing: size))")
        }
    }
}
