import Foundation
import KeylessIdP
import KeylessTestSupport
import Testing

/// Just-in-time access with the built binaries: keyless idp signs people in, `keyless server` keeps requests in its
/// store (SQLite, or one PostgreSQL for two replicas), moto is AWS, the federation stub the AWS sign-in service, and an
/// approver decides in headless Chromium (scripts/partners/access_request_browser.py).
@Suite("access requests end to end: request, approve in Chromium, use, end", .serialized)
struct AccessRequestEndToEndTests {
    static let adminArn = "arn:aws:iam::123456789012:role/admin"
    /// The README's example (alice, in developers, may have prod/admin on request; bob, in admins, approves): what the
    /// README shows is what runs here.
    static func policy() throws -> String { try readmeExample("on-request-policy") }

    static let serverEnvironment = [
        "AWS_ACCESS_KEY_ID": "server-testing", "AWS_SECRET_ACCESS_KEY": "server-testing", "AWS_SESSION_TOKEN": "",
        "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent/keyless-server-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-server-credentials",
    ]

    /// server.yaml for these partners; with `web`, the web page signs in as `keyless-web`.
    static func serverYAML(
        idp: EmbeddedIdP, moto: MotoServer, federation: FederationStub, web: Bool = true, extra: String = ""
    ) -> String {
        """
        listen: 127.0.0.1:PORT
        policy: policy.yaml
        audit_log: audit.log
        issuers:
          - issuer: \(idp.issuer)
            audiences: [\(idp.clientID), keyless-web]
            client_id: \(idp.clientID)
        \(web ? "web:\n  client_id: keyless-web" : "")
        aws:
          region: us-east-1
          sts_endpoint: \(moto.endpoint)
        console:
          federation_endpoint: \(federation.endpoint)
          destination: \(federation.baseURL)/console
        """ + "\n" + extra
    }

    /// `--server`, `--issuer-url` and `--client-id` for `server`.
    static func flags(_ server: AccessServer, _ idp: EmbeddedIdP) -> [String] {
        ["--server", server.baseURL, "--issuer-url", idp.issuer, "--client-id", idp.clientID]
    }

    /// A harness logged in as `user` with the device flow (bob answers his one-time code).
    static func loggedIn(_ user: EmbeddedIdPUser, idp: EmbeddedIdP, moto: MotoServer) async throws -> KeylessHarness {
        let harness = try KeylessHarness(moto: moto)
        let login = try harness.start(
            nil, ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--device"])
        let code = try login.waitForStderr("enter the code ([A-Z0-9-]+)")
        let otp = user.totpSecret.flatMap(TOTP.base32Decode).map { TOTP.code(secret: $0, at: Date()) }
        try await idp.approveDevice(userCode: code, user: user, otp: otp)
        let result = try login.wait(timeout: 60)
        guard result.status == 0 else { throw TestSupportError("\(user.name)'s device login failed: \(result)") }
        return harness
    }

    /// The request id `keyless request` printed.
    static func requestID(_ run: KeylessHarness.Run) throws -> String {
        let match = try #require(run.stdout.firstMatch(of: /request ([a-z2-7]{10}),/), "\(run)")
        return String(match.1)
    }

    @Test(
        """
        alice is refused prod/admin before approval and told how to ask; `keyless request` asks with a reason; bob sees it \
        and approves on the web page in Chromium; alice's creds-process --server and console link then work; she cannot \
        approve her own second request, bob denies it with a reason she is shown; she ends her grant early and the server \
        refuses new credentials, saying so; every step is in the audit log
        """)
    func requestApproveUseEnd() async throws {
        guard Tooling.browserLoginAvailable(), let venvPython = Tooling.venvPython() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let serverPort = try freePort()
        let idp = try await EmbeddedIdP.start(extraClients: EmbeddedIdP.webPageClient(serverPort: serverPort))
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        _ = try await moto.createRole(name: "admin")
        let federation = try await FederationStub.start(stsEndpoint: moto.endpoint)
        defer { federation.stop() }
        // The webhook: a receiver that checks each signature with Python's hmac and answers the first delivery 503 once.
        let hooks = try makeTemporaryDirectory(prefix: "keyless-webhook")
        defer { try? FileManager.default.removeItem(atPath: hooks) }
        let key = hooks + "/webhook.key"
        FileManager.default.createFile(
            atPath: key, contents: Data("e2e-webhook-key-\(UUID().uuidString)\n".utf8),
            attributes: [.posixPermissions: 0o600])
        let hookPort = try freePort()
        let receiver = try PartnerProcess(
            executable: Tooling.python(),
            arguments: [
                repositoryRoot() + "/scripts/partners/webhook_receiver.py", String(hookPort), key,
                hooks + "/events.jsonl",
                "--fail-first", "1",
            ], logPath: hooks + "/receiver.log")
        defer { receiver.stop() }
        #expect(try await receiver.waitUntilHealthy("http://127.0.0.1:\(hookPort)/health", timeout: 30))
        let webhook = """
            requests:
              webhook:
                url: http://127.0.0.1:\(hookPort)/hook
                secret_file: \(key)
                timeout: 5s
            """
        let server = try await AccessServer.start(
            serverYAML: Self.serverYAML(idp: idp, moto: moto, federation: federation, extra: webhook),
            policyYAML: try Self.policy(), environment: Self.serverEnvironment, port: serverPort)
        defer { server.stopAndRemove() }
        let alice = try await Self.loggedIn(.alice, idp: idp, moto: moto)
        let flags = Self.flags(server, idp)
        let credsProcess = ["creds-process"] + flags + ["--aws-role-arn", Self.adminArn]

        let before = try alice.run(credsProcess)
        #expect(before.status != 0, "\(before)")
        #expect(before.stderr.contains("approval_required"), "\(before)")
        #expect(before.stderr.contains("keyless request prod/admin"), "\(before)")

        let roles = try alice.run(["roles"] + flags)
        #expect(roles.stdout.contains("on request (up to 2 h, approved by admins)"), "\(roles)")

        let asked = try alice.run(
            ["request", "prod/admin", "--for", "1h", "--reason", "INC-7: rotate the TLS keys"] + flags)
        #expect(asked.status == 0, "\(asked)")
        let id = try Self.requestID(asked)
        let waiting = try alice.run(["requests"] + flags)
        #expect(waiting.stdout.contains("\(id)  prod/admin for 1 h: waiting for an approver"), "\(waiting)")

        // bob approves on the web page.
        let screenshot = ProcessInfo.processInfo.environment["KEYLESS_REQUESTS_SCREENSHOT"]
        let out = try makeTemporaryDirectory(prefix: "keyless-requests-browser")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let browser = try PartnerProcess.run(
            venvPython,
            [
                repositoryRoot() + "/scripts/partners/access_request_browser.py", server.baseURL, id, "approve",
                "--reason", "go ahead, keep it short", "--screenshot", screenshot ?? (out + "/approve.png"),
            ],
            environment: [
                "KEYLESS_TEST_USER": EmbeddedIdPUser.bob.name, "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.bob.password,
                "KEYLESS_TEST_TOTP_SECRET": EmbeddedIdPUser.bob.totpSecret!,
            ], timeout: 150)
        #expect(browser.status == 0, "\(browser.output)\n--- server log\n\(server.process.logTail(20))")
        #expect(!browser.output.contains(EmbeddedIdPUser.bob.password))
        #expect(browser.output.contains("INC-7: rotate the TLS keys"), "the row shows the reason: \(browser.output)")
        #expect(browser.output.contains("alice@example.com"), "\(browser.output)")

        let granted = try alice.run(credsProcess)
        #expect(granted.status == 0, "\(granted)")
        #expect(granted.stdout.contains("\"AccessKeyId\""), "\(granted)")
        let console = try alice.run(["console", "--print"] + flags + ["--aws-role-arn", Self.adminArn])
        #expect(console.status == 0, "\(console)")
        #expect(console.stdout.hasPrefix(federation.endpoint + "?Action=login&"), "\(console)")
        let listed = try alice.run(["requests"] + flags)
        #expect(listed.stdout.contains("approved by bob@example.com, in force until"), "\(listed)")
        // configure writes the role's profile like any other, and the AWS CLI uses it while the grant holds.
        let configure = try alice.run(
            [
                "configure", "--all-roles", "--yes", "--config-url", server.baseURL, "--issuer-url", idp.issuer,
                "--client-id", idp.clientID,
            ])
        #expect(configure.status == 0, "\(configure)")
        let viaProfile = try alice.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", "prod-admin", "--query", "Arn", "--output", "text"])
        #expect(
            viaProfile.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/admin/alice@example.com", "\(viaProfile)")

        // A second request: alice may not approve it herself; bob denies it with a reason alice then reads.
        let again = try alice.run(["request", "prod/admin", "--reason", "more time"] + flags)
        #expect(again.status != 0 && again.stderr.contains("already_granted"), "one open grant per role: \(again)")
        let own = try alice.run(["approve", id] + flags)
        #expect(own.status != 0, "\(own)")
        #expect(own.stderr.contains("not_pending") || own.stderr.contains("self_approval_refused"), "\(own)")

        let ended = try alice.run(["revoke", id, "--reason", "keys rotated"] + flags)
        #expect(ended.status == 0, "\(ended)")
        #expect(ended.stdout.contains("ended early"), "\(ended)")
        let token = try alice.run(["token", "--issuer-url", idp.issuer, "--client-id", idp.clientID])
        let idToken = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let refused = try await server.send(
            "POST", "/api/v1/credentials", bearer: idToken, json: #"{"role_arn":"\#(Self.adminArn)"}"#)
        #expect(refused.status == 403, "\(refused.text)")
        #expect(refused.text.contains("was ended early"), "\(refused.text)")

        let second = try alice.run(["request", "prod/admin", "--reason", "one more change"] + flags)
        let secondID = try Self.requestID(second)
        let selfApproval = try alice.run(["approve", secondID] + flags)
        #expect(selfApproval.stderr.contains("self_approval_refused"), "\(selfApproval)")
        let denial = try PartnerProcess.run(
            venvPython,
            [
                repositoryRoot() + "/scripts/partners/access_request_browser.py", server.baseURL, secondID, "deny",
                "--reason", "change freeze until Monday",
            ],
            environment: [
                "KEYLESS_TEST_USER": EmbeddedIdPUser.bob.name, "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.bob.password,
                "KEYLESS_TEST_TOTP_SECRET": EmbeddedIdPUser.bob.totpSecret!,
                // The next period's code (one step of drift is accepted): this period's may be spent by the first sign-in.
                "KEYLESS_TEST_TOTP_OFFSET": "30",
            ], timeout: 150)
        #expect(denial.status == 0, "\(denial.output)")
        let told = try alice.run(["requests"] + flags)
        #expect(told.stdout.contains("denied by bob@example.com: change freeze until Monday"), "\(told)")

        // Each event reached the receiver signed; the first was answered 503, retried and delivered.
        let expectedEvents = [
            "request.created", "request.approved", "request.revoked", "request.created", "request.denied",
        ]
        var delivered: [[String: Any]] = []
        for _ in 0..<60 {
            let text = (try? String(contentsOfFile: hooks + "/events.jsonl", encoding: .utf8)) ?? ""
            delivered = text.split(separator: "\n").compactMap { line -> [String: Any]? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }
            if delivered.filter({ $0["answered"] as? Int == 204 }).count >= expectedEvents.count { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        let accepted = delivered.filter { $0["answered"] as? Int == 204 }
        // Deliveries are independent (a retried one may land after later events): compared as sets of events.
        #expect(accepted.compactMap { $0["event"] as? String }.sorted() == expectedEvents.sorted(), "\(delivered)")
        #expect(delivered.allSatisfy { $0["verified"] as? Bool == true }, "\(delivered)")
        #expect(delivered.first?["answered"] as? Int == 503, "\(delivered)")
        let retried = accepted.first { $0["delivery"] as? String == delivered.first?["delivery"] as? String }
        #expect(retried?["attempt"] as? Int == 2 && retried?["request"] as? String == id, "\(delivered)")

        let records = try server.auditRecords()
        let steps = records.filter { $0["action"] as? String == "access_request" }.map {
            $0["outcome"] as? String ?? ""
        }
        #expect(steps == ["requested", "approved", "revoked", "requested", "approve_refused", "denied"], "\(steps)")
        // Uses of the grant: credentials (creds-process, the profile) and the console link, each naming the request.
        let uses = records.filter {
            $0["access_request"] as? String == id && $0["action"] as? String != "access_request"
        }
        #expect(Set(uses.compactMap { $0["action"] as? String }) == ["credentials", "console"], "\(uses)")
        #expect(uses.allSatisfy { $0["outcome"] as? String == "granted" }, "\(uses)")
    }

    @Test(
        "two server replicas on one PostgreSQL: a request made through one is listed and approved through the other, and the grant holds at both"
    )
    func replicasShareRequests() async throws {
        let postgres = try await PostgresServer.start()
        defer { postgres.stop() }
        try postgres.createDatabase("requests")
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        _ = try await moto.createRole(name: "admin")
        let federation = try await FederationStub.start(stsEndpoint: moto.endpoint)
        defer { federation.stop() }
        let yaml = Self.serverYAML(
            idp: idp, moto: moto, federation: federation, web: false,
            extra: "requests:\n  store: \(postgres.url(database: "requests"))\n")
        let first = try await AccessServer.start(
            serverYAML: yaml, policyYAML: try Self.policy(), environment: Self.serverEnvironment)
        defer { first.stopAndRemove() }
        let second = try await AccessServer.start(
            serverYAML: yaml, policyYAML: try Self.policy(), environment: Self.serverEnvironment)
        defer { second.stopAndRemove() }
        let alice = try await Self.loggedIn(.alice, idp: idp, moto: moto)
        let bob = try await Self.loggedIn(.bob, idp: idp, moto: moto)

        let asked = try alice.run(
            ["request", "prod/admin", "--for", "30m", "--reason", "deploy 4.2"] + Self.flags(first, idp))
        #expect(asked.status == 0, "\(asked)")
        let id = try Self.requestID(asked)
        let seen = try bob.run(["requests"] + Self.flags(second, idp))
        #expect(seen.stdout.contains("Waiting for your approval"), "\(seen)")
        #expect(seen.stdout.contains("\(id)  prod/admin for 30 min, asked by alice@example.com"), "\(seen)")
        let approved = try bob.run(["approve", id, "--note", "ok"] + Self.flags(second, idp))
        #expect(approved.status == 0, "\(approved)")
        let twice = try bob.run(["approve", id] + Self.flags(first, idp))
        #expect(twice.stderr.contains("not_pending"), "decided once, whichever replica is asked: \(twice)")
        for server in [first, second] {
            let credentials = try alice.run(
                ["creds-process"] + Self.flags(server, idp) + ["--aws-role-arn", Self.adminArn])
            #expect(credentials.status == 0, "\(server.baseURL): \(credentials)")
        }
        let approvals =
            (try first.auditRecords() + second.auditRecords()).filter { $0["outcome"] as? String == "approved" }
        #expect(approvals.count == 1, "\(approvals)")
    }
}
