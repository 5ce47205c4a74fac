import KeylessCore
@testable import KeylessPolicy
import Testing

@Suite("Who is granted what")
struct GrantTests {
    let policy: AccessPolicy

    init() throws { policy = try Fixture.parsed() }

    @Test("a group grant gives its roles, by ARN and by alias/name")
    func byGroup() {
        #expect(
            policy.entitlements(for: Fixture.caller(groups: ["platform-admins"])) == [
                Fixture.adminEntitlement, Fixture.readonlyEntitlement,
            ])
    }

    @Test("groups are compared exactly: no case folding, no globs")
    func groupsExact() {
        #expect(policy.entitlements(for: Fixture.caller(groups: ["Platform-Admins", "platform-*"])).isEmpty)
    }

    @Test("a claim grant matches a glob, and needs every listed claim to match")
    func byClaimGlob() {
        let sre = Fixture.caller(claims: [
            "email": .string("bob@example.com"), "https://example.com/team": .string("sre"),
        ])
        #expect(policy.entitlements(for: sre) == [Fixture.readonlyEntitlement])
        let otherDomain = Fixture.caller(claims: [
            "email": .string("bob@example.org"), "https://example.com/team": .string("sre"),
        ])
        #expect(policy.entitlements(for: otherDomain).isEmpty)
        let noTeam = Fixture.caller(claims: ["email": .string("bob@example.com")])
        #expect(policy.entitlements(for: noTeam).isEmpty)
        let wrongTeam = Fixture.caller(claims: [
            "email": .string("bob@example.com"), "https://example.com/team": .string("finance"),
        ])
        #expect(policy.entitlements(for: wrongTeam).isEmpty)
    }

    @Test("a multi-valued claim matches when any of its values matches the glob")
    func byMultiValuedClaim() {
        let auditor = Fixture.caller(claims: ["groups": .array([.string("staff"), .string("auditors-7")])])
        #expect(policy.entitlements(for: auditor) == [Fixture.auditorEntitlement])
        // "?" is exactly one character.
        let notQuite = Fixture.caller(claims: ["groups": .array([.string("auditors-17"), .string("auditors-")])])
        #expect(policy.entitlements(for: notQuite).isEmpty)
    }

    @Test("an issuer restriction limits a grant to that issuer, trailing slashes aside")
    func issuerRestriction() {
        let claims: [String: JSONValue] = ["groups": .array([.string("auditors-7")])]
        #expect(
            policy.entitlements(for: Fixture.caller(claims: claims, issuer: "https://idp.example.com/")) == [
                Fixture.auditorEntitlement
            ])
        #expect(policy.entitlements(for: Fixture.caller(claims: claims, issuer: "https://other.example.com")).isEmpty)
    }

    @Test("an email whose email_verified is false is absent for grants and session tags, and the denial says why")
    func unverifiedEmailIsAbsent() {
        let team: [String: JSONValue] = ["https://example.com/team": .string("sre")]
        for verified: JSONValue in [.bool(false), .string("false")] {
            let claims = team.merging(["email": .string("ceo@example.com"), "email_verified": verified]) { a, _ in a }
            let caller = Fixture.caller(claims: claims)
            #expect(policy.entitlements(for: caller).isEmpty)
            guard case .denied(_, let reason) = policy.decide(caller, roleArn: "prod/readonly") else {
                Issue.record("an unverified email was granted prod/readonly")
                continue
            }
            #expect(reason.contains("email is not verified"), "\(reason)")
            #expect(!policy.sessionTags(for: caller).contains { $0.key == "email" })
        }
        // Verified, or not said either way (many providers leave email_verified out): the email counts.
        for verified: JSONValue? in [.bool(true), .string("true"), nil] {
            var claims = team.merging(["email": .string("bob@example.com")]) { a, _ in a }
            if let verified { claims["email_verified"] = verified }
            let caller = Fixture.caller(claims: claims)
            #expect(policy.entitlements(for: caller) == [Fixture.readonlyEntitlement])
            #expect(policy.sessionTags(for: caller).contains { $0.key == "email" && $0.value == "bob@example.com" })
        }
    }

    @Test("group names are compared by their exact Unicode scalars, not by canonical equivalence")
    func groupsByScalars() {
        // U+212A KELVIN SIGN is canonically equivalent to "K"; "e\u{301}" to "é".
        let policy = try! AccessPolicy.parse(
            """
            accounts: [{id: "123456789012"}]
            roles: [{arn: "arn:aws:iam::123456789012:role/kube"}, {arn: "arn:aws:iam::123456789012:role/cafe"}]
            grants:
              - {groups: [Kube-admins], roles: ["arn:aws:iam::123456789012:role/kube"]}
              - {groups: ["caf\u{e9}"], roles: ["arn:aws:iam::123456789012:role/cafe"]}
            """, file: "policy.yaml")
        #expect(policy.entitlements(for: Fixture.caller(groups: ["\u{212A}ube-admins"])).isEmpty)
        #expect(policy.entitlements(for: Fixture.caller(groups: ["cafe\u{301}"])).isEmpty)
        #expect(policy.entitlements(for: Fixture.caller(groups: ["Kube-admins"])).count == 1)
        #expect(policy.entitlements(for: Fixture.caller(groups: ["caf\u{e9}"])).count == 1)
        if case .granted = policy.decide(
            Fixture.caller(groups: ["\u{212A}ube-admins"]), roleArn: "arn:aws:iam::123456789012:role/kube")
        {
            Issue.record("a look-alike group was granted the role")
        }
    }

    @Test("alias/* gives every role of that account")
    func byAccountWildcard() {
        #expect(
            policy.entitlements(for: Fixture.caller(groups: ["developers"])) == [
                Fixture.deployerEntitlement, Fixture.developerEntitlement,
            ])
    }

    @Test("* gives every role, sorted by account then role name")
    func byStar() {
        #expect(
            policy.entitlements(for: Fixture.caller(groups: ["break-glass"])) == [
                Fixture.auditorEntitlement, Fixture.deployerEntitlement, Fixture.developerEntitlement,
                Fixture.adminEntitlement, Fixture.readonlyEntitlement,
            ])
    }

    @Test("roles from several grants are listed once, sorted")
    func unionWithoutDuplicates() {
        let caller = Fixture.caller(
            groups: ["developers", "platform-admins", "developers"],
            claims: ["email": .string("a@example.com"), "https://example.com/team": .array([.string("platform")])])
        #expect(
            policy.entitlements(for: caller) == [
                Fixture.deployerEntitlement, Fixture.developerEntitlement,
                Fixture.adminEntitlement, Fixture.readonlyEntitlement,
            ])
    }

    @Test("a grant with both groups and claims needs both")
    func groupsAndClaims() throws {
        let policy = try AccessPolicy.parse(
            """
            accounts: [{id: "123456789012", alias: prod}]
            roles: [{arn: "arn:aws:iam::123456789012:role/admin"}]
            grants:
              - groups: [admins]
                claims: {email_verified: true}
                roles: [prod/admin]
            """, file: "policy.yaml")
        #expect(
            policy.entitlements(for: Fixture.caller(groups: ["admins"], claims: ["email_verified": .bool(true)])).count
                == 1)
        #expect(
            policy.entitlements(for: Fixture.caller(groups: ["admins"], claims: ["email_verified": .bool(false)]))
                .isEmpty)
        #expect(policy.entitlements(for: Fixture.caller(claims: ["email_verified": .bool(true)])).isEmpty)
        #expect(
            policy.decide(Fixture.caller(groups: ["admins"]), roleArn: "prod/admin")
                == .denied(
                    .notGranted,
                    "alice is not granted role prod/admin (arn:aws:iam::123456789012:role/admin): it is granted to members of admins (the caller's groups: admins); the grant for the caller's group also requires a matching claim email_verified"
                ))
    }
}

@Suite("Deciding one role")
struct DecideTests {
    let policy: AccessPolicy

    init() throws { policy = try Fixture.parsed() }

    let adminArn = "arn:aws:iam::123456789012:role/admin"

    @Test("a granted role comes with its entitlement and the caller's session tags")
    func granted() {
        let caller = Fixture.caller(
            groups: ["platform-admins"], claims: ["email": .string("alice@example.com")], mfa: true)
        #expect(
            policy.decide(caller, roleArn: adminArn)
                == .granted(Fixture.adminEntitlement, tags: [SessionTag(key: "email", value: "alice@example.com")]))
    }

    @Test("a role may be named alias/name as well as by ARN")
    func grantedByReference() {
        let caller = Fixture.caller(groups: ["developers"])
        #expect(policy.decide(caller, roleArn: "dev/Deployer") == .granted(Fixture.deployerEntitlement, tags: []))
    }

    @Test("an ungranted role is denied, naming the role and the groups that would grant it")
    func notGranted() {
        #expect(
            policy.decide(Fixture.caller(groups: ["developers"], mfa: true), roleArn: adminArn)
                == .denied(
                    .notGranted,
                    "alice is not granted role prod/admin (arn:aws:iam::123456789012:role/admin): it is granted to members of break-glass or platform-admins (the caller's groups: developers)"
                ))
        #expect(
            policy.decide(Fixture.caller(), roleArn: "arn:aws:iam::123456789012:role/ops/ReadOnly")
                == .denied(
                    .notGranted,
                    "alice is not granted role prod/readonly (arn:aws:iam::123456789012:role/ops/ReadOnly): it is granted to members of break-glass or platform-admins (the caller's groups: none); or to callers whose claims email and https://example.com/team match"
                ))
    }

    @Test("a role no grant covers says so")
    func grantedToNobody() throws {
        let policy = try AccessPolicy.parse(
            """
            accounts: [{id: "123456789012"}]
            roles: [{arn: "arn:aws:iam::123456789012:role/lonely"}]
            """, file: "policy.yaml")
        #expect(
            policy.decide(Fixture.caller(groups: ["a"]), roleArn: "arn:aws:iam::123456789012:role/lonely")
                == .denied(
                    .notGranted,
                    "alice is not granted role 123456789012/lonely (arn:aws:iam::123456789012:role/lonely): no grant in the policy gives this role to anyone"
                ))
    }

    @Test("a role the policy does not list is unknown")
    func unknownRole() {
        #expect(
            policy.decide(Fixture.caller(groups: ["break-glass"]), roleArn: "arn:aws:iam::123456789012:role/nope")
                == .denied(.unknownRole, "role arn:aws:iam::123456789012:role/nope is not in the access policy"))
        #expect(
            policy.decide(Fixture.caller(groups: ["break-glass"]), roleArn: "prod/*")
                == .denied(.unknownRole, "role prod/* is not in the access policy"))
    }

    @Test("an MFA role is denied to a granted caller whose token shows no MFA")
    func mfaRequired() {
        #expect(
            policy.decide(Fixture.caller(groups: ["platform-admins"], mfa: false), roleArn: adminArn)
                == .denied(
                    .mfaRequired,
                    "role prod/admin (arn:aws:iam::123456789012:role/admin) requires MFA, and the token of alice does not show a second factor (amr); log in again with MFA"
                ))
    }

    @Test("not granted comes before MFA: an ungranted caller learns nothing about MFA")
    func notGrantedBeforeMFA() {
        guard
            case .denied(let reason, _) = policy.decide(
                Fixture.caller(groups: ["developers"], mfa: false), roleArn: adminArn)
        else {
            Issue.record("granted")
            return
        }
        #expect(reason == .notGranted)
    }

    @Test("denial reasons have stable raw values for the audit log")
    func denialRawValues() {
        #expect(
            [DenialReason.unknownRole, .notGranted, .mfaRequired].map(\.rawValue) == [
                "unknown_role", "not_granted", "mfa_required",
            ])
    }
}

@Suite("Session tags")
struct SessionTagTests {
    let policy: AccessPolicy

    init() throws { policy = try Fixture.parsed() }

    @Test("a scalar claim becomes a tag; a multi-valued claim is joined with ':'; a missing claim gives no tag")
    func scalarAndMultiValued() {
        let caller = Fixture.caller(claims: [
            "email": .string("alice@example.com"),
            "groups": .array([.string("dev"), .string("ops"), .number(42)]),
        ])
        #expect(
            policy.sessionTags(for: caller) == [
                SessionTag(key: "email", value: "alice@example.com"), SessionTag(key: "groups", value: "dev:ops:42"),
            ])
    }

    @Test("characters STS refuses become '_', letters of any script stay")
    func sanitised() {
        let caller = Fixture.caller(claims: [
            "email": .string("o'brien <ob@example.com>"), "https://example.com/team": .string("Équipe Ω #1"),
        ])
        #expect(
            policy.sessionTags(for: caller) == [
                SessionTag(key: "email", value: "o_brien _ob@example.com_"),
                SessionTag(key: "team", value: "Équipe Ω _1"),
            ])
    }

    @Test("values are cut to 256 characters, after joining")
    func cut() {
        let long = String(repeating: "a", count: 300)
        let caller = Fixture.caller(claims: [
            "email": .string(long), "groups": .array((0..<100).map { .string("group\($0)") }),
        ])
        let tags = policy.sessionTags(for: caller)
        #expect(tags.map(\.key) == ["email", "groups"])
        #expect(tags[0].value == String(repeating: "a", count: 256))
        #expect(tags[1].value.count == 256)
        #expect(tags[1].value.hasPrefix("group0:group1:group2:"))
    }

    @Test("a cut never splits a character outside the basic plane")
    func cutAtScalarBoundary() {
        let value = String(repeating: "a", count: 255) + "𝐀"
        #expect(STSTagText.cut(value) == String(repeating: "a", count: 255))
    }

    @Test("globs: * any run, ? one character, literal otherwise")
    func globs() {
        #expect(Glob("*@example.com").matches("a@example.com"))
        #expect(!Glob("*@example.com").matches("a@example.com.evil"))
        #expect(Glob("repo:org/*:ref:refs/heads/main").matches("repo:org/app:ref:refs/heads/main"))
        #expect(!Glob("repo:org/*:ref:refs/heads/main").matches("repo:org/app:ref:refs/heads/dev"))
        #expect(Glob("a?c").matches("abc") && !Glob("a?c").matches("ac"))
        #expect(Glob("*").matches("") && Glob("**").matches("x"))
        #expect(Glob("team-*").matches("team-") && !Glob("team-*").matches("Team-a"))
        #expect(Glob("*a*b*").matches("xxaxxbxx") && !Glob("*a*b*").matches("xxbxxaxx"))
        #expect(Glob("").matches("") && !Glob("").matches("a"))
    }
}

@Suite("Phishing-resistant roles (mfa_required: phishing-resistant)")
struct PhishingResistantDecisionTests {
    static let policy = """
        accounts:
          - id: "123456789012"
            alias: prod
        roles:
          - arn: arn:aws:iam::123456789012:role/prod-admin
            mfa_required: phishing-resistant
          - arn: arn:aws:iam::123456789012:role/ops
            mfa_required: true
        grants:
          - groups: [admins]
            roles: ["prod/*"]

        """
    static let arn = "arn:aws:iam::123456789012:role/prod-admin"

    @Test(
        "a passkey role is refused to a password + one-time code sign-in, saying what it needs and how the person signed in, and granted to a passkey sign-in"
    )
    func decision() throws {
        let policy = try AccessPolicy.parse(Self.policy, file: "policy.yaml")
        let role = try #require(policy.roles.first)
        #expect(role.phishingResistantRequired && role.mfaRequired)
        let otp = PolicyCaller(
            issuer: "https://idp", subject: "alice", groups: ["admins"], mfa: true, amr: ["pwd", "otp", "mfa"])
        #expect(
            policy.decide(otp, roleArn: Self.arn)
                == .denied(
                    .phishingResistantRequired,
                    "role prod/prod-admin (arn:aws:iam::123456789012:role/prod-admin) needs a passkey sign-in (phishing-resistant); alice signed in with a password and a one-time code. Sign in again with a passkey or security key (`keyless login`)"
                ))
        let passkey = PolicyCaller(
            issuer: "https://idp", subject: "alice", groups: ["admins"], phishingResistant: true,
            amr: ["hwk", "mfa"])
        guard case .granted = policy.decide(passkey, roleArn: Self.arn) else {
            Issue.record("a passkey sign-in is granted the passkey role")
            return
        }
        // A phishing-resistant sign-in is multi-factor: the plain MFA role is granted too.
        guard case .granted = policy.decide(passkey, roleArn: "prod/ops") else {
            Issue.record("a passkey sign-in satisfies mfa_required: true")
            return
        }
        // Not granted still comes first.
        let stranger = PolicyCaller(issuer: "https://idp", subject: "eve", groups: ["guests"], amr: ["pwd"])
        guard case .denied(.notGranted, _) = policy.decide(stranger, roleArn: Self.arn) else {
            Issue.record("an ungranted caller learns nothing about passkeys")
            return
        }
        #expect(DenialReason.phishingResistantRequired.rawValue == "phishing_resistant_required")
    }

    @Test("mfa_required takes true, false or phishing-resistant; anything else names the line")
    func parsing() throws {
        let bad = Self.policy.replacingOccurrences(of: "phishing-resistant", with: "passkeys-please")
        #expect(throws: KeylessError.self) { try AccessPolicy.parse(bad, file: "policy.yaml") }
        do {
            _ = try AccessPolicy.parse(bad, file: "policy.yaml")
        } catch let error as KeylessError {
            #expect(error.reason.contains("policy.yaml:6:"), "\(error.reason)")
            #expect(error.reason.contains("true, false or phishing-resistant"), "\(error.reason)")
        }
    }

    @Test("how a sign-in reads: amr values in words, mfa left out, unknown ones quoted, none said so")
    func describeAMR() {
        #expect(AccessPolicy.describe(amr: ["pwd", "otp", "mfa"]) == "a password and a one-time code")
        #expect(AccessPolicy.describe(amr: ["pwd"]) == "a password")
        #expect(AccessPolicy.describe(amr: ["pwd", "sms", "x-corp"]) == "a password, a text-message code and 'x-corp'")
        #expect(AccessPolicy.describe(amr: []) == "a method the token does not name (no amr)")
    }
}
