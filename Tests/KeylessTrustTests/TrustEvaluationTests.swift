import KeylessCore
import Testing
@testable import KeylessTrust

/// A token from a GitHub-like issuer presented to a role in 123456789012.
private func context(_ claims: [String: JSONValue]) -> WebIdentityContext {
    WebIdentityContext.forToken(claims: claims, issuer: "https://token.example.com", account: "123456789012")
}

private let provider = "arn:aws:iam::123456789012:oidc-provider/token.example.com"

private func policy(_ statements: String) throws -> TrustPolicy {
    try TrustPolicy.parse(#"{"Version":"2012-10-17","Statement":["# + statements + "]}")
}

private func allow(_ condition: String) -> String {
    #"{"Effect":"Allow","Principal":{"Federated":"\#(provider)"},"Action":"sts:AssumeRoleWithWebIdentity","Condition":\#(condition)}"#
}

private let ci: [String: JSONValue] = [
    "sub": .string("repo:acme/app:ref:refs/heads/main"), "aud": .string("sts.amazonaws.com"),
]

@Suite("explain evaluates trust policies as STS does for web-identity tokens")
struct TrustEvaluationTests {
    @Test("a matching audience and sub pattern is allowed by that statement")
    func allowed() throws {
        let explanation = TrustEvaluator.explain(
            try policy(
                allow(
                    #"{"StringEquals":{"token.example.com:aud":"sts.amazonaws.com"},"StringLike":{"token.example.com:sub":"repo:acme/app:*"}}"#
                )),
            context: context(ci))
        #expect(explanation.allowed)
        #expect(
            explanation.text == """
                ALLOWED by statement 1.
                  statement 1, Allow: matches.

                """)
    }

    @Test("a wrong audience names the condition, the token's value and the policy's")
    func wrongAudience() throws {
        var claims = ci
        claims["aud"] = .string("keyless-cli")
        let explanation = TrustEvaluator.explain(
            try policy(allow(#"{"StringEquals":{"token.example.com:aud":"sts.amazonaws.com"}}"#)),
            context: context(claims))
        #expect(!explanation.allowed)
        #expect(
            explanation.text == """
                DENIED: no statement allows sts:AssumeRoleWithWebIdentity for this token.
                  statement 1, Allow: does not apply:
                    - StringEquals token.example.com:aud: the token has "keyless-cli"; the policy wants "sts.amazonaws.com"

                """)
    }

    @Test("a sub outside the StringLike pattern fails with both values shown")
    func wrongSubPattern() throws {
        var claims = ci
        claims["sub"] = .string("repo:acme/other:ref:refs/heads/main")
        let explanation = TrustEvaluator.explain(
            try policy(allow(#"{"StringLike":{"token.example.com:sub":"repo:acme/app:*"}}"#)), context: context(claims))
        #expect(!explanation.allowed)
        #expect(
            explanation.verdicts[0].failures == [
                #"StringLike token.example.com:sub: the token has "repo:acme/other:ref:refs/heads/main"; the policy wants "repo:acme/app:*""#
            ])
    }

    @Test("StringLike wildcards: * spans any run including none, ? exactly one character")
    func wildcards() {
        #expect(
            TrustEvaluator.glob(
                "repo:acme/*:ref:refs/heads/main", matches: "repo:acme/app:ref:refs/heads/main", ignoreCase: false))
        #expect(TrustEvaluator.glob("repo:acme/app*", matches: "repo:acme/app", ignoreCase: false))
        #expect(TrustEvaluator.glob("v?", matches: "v1", ignoreCase: false))
        #expect(!TrustEvaluator.glob("v?", matches: "v12", ignoreCase: false))
        #expect(!TrustEvaluator.glob("repo:acme/app:*", matches: "repo:acme/application", ignoreCase: false))
        #expect(TrustEvaluator.glob("STS:Assume*", matches: "sts:AssumeRoleWithWebIdentity", ignoreCase: true))
    }

    @Test("missing MFA: ForAnyValue on amr fails when the token has no second factor, passes when it has one")
    func missingMFA() throws {
        let document = try policy(allow(#"{"ForAnyValue:StringEquals":{"token.example.com:amr":["mfa","otp"]}}"#))
        var claims = ci
        claims["amr"] = .array([.string("pwd")])
        let without = TrustEvaluator.explain(document, context: context(claims))
        #expect(!without.allowed)
        #expect(
            without.verdicts[0].failures == [
                #"ForAnyValue:StringEquals token.example.com:amr: the token has "pwd"; the policy wants "mfa", "otp""#
            ])
        claims["amr"] = .array([.string("pwd"), .string("otp"), .string("mfa")])
        #expect(TrustEvaluator.explain(document, context: context(claims)).allowed)
        claims["amr"] = nil
        let absent = TrustEvaluator.explain(document, context: context(claims))
        #expect(!absent.allowed)
        #expect(
            absent.verdicts[0].failures == [
                "ForAnyValue:StringEquals token.example.com:amr: the token has nothing (the token has no such claim); the policy wants \"mfa\", \"otp\""
            ])
    }

    @Test("an explicit Deny that matches wins over an Allow, and the text says which")
    func explicitDeny() throws {
        let document = try policy(
            allow(#"{"StringEquals":{"token.example.com:aud":"sts.amazonaws.com"}}"#) + ","
                + #"{"Sid":"NoForks","Effect":"Deny","Principal":{"Federated":"\#(provider)"},"Action":"sts:*","Condition":{"StringLike":{"token.example.com:sub":"repo:acme/*:pull_request"}}}"#
        )
        var claims = ci
        claims["sub"] = .string("repo:acme/app:pull_request")
        let explanation = TrustEvaluator.explain(document, context: context(claims))
        #expect(!explanation.allowed)
        #expect(
            explanation.text == """
                DENIED: statement 2 (Sid NoForks) is an explicit Deny that matches this token.
                  statement 1, Allow: matches.
                  statement 2 (Sid NoForks), Deny: matches.

                """)
        #expect(TrustEvaluator.explain(document, context: context(ci)).allowed)
    }

    @Test("multi-valued claims: ForAllValues needs every value listed, and a plain operator gets a note")
    func multiValued() throws {
        var claims = ci
        claims["amr"] = .array([.string("pwd"), .string("otp")])
        let all = try policy(allow(#"{"ForAllValues:StringEquals":{"token.example.com:amr":["pwd","mfa"]}}"#))
        #expect(!TrustEvaluator.explain(all, context: context(claims)).allowed)
        claims["amr"] = .array([.string("pwd"), .string("mfa")])
        #expect(TrustEvaluator.explain(all, context: context(claims)).allowed)
        let plain = TrustEvaluator.explain(
            try policy(allow(#"{"StringEquals":{"token.example.com:amr":"mfa"}}"#)), context: context(claims))
        #expect(plain.allowed)
        #expect(
            plain.notes == [
                "token.example.com:amr has several values in this token; use ForAnyValue: or ForAllValues: to say whether one or all must match."
            ])
    }

    @Test("a statement for another provider or another action does not apply, and says why")
    func principalAndAction() throws {
        let other =
            #"{"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:oidc-provider/idp.other.com"},"Action":"sts:AssumeRoleWithWebIdentity"}"#
        let wrongAction = #"{"Effect":"Allow","Principal":{"Federated":"\#(provider)"},"Action":"sts:AssumeRole"}"#
        let explanation = TrustEvaluator.explain(try policy(other + "," + wrongAction), context: context(ci))
        #expect(!explanation.allowed)
        #expect(
            explanation.verdicts.map(\.failures) == [
                [
                    "Principal Federated is arn:aws:iam::123456789012:oidc-provider/idp.other.com, but this token's provider is \(provider)"
                ],
                ["Action is sts:AssumeRole, which does not include sts:AssumeRoleWithWebIdentity"],
            ])
    }

    @Test("the aud key reads azp when the token has one; Null and IfExists follow IAM's rules for absent keys")
    func azpNullIfExists() throws {
        let claims: [String: JSONValue] = [
            "sub": .string("s"), "aud": .array([.string("a"), .string("b")]), "azp": .string("keyless-cli"),
        ]
        #expect(
            TrustEvaluator.explain(
                try policy(allow(#"{"StringEquals":{"token.example.com:aud":"keyless-cli"}}"#)),
                context: context(claims)
            ).allowed)
        #expect(
            TrustEvaluator.explain(
                try policy(allow(#"{"Null":{"token.example.com:amr":"true"}}"#)), context: context(claims)
            ).allowed)
        #expect(
            !TrustEvaluator.explain(
                try policy(allow(#"{"Null":{"token.example.com:amr":"false"}}"#)), context: context(claims)
            ).allowed)
        #expect(
            TrustEvaluator.explain(
                try policy(allow(#"{"StringEqualsIfExists":{"token.example.com:amr":"mfa"}}"#)),
                context: context(claims)
            ).allowed)
        #expect(
            TrustEvaluator.explain(
                try policy(allow(#"{"StringNotEquals":{"token.example.com:email":"x@example.com"}}"#)),
                context: context(claims)
            ).allowed)
    }

    @Test("IAM's URL-encoded document, a single Statement object and a boolean value are read")
    func parsing() throws {
        let encoded =
            "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Federated%22%3A%22"
            + provider.replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: "/", with: "%2F")
            + "%22%7D%2C%22Action%22%3A%22sts%3AAssumeRoleWithWebIdentity%22%7D%7D"
        let parsed = try TrustPolicy.parse(encoded)
        #expect(parsed.statements.count == 1)
        #expect(parsed.statements[0].principals == ["Federated": [provider]])
        #expect(TrustEvaluator.explain(parsed, context: context(ci)).allowed)
        let boolean = try policy(allow(#"{"Null":{"token.example.com:amr":true}}"#))
        #expect(boolean.statements[0].conditions[0].values == ["true"])
        #expect(throws: KeylessError.self) { try TrustPolicy.parse(#"{"Statement":[{"Effect":"Maybe"}]}"#) }
        #expect(throws: KeylessError.self) { try TrustPolicy.parse("not json") }
    }
}

/// Session tags in a web-identity token (docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html): STS also
/// evaluates sts:TagSession, with aws:RequestTag/KEY and aws:TagKeys set; a source identity needs sts:SetSourceIdentity.
@Suite("explain: session tags and the source identity need their own actions")
struct TrustEvaluationSessionTagTests {
    static let tagged: [String: JSONValue] = ci.merging([
        "https://aws.amazon.com/tags": .object([
            "principal_tags": .object(["CostCenter": .array([.string("10001")])]),
            "transitive_tag_keys": .array([.string("CostCenter")]),
        ]),
        "https://aws.amazon.com/source_identity": .string("alice"),
    ]) { _, new in new }

    static func statement(actions: String, condition: String = "{}") -> String {
        #"{"Effect":"Allow","Principal":{"Federated":"\#(provider)"},"Action":\#(actions),"Condition":\#(condition)}"#
    }

    @Test("a policy allowing only AssumeRoleWithWebIdentity denies a tagged token, and says what to add")
    func tagSessionMissing() throws {
        let explanation = TrustEvaluator.explain(
            try policy(Self.statement(actions: #""sts:AssumeRoleWithWebIdentity""#)), context: context(Self.tagged))
        #expect(!explanation.allowed)
        #expect(explanation.text.hasPrefix("DENIED: statement 1 allows sts:AssumeRoleWithWebIdentity, but not all"))
        #expect(explanation.text.contains("no statement allows sts:TagSession"), "\(explanation.text)")
        #expect(explanation.text.contains("no statement allows sts:SetSourceIdentity"), "\(explanation.text)")
        // The same policy lets an untagged token in.
        #expect(
            TrustEvaluator.explain(
                try policy(Self.statement(actions: #""sts:AssumeRoleWithWebIdentity""#)), context: context(ci)
            ).allowed)
    }

    @Test("TagSession allowed on a condition on aws:RequestTag: the token's tag value decides")
    func requestTagCondition() throws {
        let actions = #"["sts:AssumeRoleWithWebIdentity","sts:TagSession","sts:SetSourceIdentity"]"#
        let allowed = TrustEvaluator.explain(
            try policy(
                Self.statement(actions: actions, condition: #"{"StringEquals":{"aws:RequestTag/CostCenter":"10001"}}"#)),
            context: context(Self.tagged))
        #expect(allowed.allowed, "\(allowed.text)")
        #expect(
            allowed.text.contains(
                "The token sets session tags CostCenter=10001 (transitive: CostCenter): sts:TagSession is allowed too.")
        )
        let other = TrustEvaluator.explain(
            try policy(
                Self.statement(actions: actions, condition: #"{"StringEquals":{"aws:RequestTag/CostCenter":"20002"}}"#)),
            context: context(Self.tagged))
        #expect(!other.allowed)
    }
}
