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
