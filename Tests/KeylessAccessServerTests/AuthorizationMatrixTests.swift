import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessAccessServer
import KeylessTestSupport
import Testing

/// Who may assume what, asked through the API for every (user, role) pair of a policy with MFA, alias, "dev/*",
/// claim-glob and issuer-restricted grants.
@Suite("Access server: authorization matrix")
struct AuthorizationMatrixTests {
    enum Expected: Equatable, CustomStringConvertible {
        case granted
        case denied(String)

        var description: String {
            switch self {
            case .granted: "granted"
            case .denied(let code): "denied(\(code))"
            }
        }
    }

    struct Role {
        /// What the caller sends as role_arn (an ARN or alias/name).
        let requested: String
        /// The role's ARN, when it exists.
        let arn: String?
    }

    static let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])
    static let bob = TestUser("bob", email: "bob@example.com", groups: ["platform-admins"], amr: ["pwd"])
    static let carol = TestUser("carol", email: "carol@audit.example.com", groups: ["developers"])
    static let erin = TestUser(
        "erin", email: "erin@audit.example.org", groups: ["developers", "sre"], amr: ["pwd", "hwk"])
    static let dave = TestUser("dave", issuer: Issuers.partner, subject: "partner-dave", email: "dave@partner.example")
    static let mallory = TestUser("mallory", subject: "mallory", email: "mallory@example.com", amr: ["pwd", "otp"])
    static let users = [alice, bob, carol, erin, dave, mallory]

    static let roles = [
        Role(requested: Policies.adminArn, arn: Policies.adminArn),
        Role(requested: "prod/readonly", arn: Policies.readonlyArn),
        Role(requested: Policies.auditorArn, arn: Policies.auditorArn),
        Role(requested: Policies.partnerArn, arn: Policies.partnerArn),
        Role(requested: Policies.developerArn, arn: Policies.developerArn),
        Role(requested: "dev/tester", arn: Policies.testerArn),
        Role(requested: "arn:aws:iam::123456789012:role/ghost", arn: nil),
        Role(requested: "prod/ghost", arn: nil),
    ]

    /// The answer for every pair, written out by hand from the policy (rows: users; columns: roles above).
    static let g = Expected.granted
    static let ng = Expected.denied("not_granted")
    static let mfa = Expected.denied("mfa_required")
    static let unknown = Expected.denied("unknown_role")
    static let expected: [String: [Expected]] = [
        //         admin  readonly auditor partner developer tester ghost-arn ghost-ref
        "alice": [g, g, ng, ng, ng, ng, unknown, unknown],
        "bob": [mfa, g, ng, ng, ng, ng, unknown, unknown],
        "carol": [ng, ng, g, ng, g, g, unknown, unknown],
        "erin": [ng, ng, ng, ng, g, g, unknown, unknown],
        "dave": [ng, ng, ng, g, ng, ng, unknown, unknown],
        "mallory": [ng, ng, ng, ng, ng, ng, unknown, unknown],
    ]

    @Test(
        "every (user, role) pair is answered 200 with credentials exactly when the policy grants it, else 403 with the exact reason, and each answer has one matching audit record"
    )
    func matrix() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }

        struct Asked { let user: TestUser; let role: Role; let expected: Expected; let requestID: String }
        let asked: [Asked] = try await fixture.application().test(.live) { client in
            var asked: [Asked] = []
            for user in Self.users {
                let token = try user.token()
                for (column, role) in Self.roles.enumerated() {
                    let expected = try #require(Self.expected[user.name]?[column])
                    let response = try await client.credentials(role.requested, token: token)
                    let id = try #require(requestID(response), "no X-Request-Id for \(user) \(role.requested)")
                    let body = try json(response)
                    switch expected {
                    case .granted:
                        #expect(response.status == .ok, "\(user) \(role.requested): \(text(response))")
                        #expect(
                            (body["AccessKeyId"] as? String)?.hasPrefix("ASIA") == true, "\(user) \(role.requested)")
                        #expect(body["Version"] as? Int == 1)
                        #expect(body["RoleArn"] as? String == role.arn, "\(user) \(role.requested)")
                        #expect((body["AssumedRoleArn"] as? String)?.contains(":assumed-role/") == true)
                    case .denied(let code):
                        #expect(response.status == .forbidden, "\(user) \(role.requested): \(text(response))")
                        #expect(body["error"] as? String == code, "\(user) \(role.requested): \(text(response))")
                        #expect(body["request_id"] as? String == id)
                        #expect((body["error_description"] as? String)?.isEmpty == false)
                        #expect(body["AccessKeyId"] == nil)
                    }
                    asked.append(Asked(user: user, role: role, expected: expected, requestID: id))
                }
            }
            return asked
        }

        // Exactly the granted pairs reached STS.
        let granted = asked.filter { $0.expected == .granted }
        #expect(try moto.assumeRoleCalls().map { $0.form["RoleArn"] } == granted.map(\.role.arn))

        let records = try fixture.auditRecords()
        #expect(records.count == asked.count, "one audit record per request")
        #expect(
            Set(records.compactMap { $0["request_id"] as? String }) == Set(asked.map(\.requestID)),
            "request ids are distinct and all recorded")
        for (record, request) in zip(records, asked) {
            let what = "\(request.user) \(request.role.requested)"
            #expect(record["request_id"] as? String == request.requestID, "\(what)")
            #expect(record["action"] as? String == "credentials", "\(what)")
            #expect(record["subject"] as? String == request.user.subject, "\(what)")
            #expect(record["issuer"] as? String == request.user.issuer, "\(what)")
            #expect(["127.0.0.1", "::1"].contains(record["source_address"] as? String ?? ""), "\(what): \(record)")
            #expect(record["time"] as? String == "2026-01-01T00:00:00.000Z", "\(what)")
            switch request.expected {
            case .granted:
                #expect(record["outcome"] as? String == "granted", "\(what)")
                #expect(record["role"] as? String == request.role.arn, "\(what)")
                #expect(record["session_name"] as? String == request.user.email, "\(what)")
            case .denied(let code):
                #expect(record["outcome"] as? String == "denied", "\(what)")
                #expect(record["role"] as? String == request.role.requested, "\(what)")
                #expect(
                    (record["reason"] as? String)?.hasPrefix(code + ": ") == true, "\(what): \(record["reason"] ?? "-")"
                )
                #expect(record["session_name"] == nil, "\(what)")
            }
        }
    }

    @Test(
        "GET /api/v1/config lists exactly the roles the matrix grants each user, so configure never offers a role that would be refused"
    )
    func configMatchesMatrix() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            for user in Self.users {
                let response = try await client.get("/api/v1/config", authorization: "Bearer " + (try user.token()))
                #expect(response.status == .ok)
                let body = try json(response)
                let accounts = try #require(body["accounts"] as? [[String: Any]])
                let listed = Set(
                    accounts.flatMap { ($0["roles"] as? [[String: Any]] ?? []).compactMap { $0["arn"] as? String } })
                // MFA is checked when credentials are asked for; the role is still listed (marked mfa_required).
                let expected = Set(
                    zip(Self.roles, Self.expected[user.name]!).compactMap { role, answer in
                        answer == .granted || answer == .denied("mfa_required") ? role.arn : nil
                    })
                #expect(listed == expected, "\(user): \(listed.sorted())")
                #expect(body["issuer"] as? String == user.issuer)
                let caller = try #require(body["caller"] as? [String: Any])
                #expect(caller["subject"] as? String == user.subject)
            }
        }
        // Listing is not a decision: nothing is audited.
        #expect(try fixture.auditRecords().isEmpty)
    }
}
