import Foundation
import KeylessTestSupport
import Testing

/// `keyless` is a launcher: it answers cached credential_process calls alone and hands the rest to keyless-cli.
@Suite("the keyless launcher", .serialized)
struct LauncherTests {
    @Test("without keyless-cli the launcher fails with exit 2 and says what to install")
    func missingCompanion() throws {
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(["status"], extra: ["KEYLESS_CLI": harness.home + "/no-such-keyless-cli"])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderr.contains("Install keyless-cli next to keyless"), "\(run)")
        #expect(run.stdout.isEmpty)
    }

    @Test("a cached answer needs neither keyless-cli, nor the identity provider, nor STS")
    func cachedAnswerStandsAlone() async throws {
        let partners = try await Partners.start()
        let harness = try KeylessHarness(moto: partners.moto)
        let arguments = harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"])
        let first: KeylessHarness.Run
        do {
            defer { partners.stop() }
            #expect(try await harness.deviceLogin(partners.idp).status == 0)
            first = try harness.run(arguments)
            #expect(first.status == 0, "\(first)")
        }
        let cached = try harness.run(arguments, extra: ["KEYLESS_CLI": harness.home + "/no-such-keyless-cli"])
        #expect(cached.status == 0, "\(cached)")
        #expect(cached.stdout == first.stdout, "the launcher prints the cached credentials byte for byte")
        #expect(cached.stderr.isEmpty, "\(cached)")
    }
}

@Suite("keyless --version and keyless version --json")
struct VersionCommandTests {
    @Test("--version and `version` name the version and the commit (unknown in a development build), the same line")
    func versionLine() throws {
        let harness = try KeylessHarness(moto: nil)
        let flag = try harness.run(["--version"])
        let command = try harness.run(["version"])
        #expect(flag.status == 0 && command.status == 0, "\(flag)\n\(command)")
        #expect(flag.stdout == command.stdout)
        let line = flag.stdout.trimmingCharacters(in: .newlines)
        #expect(
            line.wholeMatch(of: /keyless \d+\.\d+\.\d+ \((commit [0-9a-f]{12}|development build, commit unknown)\)/)
                != nil, "\(line)")
    }

    @Test("version --json: version, commit, swift, platform and every secret-store backend, with availability")
    func versionJSON() throws {
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.run(["version", "--json"])
        #expect(run.status == 0, "\(run)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(Set(object.keys) == ["version", "commit", "swift", "platform", "secret_stores"])
        #expect((object["version"] as? String)?.wholeMatch(of: /\d+\.\d+\.\d+/) != nil)
        #expect(object["commit"] is NSNull || (object["commit"] as? String)?.count == 40)
        #expect((object["swift"] as? String)?.contains("Swift") == true)
        let stores = try #require(object["secret_stores"] as? [String: [String: Any]])
        #expect(Set(stores.keys) == ["file", "secret-service", "keychain", "plaintext"])
        #expect(stores["file"]?["available"] as? Bool == true)
        #expect(stores["keychain"]?["available"] as? Bool == false, "Linux has no Keychain")
        // The harness has no session bus: the Secret Service cannot answer, and the file store derives its key.
        #expect(stores["secret-service"]?["available"] as? Bool == false)
        #expect((stores["file"]?["detail"] as? String)?.contains("passphrase") == true)
    }
}
