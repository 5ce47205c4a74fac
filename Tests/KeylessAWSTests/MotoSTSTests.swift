import Foundation
import KeylessAWS
import KeylessHTTP
import KeylessSigV4
import KeylessTestFakes
import KeylessTestSupport
import Testing

@Suite("STS against moto")
struct MotoSTSTests {
    /// An unsigned JWT (moto does not check web-identity tokens); base64url of fixed JSON.
    static let dummyToken =
        [
            #"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            #"{"iss":"https://idp.example.test","sub":"alice","aud":"keyless-cli","exp":4102444800}"#,
        ]
        .map {
            Data($0.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(
                of: "/", with: "_"
            )
            .replacingOccurrences(of: "=", with: "")
        }
        .joined(separator: ".") + ".c2lnbmF0dXJl"

    @Test("AssumeRoleWithWebIdentity against a real moto server returns ASIA credentials for the named session")
    func assumeRole() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "keyless-moto")
        let session = SessionName.from(email: "alice@example.com", preferredUsername: "alice", subject: "sub-1")
        let client = STSClient(endpoint: moto.endpoint, http: AsyncHTTPTransport(), logger: quietLogger)
        let before = Date()

        let credentials = try await client.assumeRoleWithWebIdentity(
            WebIdentityRequest(
                roleArn: role, sessionName: session, webIdentityToken: Self.dummyToken, durationSeconds: 900,
                issuer: testIssuer))

        #expect(credentials.accessKeyId.hasPrefix("ASIA"))
        #expect(credentials.accessKeyId.count == 20)
        #expect(!credentials.secretAccessKey.isEmpty)
        #expect(!credentials.sessionToken.isEmpty)
        let arn = try #require(credentials.assumedRoleArn)
        #expect(arn.hasPrefix("arn:aws:sts::"))
        #expect(arn.hasSuffix(":assumed-role/keyless-moto/\(session)"))
        // moto stamps the expiry from its own clock: about 900 s from now.
        #expect(credentials.expiration > before.addingTimeInterval(800))
        #expect(credentials.expiration < Date().addingTimeInterval(1000))
        #expect(try moto.stsPostCount() == 1)
    }

    @Test(
        "a narrowed AssumeRoleWithWebIdentity reaches moto's STS with the session policy's exact text and the managed policy ARNs, and is answered"
    )
    func sessionPolicyReachesSTS() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "keyless-narrowed")
        try await moto.startRecording()
        let client = STSClient(endpoint: moto.endpoint, http: AsyncHTTPTransport(), logger: quietLogger)
        let policy =
            "{\"Version\": \"2012-10-17\",\n \"Statement\": [{\"Effect\": \"Allow\", \"Action\": \"s3:Get*\", \"Resource\": \"*\"}]}"
        let scope = SessionScope(
            policy: policy,
            policyArns: ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/deploy-read"])
        let credentials = try await client.assumeRoleWithWebIdentity(
            WebIdentityRequest(
                roleArn: role, sessionName: "alice", webIdentityToken: Self.dummyToken, durationSeconds: 900,
                issuer: testIssuer, scope: scope))
        #expect(credentials.accessKeyId.hasPrefix("ASIA"))
        let form = try #require(
            try await moto.recordedForms().first { $0["Action"] == "AssumeRoleWithWebIdentity" })
        #expect(form["Policy"] == policy, "\(form.keys.sorted())")
        #expect(form["PolicyArns.member.1.arn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess")
        #expect(form["PolicyArns.member.2.arn"] == "arn:aws:iam::123456789012:policy/deploy-read")
        #expect(form["PolicyArns.member.3.arn"] == nil)
    }

    @Test(
        "AssumeRole signed with SigV4 is answered by moto's STS for the session name and duration sent, with source identity and tags in the form"
    )
    func signedAssumeRole() async throws {
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "keyless-server")
        let client = STSClient(endpoint: moto.endpoint, http: AsyncHTTPTransport(), logger: quietLogger)
        let request = AssumeRoleRequest(
            roleArn: role, sessionName: "alice@example.com", durationSeconds: 1800, sourceIdentity: "alice@example.com",
            tags: [(key: "team", value: "platform"), (key: "email", value: "alice@example.com")])
        let credentials = try await client.assumeRole(
            request, credentials: SigV4Credentials(accessKeyID: "AKIDEXAMPLESERVER", secretAccessKey: "server-secret"),
            region: "us-east-1", date: Date())
        #expect(credentials.accessKeyId.hasPrefix("ASIA"))
        #expect(credentials.assumedRoleArn?.hasSuffix(":assumed-role/keyless-server/alice@example.com") == true)
        #expect(
            credentials.expiration > Date().addingTimeInterval(1700)
                && credentials.expiration < Date().addingTimeInterval(1900))
        #expect(try moto.stsPostCount() == 1)
        let form = request.formBody
        #expect(form.contains("SourceIdentity=alice%40example.com"))
        #expect(form.contains("Tags.member.2.Key=email&Tags.member.2.Value=alice%40example.com"))
    }
}
