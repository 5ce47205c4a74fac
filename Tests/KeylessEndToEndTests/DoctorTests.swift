import Foundation
import KeylessTestSupport
import Testing

/// `keyless doctor` checks a provider, a client and this machine without logging in.
@Suite("keyless doctor", .serialized)
struct DoctorTests {
    /// The printed line of check `name`, and the fix line after it when there is one.
    static func finding(_ name: String, in output: String) -> (line: String, fix: String?)? {
        let lines = output.components(separatedBy: "\n")
        // "[ok]   check: detail": a 7-character label, then the check's name.
        guard let index = lines.firstIndex(where: { $0.hasPrefix("[") && $0.dropFirst(7).hasPrefix(name + ":") }) else {
            return nil
        }
        let fix =
            index + 1 < lines.count && lines[index + 1].trimmingCharacters(in: .whitespaces).hasPrefix("fix:")
            ? lines[index + 1] : nil
        return (lines[index], fix)
    }

    @Test("a healthy keyless idp: every check passes, no login happens, exit 0")
    func healthy() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(["doctor", "--issuer-url", idp.issuer, "--client-id", idp.clientID])
        #expect(run.status == 0, "\(run)")
        for check in [
            "discovery", "clock", "jwks", "algorithms", "scopes", "grants", "pkce", "client", "redirect", "device",
            "secret store",
        ] {
            let line = Self.finding(check, in: run.stdout)?.line ?? ""
            #expect(line.hasPrefix("[ok]"), "\(check): \(run)")
        }
        #expect(run.stdout.contains("Nothing failed."))
        #expect(try harness.run(["status"]).stdout.contains("nothing cached"), "doctor logs nobody in")
    }

    @Test("an unreachable provider: discovery FAILs with its fix, exit 1")
    func unreachable() throws {
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run([
            "doctor", "--issuer-url", "http://127.0.0.1:\(try freePort())", "--client-id", "keyless-cli",
        ])
        #expect(run.status == 1, "\(run)")
        let discovery = try #require(Self.finding("discovery", in: run.stdout), "\(run)")
        #expect(discovery.line.hasPrefix("[FAIL]") && discovery.line.contains("Cannot reach"), "\(run)")
        #expect(discovery.fix?.contains("--issuer-url") == true, "\(run)")
    }

    @Test("a client id the provider does not know: client FAILs and the fix names --client-id, exit 1")
    func wrongClient() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(["doctor", "--issuer-url", idp.issuer, "--client-id", "no-such-client"])
        #expect(run.status == 1, "\(run)")
        let client = try #require(Self.finding("client", in: run.stdout), "\(run)")
        #expect(client.line.hasPrefix("[FAIL]") && client.line.contains("invalid_client"), "\(run)")
        #expect(client.fix?.contains("--client-id") == true, "\(run)")
        #expect(Self.finding("discovery", in: run.stdout)?.line.hasPrefix("[ok]") == true, "\(run)")
    }

    @Test("a provider whose Date is 10 minutes ahead: clock FAILs with how to fix it, exit 1")
    func clockSkew() async throws {
        let zoo = try await ProviderZoo.start(.okta, flags: ["--date-offset", "600"])
        defer { zoo.stop() }
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(["doctor", "--issuer-url", zoo.issuer, "--client-id", "keyless-cli"])
        #expect(run.status == 1, "\(run)")
        let clock = try #require(Self.finding("clock", in: run.stdout), "\(run)")
        #expect(clock.line.hasPrefix("[FAIL]") && clock.line.contains(" s behind the provider's"), "\(run)")
        // The Date header has whole seconds and the request takes time: about 600, not exactly.
        let seconds = clock.line.range(of: "[0-9]+ s behind", options: .regularExpression).flatMap {
            Int(clock.line[$0].prefix { $0.isNumber })
        }
        #expect((590...610).contains(seconds ?? 0), "\(run)")
        #expect(clock.fix?.contains("set-ntp") == true, "\(run)")
        #expect(
            Self.finding("client", in: run.stdout)?.line.hasPrefix("[ok]") == true, "the rest is still checked: \(run)")
    }

    @Test(
        "Google without its Desktop app's secret: the client check FAILs and says --client-secret; scopes explain access_type"
    )
    func googleWithoutSecret() async throws {
        let zoo = try await ProviderZoo.start(.google)
        defer { zoo.stop() }
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run([
            "doctor", "--issuer-url", zoo.issuer, "--client-id", "keyless-cli", "--provider", "google",
        ])
        #expect(run.status == 1, "\(run)")
        #expect(Self.finding("client", in: run.stdout)?.fix?.contains("--client-secret") == true, "\(run)")
        #expect(Self.finding("scopes", in: run.stdout)?.line.contains("access_type=offline") == true, "\(run)")
        let fixed = try harness.run([
            "doctor", "--issuer-url", zoo.issuer, "--client-id", "keyless-cli", "--provider", "google",
            "--client-secret", "zoo-installed-secret",
        ])
        #expect(fixed.status == 0, "\(fixed)")
    }

    @Test(
        "with --profile, the role's trust policy is explained for the ID token already held: allowed ok, another audience FAILs"
    )
    func trustPolicy() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let host = String(idp.issuer.dropFirst("http://".count))
        func trust(audience: String) -> String {
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/HOST"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":{"StringEquals":{"HOST:aud":"AUD"}}}]}"#
                .replacingOccurrences(of: "HOST", with: host).replacingOccurrences(of: "AUD", with: audience)
        }
        for (name, audience) in [("good", idp.clientID), ("other", "another-client")] {
            let created = try await moto.iam([
                ("Action", "CreateRole"), ("Version", "2010-05-08"), ("RoleName", name),
                ("AssumeRolePolicyDocument", trust(audience: audience)),
            ])
            #expect(created.status == 200, "\(created.text)")
        }
        let harness = try KeylessHarness(
            moto: moto, extra: ["AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"])
        #expect(try await harness.deviceLogin(idp).status == 0)
        var config = ""
        for name in ["good", "other"] {
            config +=
                "[profile \(name)]\nregion = us-east-1\ncredential_process = \(harness.binary) creds-process --issuer-url \(idp.issuer) --client-id \(idp.clientID) --aws-role-arn arn:aws:iam::123456789012:role/\(name)\n"
        }
        try config.write(toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)

        let good = try harness.run(["doctor", "--profile", "good"])
        #expect(good.status == 0, "\(good)")
        #expect(Self.finding("trust policy", in: good.stdout)?.line.hasPrefix("[ok]") == true, "\(good)")
        let other = try harness.run(["doctor", "--profile", "other"])
        #expect(other.status == 1, "\(other)")
        let finding = try #require(Self.finding("trust policy", in: other.stdout), "\(other)")
        #expect(finding.line.hasPrefix("[FAIL]"), "\(other)")
        #expect(other.stdout.contains("another-client"), "the failing condition is shown: \(other)")
    }
}
