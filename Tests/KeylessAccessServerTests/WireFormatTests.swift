import Foundation
import KeylessAccessServer
import KeylessWire
import Testing

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
        "text with quotes, backslashes, slashes, a newline, a tab and non-ASCII, an account without alias: still the same bytes"
    )
    func awkwardText() async throws {
        let fixture = try ServerFixture.make(policy: Self.awkwardPolicy)
        defer { fixture.remove() }
        let caller = try await fixture.service.authenticate(try AuthorizationMatrixTests.alice.token())
        let fast = fixture.service.configDocument(for: caller)
        #expect(fast.contains(#""alias":null"#), "\(fast)")
        #expect(fast.contains(#"\"seule\""#), "\(fast)")
        #expect(fast.contains(#""credentials":"web-identity""#) && fast.contains(#""credentials":"server""#), "\(fast)")
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
        grants:
          - groups: [platform-admins]
            roles: [arn:aws:iam::123456789012:role/readonly, arn:aws:iam::210987654321:role/developer]
        """
}
