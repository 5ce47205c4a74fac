import Foundation
import KeylessIdP
import KeylessTestSupport
import Testing

@Suite("keyless idp hash-password and check, through the launcher")
struct IdPCommandTests {
    @Test("hash-password --stdin prints a hash that verifies, and refuses a short password")
    func hashPassword() throws {
        let harness = try KeylessHarness(moto: nil)
        let run = try harness.runProgram(
            "/bin/sh", ["-c", "printf %s 'alice-password-1' | '\(harness.binary)' idp hash-password --stdin"])
        #expect(run.status == 0, "\(run)")
        let hash = try #require(PasswordHash(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(hash.verify("alice-password-1") && !hash.verify("alice-password-2"))
        #expect(!run.stderr.contains("alice-password-1"))
        let short = try harness.runProgram(
            "/bin/sh", ["-c", "printf %s 'short' | '\(harness.binary)' idp hash-password --stdin"])
        #expect(short.status == 2 && short.stdout.isEmpty, "\(short)")
    }

    @Test("check says ok for a valid file and names file and line for a broken one")
    func check() throws {
        let harness = try KeylessHarness(moto: nil)
        let hash = try PasswordHash.make("alice-password-1", logN: 10, r: 8, p: 1).description
        let path = harness.home + "/idp.yaml"
        let good =
            "groups: [engineers]\nusers:\n  - username: alice\n    password_hash: \"\(hash)\"\n    groups: [engineers]\nclients:\n  - id: cli\n    redirect_uris: [\"http://127.0.0.1/callback\"]\n    grants: [authorization_code]\n"
        try good.write(toFile: path, atomically: true, encoding: .utf8)
        let ok = try harness.run(["idp", "check", "--config", path])
        #expect(ok.status == 0 && ok.stdout.contains("ok (1 users, 1 groups, 1 clients, RS256)"), "\(ok)")
        try good.replacingOccurrences(of: "groups: [engineers]\nclients", with: "groups: [ops]\nclients").write(
            toFile: path, atomically: true, encoding: .utf8)
        let bad = try harness.run(["idp", "check", "--config", path])
        #expect(bad.status == 2, "\(bad)")
        #expect(bad.stderr.contains("\(path):5:13: user 'alice' is in group 'ops'"), "\(bad)")
    }
}
