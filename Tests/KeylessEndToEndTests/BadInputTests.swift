import Foundation
import KeylessTestSupport
import Testing

/// Bad input gets a clear error or a clean re-login; nothing crashes and no file is left half-written.
@Suite("bad input and failures", .serialized)
struct BadInputTests {
    func entries(_ harness: KeylessHarness, prefix: String, store: String = "store") throws -> [String] {
        let directory = harness.stateDirectory + "/" + store
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(prefix) }.map {
            directory + "/" + $0
        }
    }

    @Test("a truncated or corrupted credentials cache is replaced cleanly, with a warning")
    func corruptedCache() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        let arguments = harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"])
        #expect(try harness.run(arguments).status == 0)
        let entry = try #require(try entries(harness, prefix: "sts.").first)
        for damage in [0, 40, 400] {
            let bytes = try Data(contentsOf: URL(fileURLWithPath: entry))
            var damaged = bytes.prefix(damage)
            if damage == 400 { damaged = bytes; damaged[damaged.count - 10] ^= 0x55 }  // a flipped ciphertext byte
            try damaged.write(to: URL(fileURLWithPath: entry))
            let run = try harness.run(arguments)
            #expect(run.status == 0, "damage \(damage): \(run)")
            #expect(run.stderr.contains("It will be replaced"), "damage \(damage): \(run)")
            #expect(try credentialJSON(run.stdout)["AccessKeyId"] is String)
        }
        // The replacement is whole: the next call is served from it without STS.
        let before = try partners.moto.stsPostCount()
        #expect(try harness.run(arguments).status == 0)
        #expect(try partners.moto.stsPostCount() == before)
        #expect(try entries(harness, prefix: ".").isEmpty, "no temporary files are left behind")
    }

    @Test("a cache file readable by others is refused with the chmod to fix it, and left untouched")
    func loosePermissions() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        let arguments = harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"])
        #expect(try harness.run(arguments).status == 0)
        let entry = try #require(try entries(harness, prefix: "sts.").first)
        let before = try Data(contentsOf: URL(fileURLWithPath: entry))
        chmod(entry, 0o644)
        let run = try harness.run(arguments)
        #expect(run.status == 6, "\(run)")
        #expect(run.stderr.contains("chmod 600"), "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(try Data(contentsOf: URL(fileURLWithPath: entry)) == before)
    }

    @Test("STS down gives exit 5 and a clear message; the login survives")
    func stsDown() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        let deadPort = try freePort()
        let run = try harness.run(
            harness.credsProcessArguments(
                partners.idp, roleArn: partners.roleArn,
                extra: ["--no-browser", "--sts-endpoint", "http://127.0.0.1:\(deadPort)"]))
        #expect(run.status == 5, "\(run)")
        #expect(run.stderr.contains("Cannot reach AWS STS"), "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(try harness.run(["status"]).stdout.contains("alice@example.com"))
    }

    @Test("the identity provider down when a refresh is due gives exit 5 and a clear message, and keeps the tokens")
    func idpDown() async throws {
        // 100 s ID tokens are inside the 120 s refresh margin, so the next creds-process must reach the provider.
        let partners = try await Partners.start(accessTTL: 100)
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        partners.idp.stop()
        let run = try harness.run(
            harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"]))
        #expect(run.status == 5, "\(run)")
        #expect(run.stderr.contains("Cannot reach the identity provider"), "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(
            try harness.run(["status"]).stdout.contains("alice@example.com"),
            "the login is kept for when the provider is back")
    }

    @Test(
        "a forged redirect with the wrong state is ignored: its code is never used, and the real login that follows completes"
    )
    func forgedCallbackIgnored() async throws {
        guard Tooling.browserLoginAvailable() else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return
        }
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        let port = partners.idp.redirectPort
        // Another local process calls the callback first with a made-up state and code; then the person's browser logs in.
        let browser = Tooling.browserLoginCommand(user: "alice", password: "alice-password-1")
        let forger =
            "curl -s -o /dev/null -w 'forged callback answered %{http_code}\\n' 'http://127.0.0.1:\(port)/callback?code=stolen&state=forged' >&2; "
        let run = try harness.run(
            [
                "login", "--issuer-url", partners.idp.issuer, "--client-id", partners.idp.clientID,
                "--redirect-port", String(port), "--browser", forger + browser.command, "--timeout", "90",
            ],
            extra: browser.environment)
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("forged callback answered 400"), "\(run)")
        #expect(run.stderr.contains("Logged in as alice@example.com"), "\(run)")
        #expect(try entries(harness, prefix: "oidc.").count == 1)
    }

    @Test(
        "login --no-browser with no terminal at all (setsid, stdin /dev/null) prints the URL on stderr, waits, and completes when it is followed"
    )
    func noBrowserWithoutTerminal() async throws {
        guard Tooling.browserLoginAvailable(), Tooling.have("setsid") else {
            Issue.record("Chromium, the Playwright venv or setsid is missing: run scripts/test, which installs them")
            return
        }
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        // No KEYLESS_NO_TTY: setsid leaves keyless without a controlling terminal, so /dev/tty really cannot be opened.
        harness.environment.removeValue(forKey: "KEYLESS_NO_TTY")
        let login = try harness.start(
            "setsid",
            [
                "-w", harness.binary, "login", "--issuer-url", partners.idp.issuer, "--client-id",
                partners.idp.clientID,
                "--redirect-port", String(partners.idp.redirectPort), "--no-browser", "--timeout", "120",
            ])
        let url = try login.waitForStderr("open this URL in a browser:\\s+(\\S+)", timeout: 60)
        #expect(url.hasPrefix(partners.idp.issuer), "\(url)")
        let browser = Tooling.browserLoginCommand(user: "alice", password: "alice-password-1")
        let followed = try harness.runProgram(
            "/bin/sh", ["-c", browser.command + " \"$1\"", "browser", url], extra: browser.environment, timeout: 120)
        #expect(followed.status == 0, "\(followed)")
        let run = try login.wait(timeout: 60)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("Logged in as alice@example.com"), "\(run)")
        // A credential_process call still never waits for a person it cannot show the URL to: the AWS CLI hides its stderr.
        let logout = try harness.run([
            "logout", "--issuer-url", partners.idp.issuer, "--client-id", partners.idp.clientID,
        ])
        #expect(logout.status == 0, "\(logout)")
        let creds = try harness.runProgram(
            "setsid",
            ["-w", harness.binary]
                + harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"]),
            timeout: 60)
        #expect(creds.status == 3, "\(creds)")
    }

    @Test("no secret reaches stderr even at the most verbose log level")
    func noSecretsInLogs() async throws {
        let partners = try await Partners.start(accessTTL: 100)
        defer { partners.stop() }
        // The plaintext store lets the test read the refresh token it must not find in the logs.
        let harness = try KeylessHarness(
            moto: partners.moto, extra: ["KEYLESS_SECRET_STORE": "plaintext", "KEYLESS_LOG_LEVEL": "trace"])
        let login = try await harness.deviceLogin(partners.idp, extraArguments: ["-vvv"])
        #expect(login.status == 0, "\(login)")
        let creds = try harness.run(
            harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser", "-vvv"]))
        #expect(creds.status == 0, "\(creds)")
        let token = try harness.run([
            "token", "--issuer-url", partners.idp.issuer, "--client-id", partners.idp.clientID, "-vvv",
        ])
        let json = try credentialJSON(creds.stdout)
        let tokenEntry = try #require(try entries(harness, prefix: "oidc.", store: "store-plaintext").first)
        let sealed = try String(contentsOfFile: tokenEntry, encoding: .utf8).split(separator: "\n")[1]
        let tokens = try credentialJSON(
            String(decoding: try #require(Data(base64Encoded: String(sealed))), as: UTF8.self))
        let secrets = [
            json["SecretAccessKey"] as? String, json["SessionToken"] as? String,
            tokens["refreshToken"] as? String, tokens["idToken"] as? String, tokens["accessToken"] as? String,
            token.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
        ].compactMap { $0 }.filter { $0.count > 8 }
        #expect(secrets.count >= 5, "the test must have found the secrets it looks for")
        let stderr = login.stderr + creds.stderr + token.stderr
        #expect(stderr.contains("trace") || stderr.contains("debug"), "the most verbose level must really log")
        for secret in secrets {
            #expect(!stderr.contains(secret), "a secret reached stderr")
            #expect(!stderr.contains(String(secret.prefix(24))), "part of a secret reached stderr")
        }
    }

    @Test("logout removes tokens and credentials and says that glewlwyd cannot revoke")
    func logout() async throws {
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        #expect(try await harness.deviceLogin(partners.idp).status == 0)
        #expect(
            try harness.run(
                harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"])
            ).status == 0)
        let run = try harness.run(["logout", "--issuer-url", partners.idp.issuer, "--client-id", partners.idp.clientID])
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("no revocation endpoint"), "\(run)")
        #expect(try entries(harness, prefix: "sts.").isEmpty && (try entries(harness, prefix: "oidc.")).isEmpty)
        #expect(try harness.run(["status"]).stdout.contains("nothing cached"))
    }
}
