import KeylessCore
@testable import KeylessPolicy
import Testing

/// A policy with grants on request next to standing ones: SREs hold two roles and may ask for the rest of production
/// and for dev deploys; on-call may break the glass on production admin; contractors from one issuer may ask for admin
/// and the audit role. Every role but dev/viewer gets its credentials from the server (`defaults.credentials`).
private enum OnRequest {
    static let policy = """
        defaults:
          credentials: server
        accounts:
          - id: "123456789012"
            alias: prod
          - id: "210987654321"
            alias: dev
          - id: "012345678901"
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            mfa_required: true
          - arn: arn:aws:iam::123456789012:role/readonly
          - arn: arn:aws:iam::123456789012:role/Billing
          - arn: arn:aws:iam::210987654321:role/deployer
          - arn: arn:aws:iam::210987654321:role/viewer
            credentials: web-identity
          - arn: arn:aws:iam::012345678901:role/auditor
            name: audit
        grants:
          - description: SREs read production and view dev all the time
            groups: [sre]
            roles: [prod/readonly, dev/viewer]
          - description: SREs may ask for the rest of production and for deploys
            groups: [sre]
            roles: ["prod/*", dev/deployer]
            eligible: true
            max_duration: 2h
            approvers: {groups: [platform-admins]}
          - description: on-call may break the glass on production admin
            groups: [oncall]
            roles: [prod/admin]
            eligible: true
            approvers: self
          - description: contractors from the corporate issuer may ask security for admin and audit
            claims: {team: contractors}
            issuer: https://idp.example.com
            roles: [arn:aws:iam::123456789012:role/admin, "012345678901/audit"]
            eligible: true
            max_duration: 30m
            approvers: {groups: [security]}
            reason_required: true
        session_tags:
          - tag: team

        """

    static func parsed() throws -> AccessPolicy { try AccessPolicy.parse(policy, file: "policy.yaml") }

    static let adminArn = "arn:aws:iam::123456789012:role/admin"

    static func caller(
        groups: [String] = [], claims: [String: JSONValue] = [:], mfa: Bool = false,
        issuer: String = "https://idp.example.com"
    ) -> PolicyCaller {
        PolicyCaller(issuer: issuer, subject: "alice", groups: groups, claims: claims, mfa: mfa)
    }

    static let sre = caller(groups: ["sre"])
    static let contractor = caller(claims: ["team": .string("contractors")])

    /// What the SREs' grant on request allows.
    static let sreAsk = Eligibility(
        maxDurationSeconds: 7200, approverGroups: ["platform-admins"], selfApproval: false, reasonRequired: false)

    /// The entitlement of `reference` (an ARN or alias/name), which the policy lists.
    static func entitlement(_ policy: AccessPolicy, _ reference: String) throws -> Entitlement {
        try #require(policy.entitlement(roleArn: reference), "\(reference) is in the policy")
    }
}

/// Two accounts and three roles with server credentials (lines 1 to 11); the rows below append `grants:` from line 12.
private let serverRoles = """
    defaults:
      credentials: server
    accounts:
      - id: "123456789012"
        alias: prod
      - id: "210987654321"
        alias: dev
    roles:
      - arn: arn:aws:iam::123456789012:role/admin
      - arn: arn:aws:iam::123456789012:role/readonly
      - arn: arn:aws:iam::210987654321:role/deployer

    """

/// The first lines of a grant of prod/admin to sre (lines 12 to 14).
private let grantStart = serverRoles + "grants:\n  - groups: [sre]\n    roles: [prod/admin]\n"

/// A policy mistake about grants on request: where the error points and the words its sentence must hold.
struct RequestMistake: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let position: String
    let words: [String]

    var testDescription: String { name }

    init(_ name: String, _ yaml: String, at position: String, _ words: [String]) {
        self.name = name
        self.yaml = yaml
        self.position = position
        self.words = words
    }

    static let all: [RequestMistake] = [
        RequestMistake(
            "max_duration on a standing grant", grantStart + "    max_duration: 2h\n", at: "15:5",
            ["max_duration applies only to a grant on request", "add eligible: true", "or remove max_duration"]),
        RequestMistake(
            "approvers on a standing grant", grantStart + "    approvers: {groups: [platform-admins]}\n", at: "15:5",
            ["approvers applies only to a grant on request", "add eligible: true", "or remove approvers"]),
        RequestMistake(
            "reason_required on a standing grant", grantStart + "    reason_required: true\n", at: "15:5",
            ["reason_required applies only to a grant on request", "add eligible: true", "or remove reason_required"]
        ),
        RequestMistake(
            "approvers with eligible: false", grantStart + "    eligible: false\n    approvers: self\n", at: "16:5",
            ["approvers applies only to a grant on request", "add eligible: true"]),
        RequestMistake(
            "a grant on request without approvers", grantStart + "    eligible: true\n    max_duration: 2h\n",
            at: "13:5",
            ["this grant on request names no approvers", "approvers: {groups: [<group>, ...]}", "approvers: self"]),
        RequestMistake(
            "approvers that are neither self nor a mapping",
            grantStart + "    eligible: true\n    approvers: everyone\n",
            at: "16:16", ["approvers must be self or a mapping such as {groups: [platform-admins]}"]),
        RequestMistake(
            "approvers given as a list", grantStart + "    eligible: true\n    approvers: [platform-admins]\n",
            at: "16:16", ["approvers must be a mapping with the keys groups, not a list"]),
        RequestMistake(
            "approvers without groups", grantStart + "    eligible: true\n    approvers: {}\n", at: "16:16",
            ["approvers needs groups: [<group>, ...]", "approvers: self"]),
        RequestMistake(
            "approvers with an empty list of groups", grantStart + "    eligible: true\n    approvers: {groups: []}\n",
            at: "16:25", ["approvers.groups is empty", "name at least one group"]),
        RequestMistake(
            "approvers with an unknown key", grantStart + "    eligible: true\n    approvers: {users: [bob]}\n",
            at: "16:17", ["unknown key 'users' in approvers", "allowed keys: groups"]),
        RequestMistake(
            "an empty approver group name",
            grantStart + "    eligible: true\n    approvers: {groups: [platform-admins, \"\"]}\n", at: "16:43",
            ["an approver group name is empty"]),
        RequestMistake(
            "max_duration under 15 minutes",
            grantStart + "    eligible: true\n    approvers: self\n    max_duration: 10m\n", at: "17:19",
            ["max_duration 10m is 600 seconds", "from 900 (15m) to 86400 (24h)"]),
        RequestMistake(
            "max_duration over a day", grantStart + "    eligible: true\n    approvers: self\n    max_duration: 25h\n",
            at: "17:19", ["max_duration 25h is 90000 seconds", "from 900 (15m) to 86400 (24h)"]),
        RequestMistake(
            "max_duration that is not a duration",
            grantStart + "    eligible: true\n    approvers: self\n    max_duration: 2d\n", at: "17:19",
            ["max_duration '2d' is not a duration", "1h, 45m, 3600s"]),
        RequestMistake(
            "eligible that is not a boolean", grantStart + "    eligible: yes\n    approvers: self\n", at: "15:15",
            ["eligible must be true or false, not 'yes'"]),
        RequestMistake(
            "reason_required that is not a boolean",
            grantStart + "    eligible: true\n    approvers: self\n    reason_required: often\n", at: "17:22",
            ["reason_required must be true or false, not 'often'"]),
    ]
}

/// The roles of a policy whose credentials mode for dev/deployer comes from `defaults` (lines 1 to 2 when given) or
/// from the role itself, then one grant on request of `roles` to sre.
private func webIdentityPolicy(defaults: String?, deployerCredentials: String? = nil, roles: String) -> String {
    var text = defaults.map { "defaults:\n  credentials: \($0)\n" } ?? ""
    text += """
        accounts:
          - id: "123456789012"
            alias: prod
          - id: "210987654321"
            alias: dev
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            credentials: server
          - arn: arn:aws:iam::210987654321:role/deployer

        """
    if let deployerCredentials { text += "    credentials: \(deployerCredentials)\n" }
    return text + "grants:\n  - groups: [sre]\n    roles: \(roles)\n    eligible: true\n    approvers: self\n"
}

/// A grant on request whose roles include one with web-identity credentials, and where the error points.
struct WebIdentityCase: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let position: String

    var testDescription: String { name }

    static let deployerArn = "arn:aws:iam::210987654321:role/deployer"

    static let all: [WebIdentityCase] = [
        WebIdentityCase(
            name: "web-identity by default (no defaults:), named by alias/name",
            yaml: webIdentityPolicy(defaults: nil, roles: "[dev/deployer]"), position: "12:12"),
        WebIdentityCase(
            name: "defaults.credentials: web-identity, named by ARN",
            yaml: webIdentityPolicy(defaults: "web-identity", roles: "[\(deployerArn)]"), position: "14:12"),
        WebIdentityCase(
            name: "credentials: web-identity on the role, under defaults.credentials: server",
            yaml: webIdentityPolicy(defaults: "server", deployerCredentials: "web-identity", roles: "[dev/deployer]"),
            position: "15:12"),
        WebIdentityCase(
            name: "covered through alias/*",
            yaml: webIdentityPolicy(defaults: nil, roles: "[\"dev/*\"]"), position: "12:12"),
        WebIdentityCase(
            name: "covered through *, next to a server role",
            yaml: webIdentityPolicy(defaults: nil, roles: "[\"*\"]"), position: "12:12"),
        WebIdentityCase(
            name: "the second of a block list",
            yaml: webIdentityPolicy(defaults: nil, roles: "\n      - prod/admin\n      - dev/deployer"),
            position: "13:7"),
    ]
}

@Suite("Grants on request (eligible: true)")
enum EligibleGrantTests {}

extension EligibleGrantTests {
    @Suite("Parsing grants on request")
    struct Parsing {
        @Test(
            "each mistake about a grant on request names its line and column and says what to change",
            arguments: RequestMistake.all)
        func mistake(_ row: RequestMistake) {
            let error = parseError(row.yaml)
            #expect(error?.code == .configInvalid)
            let reason = error?.reason ?? "(it parsed)"
            #expect(reason.hasPrefix("policy.yaml:\(row.position): "), "\(reason)")
            for word in row.words { #expect(reason.contains(word), "\(reason)") }
        }

        @Test(
            "a grant on request of a web-identity role is refused, naming the role and asking for credentials: server",
            arguments: WebIdentityCase.all)
        func webIdentityRefused(_ row: WebIdentityCase) {
            let error = parseError(row.yaml)
            #expect(error?.code == .configInvalid)
            let reason = error?.reason ?? "(it parsed)"
            #expect(
                reason
                    == "policy.yaml:\(row.position): role \(WebIdentityCase.deployerArn) is granted on request here, so its credentials must come from this server: set credentials: server on the role (with web-identity, its trust policy lets anyone the provider vouches for assume it without asking)"
            )
        }

        @Test("defaults.credentials: server lets a grant on request cover roles that say nothing about credentials")
        func serverByDefault() throws {
            let policy = try AccessPolicy.parse(
                webIdentityPolicy(defaults: "server", roles: "[\"*\"]"), file: "policy.yaml")
            #expect(policy.roles.map(\.credentials) == [.server, .server])
            #expect(policy.approverGroups(roleArn: "dev/deployer").isEmpty)
            #expect(policy.eligibility(OnRequest.caller(groups: ["sre"]), roleArn: "dev/deployer") != nil)
        }

        @Test(
            "web-identity roles may still have standing grants, and stay out of a grant on request that does not cover them"
        )
        func webIdentityOutsideRequests() throws {
            let policy = try AccessPolicy.parse(
                """
                accounts: [{id: "123456789012", alias: prod}]
                roles:
                  - {arn: "arn:aws:iam::123456789012:role/admin", credentials: server}
                  - {arn: "arn:aws:iam::123456789012:role/viewer"}
                grants:
                  - {groups: [sre], roles: ["prod/*"]}
                  - {groups: [dba], roles: [prod/admin], eligible: true, approvers: self}
                """, file: "policy.yaml")
            #expect(policy.roles.map(\.credentials) == [.server, .webIdentity])
            #expect(
                policy.entitlements(for: OnRequest.caller(groups: ["sre"])).map(\.profileName) == [
                    "prod-admin", "prod-viewer",
                ])
            #expect(
                policy.eligibleEntitlements(for: OnRequest.caller(groups: ["dba"])).map(\.entitlement.profileName) == [
                    "prod-admin"
                ])
        }

        @Test("eligible: true with approvers only: one hour, no reason, no self-approval")
        func defaults() throws {
            let policy = try AccessPolicy.parse(
                grantStart + "    eligible: true\n    approvers: {groups: [platform-admins, platform-admins]}\n",
                file: "policy.yaml")
            #expect(
                policy.eligibility(OnRequest.caller(groups: ["sre"]), roleArn: "prod/admin")?.1
                    == Eligibility(
                        maxDurationSeconds: 3600, approverGroups: ["platform-admins"], selfApproval: false,
                        reasonRequired: false))
            #expect(
                policy.storage.grants.map(\.eligibility)
                    == [
                        GrantEligibility(
                            maxDurationSeconds: 3600, approvers: .groups(["platform-admins"]), reasonRequired: false)
                    ])
        }

        @Test("approvers: self always requires a reason, even with reason_required: false")
        func selfRequiresReason() throws {
            for extra in ["", "    reason_required: false\n", "    reason_required: true\n"] {
                let policy = try AccessPolicy.parse(
                    grantStart + "    eligible: true\n    approvers: self\n" + extra, file: "policy.yaml")
                #expect(
                    policy.eligibility(OnRequest.caller(groups: ["sre"]), roleArn: "prod/admin")?.1
                        == Eligibility(
                            maxDurationSeconds: 3600, approverGroups: [], selfApproval: true, reasonRequired: true),
                    "\(extra)")
                #expect(policy.storage.grants.first?.eligibility?.approvers == .requester)
            }
        }

        @Test("reason_required: true is kept for a grant approved by groups")
        func reasonRequired() throws {
            let policy = try AccessPolicy.parse(
                grantStart + "    eligible: true\n    approvers: {groups: [b, a]}\n    reason_required: true\n",
                file: "policy.yaml")
            #expect(
                policy.eligibility(OnRequest.caller(groups: ["sre"]), roleArn: "prod/admin")?.1
                    == Eligibility(
                        maxDurationSeconds: 3600, approverGroups: ["a", "b"], selfApproval: false,
                        reasonRequired: true))
        }

        @Test(
            "max_duration is read as a duration from 15 minutes to 24 hours",
            arguments: [("15m", 900), ("900", 900), ("1h30m", 5400), ("2h", 7200), ("\"3600s\"", 3600), ("24h", 86400)])
        func maxDuration(text: String, seconds: Int) throws {
            let policy = try AccessPolicy.parse(
                grantStart + "    eligible: true\n    approvers: self\n    max_duration: \(text)\n", file: "policy.yaml"
            )
            #expect(
                policy.eligibility(OnRequest.caller(groups: ["sre"]), roleArn: "prod/admin")?.1.maxDurationSeconds
                    == seconds)
        }
    }

    @Suite("Who may have which role on request")
    struct WhoMayAsk {
        let policy: AccessPolicy

        init() throws { policy = try OnRequest.parsed() }

        @Test(
            "a role the caller holds through a standing grant is not on request for them, though a grant on request covers it"
        )
        func standingBeatsEligible() throws {
            let readonly = try OnRequest.entitlement(policy, "prod/readonly")
            let viewer = try OnRequest.entitlement(policy, "dev/viewer")
            #expect(policy.entitlements(for: OnRequest.sre) == [viewer, readonly])
            #expect(
                policy.eligibleEntitlements(for: OnRequest.sre).map(\.entitlement.profileName) == [
                    "dev-deployer", "prod-admin", "prod-billing",
                ])
            #expect(policy.eligibility(OnRequest.sre, roleArn: "prod/readonly") == nil)
            #expect(policy.eligibility(OnRequest.sre, roleArn: "arn:aws:iam::123456789012:role/readonly") == nil)
            #expect(policy.decide(OnRequest.sre, roleArn: "prod/readonly") == .granted(readonly, tags: []))
            #expect(
                policy.decide(OnRequest.sre, roleArn: "prod/readonly", approved: true) == .granted(readonly, tags: []))
        }

        @Test("a standing * leaves nothing on request")
        func standingStarLeavesNothing() throws {
            let policy = try AccessPolicy.parse(
                """
                defaults: {credentials: server}
                accounts: [{id: "123456789012", alias: prod}]
                roles: [{arn: "arn:aws:iam::123456789012:role/admin"}, {arn: "arn:aws:iam::123456789012:role/ops"}]
                grants:
                  - {groups: [root], roles: ["*"]}
                  - {groups: [root, sre], roles: ["*"], eligible: true, approvers: self}
                """, file: "policy.yaml")
            let root = OnRequest.caller(groups: ["root"])
            #expect(policy.entitlements(for: root).count == 2)
            #expect(policy.eligibleEntitlements(for: root).isEmpty)
            #expect(policy.eligibility(root, roleArn: "prod/ops") == nil)
            #expect(policy.listing(for: root).allSatisfy { $0.onRequest == nil })
            #expect(policy.eligibleEntitlements(for: OnRequest.caller(groups: ["sre"])).count == 2)
        }

        @Test(
            "what the caller may ask is the entitlement with the grant's duration and approvers, by ARN or alias/name")
        func eligibilityOfOneRole() throws {
            let admin = try OnRequest.entitlement(policy, "prod/admin")
            for reference in ["prod/admin", "123456789012/admin", OnRequest.adminArn] {
                let answer = policy.eligibility(OnRequest.sre, roleArn: reference)
                #expect(answer?.0 == admin, "\(reference)")
                #expect(answer?.1 == OnRequest.sreAsk, "\(reference)")
            }
            #expect(policy.eligibility(OnRequest.caller(groups: ["finance"]), roleArn: "prod/admin") == nil)
            #expect(policy.eligibility(OnRequest.sre, roleArn: "012345678901/audit") == nil)
        }

        @Test("a grant on request for callers the caller is not among gives them nothing")
        func othersGrantsGiveNothing() {
            let finance = OnRequest.caller(groups: ["finance"])
            #expect(policy.entitlements(for: finance).isEmpty)
            #expect(policy.eligibleEntitlements(for: finance).isEmpty)
            #expect(policy.listing(for: finance).isEmpty)
        }

        @Test(
            "several grants on request for one caller and role merge: longest duration, union of approvers, self, reason"
        )
        func merging() throws {
            let policy = try AccessPolicy.parse(
                grantStart
                    + """
                        eligible: true
                        approvers: {groups: [zeta, alpha]}
                      - groups: [dba]
                        roles: [prod/admin]
                        eligible: true
                        max_duration: 4h
                        approvers: {groups: [mu, alpha]}
                        reason_required: true
                      - groups: [oncall]
                        roles: ["*"]
                        eligible: true
                        max_duration: 30m
                        approvers: self

                    """, file: "policy.yaml")
            func ask(_ groups: [String]) -> Eligibility? {
                policy.eligibility(OnRequest.caller(groups: groups), roleArn: "prod/admin")?.1
            }
            #expect(
                ask(["sre"])
                    == Eligibility(
                        maxDurationSeconds: 3600, approverGroups: ["alpha", "zeta"], selfApproval: false,
                        reasonRequired: false))
            #expect(
                ask(["sre", "dba"])
                    == Eligibility(
                        maxDurationSeconds: 14400, approverGroups: ["alpha", "mu", "zeta"], selfApproval: false,
                        reasonRequired: true))
            #expect(
                ask(["sre", "oncall"])
                    == Eligibility(
                        maxDurationSeconds: 3600, approverGroups: ["alpha", "zeta"], selfApproval: true,
                        reasonRequired: true))
            #expect(
                ask(["oncall", "dba", "sre"])
                    == Eligibility(
                        maxDurationSeconds: 14400, approverGroups: ["alpha", "mu", "zeta"], selfApproval: true,
                        reasonRequired: true))
            #expect(
                policy.eligibleEntitlements(for: OnRequest.caller(groups: ["dba", "sre"])).map(\.eligibility) == [
                    Eligibility(
                        maxDurationSeconds: 14400, approverGroups: ["alpha", "mu", "zeta"], selfApproval: false,
                        reasonRequired: true)
                ])
        }

        @Test(
            "each role on request carries only what the grants covering it allow, in eligibleEntitlements and listing")
        func eligibilityPerRole() throws {
            let policy = try AccessPolicy.parse(
                grantStart
                    + """
                        eligible: true
                        approvers: {groups: [platform-admins]}
                      - groups: [sre]
                        roles: [dev/deployer]
                        eligible: true
                        max_duration: 8h
                        approvers: self

                    """, file: "policy.yaml")
            let admin = Eligibility(
                maxDurationSeconds: 3600, approverGroups: ["platform-admins"], selfApproval: false,
                reasonRequired: false)
            let deployer = Eligibility(
                maxDurationSeconds: 28800, approverGroups: [], selfApproval: true, reasonRequired: true)
            let sre = OnRequest.caller(groups: ["sre"])
            #expect(policy.eligibility(sre, roleArn: "prod/admin")?.1 == admin)
            #expect(policy.eligibility(sre, roleArn: "dev/deployer")?.1 == deployer)
            let eligible = policy.eligibleEntitlements(for: sre)
            #expect(eligible.map(\.entitlement.profileName) == ["dev-deployer", "prod-admin"])
            #expect(eligible.map(\.eligibility) == [deployer, admin])
            #expect(policy.listing(for: sre).map(\.onRequest) == [deployer, admin])
        }

        @Test("an issuer: condition on a grant on request is respected, trailing slashes aside")
        func issuerCondition() throws {
            let contractors = Eligibility(
                maxDurationSeconds: 1800, approverGroups: ["security"], selfApproval: false, reasonRequired: true)
            let claims: [String: JSONValue] = ["team": .string("contractors")]
            for issuer in ["https://idp.example.com", "https://idp.example.com/"] {
                let caller = OnRequest.caller(claims: claims, issuer: issuer)
                #expect(policy.eligibility(caller, roleArn: "012345678901/audit")?.1 == contractors, "\(issuer)")
                #expect(
                    policy.eligibleEntitlements(for: caller).map(\.entitlement.profileName) == [
                        "012345678901-audit", "prod-admin",
                    ])
            }
            let elsewhere = OnRequest.caller(claims: claims, issuer: "https://other.example.com")
            #expect(policy.eligibility(elsewhere, roleArn: "012345678901/audit") == nil)
            #expect(policy.eligibleEntitlements(for: elsewhere).isEmpty)
            #expect(policy.listing(for: elsewhere).isEmpty)
            for approved in [false, true] {
                guard
                    case .denied(.notGranted, let reason) = policy.decide(
                        elsewhere, roleArn: "012345678901/audit", approved: approved)
                else {
                    Issue.record("a caller from another issuer was not refused as not granted (approved: \(approved))")
                    continue
                }
                #expect(
                    reason
                        == "alice is not granted role 012345678901/audit (arn:aws:iam::012345678901:role/auditor): it is granted to callers whose claims team match"
                )
            }
        }

        @Test("a claims: condition on a grant on request is respected")
        func claimsCondition() {
            for team: JSONValue in [.string("contractors-ext"), .string("Contractors"), .array([.string("sre")])] {
                let caller = OnRequest.caller(claims: ["team": team])
                #expect(policy.eligibleEntitlements(for: caller).isEmpty, "\(team)")
                #expect(policy.eligibility(caller, roleArn: "012345678901/audit") == nil, "\(team)")
            }
            let manyTeams = OnRequest.caller(claims: ["team": .array([.string("sre"), .string("contractors")])])
            #expect(policy.eligibility(manyTeams, roleArn: "012345678901/audit") != nil)
            guard case .denied(.notGranted, _) = policy.decide(OnRequest.caller(), roleArn: "012345678901/audit") else {
                Issue.record("a caller without the claim was not refused as not granted")
                return
            }
        }

        @Test("alias/* on a grant on request covers every role of the account, and * every role")
        func wildcards() throws {
            // "prod/*" in the fixture: Billing is on request though no grant names it.
            #expect(policy.eligibility(OnRequest.sre, roleArn: "prod/Billing")?.1 == OnRequest.sreAsk)
            #expect(policy.approverGroups(roleArn: "prod/Billing") == ["platform-admins"])
            let policy = try AccessPolicy.parse(
                """
                defaults: {credentials: server}
                accounts: [{id: "123456789012", alias: prod}, {id: "210987654321", alias: dev}]
                roles:
                  - {arn: "arn:aws:iam::210987654321:role/web"}
                  - {arn: "arn:aws:iam::123456789012:role/admin"}
                  - {arn: "arn:aws:iam::210987654321:role/db"}
                grants:
                  - {groups: [breakglass], roles: ["*"], eligible: true, approvers: {groups: [security]}}
                  - {groups: [dev-leads], roles: ["dev/*"], eligible: true, approvers: {groups: [leads]}}
                """, file: "policy.yaml")
            let all = policy.eligibleEntitlements(for: OnRequest.caller(groups: ["breakglass"]))
            #expect(all.map(\.entitlement.profileName) == ["dev-db", "dev-web", "prod-admin"])
            #expect(all.allSatisfy { $0.eligibility.approverGroups == ["security"] })
            let dev = policy.eligibleEntitlements(for: OnRequest.caller(groups: ["dev-leads"]))
            #expect(dev.map(\.entitlement.profileName) == ["dev-db", "dev-web"])
            #expect(policy.approverGroups(roleArn: "dev/web") == ["leads", "security"])
            #expect(policy.approverGroups(roleArn: "prod/admin") == ["security"])
        }
    }

    @Suite("Deciding a role the caller may only request")
    struct Deciding {
        let policy: AccessPolicy

        init() throws { policy = try OnRequest.parsed() }

        @Test("without an approved request the answer is approval_required, naming the role and the request command")
        func approvalRequired() {
            for approved in [false, nil] as [Bool?] {
                let decision =
                    approved.map { policy.decide(OnRequest.sre, roleArn: "prod/Billing", approved: $0) }
                    ?? policy.decide(OnRequest.sre, roleArn: "prod/Billing")
                #expect(
                    decision
                        == .denied(
                            .approvalRequired,
                            "role prod/Billing (arn:aws:iam::123456789012:role/Billing) is available to alice on request, with an approval, and no approved request of theirs grants it now; ask for it: keyless request prod/Billing --for 1h --reason \"...\""
                        ))
            }
            #expect(DenialReason.approvalRequired.rawValue == "approval_required")
        }

        @Test("approval_required names an account without alias by its id and the role by its policy name")
        func approvalRequiredWithoutAlias() {
            guard
                case .denied(.approvalRequired, let reason) = policy.decide(
                    OnRequest.contractor, roleArn: "arn:aws:iam::012345678901:role/auditor")
            else {
                Issue.record("the contractor was not told to ask for the audit role")
                return
            }
            #expect(reason.contains("role 012345678901/audit (arn:aws:iam::012345678901:role/auditor)"), "\(reason)")
            #expect(reason.contains("keyless request 012345678901/audit "), "\(reason)")
        }

        @Test("with approved: true an eligible caller is granted, with the session tags")
        func approvedGranted() throws {
            let billing = try OnRequest.entitlement(policy, "prod/Billing")
            let caller = OnRequest.caller(groups: ["sre"], claims: ["team": .string("platform")])
            #expect(
                policy.decide(caller, roleArn: "prod/Billing", approved: true)
                    == .granted(billing, tags: [SessionTag(key: "team", value: "platform")]))
            let deployer = try OnRequest.entitlement(policy, "dev/deployer")
            #expect(
                policy.decide(OnRequest.sre, roleArn: "arn:aws:iam::210987654321:role/deployer", approved: true)
                    == .granted(deployer, tags: []))
        }

        @Test("a caller who is not eligible is not_granted, with or without approved: true")
        func approvedButNotEligible() {
            for approved in [false, true] {
                #expect(
                    policy.decide(OnRequest.caller(groups: ["finance"]), roleArn: "prod/Billing", approved: approved)
                        == .denied(
                            .notGranted,
                            "alice is not granted role prod/Billing (arn:aws:iam::123456789012:role/Billing): it is granted to members of sre (the caller's groups: finance)"
                        ))
                // The SREs may ask for prod, not for the audit role.
                guard
                    case .denied(.notGranted, _) = policy.decide(
                        OnRequest.sre, roleArn: "012345678901/audit", approved: approved)
                else {
                    Issue.record("an SRE was not refused the audit role (approved: \(approved))")
                    continue
                }
            }
        }

        @Test("an mfa_required role still needs MFA after approved: true")
        func mfaAfterApproval() throws {
            let admin = try OnRequest.entitlement(policy, "prod/admin")
            #expect(
                policy.decide(OnRequest.sre, roleArn: "prod/admin", approved: true)
                    == .denied(
                        .mfaRequired,
                        "role prod/admin (arn:aws:iam::123456789012:role/admin) requires MFA, and the token of alice does not show a second factor (amr); log in again with MFA"
                    ))
            #expect(
                policy.decide(OnRequest.caller(groups: ["sre"], mfa: true), roleArn: "prod/admin", approved: true)
                    == .granted(admin, tags: []))
            // Without approval, approval comes first: MFA alone does not grant the role.
            guard
                case .denied(.approvalRequired, _) = policy.decide(
                    OnRequest.caller(groups: ["sre"], mfa: true), roleArn: "prod/admin")
            else {
                Issue.record("an SRE with MFA was not asked for an approval")
                return
            }
        }

        @Test("a phishing-resistant role still needs a passkey after approved: true")
        func passkeyAfterApproval() throws {
            let policy = try AccessPolicy.parse(
                """
                accounts: [{id: "123456789012", alias: prod}]
                roles: [{arn: "arn:aws:iam::123456789012:role/root", credentials: server, mfa_required: phishing-resistant}]
                grants: [{groups: [sre], roles: [prod/root], eligible: true, approvers: self}]
                """, file: "policy.yaml")
            let otp = PolicyCaller(
                issuer: "https://idp", subject: "alice", groups: ["sre"], mfa: true, amr: ["pwd", "otp", "mfa"])
            guard case .denied(.phishingResistantRequired, _) = policy.decide(otp, roleArn: "prod/root", approved: true)
            else {
                Issue.record("an approved request skipped the passkey requirement")
                return
            }
            let passkey = PolicyCaller(
                issuer: "https://idp", subject: "alice", groups: ["sre"], phishingResistant: true, amr: ["hwk"])
            guard case .granted = policy.decide(passkey, roleArn: "prod/root", approved: true) else {
                Issue.record("an approved request with a passkey sign-in was refused")
                return
            }
        }

        @Test("an unknown role is nil for eligibility and entitlement, empty for approvers, unknown_role for decide")
        func unknownRole() {
            for reference in ["prod/nope", "arn:aws:iam::123456789012:role/nope", "prod/*"] {
                #expect(policy.eligibility(OnRequest.sre, roleArn: reference) == nil)
                #expect(policy.entitlement(roleArn: reference) == nil)
                #expect(policy.approverGroups(roleArn: reference).isEmpty)
                for approved in [false, true] {
                    #expect(
                        policy.decide(OnRequest.sre, roleArn: reference, approved: approved)
                            == .denied(.unknownRole, "role \(reference) is not in the access policy"))
                }
            }
        }

        @Test("entitlement(roleArn:) gives the role whoever asks, by ARN, alias/name or id/name")
        func entitlementOfRole() throws {
            let admin = try OnRequest.entitlement(policy, OnRequest.adminArn)
            #expect(admin.role.arn == OnRequest.adminArn && admin.profileName == "prod-admin")
            #expect(admin.role.mfaRequired && admin.role.credentials == .server)
            #expect(policy.entitlement(roleArn: "prod/admin") == admin)
            #expect(policy.entitlement(roleArn: "123456789012/admin") == admin)
            #expect(
                policy.entitlement(roleArn: "012345678901/audit")?.role.arn == "arn:aws:iam::012345678901:role/auditor")
        }
    }

    @Suite("Approvers and the listing of roles")
    struct Listing {
        let policy: AccessPolicy

        init() throws { policy = try OnRequest.parsed() }

        @Test("approverGroups is the sorted union over every grant on request covering the role, whoever it is for")
        func approverGroups() {
            // sre's grant (platform-admins), the contractors' (security); on-call's self-approval adds no group.
            #expect(policy.approverGroups(roleArn: "prod/admin") == ["platform-admins", "security"])
            #expect(policy.approverGroups(roleArn: OnRequest.adminArn) == ["platform-admins", "security"])
            #expect(policy.approverGroups(roleArn: "012345678901/audit") == ["security"])
            // "prod/*" on request covers prod/readonly, though every SRE also holds it standing.
            #expect(policy.approverGroups(roleArn: "prod/readonly") == ["platform-admins"])
            // Covered only by a standing grant.
            #expect(policy.approverGroups(roleArn: "dev/viewer").isEmpty)
        }

        @Test("listing puts standing and on-request roles together in the order of entitlements(for:)")
        func listingOrder() throws {
            let listing = policy.listing(for: OnRequest.sre)
            #expect(
                listing.map(\.entitlement.profileName) == [
                    "dev-deployer", "dev-viewer", "prod-admin", "prod-billing", "prod-readonly",
                ])
            #expect(listing.map(\.onRequest) == [OnRequest.sreAsk, nil, OnRequest.sreAsk, OnRequest.sreAsk, nil])
            // The same order a caller holding every role standing sees.
            let everything = try AccessPolicy.parse(
                OnRequest.policy.replacingOccurrences(
                    of: "grants:\n", with: "grants:\n  - {groups: [root], roles: [\"*\"]}\n"),
                file: "policy.yaml")
            let order = everything.entitlements(for: OnRequest.caller(groups: ["root"])).map(\.profileName)
            #expect(
                order.filter { listing.map(\.entitlement.profileName).contains($0) }
                    == listing.map(\.entitlement.profileName))
        }

        @Test("the entries on request are exactly eligibleEntitlements, the standing ones exactly entitlements")
        func listingEntries() {
            for caller in [
                OnRequest.sre, OnRequest.contractor, OnRequest.caller(groups: ["oncall"]),
                OnRequest.caller(groups: ["sre", "oncall"], claims: ["team": .string("contractors")]),
            ] {
                let listing = policy.listing(for: caller)
                #expect(listing.filter { $0.onRequest == nil }.map(\.entitlement) == policy.entitlements(for: caller))
                #expect(
                    listing.compactMap { entry in
                        entry.onRequest.map { EligibleEntitlement(entitlement: entry.entitlement, eligibility: $0) }
                    }
                        == policy.eligibleEntitlements(for: caller))
            }
            let oncall = policy.listing(for: OnRequest.caller(groups: ["oncall"]))
            #expect(oncall.map(\.entitlement.profileName) == ["prod-admin"])
            #expect(
                oncall.map(\.onRequest) == [
                    Eligibility(maxDurationSeconds: 3600, approverGroups: [], selfApproval: true, reasonRequired: true)
                ])
        }

        @Test("a caller with no grant on request gets their standing roles, none on request")
        func listingWithoutRequests() throws {
            let policy = try AccessPolicy.parse(
                """
                accounts: [{id: "123456789012", alias: prod}]
                roles: [{arn: "arn:aws:iam::123456789012:role/b"}, {arn: "arn:aws:iam::123456789012:role/a"}]
                grants: [{groups: [sre], roles: ["prod/*"]}]
                """, file: "policy.yaml")
            let listing = policy.listing(for: OnRequest.caller(groups: ["sre"]))
            #expect(listing.map(\.entitlement.profileName) == ["prod-a", "prod-b"])
            #expect(listing.allSatisfy { $0.onRequest == nil })
        }
    }
}
