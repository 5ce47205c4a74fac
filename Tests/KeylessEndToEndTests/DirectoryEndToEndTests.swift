import Foundation
import KeylessTestSupport
import KeylessWire
import Testing

/// `keyless idp serve` on an organisation's OpenLDAP directory (slapd, started by the test): a person signs in with
/// the directory's password in headless Chromium, the access server grants roles by the directory's groups, the AWS
/// CLI gets credentials from moto, and what the directory says later (a group removed, the person deleted, the
/// directory down) counts at the next refresh.
@Suite("keyless idp on an LDAP directory, end to end", .serialized)
struct DirectoryEndToEndTests {
    static let deployRole = "arn:aws:iam::123456789012:role/deploy"
    static let adminRole = "arn:aws:iam::123456789012:role/admin"

    /// The directory's groups, with the connector's prefix, decide: developers deploy, admins administer.
    static let policyYAML = """
        defaults:
          region: us-east-1
        accounts:
          - id: "123456789012"
            alias: demo
        roles:
          - arn: \(deployRole)
            description: Deployments, issued by the server
            credentials: server
          - arn: \(adminRole)
            description: Administrator, issued by the server
            credentials: server
        grants:
          - groups: ["corp:developers"]
            roles: [demo/deploy]
          - groups: ["corp:admins"]
            roles: [demo/admin]
        """

    /// The connectors idp.yaml gains: its own users, then the directory over StartTLS. ID tokens live 120 s, inside
    /// the CLI's 120 s margin, so every `keyless` command refreshes (what an hour later would do).
    static func connectorsYAML(_ slapd: SlapdServer, passwordFile: String) -> String {
        """
        lifetimes:
          id_token: 120
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
        """
    }

    /// slapd with the service account's password in a 0600 file, and keyless idp with the directory connector
    /// (`extra` appended to the connector's settings); both stopped by PID after `body`.
    func withDirectory(extra: String = "", _ body: (SlapdServer, EmbeddedIdP) async throws -> Void) async throws {
        let slapd = try await SlapdServer.start()
        defer { slapd.stopAndRemove() }
        let passwordFile = try slapd.bindPasswordFile()
        let idp = try await EmbeddedIdP.start(
            extraTopLevel: Self.connectorsYAML(slapd, passwordFile: passwordFile) + extra)
        defer { idp.stopAndRemove() }
        try await body(slapd, idp)
    }

    @Test(
        "a directory login in Chromium gives prefixed groups, the access server grants by them and the AWS CLI gets the role; a group removed loses its role at the next refresh, a deleted person's refresh is refused, a stopped directory is a clear page error"
    )
    func directoryLogin() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        try await withDirectory { slapd, idp in
            let moto = try await MotoServer.start()
            defer { moto.stop() }
            for name in ["deploy", "admin"] { _ = try await moto.createRole(name: name) }
            let server = try await AccessServer.start(
                serverYAML: """
                    listen: 127.0.0.1:PORT
                    policy: policy.yaml
                    audit_log: audit.log
                    issuers:
                      - issuer: \(idp.issuer)
                        audiences: [\(idp.clientID)]
                    aws:
                      region: us-east-1
                      sts_endpoint: \(moto.endpoint)
                    """, policyYAML: Self.policyYAML,
                environment: [
                    "AWS_ACCESS_KEY_ID": "server-testing", "AWS_SECRET_ACCESS_KEY": "server-testing",
                    "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent/keyless-server-config",
                    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-server-credentials",
                ])
            defer { server.stopAndRemove() }
            let harness = try KeylessHarness(moto: moto)
            let provider = ["--issuer-url", idp.issuer, "--client-id", idp.clientID]

            // The login page offers the directory; alice signs in with the directory's password.
            var browser = Tooling.browserLoginCommand(user: "alice", password: "Passw0rd-A1")
            browser.environment["KEYLESS_TEST_CONNECTOR"] = "corp"
            let login = try harness.run(["login", "--browser", browser.command] + provider, extra: browser.environment)
            try #require(login.status == 0, "\(login)\n\(idp.process.logTail(20))")
            #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")

            let token = try harness.run(["token", "--json", "--no-browser"] + provider)
            try #require(token.status == 0, "\(token)")
            let claims = try EmbeddedIdPEndToEndTests.claims(
                try #require(try credentialJSON(token.stdout)["id_token"] as? String))
            #expect((claims["sub"] as? String)?.hasPrefix("corp:") == true, "\(claims)")
            #expect(claims["groups"] as? [String] == ["corp:admins", "corp:developers"])
            #expect(claims["name"] as? String == "Alice Test")

            // The access server grants by the directory's groups; the AWS CLI runs the written profile.
            let configure = try harness.run(
                ["configure", "--all-roles", "--yes", "--config-url", server.baseURL, "--no-browser"] + provider)
            try #require(configure.status == 0, "\(configure)")
            let arn = try harness.runProgram(
                "aws", ["sts", "get-caller-identity", "--profile", "demo-deploy", "--query", "Arn", "--output", "text"])
            #expect(arn.status == 0, "\(arn)")
            #expect(
                arn.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                    == "arn:aws:sts::123456789012:assumed-role/deploy/alice@example.com")

            // Removed from developers in the directory: the next refresh's token, and so the server, no longer say so.
            try slapd.modify(
                """
                dn: cn=developers,ou=groups,dc=example,dc=com
                changetype: modify
                delete: member
                member: uid=alice,ou=people,dc=example,dc=com

                """)
            let roles = try harness.run(["roles", "--json", "--config-url", server.baseURL, "--no-browser"] + provider)
            try #require(roles.status == 0, "\(roles)")
            let document = try JSONDecoder().decode(ServerConfigDocument.self, from: Data(roles.stdout.utf8))
            #expect(document.caller.groups == ["corp:admins"])
            #expect(document.allRoles.map(\.role.arn) == [Self.adminRole])

            // Deleted from the directory: the refresh is refused with the reason, and no login happens in its place.
            try slapd.modify(
                """
                dn: uid=alice,ou=people,dc=example,dc=com
                changetype: delete

                """)
            let refused = try harness.run(["token", "--no-browser"] + provider)
            #expect(refused.status != 0, "\(refused)")
            #expect(refused.stderr.contains("no longer exists in the directory"), "\(refused)")

            // The directory stopped: the login page says so (503), and nobody is signed in from what it said before.
            slapd.stop()
            let page = try await idp.send(
                "GET",
                "/authorize?response_type=code&client_id=\(idp.clientID)&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
            )
            #expect(page.text.contains("<option value=\"corp\">Example Corp directory</option>"), "\(page.text)")
            let binding = try #require(EmbeddedIdP.cookie("keyless_csrf", in: page.headers["set-cookie"] ?? ""))
            var fields: [(String, String)] = []
            for name in [
                "csrf", "response_type", "client_id", "redirect_uri", "scope", "code_challenge",
                "code_challenge_method",
            ] {
                fields.append((name, try #require(EmbeddedIdP.formField(name, in: page.text), "no \(name) field")))
            }
            fields += [("connector", "corp"), ("username", "bob"), ("password", "Passw0rd-B1"), ("action", "login")]
            let answer = try await idp.send(
                "POST", "/authorize", headers: ["Cookie": "keyless_csrf=\(binding)"], form: fields)
            #expect(answer.status == 503, "\(answer.status) \(answer.text.prefix(400))")
            #expect(answer.text.contains("Sign-in cannot reach Example Corp directory right now"), "\(answer.text)")
            #expect(answer.headers["location"] == nil)
            #expect(idp.process.logTail(40).contains("directory_unavailable"))
        }
    }

    @Test(
        "AWS claims from the directory: the ID token carries the session tags and source identity, explain shows them and needs sts:TagSession (bootstrap --session-tags allows it), and STS receives them"
    )
    func awsClaims() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        // Appended to the directory connector's settings (indented as they are).
        let aws = """

                aws:
                  principal_tags: {CostCenter: uidNumber, Team: givenName}
                  transitive_tag_keys: [CostCenter]
                  source_identity: uid
            """
        try await withDirectory(extra: aws) { _, idp in
            let moto = try await MotoServer.start()
            defer { moto.stop() }
            let harness = try KeylessHarness(moto: moto)
            let provider = ["--issuer-url", idp.issuer, "--client-id", idp.clientID]
            let admin = ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
            for (role, flags) in [("tagged", ["--session-tags"]), ("plain", [])] {
                let bootstrap = try harness.run(
                    [
                        "bootstrap", "apply", "--yes", "--issuer", "keyless-idp", "--issuer-url", idp.issuer, "--role",
                        role,
                    ]
                        + flags, extra: admin)
                try #require(bootstrap.status == 0, "\(bootstrap)")
            }

            var browser = Tooling.browserLoginCommand(user: "alice", password: "Passw0rd-A1")
            browser.environment["KEYLESS_TEST_CONNECTOR"] = "corp"
            let login = try harness.run(["login", "--browser", browser.command] + provider, extra: browser.environment)
            try #require(login.status == 0, "\(login)")
            let token = try harness.run(["token", "--no-browser"] + provider)
            try #require(token.status == 0, "\(token)")
            let idToken = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let claims = try EmbeddedIdPEndToEndTests.claims(idToken)
            let tags = try #require(claims["https://aws.amazon.com/tags"] as? [String: Any], "\(claims)")
            #expect(tags["principal_tags"] as? [String: [String]] == ["CostCenter": ["10001"], "Team": ["Alice"]])
            #expect(tags["transitive_tag_keys"] as? [String] == ["CostCenter"])
            #expect(claims["https://aws.amazon.com/source_identity"] as? String == "alice")

            // explain: the tagged role allows sts:TagSession and sts:SetSourceIdentity; the plain one lacks them.
            let tokenFile = harness.home + "/alice.jwt"
            try idToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let allowed = try harness.run(
                ["explain", "--role-arn", "arn:aws:iam::123456789012:role/tagged", "--token-file", tokenFile],
                extra: admin)
            #expect(allowed.status == 0, "\(allowed)")
            #expect(allowed.stdout.contains("ALLOWED by"), "\(allowed)")
            #expect(
                allowed.stdout.contains(
                    "The token sets session tags CostCenter=10001, Team=Alice (transitive: CostCenter): sts:TagSession is allowed too."
                ), "\(allowed)")
            #expect(
                allowed.stdout.contains("source identity alice: sts:SetSourceIdentity is allowed too"), "\(allowed)")
            let denied = try harness.run(
                ["explain", "--role-arn", "arn:aws:iam::123456789012:role/plain", "--token-file", tokenFile],
                extra: admin)
            #expect(denied.status == 4, "\(denied)")
            #expect(denied.stdout.contains("no statement allows sts:TagSession"), "\(denied)")

            // STS receives the tags in the token (moto's request record).
            try await moto.startRecording()
            let line =
                (["creds-process", "--aws-role-arn", "arn:aws:iam::123456789012:role/tagged", "--no-browser"]
                + provider).joined(separator: " ")
            try "[profile tagged]\nregion = us-east-1\ncredential_process = \(harness.binary) \(line)\n".write(
                toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
            let arn = try harness.runProgram(
                "aws", ["sts", "get-caller-identity", "--profile", "tagged", "--query", "Arn", "--output", "text"])
            #expect(arn.status == 0, "\(arn)")
            let assumed = try await moto.recordedForms().filter { $0["Action"] == "AssumeRoleWithWebIdentity" }
            let sent = try #require(assumed.last?["WebIdentityToken"], "moto recorded no AssumeRoleWithWebIdentity")
            let sentClaims = try EmbeddedIdPEndToEndTests.claims(sent)
            let sentTags = try #require(sentClaims["https://aws.amazon.com/tags"] as? [String: Any])
            #expect(sentTags["principal_tags"] as? [String: [String]] == ["CostCenter": ["10001"], "Team": ["Alice"]])
            #expect(assumed.last?["RoleArn"] == "arn:aws:iam::123456789012:role/tagged")
        }
    }
}
