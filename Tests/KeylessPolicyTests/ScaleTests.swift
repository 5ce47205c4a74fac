import KeylessCore
@testable import KeylessPolicy
import Testing

/// A policy of 100 accounts × 100 roles and 1,000 group grants of 10 roles each, plus one claim grant.
enum LargePolicy {
    static let accounts = 100, rolesPerAccount = 100, groups = 1000, rolesPerGroup = 10

    static func accountID(_ account: Int) -> String { String(100_000_000_000 + account) }
    static func alias(_ account: Int) -> String { "acct-" + pad(account, 3) }
    static func roleName(_ role: Int) -> String { "role-" + pad(role, 3) }
    static func group(_ group: Int) -> String { "group-" + pad(group, 4) }
    static func pad(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }

    /// Role number `index` (0..<10,000) as (account, role within account).
    static func split(_ index: Int) -> (Int, Int) { (index / rolesPerAccount, index % rolesPerAccount) }

    static var text: String {
        var lines = ["defaults:", "  region: us-east-1", "accounts:"]
        for account in 0..<accounts {
            lines.append("  - id: \"\(accountID(account))\"")
            lines.append("    alias: \(alias(account))")
        }
        lines.append("roles:")
        for account in 0..<accounts {
            for role in 0..<rolesPerAccount {
                lines.append("  - arn: arn:aws:iam::\(accountID(account)):role/\(roleName(role))")
            }
        }
        lines.append("grants:")
        for g in 0..<groups {
            lines.append("  - groups: [\(group(g))]")
            lines.append("    roles:")
            for r in 0..<rolesPerGroup {
                let (account, role) = split(g * rolesPerGroup + r)
                lines.append("      - \(alias(account))/\(roleName(role))")
            }
        }
        lines.append("  - claims: {email: \"*@ops.example.com\"}")
        lines.append("    roles: [\"acct-099/*\"]")
        return lines.joined(separator: "\n") + "\n"
    }
}

@Suite("A large policy")
struct ScaleTests {
    @Test("10,000 roles and 1,000 groups: a caller in 3 groups gets exactly their 30 roles, sorted")
    func largePolicy() throws {
        let policy = try AccessPolicy.parse(LargePolicy.text, file: "large.yaml")
        #expect(policy.roles.count == 10_000)
        #expect(policy.accounts.count == 100)
        let groups = [999, 7, 500]
        let caller = Fixture.caller(groups: groups.map(LargePolicy.group) + ["not-in-policy"])
        let expected = groups.sorted().flatMap { g in
            (0..<LargePolicy.rolesPerGroup).map { r -> String in
                let (account, role) = LargePolicy.split(g * LargePolicy.rolesPerGroup + r)
                return "\(LargePolicy.alias(account))-\(LargePolicy.roleName(role))"
            }
        }
        let entitlements = policy.entitlements(for: caller)
        #expect(entitlements.map(\.profileName) == expected)
        #expect(entitlements.first?.role.arn == "arn:aws:iam::100000000000:role/role-070")
        #expect(entitlements.last?.account == PolicyAccount(id: "100000000099", alias: "acct-099", region: nil))

        guard
            case .granted(let entitlement, _) = policy.decide(
                caller, roleArn: "arn:aws:iam::100000000050:role/role-005")
        else {
            Issue.record("group-0500 should grant acct-050/role-005")
            return
        }
        #expect(entitlement.profileName == "acct-050-role-005")
        guard case .denied(.notGranted, let reason) = policy.decide(caller, roleArn: "acct-050/role-015") else {
            Issue.record("acct-050/role-015 belongs to group-0501 only")
            return
        }
        #expect(
            reason.hasSuffix(
                "it is granted to members of group-0501 (the caller's groups: group-0007, group-0500, group-0999, not-in-policy)"
            ))

        let ops = Fixture.caller(groups: [LargePolicy.group(7)], claims: ["email": .string("eve@ops.example.com")])
        #expect(policy.entitlements(for: ops).count == 110)
    }
}
