import Foundation
import KeylessTestSupport
import Testing

/// `creds-process --session-policy / --policy-arn` against keyless idp and moto: what STS receives (moto's request
/// recorder), and that the cache never serves a narrowed session for a full one or the other way.
@Suite("narrowed sessions: session policies through creds-process", .serialized)
struct SessionScopeEndToEndTests {
    static let policy =
        #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":"arn:aws:s3:::reports/*"}]}"#

    static func accessKey(_ run: KeylessHarness.Run) throws -> String {
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run)")
        return try #require(object["AccessKeyId"] as? String)
    }

    /// keyless idp and moto (recording), a harness, and the `creds-process` arguments of the provider's service client
    /// (client credentials from a 0600 secret file) for moto's `deploy` role.
    static func partners() async throws -> (EmbeddedIdP, MotoServer, KeylessHarness, [String]) {
        let idp = try await EmbeddedIdP.start()
        do {
            let moto = try await MotoServer.start()
            do {
                let role = try await moto.createRole(name: "deploy")
                try await moto.startRecording()
                let harness = try KeylessHarness(moto: moto)
                let secretFile = harness.home + "/deployer.secret"
                try (idp.serviceClientSecret + "\n").write(toFile: secretFile, atomically: true, encoding: .utf8)
                chmod(secretFile, 0o600)
                let base = [
                    "creds-process", "--client-credentials", "--issuer-url", idp.issuer, "--client-id",
                    idp.serviceClientID, "--client-secret-file", secretFile, "--aws-role-arn", role,
                ]
                return (idp, moto, harness, base)
            } catch {
                moto.stop()
                throw error
            }
        } catch {
            idp.stopAndRemove()
            throw error
        }
    }

    @Test(
        "a session policy (file) and managed policy ARNs reach STS exactly; narrowed and full sessions of one role are cached apart, each served again from its own entry"
    )
    func narrowedSessions() async throws {
        let (idp, moto, harness, base) = try await Self.partners()
        defer { idp.stopAndRemove() }
        defer { moto.stop() }
        let policyFile = harness.home + "/read-reports.json"
        try (Self.policy + "\n").write(toFile: policyFile, atomically: true, encoding: .utf8)
        let narrowing = [
            "--session-policy", policyFile, "--policy-arn", "arn:aws:iam::aws:policy/ReadOnlyAccess", "--policy-arn",
            "arn:aws:iam::123456789012:policy/reports-read",
        ]
        let full = try harness.run(base)
        #expect(full.status == 0, "\(full)")
        let narrowed = try harness.run(base + narrowing)
        #expect(narrowed.status == 0, "\(narrowed)")
        #expect(try Self.accessKey(full) != Self.accessKey(narrowed), "a narrowed session is its own")

        let calls = try await moto.recordedForms().filter { $0["Action"] == "AssumeRoleWithWebIdentity" }
        #expect(calls.count == 2, "\(calls.count) calls")
        #expect(calls.first?["Policy"] == nil && calls.first?["PolicyArns.member.1.arn"] == nil)
        #expect(calls.last?["Policy"] == Self.policy, "the file's text, its trailing newline left out")
        #expect(calls.last?["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess")
        #expect(calls.last?["PolicyArns.member.2.arn"] == "arn:aws:iam::123456789012:policy/reports-read")

        // Again, in the other order: each answer from its own cache entry, no further STS call.
        #expect(try Self.accessKey(try harness.run(base + narrowing)) == Self.accessKey(narrowed))
        #expect(try Self.accessKey(try harness.run(base)) == Self.accessKey(full))
        let inline = try harness.run(base + ["--session-policy", Self.policy])
        #expect(try Self.accessKey(inline) != Self.accessKey(narrowed), "another narrowing is another session")
        #expect(
            try await moto.recordedForms().filter { $0["Action"] == "AssumeRoleWithWebIdentity" }.count == 3,
            "only the new narrowing called STS")

        let bad = try harness.run(base + ["--session-policy", "{not json"])
        #expect(bad.status == 2 && bad.stdout.isEmpty && bad.stderr.contains("not a JSON object"), "\(bad)")
        let badArn = try harness.run(base + ["--policy-arn", "arn:aws:iam::123456789012:role/admin"])
        #expect(badArn.status == 2 && badArn.stderr.contains("is not an IAM policy ARN"), "\(badArn)")
    }

    @Test(
        "exec --agent runs the command as the agent acting for the workload: session agent=NAME,<sub>, read-only (ReadOnlyAccess) unless a policy is given; a bad name is refused"
    )
    func agent() async throws {
        let (idp, moto, harness, base) = try await Self.partners()
        defer { idp.stopAndRemove() }
        defer { moto.stop() }
        let line = ([harness.binary] + base).joined(separator: " ")
        try "[profile svc]\nregion = us-east-1\ncredential_process = \(line)\n".write(
            toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
        let run = try harness.run([
            "exec", "--profile", "svc", "--agent", "claude", "--", "aws", "sts", "get-caller-identity", "--query",
            "Arn",
            "--output", "text",
        ])
        #expect(run.status == 0, "\(run)")
        #expect(
            run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/deploy/agent=claude,deployer", "\(run)")
        let call = try #require(
            try await moto.recordedForms().first { $0["Action"] == "AssumeRoleWithWebIdentity" })
        #expect(call["RoleSessionName"] == "agent=claude,deployer")
        #expect(call["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess", "read-only by default")
        #expect(call["Policy"] == nil)

        let told = try harness.run([
            "exec", "--profile", "svc", "--agent", "claude", "--session-policy", Self.policy, "--", "true",
        ])
        #expect(told.status == 0, "\(told)")
        let narrowed = try await moto.recordedForms().filter { $0["Action"] == "AssumeRoleWithWebIdentity" }.last
        #expect(narrowed?["Policy"] == Self.policy && narrowed?["PolicyArns.member.1.arn"] == nil, "told otherwise")

        let bad = try harness.run(["exec", "--profile", "svc", "--agent", "claude code", "--", "true"])
        #expect(bad.status == 2 && bad.stderr.contains("is not 1 to 32 letters"), "\(bad)")
    }
}
