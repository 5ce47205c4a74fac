import Foundation
import Hummingbird
import HummingbirdTesting
import KeylessCore
import KeylessAccessServer
import KeylessTestSupport
import Testing

/// AssumeRole on the caller's behalf, checked against what a real moto STS recorded.
@Suite("Access server: STS AssumeRole")
struct STSTests {
    static let zoe = TestUser(
        "zoe", subject: "zoe-1", email: "zoe@audit.example.com", groups: ["developers", "platform-admins"],
        amr: ["pwd", "otp"], extraJSON: #"{"https://example.com/team":"platform","preferred_username":"zoe"}"#)

    /// (role_arn sent, duration_seconds sent, DurationSeconds STS must receive)
    static let durations: [(role: String, sent: Int?, expected: Int)] = [
        ("prod/readonly", nil, 3600),  // role max 12h: the default hour
        (Policies.auditorArn, nil, 1800),  // role max 30m: the role's maximum
        (Policies.adminArn, 43200, 7200),  // asked 12h of a 2h role: capped
        (Policies.developerArn, 5400, 5400),  // within the 4h maximum: as asked
        ("dev/tester", 900, 900),  // the STS minimum
    ]

    @Test(
        "AssumeRole reaches STS with the session name and SourceIdentity from the email, the policy's session tags from the claims, and DurationSeconds defaulted or capped by the role's max_session"
    )
    func exactParameters() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        let token = try Self.zoe.token()
        try await fixture.application().test(.router) { client in
            for case let (role, sent, _) in Self.durations {
                let response = try await client.credentials(role, token: token, duration: sent)
                #expect(response.status == .ok, "\(role): \(text(response))")
            }
        }
        let calls = try moto.assumeRoleCalls()
        try #require(calls.count == Self.durations.count)
        let arns = [
            Policies.readonlyArn, Policies.auditorArn, Policies.adminArn, Policies.developerArn, Policies.testerArn,
        ]
        for (call, (expectation, arn)) in zip(calls, zip(Self.durations, arns)) {
            #expect(
                call.form == [
                    "Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": arn,
                    "RoleSessionName": "zoe@audit.example.com", "SourceIdentity": "zoe@audit.example.com",
                    "DurationSeconds": String(expectation.expected),
                    "Tags.member.1.Key": "email", "Tags.member.1.Value": "zoe@audit.example.com",
                    "Tags.member.2.Key": "team", "Tags.member.2.Value": "platform",
                    "Tags.member.3.Key": "groups", "Tags.member.3.Value": "developers:platform-admins",
                ], "\(arn)")
            // Signed with the server's own keys for us-east-1 STS, dated by the injected clock.
            let headers = Dictionary(
                call.headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
            #expect(
                headers["authorization"]?.hasPrefix(
                    "AWS4-HMAC-SHA256 Credential=\(StaticAWSCredentials.accessKeyID)/20260101/us-east-1/sts/aws4_request"
                ) == true,
                "\(headers["authorization"] ?? "no authorization")")
            #expect(headers["x-amz-date"] == "20260101T000000Z")
        }
        let granted = try fixture.auditRecords()
        #expect(granted.map { $0["outcome"] as? String } == Array(repeating: "granted", count: Self.durations.count))
        #expect(
            granted.map { $0["reason"] as? String } == Self.durations.map { "granted by policy for \($0.expected) s" })
    }

    @Test(
        "without an email the session name comes from preferred_username with characters STS refuses replaced, and claims the caller lacks give no tag"
    )
    func sessionNameWithoutEmail() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        let user = TestUser(
            "zoë", subject: "zoe-2", groups: ["developers"], extraJSON: #"{"preferred_username":"Zoë Smith/ops"}"#)
        try await fixture.application().test(.router) { client in
            let response = try await client.credentials("dev/tester", token: try user.token(), duration: nil)
            #expect(response.status == .ok, "\(text(response))")
        }
        let call = try #require(try moto.assumeRoleCalls().first)
        #expect(call.form["RoleSessionName"] == "Zo--Smith-ops")
        #expect(call.form["SourceIdentity"] == "Zo--Smith-ops")
        #expect(call.form["Tags.member.1.Key"] == "groups")
        #expect(call.form["Tags.member.1.Value"] == "developers")
        #expect(call.form["Tags.member.2.Key"] == nil)
        #expect(call.form["DurationSeconds"] == "3600")
        #expect(try fixture.auditRecords().first?["name"] as? String == "Zoë Smith/ops")
    }

    @Test("a duration outside 900...43200 is refused with 400 invalid_request before STS is called")
    func durationOutOfRange() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            for duration in [0, 600, 899, 43201, -1] {
                let response = try await client.credentials(
                    "prod/readonly", token: try Self.zoe.token(), duration: duration)
                #expect(response.status == .badRequest, "\(duration)")
                #expect(try json(response)["error"] as? String == "invalid_request")
            }
        }
    }

    @Test(
        "with STS down the answer is 502 upstream_error naming the role and what to do, audited as failed; when STS is back the same server issues credentials again"
    )
    func stsDownThenBack() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let down = try closedPortURL()
        let fixture = try ServerFixture.make(stsEndpoint: down)
        defer { fixture.remove() }
        let token = try Self.zoe.token()
        try await fixture.application().test(.router) { client in
            let failed = try await client.credentials("prod/readonly", token: token)
            #expect(failed.status == .badGateway, "\(text(failed))")
            let body = try json(failed)
            #expect(body["error"] as? String == "upstream_error")
            let message = try #require(body["error_description"] as? String)
            #expect(message.contains("AWS did not issue credentials for \(Policies.readonlyArn)"), "\(message)")
            #expect(message.contains("Cannot reach AWS STS at \(down)"), "\(message)")
            #expect(message.contains("Retry"), "\(message)")
            #expect(body["request_id"] as? String == requestID(failed))

            fixture.transport.redirect(down, to: moto.endpoint)
            let back = try await client.credentials("prod/readonly", token: token)
            #expect(back.status == .ok, "\(text(back))")
            #expect((try json(back)["AccessKeyId"] as? String)?.hasPrefix("ASIA") == true)
        }
        let records = try fixture.auditRecords()
        try #require(records.count == 2)
        #expect(records[0]["outcome"] as? String == "failed")
        #expect(records[0]["role"] as? String == Policies.readonlyArn)
        #expect((records[0]["reason"] as? String)?.contains("Cannot reach AWS STS at \(down)") == true, "\(records[0])")
        #expect(records[0]["session_name"] == nil)
        #expect(records[1]["outcome"] as? String == "granted")
        #expect(try moto.assumeRoleCalls().count == 1)
    }

    @Test(
        "when the server's own AWS credentials cannot be resolved the answer is 502 upstream_error, audited as failed, and STS is not called"
    )
    func ownCredentialsMissing() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        fixture.awsCredentials.fail(
            with: KeylessError(
                .configInvalid, "No AWS credentials found in the environment or the shared files.", hint: "Set some."))
        try await fixture.application().test(.router) { client in
            let response = try await client.credentials("prod/readonly", token: try Self.zoe.token())
            #expect(response.status == .badGateway)
            #expect((try json(response)["error_description"] as? String)?.contains("No AWS credentials found") == true)
        }
        let record = try #require(try fixture.auditRecords().first)
        #expect(record["outcome"] as? String == "failed")
        #expect(record["reason"] as? String == "No AWS credentials found in the environment or the shared files.")
    }
}
