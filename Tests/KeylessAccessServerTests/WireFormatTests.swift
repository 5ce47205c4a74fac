import Foundation
@testable import KeylessAccessServer
import KeylessWire
import Testing
import Yams

/// The server's hand-built `/api/v1/config` encoder against KeylessWire's types, which the CLI decodes.
@Suite("/api/v1 bodies: the server's fast encoder writes exactly KeylessWire's types")
struct WireFormatTests {
    static func reencoded<T: Codable>(_ type: T.Type, _ text: String) throws -> String {
        let decoded = try JSONDecoder().decode(type, from: Data(text.utf8))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(decoded), as: UTF8.self)
    }

    @Test(
        "for every user of the authorization matrix, the config body decodes as ServerConfigDocument and encodes back to the same bytes"
    )
    func configByteForByte() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        var rolesSeen = 0
        for user in AuthorizationMatrixTests.users {
            let caller = try await fixture.service.authenticate(try user.token())
            let fast = fixture.service.configDocument(for: caller)
            #expect(try Self.reencoded(ServerConfigDocument.self, fast) == fast, "\(user)")
            rolesSeen += try JSONDecoder().decode(ServerConfigDocument.self, from: Data(fast.utf8)).allRoles.count
        }
        #expect(rolesSeen > 0, "the matrix lists roles, so roles were compared")
    }

    @Test(
        "text with quotes, backslashes, slashes, a newline, a tab and non-ASCII, an account without alias, a passkey role: still the same bytes"
    )
    func awkwardText() async throws {
        let fixture = try ServerFixture.make(policy: Self.awkwardPolicy)
        defer { fixture.remove() }
        let caller = try await fixture.service.authenticate(try AuthorizationMatrixTests.alice.token())
        let fast = fixture.service.configDocument(for: caller)
        #expect(fast.contains(#""alias":null"#), "\(fast)")
        #expect(fast.contains(#"\"seule\""#), "\(fast)")
        #expect(fast.contains(#""credentials":"web-identity""#) && fast.contains(#""credentials":"server""#), "\(fast)")
        #expect(fast.contains(#""mfa_required":true,"name":"developer","passkey_required":true"#), "\(fast)")
        #expect(try Self.reencoded(ServerConfigDocument.self, fast) == fast)
    }

    @Test(
        "the credentials answer is the credential_process document with the role, and an error body keeps its three fields"
    )
    func otherBodies() throws {
        let document = CredentialsDocument(
            accessKeyId: "ASIAEXAMPLE", secretAccessKey: "wJalr/K7MDENG+bPxRfiCY", sessionToken: "FwoG/Zm9v",
            expiration: "2026-12-06T12:00:00Z", roleArn: "arn:aws:iam::123456789012:role/dev", assumedRoleArn: nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(
            String(decoding: try encoder.encode(document), as: UTF8.self)
                == #"{"AccessKeyId":"ASIAEXAMPLE","Expiration":"2026-12-06T12:00:00Z","RoleArn":"arn:aws:iam::123456789012:role/dev","SecretAccessKey":"wJalr/K7MDENG+bPxRfiCY","SessionToken":"FwoG/Zm9v","Version":1}"#
        )
        let error = APIErrorDocument(error: "not_granted", errorDescription: "no", requestID: "r-1")
        #expect(
            String(decoding: try encoder.encode(error), as: UTF8.self)
                == #"{"error":"not_granted","error_description":"no","request_id":"r-1"}"#)
    }

    /// The keys of `value` encoded as JSON, at the top and at `path` (object keys; an array steps into its first item).
    static func keys(_ value: any Encodable, at path: [String] = []) throws -> Set<String> {
        var node: Any = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(value))
        for step in path {
            if let array = node as? [Any] { node = try #require(array.first) }
            let object = try #require(node as? [String: Any])
            node = try #require(object[step], "no \(step) among \(object.keys.sorted())")
            if let array = node as? [Any] { node = try #require(array.first) }
        }
        return Set(try #require(node as? [String: Any]).keys)
    }

    @Test("the OpenAPI document's schemas name exactly the fields of KeylessWire's types, no more, no fewer")
    func openAPIMatchesTypes() throws {
        let document = try #require(try Yams.load(yaml: OpenAPIDocument.yaml) as? [String: Any])
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        func properties(_ name: String, _ path: [String] = []) throws -> Set<String> {
            var schema = try #require(schemas[name] as? [String: Any], "\(name)")
            for step in path {
                schema = try #require((schema["properties"] as? [String: Any])?[step] as? [String: Any], "\(step)")
                if let items = schema["items"] as? [String: Any] { schema = items }
            }
            return Set(try #require(schema["properties"] as? [String: Any]).keys)
        }
        let onRequest = ServerConfigDocument.OnRequest(
            maxDurationSeconds: 3600, approverGroups: ["g"], selfApproval: false, reasonRequired: true)
        let role = ServerConfigDocument.Role(
            arn: "a", name: "n", description: "d", maxSessionSeconds: 3600, mfaRequired: false, credentials: "server",
            region: "r", profile: "p", credentialProcess: "c", passkeyRequired: true, onRequest: onRequest)
        let config = ServerConfigDocument(
            issuer: "i", clientID: "c", serverURL: "s", defaultRegion: "r",
            caller: .init(subject: "s", name: "n", groups: ["g"], mfa: true),
            accounts: [.init(id: "1", alias: "a", roles: [role])])
        #expect(try properties("Config") == Self.keys(config))
        #expect(try properties("Config", ["caller"]) == Self.keys(config, at: ["caller"]))
        #expect(try properties("Config", ["accounts"]) == Self.keys(config, at: ["accounts"]))
        #expect(try properties("Role") == Self.keys(role))
        #expect(try properties("Role", ["on_request"]) == Self.keys(onRequest))
        let person = AccessRequestDocument.Person(name: "n", subject: "s")
        let request = AccessRequestDocument(
            id: "abcdefghij", status: "revoked", roleArn: "a", role: "p/a", requester: person, reason: "r",
            durationSeconds: 3600, createdAt: "c", pendingUntil: "p", decidedBy: person, decidedAt: "d",
            decisionNote: "n", selfApproved: false, startsAt: "s", endsAt: "e", endedBy: person, endNote: "n",
            endedAt: "e")
        #expect(try properties("AccessRequest") == Self.keys(request))
        #expect(try properties("Person") == Self.keys(person))
        #expect(
            try properties("AccessRequests")
                == Self.keys(AccessRequestsDocument(mine: [request], toApprove: [], active: [])))
        #expect(
            try properties("AccessRequestCreate")
                == Self.keys(AccessRequestCreate(roleArn: "r", durationSeconds: 3600, reason: "r")))
        #expect(try properties("AccessRequestAction") == Self.keys(AccessRequestAction(reason: "r")))
        let credentials = CredentialsDocument(
            accessKeyId: "a", secretAccessKey: "s", sessionToken: "t", expiration: "e", roleArn: "r",
            assumedRoleArn: "x")
        #expect(try properties("Credentials") == Self.keys(credentials))
        #expect(
            try properties("CredentialsRequest")
                == Self.keys(
                    CredentialsRequest(
                        roleArn: "r", durationSeconds: 1, sessionPolicy: "{}", policyArns: ["a"], agent: "g")))
        #expect(try properties("ConsoleRequest") == Self.keys(ConsoleRequest(roleArn: "r", destination: "d")))
        #expect(try properties("Console") == Self.keys(ConsoleDocument(url: "u")))
        #expect(
            try properties("Error") == Self.keys(APIErrorDocument(error: "e", errorDescription: "d", requestID: "r")))
    }

    static let awkwardPolicy = """
        accounts:
          - id: "123456789012"
            alias: prod
          - id: "210987654321"
        roles:
          - arn: arn:aws:iam::123456789012:role/readonly
            credentials: server
            description: "Lecture \\"seule\\" — für alle\\nzweite Zeile / 日本 \\\\ tab\\there"
          - arn: arn:aws:iam::210987654321:role/developer
            credentials: web-identity
            mfa_required: phishing-resistant
        grants:
          - groups: [platform-admins]
            roles: [arn:aws:iam::123456789012:role/readonly, arn:aws:iam::210987654321:role/developer]
        """
}
