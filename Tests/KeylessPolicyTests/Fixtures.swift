import Foundation
import KeylessCore
@testable import KeylessPolicy
import Testing
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A policy touching every feature: three accounts (one without alias), roles with every field, grants by group, by
/// claim glob, by multi-valued claim with an issuer, by "alias/*" and by "*", and session tags.
enum Fixture {
    static let policy = """
        defaults:
          region: us-east-1
          credentials: web-identity
          max_session: 1h
        accounts:
          - id: "123456789012"
            alias: prod
            region: eu-west-1
          - id: 210987654321
            alias: dev
          - id: "012345678901"
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            description: Full access
            max_session: 1h
            mfa_required: true
            credentials: server
          - arn: arn:aws:iam::123456789012:role/ops/ReadOnly
            name: readonly
            max_session: 45m
          - arn: arn:aws:iam::210987654321:role/developer
            max_session: "3600s"
          - arn: arn:aws:iam::210987654321:role/Deployer
            max_session: 12h
            mfa_required: false
          - arn: arn:aws:iam::012345678901:role/auditor
            max_session: 5400
        grants:
          - description: admins run production
            groups: [platform-admins]
            roles: [arn:aws:iam::123456789012:role/admin, prod/readonly]
          - groups: developers
            roles: ["dev/*"]
          - claims:
              email: "*@example.com"
              "https://example.com/team": [platform, sre]
            roles: [prod/readonly]
          - claims:
              groups: "auditors-?"
            issuer: https://idp.example.com/
            roles: ["012345678901/auditor"]
          - groups: [break-glass]
            roles: ["*"]
        session_tags:
          - tag: email
          - tag: groups
            claim: groups
          - tag: team
            claim: "https://example.com/team"

        """

    static func parsed() throws -> AccessPolicy { try AccessPolicy.parse(policy, file: "policy.yaml") }

    static let prod = PolicyAccount(id: "123456789012", alias: "prod", region: "eu-west-1")
    static let dev = PolicyAccount(id: "210987654321", alias: "dev", region: nil)
    static let audit = PolicyAccount(id: "012345678901", alias: nil, region: nil)

    static let admin = PolicyRole(
        arn: "arn:aws:iam::123456789012:role/admin", name: "admin", accountID: "123456789012",
        description: "Full access", maxSessionSeconds: 3600, mfaRequired: true, credentials: .server)
    static let readonly = PolicyRole(
        arn: "arn:aws:iam::123456789012:role/ops/ReadOnly", name: "readonly", accountID: "123456789012",
        description: nil, maxSessionSeconds: 2700, mfaRequired: false, credentials: .webIdentity)
    static let developer = PolicyRole(
        arn: "arn:aws:iam::210987654321:role/developer", name: "developer", accountID: "210987654321",
        description: nil, maxSessionSeconds: 3600, mfaRequired: false, credentials: .webIdentity)
    static let deployer = PolicyRole(
        arn: "arn:aws:iam::210987654321:role/Deployer", name: "Deployer", accountID: "210987654321",
        description: nil, maxSessionSeconds: 43200, mfaRequired: false, credentials: .webIdentity)
    static let auditor = PolicyRole(
        arn: "arn:aws:iam::012345678901:role/auditor", name: "auditor", accountID: "012345678901",
        description: nil, maxSessionSeconds: 5400, mfaRequired: false, credentials: .webIdentity)

    static let adminEntitlement = Entitlement(
        role: admin, account: prod, region: "eu-west-1", profileName: "prod-admin")
    static let readonlyEntitlement = Entitlement(
        role: readonly, account: prod, region: "eu-west-1", profileName: "prod-readonly")
    static let developerEntitlement = Entitlement(
        role: developer, account: dev, region: "us-east-1", profileName: "dev-developer")
    static let deployerEntitlement = Entitlement(
        role: deployer, account: dev, region: "us-east-1", profileName: "dev-deployer")
    static let auditorEntitlement = Entitlement(
        role: auditor, account: audit, region: "us-east-1", profileName: "012345678901-auditor")

    static func caller(
        groups: [String] = [], claims: [String: JSONValue] = [:], mfa: Bool = false,
        issuer: String = "https://idp.example.com"
    ) -> PolicyCaller {
        PolicyCaller(issuer: issuer, subject: "alice", groups: groups, claims: claims, mfa: mfa)
    }
}

/// The repository's docs directory, found from this file's path.
func docsPath(_ name: String) -> String {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("docs").appendingPathComponent(name).path
}

/// Overwrites `path` in place (same inode, not atomically), as an editor without safe-write or a slow copy does.
func writeInPlace(_ text: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw KeylessError(.io, "cannot open \(path)") }
    defer { close(fd) }
    let bytes = Array(text.utf8)
    guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
        throw KeylessError(.io, "cannot write \(path)")
    }
}

/// The error `parse` throws for `text`, or nil when it parses.
func parseError(_ text: String, file: String = "policy.yaml") -> KeylessError? {
    do {
        _ = try AccessPolicy.parse(text, file: file)
        return nil
    } catch let error as KeylessError {
        return error
    } catch {
        return KeylessError(.io, "unexpected error \(error)")
    }
}
