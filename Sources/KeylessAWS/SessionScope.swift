import Crypto
import Foundation
import KeylessCore

/// A session narrower than its role: an inline session policy and managed policy ARNs, which STS intersects with the
/// role's own permissions (docs.aws.amazon.com/IAM/latest/UserGuide/access_policies.html#policies_session: the
/// session gets only what both allow). Sent as `Policy` and `PolicyArns.member.N.arn` with `AssumeRole` and
/// `AssumeRoleWithWebIdentity`.
public struct SessionScope: Sendable, Equatable, Hashable {
    /// The inline session policy, JSON text exactly as given (STS counts its characters).
    public var policy: String?
    /// Managed policies (`arn:aws:iam::ACCOUNT:policy/NAME` or an AWS managed one), in order.
    public var policyArns: [String]
    /// An agent (an AI coding assistant, a script) acting for the person (`keyless exec --agent NAME`): the session is
    /// named `agent=NAME,<person>`, and through the access server tagged `keyless-agent=NAME` with the person as
    /// `SourceIdentity`, so CloudTrail shows both.
    public var agent: String?

    /// No narrowing: the role's own permissions.
    public static let none = SessionScope()

    public init(policy: String? = nil, policyArns: [String] = [], agent: String? = nil) {
        self.policy = policy
        self.policyArns = policyArns
        self.agent = agent
    }

    public var isEmpty: Bool { policy == nil && policyArns.isEmpty && agent == nil }

    /// The session tag key that marks an agent's session (access server path).
    public static let agentTagKey = "keyless-agent"

    /// The session name of `agent` acting for `person` (a person's own session name), cut to STS's rules.
    public static func agentSessionName(_ agent: String, person: String) -> String {
        SessionName.sanitize("agent=\(agent),\(person)")
    }

    /// STS's limits (docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html, "Policy" and "PolicyArns"):
    /// at most 2,048 characters of policy and 10 managed policies.
    public static let maxPolicyCharacters = 2048
    public static let maxPolicyArns = 10

    /// Checks the scope as STS would, so a mistake is reported before any call, with what to fix.
    public func validate() throws {
        if let agent {
            guard (1...32).contains(agent.count),
                agent.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
            else {
                throw KeylessError(
                    .usage, "The agent name '\(agent)' is not 1 to 32 letters, digits, '.', '_' or '-'.",
                    hint: "Name the agent simply, for example --agent claude or --agent ci-bot.")
            }
        }
        if let policy {
            guard let data = policy.data(using: .utf8),
                (try? JSONSerialization.jsonObject(with: data)) is [String: Any]
            else {
                throw KeylessError(
                    .usage, "The session policy is not a JSON object.",
                    hint: "Pass an IAM policy document: {\"Version\":\"2012-10-17\",\"Statement\":[...]}.")
            }
            guard policy.count <= Self.maxPolicyCharacters else {
                throw KeylessError(
                    .usage,
                    "The session policy has \(policy.count) characters; STS takes at most \(Self.maxPolicyCharacters).",
                    hint: "Shorten it (whitespace counts), or use managed policies with --policy-arn.")
            }
        }
        guard policyArns.count <= Self.maxPolicyArns else {
            throw KeylessError(
                .usage, "\(policyArns.count) managed session policies; STS takes at most \(Self.maxPolicyArns).",
                hint: "Combine them, or use an inline --session-policy.")
        }
        for arn in policyArns {
            let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
            guard parts.count == 6, parts[0] == "arn", parts[1].hasPrefix("aws"), parts[2] == "iam",
                parts[5].hasPrefix("policy/"), parts[5].count > "policy/".count
            else {
                throw KeylessError(
                    .usage, "'\(arn)' is not an IAM policy ARN.",
                    hint: "Use arn:aws:iam::ACCOUNT:policy/NAME, or arn:aws:iam::aws:policy/ReadOnlyAccess.")
            }
        }
    }

    /// The STS parameters, in the order they are sent.
    public var formPairs: [(String, String)] {
        var pairs = policyArns.enumerated().map { ("PolicyArns.member.\($0.offset + 1).arn", $0.element) }
        if let policy { pairs.append(("Policy", policy)) }
        return pairs
    }

    /// What the credential cache keys on (nil when empty, so full sessions keep the names they always had): a
    /// digest of the policy text and the ARNs, so a narrowed session is never served for a full one, or for another
    /// narrowing.
    public var cacheIdentity: String? {
        guard !isEmpty else { return nil }
        var text = (policy.map { "policy:" + $0 } ?? "nopolicy") + "\u{0}" + policyArns.joined(separator: "\u{0}")
        if let agent { text += "\u{0}agent:" + agent }
        return "scope:" + Hex.encode(SHA256.hash(data: Array(text.utf8)))
    }
}
