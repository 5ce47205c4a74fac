import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessAccessServer
import KeylessTestSupport
import Testing

/// The audit log: one JSON object per line whatever the claims say, private to the server, and a decision that cannot
/// be written is not made.
@Suite("Access server: audit log")
struct AuditTests {
    @Test(
        "claims with quotes, newlines and control characters cannot forge or split audit records: each request is still one JSON line"
    )
    func hostileClaimsStayInTheirRecord() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let forged =
            "x\"}\n{\"outcome\":\"granted\",\"role\":\"arn:aws:iam::123456789012:role/admin\"}\r\n\u{2028}\u{0}"
        let user = TestUser("mallory", subject: "mallory\n\"sub\"", email: forged, groups: ["platform-admins"])
        try await fixture.application().test(.router) { client in
            let response = try await client.credentials(
                "dev/tester\n{\"outcome\":\"granted\"}", token: try user.token())
            #expect(response.status == .forbidden)
            #expect(try json(response)["error"] as? String == "unknown_role")
            let second = try await client.credentials(Policies.adminArn, token: try user.token())
            #expect(try json(second)["error"] as? String == "mfa_required")
        }
        let text = try String(contentsOfFile: fixture.configuration.auditLogPath, encoding: .utf8)
        #expect(
            text.split(separator: "\n", omittingEmptySubsequences: false).count == 3,
            "two records and the final newline: \(text)")
        let records = try fixture.auditRecords()
        #expect(records.count == 2)
        #expect(records.map { $0["outcome"] as? String } == ["denied", "denied"])
        #expect(records.first?["name"] as? String == forged)
        #expect(records.first?["subject"] as? String == "mallory\n\"sub\"")
        #expect(records.first?["role"] as? String == "dev/tester\n{\"outcome\":\"granted\"}")
    }

    @Test(
        "the audit record's source address is the TCP peer: X-Forwarded-For and X-Real-IP from the caller cannot change it, nor can X-Request-Id set the request id"
    )
    func sourceAddressIsThePeer() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"])
        let id: String = try await fixture.application().test(.live) { client in
            let response = try await client.execute(
                uri: "/api/v1/credentials", method: .post,
                headers: [
                    .authorization: "Bearer " + (try alice.token()), .contentType: "application/json",
                    HTTPField.Name("X-Forwarded-For")!: "203.0.113.9", HTTPField.Name("X-Real-IP")!: "203.0.113.10",
                    HTTPField.Name("X-Request-Id")!: "chosen-by-caller",
                ], body: ByteBuffer(string: #"{"role_arn":"dev/tester"}"#))
            #expect(response.status == .forbidden)
            return try #require(requestID(response))
        }
        #expect(id != "chosen-by-caller")
        let record = try #require(try fixture.auditRecords().first)
        #expect(["127.0.0.1", "::1"].contains(record["source_address"] as? String ?? ""), "\(record)")
        #expect(record["request_id"] as? String == id)
    }

    @Test("the audit log is created readable and writable by the server's user only")
    func auditFileIsPrivate() throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let attributes = try FileManager.default.attributesOfItem(atPath: fixture.configuration.auditLogPath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }

    @Test(
        "when the audit log cannot be written the request fails closed with 500 audit_unavailable: no credentials leave the server and no denial is answered as if recorded"
    )
    func auditUnavailableFailsClosed() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        // /dev/full accepts the open and refuses every write (ENOSPC).
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint, auditPath: "/dev/full")
        defer { fixture.remove() }
        let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])
        try await fixture.application().test(.router) { client in
            let granted = try await client.credentials("prod/readonly", token: try alice.token())
            #expect(granted.status == .internalServerError, "\(text(granted))")
            #expect(try json(granted)["error"] as? String == "audit_unavailable")
            #expect(!text(granted).contains("ASIA") && !text(granted).contains("SessionToken"))

            let denied = try await client.credentials("dev/tester", token: try alice.token())
            #expect(denied.status == .internalServerError)
            #expect(try json(denied)["error"] as? String == "audit_unavailable")

            let console = try await client.post(
                "/api/v1/console", token: try alice.token(), json: #"{"role_arn":"prod/readonly"}"#)
            #expect(console.status == .internalServerError)
            #expect(!text(console).contains("SigninToken"))
        }
        #expect(fixture.logs.records.contains { $0.level == .error && $0.message.contains("audit log write failed") })
    }

    @Test(
        "a failure that is not a KeylessError (a credential provider throwing anything) is still answered 502 and audited as failed"
    )
    func unexpectedErrorsAreAudited() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        fixture.awsCredentials.failWithUnexpectedError()
        let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])
        try await fixture.application().test(.router) { client in
            let response = try await client.credentials("prod/readonly", token: try alice.token())
            #expect(response.status == .badGateway, "\(text(response))")
            #expect(try json(response)["error"] as? String == "upstream_error")
        }
        let records = try fixture.auditRecords()
        #expect(records.map { $0["outcome"] as? String } == ["failed"])
        #expect((records.first?["reason"] as? String)?.contains("credential helper crashed") == true, "\(records)")
    }
}

@Suite("narrowed sessions through the access server")
struct NarrowedSessionAPITests {
    @Test(
        "session_policy and policy_arns reach STS's AssumeRole exactly and the grant's audit record says it was narrowed; a bad scope is 400 invalid_request and reaches nothing"
    )
    func narrowed() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])
        let policy =
            #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#
        try await fixture.application().test(.router) { client in
            let body = try String(
                decoding: JSONSerialization.data(withJSONObject: [
                    "role_arn": "prod/readonly", "session_policy": policy,
                    "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                ]), as: UTF8.self)
            let granted = try await client.post("/api/v1/credentials", token: try alice.token(), json: body)
            #expect(granted.status == .ok, "\(text(granted))")
            let bad = try await client.post(
                "/api/v1/credentials", token: try alice.token(),
                json: #"{"role_arn":"prod/readonly","policy_arns":["arn:aws:iam::123456789012:role/admin"]}"#)
            #expect(bad.status == .badRequest, "\(text(bad))")
            #expect(try json(bad)["error"] as? String == "invalid_request")
        }
        let calls = try moto.assumeRoleCalls()
        #expect(calls.count == 1, "the bad scope reached nothing")
        #expect(calls.first?.form["Policy"] == policy)
        #expect(calls.first?.form["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess")
        let records = try fixture.auditRecords()
        let reason = records.first { $0["outcome"] as? String == "granted" }?["reason"] as? String ?? ""
        #expect(
            reason.contains(
                "narrowed by policy ARNs arn:aws:iam::aws:policy/ReadOnlyAccess and an inline session policy"),
            "\(records)")
    }

    @Test(
        "an agent acting for the caller: the session is named agent=NAME,<caller> and tagged keyless-agent=NAME, SourceIdentity stays the caller, and the audit says so"
    )
    func agent() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])
        try await fixture.application().test(.router) { client in
            let granted = try await client.post(
                "/api/v1/credentials", token: try alice.token(),
                json:
                    #"{"role_arn":"prod/readonly","agent":"claude","policy_arns":["arn:aws:iam::aws:policy/ReadOnlyAccess"]}"#
            )
            #expect(granted.status == .ok, "\(text(granted))")
            let bad = try await client.post(
                "/api/v1/credentials", token: try alice.token(), json: #"{"role_arn":"prod/readonly","agent":"a b"}"#)
            #expect(bad.status == .badRequest, "\(text(bad))")
        }
        let form = try #require(try moto.assumeRoleCalls().first?.form)
        #expect(form["RoleSessionName"] == "agent=claude,alice@example.com")
        #expect(form["SourceIdentity"] == "alice@example.com")
        let tags = (1...10).compactMap { index in
            form["Tags.member.\(index).Key"].map { ($0, form["Tags.member.\(index).Value"] ?? "") }
        }
        #expect(tags.contains { $0 == ("keyless-agent", "claude") }, "\(tags)")
        let records = try fixture.auditRecords()
        let granted = try #require(records.first { $0["outcome"] as? String == "granted" })
        #expect(
            (granted["reason"] as? String)?.contains("for agent claude acting for the caller") == true, "\(granted)")
        #expect(granted["session_name"] as? String == "agent=claude,alice@example.com")
    }
}
