import Foundation
import KeylessIdP
import KeylessTestSupport
import Testing

/// The partners of the passkey suite, started once and stopped by PID after its last test: keyless idp (alice with a
/// password and a TOTP secret), moto as STS, and an access server with a role only a passkey sign-in gets. Before the
/// tests, alice adds two passkeys in headless Chromium (scripts/partners/passkey_browser.py, a virtual authenticator of
/// the DevTools WebAuthn domain): a device-bound security key, signing in with her password and one-time code, then a
/// synced passkey, signing in with the first one. The authenticators' keys are kept in files between browser runs.
final class PasskeyPartners: Sendable {
    let idp: EmbeddedIdP
    let moto: MotoServer
    let server: AccessServer
    /// The authenticators' files (their passkeys' private keys) and the screenshot; removed by `stop()`.
    let directory: String
    /// The first registration (device-bound, "YubiKey 5C") and the second (synced, "Work laptop").
    let securityKeyRegistration: KeylessHarness.Run
    let syncedRegistration: KeylessHarness.Run

    static let prodAdminRole = "arn:aws:iam::123456789012:role/prod-admin"
    static let devRole = "arn:aws:iam::123456789012:role/dev"
    /// alice's TOTP secret (base32 of "Hello!\xde\xad\xbe\xef").
    static let aliceTOTP = "JBSWY3DPEHPK3PXP"

    /// The partners of the running suite (nil when Chromium or the Playwright venv is missing).
    @TaskLocal static var current: PasskeyPartners?

    /// prod-admin needs a passkey sign-in; dev needs nothing more than alice's group.
    static let policyYAML = """
        defaults:
          region: us-east-1
        accounts:
          - id: "123456789012"
            alias: demo
        roles:
          - arn: \(prodAdminRole)
            description: Production administration, passkey sign-in only
            credentials: server
            mfa_required: phishing-resistant
          - arn: \(devRole)
            description: Development
            credentials: server
        grants:
          - groups: [developers]
            roles: [demo/prod-admin, demo/dev]
        """

    /// The device-bound passkey's authenticator.
    var securityKeyFile: String { directory + "/security-key.json" }
    /// The synced passkey's authenticator.
    var laptopFile: String { directory + "/laptop.json" }
    /// The /passkeys page after the second passkey was added (what the README shows).
    var screenshot: String { directory + "/passkeys.png" }

    init(
        idp: EmbeddedIdP, moto: MotoServer, server: AccessServer, directory: String,
        securityKeyRegistration: KeylessHarness.Run, syncedRegistration: KeylessHarness.Run
    ) {
        self.idp = idp
        self.moto = moto
        self.server = server
        self.directory = directory
        self.securityKeyRegistration = securityKeyRegistration
        self.syncedRegistration = syncedRegistration
    }

    /// idp.yaml: alice with a password and a TOTP secret, and the CLI's public client. The issuer is
    /// http://localhost:PORT, not 127.0.0.1: the RP ID is the issuer's host, and browsers refuse an IP address as one.
    static func writeIdPConfiguration(port: Int) throws -> String {
        let directory = try makeTemporaryDirectory(prefix: "keyless-idp")
        let yaml = """
            issuer: http://localhost:\(port)
            groups: [developers]
            users:
              - username: alice
                password_hash: "\(try EmbeddedIdP.hashSecret(EmbeddedIdPUser.alice.password))"
                email: alice@example.com
                groups: [developers]
                totp_secret: \(aliceTOTP)
            clients:
              - id: keyless-cli
                redirect_uris: [http://127.0.0.1/callback]
                grants: [authorization_code, refresh_token, device_code]
            """
        try yaml.write(toFile: directory + "/idp.yaml", atomically: true, encoding: .utf8)
        return directory
    }

    static func start() async throws -> PasskeyPartners {
        var started: [() -> Void] = []
        do {
            let directory = try makeTemporaryDirectory(prefix: "keyless-passkeys")
            started.append { try? FileManager.default.removeItem(atPath: directory) }
            let moto = try await MotoServer.start()
            started.append { moto.stop() }
            for name in ["prod-admin", "dev"] { _ = try await moto.createRole(name: name) }
            let port = try freePort()
            let idp = try await EmbeddedIdP.start(
                directory: try writeIdPConfiguration(port: port), port: port, issuer: "http://localhost:\(port)")
            started.append { idp.stopAndRemove() }
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
                    """, policyYAML: policyYAML,
                environment: [
                    "AWS_ACCESS_KEY_ID": "server-testing", "AWS_SECRET_ACCESS_KEY": "server-testing",
                    "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent/keyless-server-config",
                    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-server-credentials",
                ])
            started.append { server.stopAndRemove() }

            let browser = try KeylessHarness(moto: nil)
            let person = [
                "KEYLESS_TEST_USER": "alice", "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.alice.password,
            ]
            let securityKey = try browser.runProgram(
                PasskeyBrowser.python, [PasskeyBrowser.script, "register", idp.issuer],
                extra: person.merging([
                    "KEYLESS_TEST_PASSKEY_FILE": directory + "/security-key.json",
                    "KEYLESS_TEST_PASSKEY_NAME": "YubiKey 5C", "KEYLESS_TEST_TOTP_SECRET": aliceTOTP,
                ]) { _, new in new })
            var synced = securityKey
            if securityKey.status == 0 {
                synced = try browser.runProgram(
                    PasskeyBrowser.python, [PasskeyBrowser.script, "register", idp.issuer],
                    extra: person.merging([
                        "KEYLESS_TEST_PASSKEY_FILE": directory + "/laptop.json",
                        "KEYLESS_TEST_PASSKEY_SIGN_IN_FILE": directory + "/security-key.json",
                        "KEYLESS_TEST_PASSKEY_NAME": "Work laptop", "KEYLESS_TEST_PASSKEY_BACKUP": "1",
                        "KEYLESS_TEST_SCREENSHOT": directory + "/passkeys.png",
                    ]) { _, new in new })
            }
            return PasskeyPartners(
                idp: idp, moto: moto, server: server, directory: directory, securityKeyRegistration: securityKey,
                syncedRegistration: synced)
        } catch {
            for stop in started.reversed() { stop() }
            throw error
        }
    }

    func stop() {
        server.stopAndRemove()
        idp.stopAndRemove()
        moto.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `--issuer-url` and `--client-id` of the provider.
    var provider: [String] { ["--issuer-url", idp.issuer, "--client-id", idp.clientID] }

    /// `keyless login` (with `arguments`) in `harness`, or a new HOME, with passkey_browser.py as the browser in `mode`
    /// (with `environment`), using the passkeys in `file`.
    func passkeyLogin(
        file: String, mode: String = "passwordless", in harness: KeylessHarness? = nil, arguments: [String] = [],
        environment: [String: String] = [:]
    ) throws -> (KeylessHarness, KeylessHarness.Run) {
        let harness = try harness ?? KeylessHarness(moto: moto)
        let login = try harness.run(
            ["login", "--browser", PasskeyBrowser.loginCommand, "--timeout", "90"] + provider + arguments,
            extra: [
                "KEYLESS_TEST_PASSKEY_FILE": file, "KEYLESS_TEST_PASSKEY_MODE": mode, "KEYLESS_TEST_USER": "alice",
                "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.alice.password,
            ].merging(environment) { _, new in new })
        return (harness, login)
    }

    /// The claims of the ID token `harness` holds.
    func idTokenClaims(_ harness: KeylessHarness) throws -> [String: Any] {
        let token = try harness.run(["token", "--json", "--no-browser"] + provider)
        try #require(token.status == 0, "\(token)")
        return try EmbeddedIdPEndToEndTests.claims(
            try #require(try credentialJSON(token.stdout)["id_token"] as? String))
    }

    /// `keyless creds-process --server` for `role` with the login `harness` holds.
    func credentials(_ harness: KeylessHarness, role: String) throws -> KeylessHarness.Run {
        try harness.run(["creds-process", "--server", server.baseURL, "--role-arn", role, "--no-browser"] + provider)
    }
}

/// scripts/partners/passkey_browser.py run by the Playwright venv's Python.
enum PasskeyBrowser {
    static let script = repositoryRoot() + "/scripts/partners/passkey_browser.py"
    static var python: String { Tooling.venvPython() ?? Tooling.python() }
    /// The BROWSER command of `keyless login` (run by /bin/sh, so each word is quoted).
    static var loginCommand: String {
        [python, script, "login"].map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(
            separator: " ")
    }
}

/// Starts the passkey partners once around the suite (when Chromium and the venv are there) and stops them after it.
struct SharedPasskeyPartners: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void)
        async throws
    {
        guard Tooling.browserLoginAvailable() else { return try await function() }
        let partners = try await PasskeyPartners.start()
        defer { partners.stop() }
        try await PasskeyPartners.$current.withValue(partners) { try await function() }
    }
}

extension Trait where Self == SharedPasskeyPartners {
    static var passkeyPartners: Self { Self() }
}

/// Passkeys on keyless idp in a real browser: Chromium's virtual authenticator registers on /passkeys and signs in on the
/// login page `keyless login` opens; the ID token says how (amr, acr), and the access server grants a role that needs a
/// passkey only to such a sign-in.
@Suite("passkeys in Chromium, end to end", .serialized, .passkeyPartners)
struct PasskeyEndToEndTests {
    let partners: PasskeyPartners?

    init() { partners = PasskeyPartners.current }

    /// The running partners, with both passkeys registered; nil (an issue recorded) when the browser is missing.
    func registered() throws -> PasskeyPartners? {
        guard let partners else {
            Issue.record("Chromium or the Playwright venv is missing: run scripts/test, which installs them")
            return nil
        }
        try #require(
            partners.securityKeyRegistration.status == 0,
            "\(partners.securityKeyRegistration)\n\(partners.idp.process.logTail(20))")
        try #require(
            partners.syncedRegistration.status == 0,
            "\(partners.syncedRegistration)\n\(partners.idp.process.logTail(20))")
        return partners
    }

    @Test(
        "alice adds a security key on /passkeys in Chromium, then keyless login with \"Sign in with a passkey\" and no password gives an ID token with amr [hwk, mfa] and acr phrh"
    )
    func passwordlessSignIn() throws {
        guard let partners = try registered() else { return }
        let registration = partners.securityKeyRegistration
        #expect(registration.stdout.isEmpty, "the script writes nothing to stdout: \(registration)")
        #expect(
            registration.stderr.contains(
                "added a passkey for alice on \(partners.idp.issuer); the page lists: YubiKey 5C (device-bound key)"),
            "\(registration)")
        let log = partners.idp.process.log()
        #expect(log.contains("\"msg\":\"passkey registered\""), "\(partners.idp.process.logTail(20))")
        // The authenticator's private keys are kept for the next browser, readable by their owner only.
        let mode = try FileManager.default.attributesOfItem(atPath: partners.securityKeyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)

        let (harness, login) = try partners.passkeyLogin(file: partners.securityKeyFile)
        try #require(login.status == 0, "\(login)\n\(partners.idp.process.logTail(20))")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")
        let claims = try partners.idTokenClaims(harness)
        #expect(claims["amr"] as? [String] == ["hwk", "mfa"], "\(claims)")
        #expect(claims["acr"] as? String == "phrh", "\(claims)")
        #expect(claims["sub"] as? String == "alice")
    }

    @Test(
        "alice types her password and no code, confirms with her security key on \"Confirm with your passkey\": amr [pwd, hwk, mfa], acr phrh"
    )
    func passkeyAfterPassword() throws {
        guard let partners = try registered() else { return }
        let (harness, login) = try partners.passkeyLogin(file: partners.securityKeyFile, mode: "second-factor")
        try #require(login.status == 0, "\(login)\n\(partners.idp.process.logTail(20))")
        let claims = try partners.idTokenClaims(harness)
        #expect(claims["amr"] as? [String] == ["pwd", "hwk", "mfa"], "\(claims)")
        #expect(claims["acr"] as? String == "phrh", "\(claims)")
    }

    @Test(
        "a synced passkey, added after signing in on /passkeys with the security key, signs in as amr [swk, mfa] with acr phr; the page lists both"
    )
    func syncedPasskey() throws {
        guard let partners = try registered() else { return }
        #expect(
            partners.syncedRegistration.stderr.contains(
                "the page lists: YubiKey 5C (device-bound key), Work laptop (synced passkey)"),
            "\(partners.syncedRegistration)")
        let size = WebPageTests.pngSize(partners.screenshot)
        #expect(size != nil, "no PNG screenshot of the /passkeys page at \(partners.screenshot)")
        // KEYLESS_PASSKEYS_SCREENSHOT=docs/images/passkeys.png refreshes the README's picture from this run.
        if let target = ProcessInfo.processInfo.environment["KEYLESS_PASSKEYS_SCREENSHOT"], size != nil {
            _ = try? FileManager.default.removeItem(atPath: target)
            try FileManager.default.copyItem(atPath: partners.screenshot, toPath: target)
        }

        let (harness, login) = try partners.passkeyLogin(file: partners.laptopFile)
        try #require(login.status == 0, "\(login)\n\(partners.idp.process.logTail(20))")
        let claims = try partners.idTokenClaims(harness)
        #expect(claims["amr"] as? [String] == ["swk", "mfa"], "\(claims)")
        #expect(claims["acr"] as? String == "phr", "\(claims)")
    }

    @Test(
        "the access server gives alice a phishing-resistant role after a passkey sign-in, and refuses it to her signed in with her password and a one-time code, saying how she signed in (phishing_resistant_required); following the hint (acr_values=phr), the same password and code lead to her passkey and the role"
    )
    func phishingResistantRole() async throws {
        guard let partners = try registered() else { return }
        let (withPasskey, login) = try partners.passkeyLogin(file: partners.securityKeyFile)
        try #require(login.status == 0, "\(login)")
        let granted = try partners.credentials(withPasskey, role: PasskeyPartners.prodAdminRole)
        #expect(granted.status == 0, "\(granted)")
        #expect(try credentialJSON(granted.stdout)["AccessKeyId"] as? String != nil, "\(granted)")

        // The device page with her password and a code: allowed, since her account has a TOTP secret too. The code is
        // the next period's (accepted, one step of drift), since the registration may have spent this period's.
        let withCode = try KeylessHarness(moto: partners.moto)
        let device = try withCode.start(nil, ["login", "--device"] + partners.provider)
        let userCode = try device.waitForStderr("enter the code ([A-Z0-9-]+)")
        let secret = try #require(TOTP.base32Decode(PasskeyPartners.aliceTOTP))
        try await partners.idp.approveDevice(
            userCode: userCode, user: .alice, otp: TOTP.code(secret: secret, at: Date().addingTimeInterval(30)))
        let deviceLogin = try device.wait(timeout: 60)
        try #require(deviceLogin.status == 0, "\(deviceLogin)")
        #expect(try partners.idTokenClaims(withCode)["amr"] as? [String] == ["pwd", "otp", "mfa"])

        let refused = try partners.credentials(withCode, role: PasskeyPartners.prodAdminRole)
        #expect(refused.status == 4, "\(refused)")
        #expect(refused.stdout.isEmpty, "no credentials on stdout: \(refused)")
        #expect(refused.stderr.contains("phishing_resistant_required"), "\(refused)")
        #expect(refused.stderr.contains("needs a passkey sign-in"), "\(refused)")
        #expect(refused.stderr.contains("alice signed in with a password and a one-time code"), "\(refused)")
        #expect(refused.stderr.contains("--auth-param acr_values=phr"), "the hint says how to ask: \(refused)")
        let denied = try partners.server.auditRecords().filter {
            $0["outcome"] as? String == "denied" && $0["role"] as? String == PasskeyPartners.prodAdminRole
        }
        #expect(!denied.isEmpty, "the server audits the refusal")
        // The same token is good for a role that asks for no passkey.
        let dev = try partners.credentials(withCode, role: PasskeyPartners.devRole)
        #expect(dev.status == 0, "\(dev)")

        // As the hint says: asked for acr phr, the provider wants her passkey even though she types the code again.
        let (_, again) = try partners.passkeyLogin(
            file: partners.securityKeyFile, mode: "second-factor", in: withCode,
            arguments: ["--auth-param", "acr_values=phr"],
            environment: ["KEYLESS_TEST_TOTP_SECRET": PasskeyPartners.aliceTOTP])
        try #require(again.status == 0, "\(again)\n\(partners.idp.process.logTail(20))")
        #expect(try partners.idTokenClaims(withCode)["amr"] as? [String] == ["pwd", "hwk", "mfa"])
        let grantedNow = try partners.credentials(withCode, role: PasskeyPartners.prodAdminRole)
        #expect(grantedNow.status == 0, "\(grantedNow)")
    }

    @Test(
        "a copy of the security key whose signature counter is behind the provider's is refused on the login page (it may have been copied)"
    )
    func copiedSecurityKey() throws {
        guard let partners = try registered() else { return }
        let copy = partners.directory + "/copied-key.json"
        try FileManager.default.copyItem(atPath: partners.securityKeyFile, toPath: copy)
        let (_, login) = try partners.passkeyLogin(file: partners.securityKeyFile)
        try #require(login.status == 0, "\(login)")

        // The copy signs with the counter the provider has already seen; the page says so and nothing is redirected.
        let query = [
            "response_type=code", "client_id=\(partners.idp.clientID)",
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback", "scope=openid",
            "code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method=S256",
        ]
        let run = try PartnerProcess.run(
            PasskeyBrowser.python,
            [PasskeyBrowser.script, "login", partners.idp.issuer + "/authorize?" + query.joined(separator: "&")],
            environment: ["KEYLESS_TEST_PASSKEY_FILE": copy, "KEYLESS_TEST_BROWSER_TIMEOUT": "30"], timeout: 60)
        #expect(run.status == 1, "\(run.output)")
        #expect(run.output.contains("The passkey was not accepted"), "\(run.output)")
        #expect(run.output.contains("it may have been copied"), "\(run.output)")
        #expect(partners.idp.process.logTail(40).contains("webauthn_counter_went_backwards"))
    }
}
