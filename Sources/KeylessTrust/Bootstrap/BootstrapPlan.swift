import Foundation
import KeylessCore

/// One IAM role a bootstrap creates: who may assume it (the provider, the audience, `sub` patterns, MFA) and what it may do.
public struct BootstrapRole: Sendable, Equatable {
    /// The role name (IAM: up to 64 of `A-Za-z0-9+=,.@_-`).
    public var name: String
    /// Managed policies to attach.
    public var managedPolicyARNs: [String]
    /// `sub` patterns (`StringLike`, `*` and `?` wildcards); empty: any subject the audience allows.
    public var subPatterns: [String]
    /// Whether the token's `amr` must contain `mfa`.
    public var requireMFA: Bool
    /// The longest session, 3600 to 43200 seconds.
    public var maxSessionSeconds: Int
    /// Whether tokens may carry session tags (`https://aws.amazon.com/tags`): the trust policy then allows
    /// `sts:TagSession` too, without which STS refuses such a token outright.
    public var sessionTags: Bool = false
    /// Whether tokens may set a source identity (`https://aws.amazon.com/source_identity`): `sts:SetSourceIdentity`.
    public var sourceIdentity: Bool = false

    /// The actions its trust policy allows.
    public var trustActions: [String] {
        ["sts:AssumeRoleWithWebIdentity"] + (sessionTags ? ["sts:TagSession"] : [])
            + (sourceIdentity ? ["sts:SetSourceIdentity"] : [])
    }

    /// A role.
    public init(
        name: String, managedPolicyARNs: [String] = [], subPatterns: [String] = [], requireMFA: Bool = false,
        maxSessionSeconds: Int = 3600
    ) {
        self.name = name
        self.managedPolicyARNs = managedPolicyARNs
        self.subPatterns = subPatterns
        self.requireMFA = requireMFA
        self.maxSessionSeconds = maxSessionSeconds
    }

    /// `NAME` or `NAME:POLICY_ARN[,POLICY_ARN...]` as the command line writes it (the name ends at the first colon).
    public static func parse(_ text: String) throws -> BootstrapRole {
        guard let colon = text.firstIndex(of: ":") else { return BootstrapRole(name: text) }
        let policies = text[text.index(after: colon)...].split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        return BootstrapRole(name: String(text[..<colon]), managedPolicyARNs: policies)
    }
}

/// Everything a trust setup creates in one AWS account: the IAM OIDC provider for one issuer and the roles that trust it.
/// Generators turn it into Terraform, CloudFormation or JSON; `bootstrap apply` compares it with what IAM holds.
public struct BootstrapPlan: Sendable, Equatable {
    /// The issuer URL as tokens carry it in `iss`.
    public var issuerURL: String
    /// The client ids (IAM's audience list; the tokens' `aud`).
    public var clientIDs: [String]
    /// SHA-1 thumbprints (40 hex digits) of the issuer's JWKS host certificate.
    public var thumbprints: [String]
    public var roles: [BootstrapRole]
    /// Things the reader must know (a placeholder thumbprint, an http issuer).
    public var notes: [String]

    /// The GitHub Actions issuer.
    public static let githubIssuer = "https://token.actions.githubusercontent.com"
    /// The audience GitHub's `aws-actions/configure-aws-credentials` asks for.
    public static let githubAudience = "sts.amazonaws.com"
    /// The thumbprint AWS documents for GitHub's OIDC host (IAM no longer checks it for GitHub, but the API still wants one).
    public static let githubThumbprint = "6938fd4d98bab03faadb97b34396831e3780aea1"
    /// The audience keyless's own provider gives the keyless CLI.
    public static let keylessAudience = "keyless-cli"
    /// What IAM accepts when the thumbprint cannot be known (a loopback test issuer).
    public static let placeholderThumbprint = String(repeating: "0", count: 40)

    /// A plan, checked: see `validate()`.
    public init(
        issuerURL: String, clientIDs: [String], thumbprints: [String], roles: [BootstrapRole], notes: [String] = []
    ) throws {
        self.issuerURL = issuerURL
        self.clientIDs = clientIDs
        self.thumbprints = thumbprints.map { $0.lowercased() }
        self.roles = roles
        self.notes = notes
        try validate()
    }

    /// The GitHub Actions preset: GitHub's issuer, audience and thumbprint, and each role without `sub` patterns limited to
    /// `repo:ORG/REPO:ref:REF` (or `repo:ORG/REPO:*` without a ref).
    public static func github(repository: String, ref: String?, roles: [BootstrapRole]) throws -> BootstrapPlan {
        let parts = repository.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && !$0.contains(":") && !$0.contains("*") }) else {
            throw KeylessError(
                .usage, "--github-repo \(repository) is not ORG/REPO.",
                hint: "Write it as on GitHub, e.g. --github-repo acme/api.")
        }
        let sub = ref.map { "repo:\(repository):ref:\($0)" } ?? "repo:\(repository):*"
        let limited = roles.map { role -> BootstrapRole in
            var role = role
            if role.subPatterns.isEmpty { role.subPatterns = [sub] }
            return role
        }
        return try BootstrapPlan(
            issuerURL: githubIssuer, clientIDs: [githubAudience], thumbprints: [githubThumbprint], roles: limited)
    }

    /// `HOST[/PATH]`: the issuer without scheme or trailing slash, which names the provider in its ARN and prefixes the condition keys.
    public var providerName: String { Self.providerName(issuerURL) }

    /// The provider URL IAM stores (always https: IAM and Terraform refuse anything else).
    public var providerURL: String { "https://" + providerName }

    /// `HOST[/PATH]` of `issuer`.
    public static func providerName(_ issuer: String) -> String {
        var name = issuer
        for scheme in ["https://", "http://"] where name.hasPrefix(scheme) { name.removeFirst(scheme.count) }
        while name.hasSuffix("/") { name.removeLast() }
        return name
    }

    /// The provider's ARN in `account`.
    public func providerARN(account: String, partition: String = "aws") -> String {
        "arn:\(partition):iam::\(account):oidc-provider/\(providerName)"
    }

    /// Whether the issuer is plain http on a loopback address (tests and local demos only).
    public var isLoopbackHTTP: Bool { Self.isLoopbackHTTP(issuerURL) }

    /// Whether `issuer` is plain http on a loopback address.
    public static func isLoopbackHTTP(_ issuer: String) -> Bool {
        guard let url = URL(string: issuer), url.scheme == "http", let host = url.host else { return false }
        return host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]"
    }

    /// Checks what IAM would refuse, before anything is written or called.
    public func validate() throws {
        guard let url = URL(string: issuerURL), let host = url.host, !host.isEmpty, url.query == nil,
            url.fragment == nil,
            url.scheme == "https" || isLoopbackHTTP
        else {
            throw KeylessError(
                .usage, "The issuer \(issuerURL) is not an https URL.",
                hint: "IAM only trusts https issuers (plain http is accepted for 127.0.0.1 and localhost, for tests).")
        }
        guard !clientIDs.isEmpty, clientIDs.allSatisfy({ !$0.isEmpty && $0.count <= 255 }) else {
            throw KeylessError(
                .usage, "No client id (audience) was given.",
                hint: "Pass --client-id, the aud your tokens carry (up to 255 characters each).")
        }
        guard !thumbprints.isEmpty, thumbprints.count <= 5,
            thumbprints.allSatisfy({ $0.count == 40 && $0.allSatisfy(\.isHexDigit) })
        else {
            throw KeylessError(
                .usage, "The thumbprints \(thumbprints) are not one to five SHA-1 values of 40 hex digits.",
                hint: "Leave out --thumbprint to compute it, or pass the value `keyless thumbprint URL` prints.")
        }
        var seen = Set<String>()
        for role in roles {
            let allowed = CharacterSet(
                charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-")
            guard (1...64).contains(role.name.count), role.name.unicodeScalars.allSatisfy(allowed.contains) else {
                throw KeylessError(
                    .usage, "'\(role.name)' is not an IAM role name.",
                    hint: "Use 1–64 of A-Z a-z 0-9 + = , . @ _ - (--role NAME[:POLICY_ARN]).")
            }
            guard seen.insert(role.name.lowercased()).inserted else {
                throw KeylessError(
                    .usage, "The role \(role.name) is named twice.",
                    hint: "Give each --role once (IAM role names ignore case).")
            }
            guard (3600...43200).contains(role.maxSessionSeconds) else {
                throw KeylessError(
                    .usage, "A longest session of \(role.maxSessionSeconds) s is outside IAM's 3600–43200.",
                    hint: "Pass --max-session between 3600 and 43200.")
            }
            for arn in role.managedPolicyARNs where !(arn.hasPrefix("arn:") && arn.contains(":policy/")) {
                throw KeylessError(
                    .usage, "'\(arn)' (role \(role.name)) is not a managed policy ARN.",
                    hint:
                        "Write --role \(role.name):arn:aws:iam::aws:policy/ReadOnlyAccess (the ARN after the first colon)."
                )
            }
        }
    }

    // MARK: Trust policies

    /// The role's trust policy: `sts:AssumeRoleWithWebIdentity` for the provider `federated`, `aud` among the client ids,
    /// `sub` matching the patterns when there are any, `amr` containing `mfa` when required.
    public func trustPolicy(for role: BootstrapRole, federated: DocumentValue) -> DocumentValue {
        trustPolicy(for: role, federated: federated, sub: role.subPatterns.isEmpty ? nil : .strings(role.subPatterns))
    }

    /// The same with any `sub` value (CloudFormation passes a parameter reference).
    public func trustPolicy(for role: BootstrapRole, federated: DocumentValue, sub: DocumentValue?) -> DocumentValue {
        var conditions: [DocumentValue.Field] = [
            .init("StringEquals", .object([.init("\(providerName):aud", .strings(clientIDs))]))
        ]
        if let sub { conditions.append(.init("StringLike", .object([.init("\(providerName):sub", sub)]))) }
        if role.requireMFA { conditions.append(Self.mfaCondition(prefix: providerName)) }
        return Self.webIdentityTrustPolicy(federated: federated, conditions: conditions, actions: role.trustActions)
    }

    /// A trust policy of one statement: `sts:AssumeRoleWithWebIdentity` allowed to the provider `federated` when
    /// `conditions` hold. Every trust policy keyless writes (IAM API, Terraform, CloudFormation) is this one.
    public static func webIdentityTrustPolicy(
        federated: DocumentValue, conditions: [DocumentValue.Field],
        actions: [String] = ["sts:AssumeRoleWithWebIdentity"]
    ) -> DocumentValue {
        .object([
            .init("Version", .string("2012-10-17")),
            .init(
                "Statement",
                .array([
                    .object([
                        .init("Effect", .string("Allow")),
                        .init("Principal", .object([.init("Federated", federated)])),
                        .init("Action", actions.count == 1 ? .string(actions[0]) : .strings(actions)),
                        .init("Condition", .object(conditions)),
                    ])
                ])),
        ])
    }

    /// The condition that the token's `amr` (under the condition-key prefix `prefix`, the issuer host) holds `mfa`.
    public static func mfaCondition(prefix: String) -> DocumentValue.Field {
        .init("ForAnyValue:StringEquals", .object([.init("\(prefix):amr", .array([.string("mfa")]))]))
    }

    /// The trust policy as compact JSON naming the provider in `account` (what IAM stores).
    public func trustPolicyJSON(for role: BootstrapRole, providerARN: String) -> String {
        trustPolicy(for: role, federated: .string(providerARN)).compactJSON
    }
}
