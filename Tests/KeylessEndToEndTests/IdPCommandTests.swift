import Foundation
import KeylessIdP
import KeylessTestSupport
import Testing

@Suite("keyless idp hash-password, check and enrol-link, through the launcher")
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

    @Test(
        "enrol-link prints a one-time link only after its issuing is synced to the 0600 audit log; an unknown user or an unwritable log prints no link"
    )
    func enrolLink() throws {
        let harness = try KeylessHarness(moto: nil)
        let hash = try PasswordHash.make("alice-password-1", logN: 10, r: 8, p: 1).description
        let path = harness.home + "/idp.yaml"
        try
            "issuer: http://localhost:9\nusers:\n  - username: alice\n    password_hash: \"\(hash)\"\nclients:\n  - id: cli\n    redirect_uris: [\"http://127.0.0.1/callback\"]\n    grants: [authorization_code]\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let audit = harness.home + "/idp-audit.log"
        let store = [
            "--config", path, "--database", "sqlite:" + harness.home + "/idp.sqlite", "--key-encryption-key",
            harness.home + "/idp-kek",
        ]
        let run = try harness.run(["idp", "enrol-link"] + store + ["--user", "alice", "--audit-log", audit])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.hasPrefix("http://localhost:9/passkeys/enrol?token="), "\(run)")
        #expect(run.stderr.contains("for alice, valid until") && run.stderr.contains("recorded in \(audit)"), "\(run)")
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let record = try #require(
            try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: String], "\(lines)")
        #expect(record["action"] == "enrolment_link" && record["username"] == "alice" && record["subject"] == "alice")
        #expect(record["link"] != nil && record["expires"] != nil && record["by"] != nil)
        #expect(!lines[0].contains("token="), "the audit record does not hold the link itself")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: audit)[.posixPermissions] as? Int)
        #expect(mode == 0o600)

        let unknown = try harness.run(["idp", "enrol-link"] + store + ["--user", "mallory", "--audit-log", audit])
        #expect(
            unknown.status == 2 && unknown.stdout.isEmpty && unknown.stderr.contains("no user 'mallory'"), "\(unknown)")
        let tooLong = try harness.run(
            ["idp", "enrol-link"] + store + ["--user", "alice", "--valid-for", "8d", "--audit-log", audit])
        #expect(tooLong.status == 2 && tooLong.stdout.isEmpty, "\(tooLong)")
        let unwritable = try harness.run(
            ["idp", "enrol-link"] + store + ["--user", "alice", "--audit-log", harness.home])
        #expect(unwritable.status != 0 && unwritable.stdout.isEmpty, "\(unwritable)")
        #expect(try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n").count == 1)
        // At an IP address passkeys are off (browsers refuse it as an RP ID): no link, and check says why.
        let ipAddress = try harness.run(
            ["idp", "enrol-link"] + store + ["--user", "alice", "--audit-log", audit, "--issuer", "http://127.0.0.1:9"])
        #expect(ipAddress.status != 0 && ipAddress.stdout.isEmpty, "\(ipAddress)")
        #expect(ipAddress.stderr.contains("passkeys are off"), "\(ipAddress)")
        try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "localhost", with: "127.0.0.1")
            .write(
                toFile: path, atomically: true, encoding: .utf8)
        let check = try harness.run(["idp", "check", "--config", path])
        #expect(
            check.status == 0 && check.stdout.contains("passkeys are off: the issuer's host is an IP address"),
            "\(check)")
    }
}
