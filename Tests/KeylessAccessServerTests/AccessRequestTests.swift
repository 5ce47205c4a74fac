import Foundation
import Hummingbird
import HummingbirdTesting
@testable import KeylessAccessServer
import KeylessStorage
import KeylessTestSupport
import KeylessWire
import Synchronization
import Testing

/// A webhook stand-in: the events in the order the service sent them.
final class RecordingSink: RequestEventSink {
    private let recorded = Mutex<[(event: String, body: String)]>([])

    func notify(event: String, body: String) { recorded.withLock { $0.append((event, body)) } }

    var events: [String] { recorded.withLock { $0.map(\.event) } }
    func body(_ index: Int) -> [String: Any] {
        let text = recorded.withLock { $0[index].body }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }
}

/// Just-in-time access through the API, with moto as STS and the clock moved by hand.
@Suite("Access server: roles on request, approvals and time-bound grants")
struct AccessRequestTests {
    static let policy = """
        defaults:
          region: us-east-1
          max_session: 1h
          credentials: server
        accounts:
          - id: "123456789012"
            alias: prod
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            max_session: 2h
            mfa_required: true
          - arn: arn:aws:iam::123456789012:role/readonly
          - arn: arn:aws:iam::123456789012:role/breakglass
        grants:
          - groups: [platform-admins]
            roles: [prod/readonly]
          - groups: [sre]
            roles: [prod/admin]
            eligible: true
            max_duration: 2h
            approvers: {groups: [platform-admins]}
            reason_required: true
          - groups: [oncall]
            roles: [prod/breakglass]
            eligible: true
            approvers: self
        """ + "\n"
    static let adminArn = "arn:aws:iam::123456789012:role/admin"

    /// Tokens valid for three days from the reference time, so that grants and requests run out while the login lasts.
    static func user(_ name: String, groups: [String], amr: [String] = ["pwd", "otp"]) -> TestUser {
        TestUser(name, email: "\(name)@example.com", groups: groups, amr: amr)
    }
    static let bob = user("bob", groups: ["sre"])
    static let alice = user("alice", groups: ["platform-admins"])
    static let carol = user("carol", groups: ["oncall"])
    static let dave = user("dave", groups: ["platform-admins"], amr: ["pwd"])
    static let eve = user("eve", groups: ["developers"])

    static func token(_ user: TestUser) throws -> String { try user.token { $0["exp"] = at(3 * 86400) } }

    static func ask(
        _ client: some TestClientProtocol, _ user: TestUser, role: String = "prod/admin", seconds: Int? = 3600,
        reason: String? = "INC-42: restart the stuck deployment"
    ) async throws -> TestResponse {
        var body: [String: Any] = ["role_arn": role]
        if let seconds { body["duration_seconds"] = seconds }
        if let reason { body["reason"] = reason }
        let text = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        return try await client.post("/api/v1/requests", token: try token(user), json: text)
    }

    static func act(
        _ client: some TestClientProtocol, _ user: TestUser, _ verb: String, _ id: String, reason: String? = nil
    ) async throws -> TestResponse {
        let body = reason.map { "{\"reason\":" + jsonText($0) + "}" } ?? "{}"
        return try await client.post("/api/v1/requests/\(id)/\(verb)", token: try token(user), json: body)
    }

    static func credentials(_ client: some TestClientProtocol, _ user: TestUser, role: String = "prod/admin")
        async throws -> TestResponse
    {
        try await client.post("/api/v1/credentials", token: try token(user), json: #"{"role_arn":"\#(role)"}"#)
    }

    @Test(
        "a person asks for a role on request, is refused before approval, gets credentials once an approver approves, and is refused with the reason once the grant ends; every step is audited and sent as an event"
    )
    func lifecycle() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let sink = RecordingSink()
        let fixture = try ServerFixture.make(policy: Self.policy, stsEndpoint: moto.endpoint, events: sink)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let before = try await Self.credentials(client, Self.bob)
            #expect(before.status == .forbidden, "\(text(before))")
            #expect(try json(before)["error"] as? String == "approval_required")
            #expect(text(before).contains("keyless request prod/admin"), "\(text(before))")

            let asked = try await Self.ask(client, Self.bob)
            #expect(asked.status == .created, "\(text(asked))")
            let request = try JSONDecoder().decode(AccessRequestDocument.self, from: Data(text(asked).utf8))
            #expect(request.status == "pending" && request.role == "prod/admin" && request.durationSeconds == 3600)
            #expect(request.requester.name == "bob@example.com")

            let waiting = try await Self.credentials(client, Self.bob)
            #expect(waiting.status == .forbidden)
            #expect(text(waiting).contains("Your request \(request.id) for it is waiting for an approver"))

            let listed = try await client.get(
                "/api/v1/requests", authorization: "Bearer " + (try Self.token(Self.alice)))
            let view = try JSONDecoder().decode(AccessRequestsDocument.self, from: Data(text(listed).utf8))
            #expect(view.toApprove.map(\.id) == [request.id], "\(text(listed))")
            #expect(view.mine.isEmpty)

            fixture.clock.advance(by: 60)
            let approved = try await Self.act(client, Self.alice, "approve", request.id, reason: "go ahead")
            #expect(approved.status == .ok, "\(text(approved))")
            let grant = try JSONDecoder().decode(AccessRequestDocument.self, from: Data(text(approved).utf8))
            #expect(grant.status == "approved" && grant.decidedBy?.name == "alice@example.com")
            #expect(grant.startsAt == AuditRecord.timestamp(referenceTime.addingTimeInterval(60)))
            #expect(grant.endsAt == AuditRecord.timestamp(referenceTime.addingTimeInterval(3660)))

            let granted = try await Self.credentials(client, Self.bob)
            #expect(granted.status == .ok, "\(text(granted))")

            fixture.clock.advance(by: 3600)  // the grant's end
            let after = try await Self.credentials(client, Self.bob)
            #expect(after.status == .forbidden, "\(text(after))")
            #expect(try json(after)["error"] as? String == "approval_required")
            #expect(
                text(after).contains(
                    "Your access through request \(request.id) ended at \(AuditRecord.timestamp(referenceTime.addingTimeInterval(3660)))"
                ), "\(text(after))")
        }
        #expect(try await fixture.service.sweepRequests() == 1)
        #expect(try await fixture.service.sweepRequests() == 0, "an expired grant is expired once")

        let calls = try moto.assumeRoleCalls()
        #expect(calls.map { $0.form["RoleArn"] } == [Self.adminArn], "one AssumeRole: only while the grant held")
        #expect(calls.first?.form["DurationSeconds"] == "3600")

        let records = try fixture.auditRecords()
        let steps = records.map { "\($0["action"] as? String ?? "")/\($0["outcome"] as? String ?? "")" }
        #expect(
            steps == [
                "credentials/denied", "access_request/requested", "credentials/denied", "access_request/approved",
                "credentials/granted", "credentials/denied", "access_request/expired",
            ], "\(steps)")
        let id = try #require(records[1]["access_request"] as? String)
        #expect(
            records.filter { $0["access_request"] as? String == id }.count == 4, "requested, approved, used, expired")
        #expect((records[1]["reason"] as? String)?.contains("INC-42: restart the stuck deployment") == true)
        #expect((records[3]["name"] as? String) == "alice@example.com")
        #expect((records[3]["reason"] as? String)?.contains("(request of bob@example.com)") == true)
        #expect(
            (records[4]["reason"] as? String)?.hasPrefix(
                "granted by access request \(id) (approved by alice@example.com) until") == true,
            "\(records[4])")
        #expect(sink.events == ["request.created", "request.approved", "request.expired"])
        let created = sink.body(0)
        #expect((created["request"] as? [String: Any])?["id"] as? String == id)
        #expect(created["url"] as? String == "https://keyless.example.test/#request-\(id)")
    }

    @Test(
        "a requester cannot approve their own request unless the policy says self; break-glass self-approval needs a reason and is audited as such"
    )
    func selfApproval() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(policy: Self.policy, stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let asked = try await Self.ask(client, Self.bob)
            let id = try #require(try json(asked)["id"] as? String)
            let own = try await Self.act(client, Self.bob, "approve", id)
            #expect(own.status == .forbidden, "\(text(own))")
            #expect(try json(own)["error"] as? String == "self_approval_refused")
            #expect(text(own).contains("platform-admins"))
            #expect(try await Self.credentials(client, Self.bob).status == .forbidden)

            let silent = try await Self.ask(client, Self.carol, role: "prod/breakglass", reason: nil)
            #expect(silent.status == .badRequest)
            #expect(try json(silent)["error"] as? String == "reason_required")
            let glass = try await Self.ask(client, Self.carol, role: "prod/breakglass", reason: "prod is down, P1")
            let glassID = try #require(try json(glass)["id"] as? String)
            let approved = try await Self.act(client, Self.carol, "approve", glassID)
            #expect(approved.status == .ok, "\(text(approved))")
            #expect(try json(approved)["self_approved"] as? Bool == true)
            #expect(try await Self.credentials(client, Self.carol, role: "prod/breakglass").status == .ok)
        }
        let records = try fixture.auditRecords()
        #expect(
            records.contains {
                $0["outcome"] as? String == "approve_refused"
                    && ($0["reason"] as? String)?.hasPrefix("self_approval_refused") == true
            }, "\(records)")
        let glass = try #require(records.first { $0["outcome"] as? String == "approved" })
        #expect((glass["reason"] as? String)?.contains("by the requester (break-glass, allowed by the policy)") == true)
        #expect(glass["name"] as? String == "carol@example.com")
    }

    @Test("a denial needs a reason, and the requester is shown it when they ask for credentials and list requests")
    func denial() async throws {
        let sink = RecordingSink()
        let fixture = try ServerFixture.make(policy: Self.policy, events: sink)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let id = try #require(try json(try await Self.ask(client, Self.bob))["id"] as? String)
            let bare = try await Self.act(client, Self.alice, "deny", id)
            #expect(bare.status == .badRequest)
            #expect(try json(bare)["error"] as? String == "reason_required")
            let denied = try await Self.act(client, Self.alice, "deny", id, reason: "not during the release freeze")
            #expect(denied.status == .ok, "\(text(denied))")
            #expect(try json(denied)["status"] as? String == "denied")

            let refused = try await Self.credentials(client, Self.bob)
            #expect(
                text(refused).contains(
                    "Your request \(id) for it was denied by alice@example.com: not during the release freeze."),
                "\(text(refused))")
            let mine = try await client.get("/api/v1/requests", authorization: "Bearer " + (try Self.token(Self.bob)))
            let view = try JSONDecoder().decode(AccessRequestsDocument.self, from: Data(text(mine).utf8))
            #expect(view.mine.first?.decisionNote == "not during the release freeze")
            let again = try await Self.act(client, Self.alice, "approve", id)
            #expect(again.status == .conflict)
            #expect(try json(again)["error"] as? String == "not_pending")
        }
        #expect(sink.events == ["request.created", "request.denied"])
    }

    @Test(
        "only members of the approver groups decide, never the requester's peers outside them, and only with the sign-in the role itself needs"
    )
    func whoDecides() async throws {
        let fixture = try ServerFixture.make(policy: Self.policy)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let id = try #require(try json(try await Self.ask(client, Self.bob))["id"] as? String)
            let outsider = try await Self.act(client, Self.eve, "approve", id)
            #expect(outsider.status == .forbidden)
            #expect(try json(outsider)["error"] as? String == "not_an_approver")
            let weak = try await Self.act(client, Self.dave, "approve", id)
            #expect(weak.status == .forbidden, "\(text(weak))")
            #expect(try json(weak)["error"] as? String == "mfa_required")
            let unseen = try await client.get(
                "/api/v1/requests/\(id)", authorization: "Bearer " + (try Self.token(Self.eve)))
            #expect(unseen.status == .notFound)

            fixture.clock.advance(by: 86400)  // the request waited a day: nobody may decide it now
            let late = try await Self.act(client, Self.alice, "approve", id)
            #expect(late.status == .conflict, "\(text(late))")
            #expect(text(late).contains("expired"))
        }
        let refusals = try fixture.auditRecords().filter { ($0["outcome"] as? String)?.hasSuffix("_refused") == true }
        #expect(refusals.count == 2, "\(refusals)")
    }

    @Test(
        "the requester or an approver ends a grant early and credentials stop at once; a grant's sessions last at most what the grant has left (STS's 15 minutes at least)"
    )
    func endEarly() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(policy: Self.policy, stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let tooLong = try await Self.ask(client, Self.bob, seconds: 3 * 3600)
            #expect(tooLong.status == .badRequest)
            #expect(text(tooLong).contains("2 h"), "\(text(tooLong))")

            let id = try #require(try json(try await Self.ask(client, Self.bob, seconds: 1800))["id"] as? String)
            #expect(try await Self.act(client, Self.alice, "approve", id).status == .ok)
            fixture.clock.advance(by: 1200)  // 10 minutes left
            #expect(try await Self.credentials(client, Self.bob).status == .ok)
            let ended = try await Self.act(client, Self.bob, "revoke", id, reason: "done")
            #expect(ended.status == .ok, "\(text(ended))")
            #expect(try json(ended)["status"] as? String == "revoked")
            let after = try await Self.credentials(client, Self.bob)
            #expect(after.status == .forbidden)
            #expect(text(after).contains("was ended early"), "\(text(after))")
            #expect(try await Self.act(client, Self.alice, "revoke", id).status == .conflict)

            let second = try #require(try json(try await Self.ask(client, Self.bob))["id"] as? String)
            #expect(try await Self.act(client, Self.alice, "approve", second).status == .ok)
            let byApprover = try await Self.act(client, Self.alice, "revoke", second, reason: "incident closed")
            #expect(byApprover.status == .ok)
            #expect(try json(byApprover)["end_note"] as? String == "incident closed")
        }
        #expect(try moto.assumeRoleCalls().map { $0.form["DurationSeconds"] } == ["900"])
        let outcomes = try fixture.auditRecords().compactMap { $0["outcome"] as? String }
        #expect(outcomes.filter { $0 == "revoked" }.count == 2, "\(outcomes)")
    }

    @Test(
        "/api/v1/config lists roles on request with what may be asked; a second request for the same role while one is open is refused"
    )
    func configAndDuplicates() async throws {
        let fixture = try ServerFixture.make(policy: Self.policy)
        defer { fixture.remove() }
        let caller = try await fixture.service.authenticate(try Self.token(Self.bob))
        let body = fixture.service.configDocument(for: caller)
        #expect(try WireFormatTests.reencoded(ServerConfigDocument.self, body) == body)
        let document = try JSONDecoder().decode(ServerConfigDocument.self, from: Data(body.utf8))
        let admin = try #require(document.allRoles.first { $0.role.arn == Self.adminArn }?.role)
        #expect(
            admin.onRequest
                == .init(
                    maxDurationSeconds: 7200, approverGroups: ["platform-admins"], selfApproval: false,
                    reasonRequired: true))
        let aliceRoles = try JSONDecoder().decode(
            ServerConfigDocument.self,
            from: Data(
                fixture.service.configDocument(
                    for: try await fixture.service.authenticate(try Self.token(Self.alice))
                ).utf8))
        #expect(aliceRoles.allRoles.map(\.role.name) == ["readonly"], "standing roles only, none on request")
        try await fixture.application().test(.router) { client in
            #expect(try await Self.ask(client, Self.bob).status == .created)
            let twice = try await Self.ask(client, Self.bob)
            #expect(twice.status == .conflict)
            #expect(try json(twice)["error"] as? String == "already_requested")
            let standing = try await Self.ask(client, Self.alice, role: "prod/readonly")
            #expect(try json(standing)["error"] as? String == "already_granted")
            let stranger = try await Self.ask(client, Self.eve)
            #expect(stranger.status == .forbidden)
            #expect(try json(stranger)["error"] as? String == "not_eligible")
        }
    }

    @Test(
        "a requester withdraws a pending request (cancelled, audited, sent as an event); nobody can decide it afterwards, and an approver cannot withdraw it for them"
    )
    func withdraw() async throws {
        let sink = RecordingSink()
        let fixture = try ServerFixture.make(policy: Self.policy, events: sink)
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let id = try #require(try json(try await Self.ask(client, Self.bob))["id"] as? String)
            let byApprover = try await Self.act(client, Self.alice, "revoke", id)
            #expect(
                byApprover.status == .conflict, "an approver ends grants, not pending requests: \(text(byApprover))")
            let withdrawn = try await Self.act(client, Self.bob, "revoke", id, reason: "fixed without it")
            #expect(withdrawn.status == .ok, "\(text(withdrawn))")
            #expect(try json(withdrawn)["status"] as? String == "cancelled")
            #expect(try await Self.act(client, Self.alice, "approve", id).status == .conflict)
            let refused = try await Self.credentials(client, Self.bob)
            #expect(text(refused).contains("You withdrew your request \(id) for it."), "\(text(refused))")
        }
        let outcomes = try fixture.auditRecords().compactMap { $0["outcome"] as? String }
        #expect(outcomes.contains("cancelled"), "\(outcomes)")
        #expect(sink.events == ["request.created", "request.cancelled"])
    }

    @Test("a store that fails refuses with 503 requests_unavailable and grants nothing")
    func storeDown() async throws {
        let fixture = try ServerFixture.make(policy: Self.policy, requests: FailingRequestStore())
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let asked = try await Self.ask(client, Self.bob)
            #expect(asked.status == .serviceUnavailable)
            #expect(try json(asked)["error"] as? String == "requests_unavailable")
            let credentials = try await Self.credentials(client, Self.bob)
            #expect(credentials.status == .serviceUnavailable)
            #expect(try await Self.credentials(client, Self.alice, role: "prod/readonly").status != .serviceUnavailable)
        }
    }
}

/// A store whose every call fails, as a database that went away.
struct FailingRequestStore: AccessRequestStore {
    struct Down: Error {}
    func migrate() async throws {}
    func close() async throws {}
    func insertRequest(_ request: AccessRequestRecord) async throws { throw Down() }
    func request(id: String) async throws -> AccessRequestRecord? { throw Down() }
    func requests(_ query: AccessRequestQuery) async throws -> [AccessRequestRecord] { throw Down() }
    func decide(id: String, _ decision: AccessDecision, now: Date) async throws -> AccessRequestRecord? { throw Down() }
    func revoke(id: String, by actor: AccessActor, reason: String?, now: Date) async throws -> AccessRequestRecord? {
        throw Down()
    }
    func activeGrant(issuer: String, subject: String, roleArn: String, now: Date) async throws -> AccessRequestRecord? {
        throw Down()
    }
    func expire(now: Date) async throws -> [AccessRequestRecord] { throw Down() }
    func purge(endedBefore before: Date) async throws { throw Down() }
}
