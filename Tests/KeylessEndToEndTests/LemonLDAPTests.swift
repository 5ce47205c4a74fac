import Foundation
import KeylessTestSupport
import Testing

/// keyless against a second real third-party OpenID Provider: LemonLDAP::NG (Debian, OpenID-certified), with its
/// own quirks (exact redirect URIs, `aud` as an array, no offline_access in scopes_supported, no refresh-token rotation).
@Suite("LemonLDAP::NG as the OpenID Provider", .serialized)
struct LemonLDAPTests {
    @Test("a browser login through Chromium, a refresh without a browser, and the AWS CLI through credential_process")
    func loginRefreshAndAWS() async throws {
        guard Tooling.browserLoginAvailable(), Tooling.have("aws") else {
            Issue.record(
                "Chromium, the Playwright venv or the AWS CLI is missing: run scripts/test, which installs them")
            return
        }
        // 30 s ID tokens are inside keyless's 120 s refresh margin: the first creds-process must refresh.
        let llng = try await LemonLDAPServer.start(redirectPort: try freeFixedPort(), idTokenTTL: 30)
        defer { llng.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "llng")
        let harness = try KeylessHarness(moto: moto)
        let provider = [
            "--issuer-url", llng.issuer, "--client-id", llng.clientID, "--redirect-port", String(llng.redirectPort),
        ]

        let browser = Tooling.browserLoginCommand(
            user: LemonLDAPServer.user.name, password: LemonLDAPServer.user.password)
        // LemonLDAP honours offline_access but does not list it in scopes_supported, so it is asked for by name.
        let login = try harness.run(
            ["login"] + provider + [
                "--scopes", "openid email profile offline_access groups", "--browser", browser.command, "--timeout",
                "90",
            ],
            extra: browser.environment, timeout: 150)
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as \(LemonLDAPServer.user.email)"), "\(login)")

        let creds = try harness.run(["creds-process"] + provider + ["--aws-role-arn", role, "--no-browser", "-v"])
        #expect(creds.status == 0, "\(creds)")
        #expect(creds.stderr.contains("refreshed tokens"), "the 30 s ID token was refreshed, with no browser: \(creds)")

        let line = ([harness.binary, "creds-process"] + provider + ["--aws-role-arn", role, "--no-browser"]).joined(
            separator: " ")
        try "[profile llng]\nregion = us-east-1\ncredential_process = \(line)\n".write(
            toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
        let cli = try harness.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", "llng", "--query", "Arn", "--output", "text"])
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/llng/\(LemonLDAPServer.user.email)")
    }
}
