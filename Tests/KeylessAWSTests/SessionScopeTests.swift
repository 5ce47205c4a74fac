import Foundation
import KeylessAWS
import KeylessCore
import KeylessFastPath
import KeylessTestSupport
import Testing

/// Session policies (`Policy`, `PolicyArns`) as keyless sends them to STS, against botocore's own STS serializer (the
/// model the AWS CLI and boto3 use, `scripts/partners/botocore_sts_form.py`), and as the credential cache keys them.
@Suite("session policies: what STS receives, what is refused first, and how the cache keeps narrowed sessions apart")
struct SessionScopeTests {
    static let policy = """
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
          "Resource": "*", "Condition": {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}}]}
        """
    static let arns = ["arn:aws:iam::aws:policy/ReadOnlyAccess", "arn:aws:iam::123456789012:policy/team/deploy-read"]
    static let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"

    /// A form body as its (name, value) pairs, sorted: percent-decoded, `+` read as a space (botocore may write one).
    static func pairs(_ body: String) -> [String] {
        body.split(separator: "&").map {
            let decoded = String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            return decoded
        }.sorted()
    }

    static func botocore(_ cases: [[String: Any]]) throws -> [String] {
        let input = try JSONSerialization.data(withJSONObject: cases)
        let script = repositoryRoot() + "/scripts/partners/botocore_sts_form.py"
        let result = try PartnerProcess.run(
            Tooling.python(), [script, String(decoding: input, as: UTF8.self)], timeout: 60)
        try #require(result.status == 0, "botocore_sts_form.py failed: \(result.output)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String])
    }

    @Test(
        "AssumeRoleWithWebIdentity and AssumeRole with a policy and managed policy ARNs carry exactly the fields botocore writes"
    )
    func againstBotocore() throws {
        let scope = SessionScope(policy: Self.policy, policyArns: Self.arns)
        try scope.validate()
        let web = WebIdentityRequest(
            roleArn: "arn:aws:iam::123456789012:role/keyless-dev", sessionName: "alice@example.com",
            webIdentityToken: Self.token, durationSeconds: 3600, issuer: "https://idp.example.com", scope: scope)
        let assume = AssumeRoleRequest(
            roleArn: "arn:aws:iam::123456789012:role/prod", sessionName: "alice", durationSeconds: 900,
            sourceIdentity: "alice", tags: [(key: "team", value: "platform")],
            scope: SessionScope(policy: "{\"Version\":\"2012-10-17\",\"Statement\":[]}"))
        let bodies = try Self.botocore([
            [
                "operation": "AssumeRoleWithWebIdentity",
                "params": [
                    "RoleArn": web.roleArn, "RoleSessionName": web.sessionName, "WebIdentityToken": Self.token,
                    "DurationSeconds": 3600, "Policy": Self.policy, "PolicyArns": Self.arns.map { ["arn": $0] },
                ] as [String: Any],
            ],
            [
                "operation": "AssumeRole",
                "params": [
                    "RoleArn": assume.roleArn, "RoleSessionName": "alice", "DurationSeconds": 900,
                    "SourceIdentity": "alice", "Tags": [["Key": "team", "Value": "platform"]],
                    "Policy": "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
                ] as [String: Any],
            ],
        ])
        try #require(bodies.count == 2)
        #expect(Self.pairs(web.formBody) == Self.pairs(bodies[0]))
        #expect(Self.pairs(assume.formBody) == Self.pairs(bodies[1]))
        #expect(
            web.formBody.contains(
                "PolicyArns.member.2.arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Apolicy%2Fteam%2Fdeploy-read"))
        // Without a scope nothing is added: the bodies of before.
        var full = web
        full.scope = .none
        #expect(!full.formBody.contains("Policy"))
    }

    @Test(
        "refused before any call, with what to fix: a policy that is not a JSON object, more than 2,048 characters, more than 10 ARNs, a non-policy ARN"
    )
    func validation() throws {
        #expect(throws: Never.self) { try SessionScope(policy: Self.policy, policyArns: Self.arns).validate() }
        #expect(throws: Never.self) { try SessionScope.none.validate() }
        for bad in [
            SessionScope(policy: "not json"), SessionScope(policy: "[1, 2]"),
            SessionScope(
                policy: "{\"Version\":\"2012-10-17\",\"Sid\":\"" + String(repeating: "x", count: 2048) + "\"}"),
            SessionScope(policyArns: (1...11).map { "arn:aws:iam::aws:policy/P\($0)" }),
            SessionScope(policyArns: ["arn:aws:iam::123456789012:role/admin"]),
            SessionScope(policyArns: ["arn:aws:s3:::bucket/policy/x"]), SessionScope(policyArns: ["ReadOnlyAccess"]),
            SessionScope(agent: ""), SessionScope(agent: "claude code"),
            SessionScope(agent: String(repeating: "a", count: 33)),
            SessionScope(agent: "ägent"),
        ] {
            #expect(throws: KeylessError.self, "\(bad)") { try bad.validate() }
        }
        do {
            try SessionScope(policy: "[]").validate()
        } catch let error as KeylessError {
            #expect(error.reason.contains("not a JSON object") && error.hint?.contains("Statement") == true)
        }
    }

    @Test(
        "the cache keeps a narrowed session apart from the full one and from other narrowings; a full session's entry is named as it always was"
    )
    func cacheKeys() {
        let full = CacheKey(
            issuer: "https://idp.example.com", clientID: "cli", roleArn: "arn:aws:iam::1:role/r", durationSeconds: 3600)
        let narrowed = SessionScope(policyArns: [Self.arns[0]])
        let inline = SessionScope(policy: Self.policy)
        func key(_ scope: SessionScope) -> CacheKey {
            CacheKey(
                issuer: "https://idp.example.com", clientID: "cli", roleArn: "arn:aws:iam::1:role/r",
                durationSeconds: 3600, scope: scope.cacheIdentity)
        }
        #expect(SessionScope.none.cacheIdentity == nil)
        #expect(key(.none).credentialsEntry == full.credentialsEntry)
        // The name a full session had before scopes existed: sts/ + the first 16 bytes of SHA-256 over the parts
        // joined by NUL (computed with Python's hashlib), so upgrading keyless keeps every cached session.
        #expect(full.credentialsEntry == "sts/8d3edf56220cc831868d536a833df871")
        let names = Set(
            [full, key(narrowed), key(inline), key(SessionScope(policy: Self.policy, policyArns: [Self.arns[0]]))].map(
                \.credentialsEntry))
        #expect(names.count == 4)
        #expect(key(narrowed).credentialsEntry == key(SessionScope(policyArns: [Self.arns[0]])).credentialsEntry)
        #expect(key(narrowed).tokenEntry == full.tokenEntry, "one login serves both")
        // An agent's session is its own, also with the same policies.
        var agent = narrowed
        agent.agent = "claude"
        #expect(key(agent).credentialsEntry != key(narrowed).credentialsEntry)
        #expect(
            SessionScope.agentSessionName("claude", person: "alice@example.com") == "agent=claude,alice@example.com")
        #expect(SessionScope.agentSessionName("ci", person: String(repeating: "p", count: 80)).count == 64)
    }
}
