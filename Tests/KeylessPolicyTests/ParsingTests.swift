import Foundation
import KeylessCore
@testable import KeylessPolicy
import Testing

@Suite("Parsing the policy file")
struct ParsingTests {
    @Test("a full policy parses to exactly the expected accounts, roles and defaults")
    func fullExample() throws {
        let policy = try Fixture.parsed()
        #expect(policy.defaultRegion == "us-east-1")
        #expect(policy.accounts == [Fixture.prod, Fixture.dev, Fixture.audit])
        #expect(
            policy.roles == [Fixture.admin, Fixture.readonly, Fixture.developer, Fixture.deployer, Fixture.auditor])
        #expect(
            policy.storage.tagRules == [
                TagRule(key: "email", claim: "email"), TagRule(key: "groups", claim: "groups"),
                TagRule(key: "team", claim: "https://example.com/team"),
            ])
        // Every role's entitlement, as a "*" grant lists them: by account (case aside), then role name.
        #expect(
            policy.storage.sortedEntitlements == [
                Fixture.auditorEntitlement, Fixture.deployerEntitlement, Fixture.developerEntitlement,
                Fixture.adminEntitlement, Fixture.readonlyEntitlement,
            ])
        #expect(policy.storage.grants.count == 5)
    }

    @Test("defaults apply where roles say nothing: us-east-1, web-identity, one hour")
    func defaultsWhenAbsent() throws {
        let policy = try AccessPolicy.parse(
            """
            accounts:
              - id: "123456789012"
            roles:
              - arn: arn:aws:iam::123456789012:role/path/to/viewer
            """, file: "policy.yaml")
        #expect(policy.defaultRegion == "us-east-1")
        #expect(
            policy.roles == [
                PolicyRole(
                    arn: "arn:aws:iam::123456789012:role/path/to/viewer", name: "viewer", accountID: "123456789012",
                    description: nil, maxSessionSeconds: 3600, mfaRequired: false, credentials: .webIdentity)
            ])
        #expect(policy.storage.sortedEntitlements.map(\.profileName) == ["123456789012-viewer"])
        #expect(policy.entitlements(for: Fixture.caller(groups: ["anyone"])).isEmpty)
    }

    @Test("defaults.credentials and defaults.max_session become each role's unless it overrides them")
    func defaultsInherited() throws {
        let policy = try AccessPolicy.parse(
            """
            defaults:
              region: ap-southeast-2
              credentials: server
              max_session: 2h
            accounts:
              - id: "123456789012"
                alias: Prod.Main
            roles:
              - arn: arn:aws:iam::123456789012:role/a
              - arn: arn:aws:iam::123456789012:role/b
                credentials: web-identity
                max_session: 900
            """, file: "policy.yaml")
        #expect(policy.roles.map(\.credentials) == [.server, .webIdentity])
        #expect(policy.roles.map(\.maxSessionSeconds) == [7200, 900])
        #expect(policy.storage.sortedEntitlements.map(\.region) == ["ap-southeast-2", "ap-southeast-2"])
        #expect(policy.storage.sortedEntitlements.map(\.profileName) == ["prod.main-a", "prod.main-b"])
    }

    @Test(
        "durations are read as seconds, s, m, h and combinations",
        arguments: [
            ("3600", 3600), ("\"3600s\"", 3600), ("45m", 2700), ("1h", 3600), ("12h", 43200), ("1h30m", 5400),
            ("900", 900), ("15m", 900),
        ])
    func durations(text: String, seconds: Int) throws {
        let policy = try AccessPolicy.parse(
            """
            accounts: [{id: "123456789012"}]
            roles: [{arn: "arn:aws:iam::123456789012:role/a", max_session: \(text)}]
            """, file: "policy.yaml")
        #expect(policy.roles[0].maxSessionSeconds == seconds)
    }

    @Test("docs/policy.example.yaml parses, and grants what its comments say")
    func documentedExampleParses() throws {
        let policy = try AccessPolicy.load(path: docsPath("policy.example.yaml"))
        #expect(
            policy.accounts == [
                PolicyAccount(id: "123456789012", alias: "prod", region: "eu-west-1"),
                PolicyAccount(id: "012345678901", alias: "dev", region: nil),
            ])
        #expect(policy.roles.map(\.name) == ["admin", "readonly", "developer"])
        #expect(policy.roles[0].credentials == .server && policy.roles[0].mfaRequired)
        #expect(policy.roles[1].maxSessionSeconds == 43200)
        let admin = Fixture.caller(groups: ["platform-admins"], mfa: true)
        #expect(policy.entitlements(for: admin).map(\.profileName) == ["prod-admin", "prod-readonly"])
        let sre = Fixture.caller(claims: [
            "email": .string("bob@example.com"), "https://example.com/team": .string("sre"),
        ])
        #expect(policy.entitlements(for: sre).map(\.profileName) == ["prod-readonly"])
        #expect(policy.entitlements(for: Fixture.caller(groups: ["sre"])).map(\.profileName) == ["dev-developer"])
        #expect(policy.sessionTags(for: sre) == [SessionTag(key: "email", value: "bob@example.com")])
    }

    @Test("load names the missing file")
    func loadMissingFile() {
        #expect(throws: KeylessError(.configInvalid, "")) { try AccessPolicy.load(path: "/nonexistent/policy.yaml") }
        do {
            _ = try AccessPolicy.load(path: "/nonexistent/policy.yaml")
        } catch let error as KeylessError {
            #expect(error.reason == "/nonexistent/policy.yaml: the policy file does not exist.")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

/// One mistake in a policy file and the exact error it must give.
struct Mistake: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let reason: String

    var testDescription: String { name }

    init(_ name: String, _ yaml: String, _ reason: String) {
        self.name = name
        self.yaml = yaml
        self.reason = reason
    }

    /// Two accounts, two roles and a grant, valid as is; rows below append or replace lines.
    static let accounts = """
        accounts:
          - id: "123456789012"
            alias: prod
          - id: "210987654321"
            alias: dev
        """
    static let roles = """
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
          - arn: arn:aws:iam::210987654321:role/dev
        """
    static let base = accounts + "\n" + roles + "\n"

    static let all: [Mistake] = [
        Mistake("an empty file", "", "policy.yaml:1:1: the policy is empty; it needs at least accounts: and roles:"),
        Mistake(
            "a file of comments only", "# nothing yet\n",
            "policy.yaml:1:1: the policy is empty; it needs at least accounts: and roles:"),
        Mistake(
            "a list at the top", "- a\n- b\n",
            "policy.yaml:1:1: the policy must be a mapping with the keys defaults, accounts, roles, grants, session_tags"
        ),
        Mistake(
            "a typo in a top-level key", accounts + "\nrols:\n  - arn: arn:aws:iam::123456789012:role/admin\n",
            "policy.yaml:6:1: unknown key 'rols' in the policy (did you mean 'roles'?); allowed keys: defaults, accounts, roles, grants, session_tags"
        ),
        Mistake(
            "a typo in a role key",
            accounts + "\nroles:\n  - arn: arn:aws:iam::123456789012:role/admin\n    mfa_requird: true\n",
            "policy.yaml:8:5: unknown key 'mfa_requird' in a role (did you mean 'mfa_required'?); allowed keys: arn, name, description, max_session, mfa_required, credentials"
        ),
        Mistake(
            "an unknown key with no near miss", "defaults:\n  colour: blue\n" + base,
            "policy.yaml:2:3: unknown key 'colour' in defaults; allowed keys: region, credentials, max_session"),
        Mistake(
            "no accounts", roles + "\n",
            "policy.yaml:1:1: the policy lists no accounts; add accounts: with each account's 12-digit id"),
        Mistake(
            "no roles", accounts + "\n", "policy.yaml:1:1: the policy lists no roles; add roles: with each role's arn"),
        Mistake(
            "roles that are not a list", accounts + "\nroles: arn:aws:iam::123456789012:role/admin\n",
            "policy.yaml:6:8: roles: must be a list (items starting with \"- \"), not text"),
        Mistake(
            "a duplicate account id",
            "accounts:\n  - id: \"123456789012\"\n  - id: 123456789012\nroles:\n  - arn: arn:aws:iam::123456789012:role/admin\n",
            "policy.yaml:3:9: account 123456789012 is listed twice (first at 2:9)"),
        Mistake(
            "an account id of 11 digits",
            "accounts:\n  - id: \"12345678901\"\n",
            "policy.yaml:2:9: account id '12345678901' must be exactly 12 digits"),
        Mistake(
            "an unquoted account id with a leading zero",
            "accounts:\n  - id: 012345678901\n",
            "policy.yaml:2:9: account id 012345678901 starts with 0, which YAML drops from an unquoted number; quote it: \"012345678901\""
        ),
        Mistake(
            "an account without id", "accounts:\n  - alias: prod\n",
            "policy.yaml:2:5: this account has no id; add id: \"123456789012\""),
        Mistake(
            "a duplicate alias",
            "accounts:\n  - id: \"123456789012\"\n    alias: prod\n  - id: \"210987654321\"\n    alias: Prod\n",
            "policy.yaml:5:12: alias 'Prod' is used twice (first at 3:12)"),
        Mistake(
            "an alias with a slash", "accounts:\n  - id: \"123456789012\"\n    alias: prod/eu\n",
            "policy.yaml:3:12: alias 'prod/eu' may contain only letters, digits, '-', '_' and '.' (it is used in role references and profile names)"
        ),
        Mistake(
            "a bad region", "accounts:\n  - id: \"123456789012\"\n    region: Frankfurt\n",
            "policy.yaml:3:13: region 'Frankfurt' is not an AWS region name such as us-east-1 or eu-west-1"),
        Mistake(
            "a duplicate role ARN", base + "  - arn: arn:aws:iam::123456789012:role/admin\n",
            "policy.yaml:9:10: role arn:aws:iam::123456789012:role/admin is listed twice (first at 7:10)"),
        Mistake(
            "two roles of one name in an account", base + "  - arn: arn:aws:iam::123456789012:role/other/Admin\n",
            "policy.yaml:9:10: role name 'Admin' is used twice in account prod (first at 7:10); give one of them another name:"
        ),
        Mistake(
            "two roles with the same profile name",
            base
                + "  - arn: arn:aws:iam::123456789012:role/x\n    name: a+b\n  - arn: arn:aws:iam::123456789012:role/y\n    name: a=b\n",
            "policy.yaml:12:11: role arn:aws:iam::123456789012:role/y would get the profile name 'prod-a-b', as does arn:aws:iam::123456789012:role/x (10:11); give one of them another name:"
        ),
        Mistake(
            "an ARN with an 11-digit account", accounts + "\nroles:\n  - arn: arn:aws:iam::12345678901:role/admin\n",
            "policy.yaml:7:10: 'arn:aws:iam::12345678901:role/admin' is not a role ARN: the account id '12345678901' must be 12 digits; expected arn:aws:iam::<12-digit account id>:role/<name>"
        ),
        Mistake(
            "an ARN of a user", accounts + "\nroles:\n  - arn: arn:aws:iam::123456789012:user/bob\n",
            "policy.yaml:7:10: 'arn:aws:iam::123456789012:user/bob' is not a role ARN: the resource must start with role/, not 'user/bob'; expected arn:aws:iam::<12-digit account id>:role/<name>"
        ),
        Mistake(
            "an ARN without six parts", accounts + "\nroles:\n  - arn: arn:aws:iam:123456789012:role/admin\n",
            "policy.yaml:7:10: 'arn:aws:iam:123456789012:role/admin' is not a role ARN: it must have six parts separated by ':' and start with arn:; expected arn:aws:iam::<12-digit account id>:role/<name>"
        ),
        Mistake(
            "an ARN of another service", accounts + "\nroles:\n  - arn: arn:aws:s3:::bucket\n",
            "policy.yaml:7:10: 'arn:aws:s3:::bucket' is not a role ARN: the service must be iam, not 's3'; expected arn:aws:iam::<12-digit account id>:role/<name>"
        ),
        Mistake(
            "a role in an unlisted account", accounts + "\nroles:\n  - arn: arn:aws:iam::999999999999:role/admin\n",
            "policy.yaml:7:10: role arn:aws:iam::999999999999:role/admin is in account 999999999999, which is not listed under accounts:; add it there"
        ),
        Mistake(
            "a bad duration", base + "  - arn: arn:aws:iam::123456789012:role/x\n    max_session: 2d\n",
            "policy.yaml:10:18: max_session '2d' is not a duration; write seconds (3600) or a number with h, m or s (1h, 45m, 3600s)"
        ),
        Mistake(
            "a duration shorter than STS allows", "defaults:\n  max_session: 10m\n" + base,
            "policy.yaml:2:16: max_session 10m is 600 seconds; STS allows 900 (15m) to 43200 (12h)"),
        Mistake(
            "a duration longer than STS allows",
            base + "  - arn: arn:aws:iam::123456789012:role/x\n    max_session: 13h\n",
            "policy.yaml:10:18: max_session 13h is 46800 seconds; STS allows 900 (15m) to 43200 (12h)"),
        Mistake(
            "mfa_required that is not a boolean",
            base + "  - arn: arn:aws:iam::123456789012:role/x\n    mfa_required: yes\n",
            "policy.yaml:10:19: mfa_required must be true, false or phishing-resistant, not 'yes'"),
        Mistake(
            "an unknown credentials mode", "defaults:\n  credentials: sso\n" + base,
            "policy.yaml:2:16: credentials must be web-identity or server, not 'sso'"),
        Mistake(
            "a grant naming an unknown ARN",
            base + "grants:\n  - groups: [a]\n    roles: [arn:aws:iam::123456789012:role/nope]\n",
            "policy.yaml:11:13: grant names role arn:aws:iam::123456789012:role/nope, which is not listed under roles:"),
        Mistake(
            "a grant naming an unknown alias", base + "grants:\n  - groups: [a]\n    roles: [\"staging/*\"]\n",
            "policy.yaml:11:13: grant names account 'staging' in 'staging/*', which is neither an alias nor an id under accounts:"
        ),
        Mistake(
            "a grant naming an unknown role of a known alias",
            base + "grants:\n  - groups: [a]\n    roles: [prod/adm]\n",
            "policy.yaml:11:13: grant names role 'adm' in account prod, which has no role of that name"),
        Mistake(
            "a grant naming a bare role name", base + "grants:\n  - groups: [a]\n    roles:\n      - admin\n",
            "policy.yaml:12:9: 'admin' does not name a role; write an ARN, <alias>/<name>, <alias>/* or *"),
        Mistake(
            "a grant with neither groups nor claims",
            base + "grants:\n  - issuer: https://idp.example.com\n    roles: [\"*\"]\n",
            "policy.yaml:10:5: this grant has neither groups nor claims; say who it is for with groups: [...] or claims: {...} (everyone from one issuer: claims: {sub: \"*\"} and issuer:)"
        ),
        Mistake(
            "a grant without roles", base + "grants:\n  - groups: [a]\n",
            "policy.yaml:10:5: this grant has no roles; add roles: [<arn>, <alias>/<name>, <alias>/*, or *]"),
        Mistake(
            "claims that are a list", base + "grants:\n  - claims: [email]\n    roles: [\"*\"]\n",
            "policy.yaml:10:13: claims: must be a mapping of claim names to patterns, as in email: \"*@example.com\""),
        Mistake(
            "a session tag key starting with aws:", base + "session_tags:\n  - tag: aws:user\n    claim: sub\n",
            "policy.yaml:10:10: session tag key 'aws:user' starts with 'aws:', a prefix AWS reserves for itself"),
        Mistake(
            "a session tag key with a character STS refuses", base + "session_tags:\n  - tag: team!\n",
            "policy.yaml:10:10: session tag key 'team!' contains '!', which STS does not allow (letters, digits, spaces and _ . : / = + - @ only)"
        ),
        Mistake(
            "a session tag key of 129 characters",
            base + "session_tags:\n  - tag: \(String(repeating: "k", count: 129))\n",
            "policy.yaml:10:10: session tag key '\(String(repeating: "k", count: 129))' is 129 characters long; STS allows at most 128"
        ),
        Mistake(
            "two session tags differing in case", base + "session_tags:\n  - tag: Email\n  - tag: email\n",
            "policy.yaml:11:10: session tag key 'email' is used twice (first at 10:10); STS compares keys without case"),
        Mistake(
            "51 session tags", base + "session_tags:\n" + (1...51).map { "  - tag: t\($0)\n" }.joined(),
            "policy.yaml:60:5: STS accepts at most 50 session tags; this is tag 51"),
        Mistake(
            "broken YAML: an unterminated quote", base + "grants:\n  - groups: [\"a, b]\n",
            "policy.yaml:11:1: not valid YAML: found unexpected end of stream (while scanning a quoted scalar at 10:14)"
        ),
        Mistake(
            "broken YAML: a key given twice", base + "grants: []\ngrants: []\n",
            "policy.yaml:9:1: the key 'grants' appears more than once in the same mapping; keep one"),
    ]
}

@Suite("Every mistake in a policy names its file, line and column")
struct ValidationTests {
    @Test("each mistake gives the exact file:line:col: reason", arguments: Mistake.all)
    func mistake(_ row: Mistake) {
        let error = parseError(row.yaml)
        #expect(error?.code == .configInvalid)
        #expect(error?.reason == row.reason)
        #expect(error?.hint == "Fix the policy at the position shown; docs/policy.example.yaml documents every field.")
    }

    @Test("the file name in errors is the one given")
    func fileNameInErrors() {
        #expect(
            parseError("", file: "/etc/keyless/policy.yaml")?.reason
                == "/etc/keyless/policy.yaml:1:1: the policy is empty; it needs at least accounts: and roles:")
    }
}
