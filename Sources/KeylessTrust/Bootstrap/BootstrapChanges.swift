import Foundation
import KeylessCore

/// What IAM holds today for a plan's provider and roles (read by `bootstrap apply` before it changes anything).
public struct BootstrapCurrentState: Sendable, Equatable {
    /// The OIDC provider for the plan's issuer, when it exists.
    public struct Provider: Sendable, Equatable {
        /// Its ARN.
        public var arn: String
        /// Its client ids.
        public var clientIDs: [String]
        /// Its thumbprints.
        public var thumbprints: [String]
        /// A provider's state.
        public init(arn: String, clientIDs: [String], thumbprints: [String]) {
            self.arn = arn; self.clientIDs = clientIDs; self.thumbprints = thumbprints
        }
    }

    /// A role that exists.
    public struct Role: Sendable, Equatable {
        /// Its ARN.
        public var arn: String
        /// Its trust policy as IAM returns it (URL-encoded JSON is decoded when compared).
        public var trustPolicy: String
        /// Its longest session in seconds.
        public var maxSessionSeconds: Int
        /// The managed policies attached to it.
        public var attachedPolicyARNs: [String]
        /// A role's state.
        public init(arn: String, trustPolicy: String, maxSessionSeconds: Int, attachedPolicyARNs: [String]) {
            self.arn = arn; self.trustPolicy = trustPolicy; self.maxSessionSeconds = maxSessionSeconds;
            self.attachedPolicyARNs = attachedPolicyARNs
        }
    }

    /// The provider, or nil when IAM has none for the issuer.
    public var provider: Provider?
    /// Existing roles by the plan's role name; a plan role missing here does not exist.
    public var roles: [String: Role]

    /// A state.
    public init(provider: Provider?, roles: [String: Role]) {
        self.provider = provider
        self.roles = roles
    }

    /// The account and partition the state's ARNs name, when any ARN is known.
    public var accountAndPartition: (account: String, partition: String)? {
        for arn in [provider?.arn].compactMap({ $0 }) + roles.values.map(\.arn).sorted() {
            let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count >= 6, !parts[4].isEmpty { return (String(parts[4]), String(parts[1])) }
        }
        return nil
    }
}

/// One change `bootstrap apply` makes. Changes to existing things only add or replace what the plan names: client ids,
/// thumbprints and policies that are there but not in the plan are left alone.
public enum BootstrapChange: Sendable, Equatable {
    /// CreateOpenIDConnectProvider.
    case createProvider(url: String, clientIDs: [String], thumbprints: [String])
    /// AddClientIDToOpenIDConnectProvider.
    case addClientID(providerARN: String, clientID: String)
    /// UpdateOpenIDConnectProviderThumbprint (the whole list: the current one plus the plan's).
    case updateThumbprints(providerARN: String, thumbprints: [String])
    /// CreateRole with the trust policy and longest session.
    case createRole(name: String, maxSessionSeconds: Int)
    /// UpdateAssumeRolePolicy; `old` and `new` are the documents, for the diff shown.
    case updateTrustPolicy(name: String, old: String, new: String)
    /// UpdateRole's MaxSessionDuration.
    case updateMaxSession(name: String, from: Int, to: Int)
    /// AttachRolePolicy.
    case attachPolicy(role: String, policyARN: String)

    /// How the plan shows it: `+` creates, `~` updates.
    public func describe(plan: BootstrapPlan, providerARN: String) -> String {
        switch self {
        case .createProvider(let url, let clientIDs, let thumbprints):
            return
                "+ create OIDC provider \(url) (client ids \(clientIDs.joined(separator: ", ")); thumbprints \(thumbprints.joined(separator: ", ")))"
        case .addClientID(let arn, let clientID): return "~ add client id \(clientID) to \(arn)"
        case .updateThumbprints(let arn, let thumbprints):
            return "~ set thumbprints of \(arn) to \(thumbprints.joined(separator: ", "))"
        case .createRole(let name, let seconds):
            let role = plan.roles.first { $0.name == name }!
            return "+ create role \(name) (longest session \(seconds) s) trusting:\n"
                + plan.trustPolicy(for: role, federated: .string(providerARN)).prettyJSON().split(separator: "\n").map {
                    "    " + $0
                }.joined(separator: "\n")
        case .updateTrustPolicy(let name, let old, let new):
            return "~ update trust policy of role \(name):\n"
                + Self.lineDiff(old: old, new: new).map { "    " + $0 }.joined(separator: "\n")
        case .updateMaxSession(let name, let from, let to):
            return "~ change longest session of role \(name) from \(from) s to \(to) s"
        case .attachPolicy(let role, let arn): return "+ attach \(arn) to role \(role)"
        }
    }

    /// The lines of two JSON documents (pretty-printed, keys sorted) that differ, `-` old and `+` new.
    static func lineDiff(old: String, new: String) -> [String] {
        let a = normalizedLines(old), b = normalizedLines(new)
        let removed = a.filter { !b.contains($0) }, added = b.filter { !a.contains($0) }
        return removed.map { "- " + $0.trimmingCharacters(in: .whitespaces) }
            + added.map { "+ " + $0.trimmingCharacters(in: .whitespaces) }
    }

    static func normalizedLines(_ json: String) -> [String] {
        guard let value = BootstrapChanges.parse(json), let data = try? Self.encoder.encode(value) else {
            return [json]
        }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

/// Compares a plan with what IAM holds and lists the changes that make IAM match it.
public enum BootstrapChanges {
    /// The changes, providers first, then each role in plan order. `providerARN` is the ARN the trust policies name: the
    /// existing provider's, else one built from the account the state shows.
    public static func compute(plan: BootstrapPlan, current: BootstrapCurrentState, providerARN: String)
        -> [BootstrapChange]
    {
        var changes: [BootstrapChange] = []
        if let provider = current.provider {
            for clientID in plan.clientIDs where !provider.clientIDs.contains(clientID) {
                changes.append(.addClientID(providerARN: provider.arn, clientID: clientID))
            }
            let have = provider.thumbprints.map { $0.lowercased() }
            let missing = plan.thumbprints.filter { !have.contains($0) }
            if !missing.isEmpty {
                changes.append(
                    .updateThumbprints(providerARN: provider.arn, thumbprints: Array((have + missing).suffix(5))))
            }
        } else {
            changes.append(
                .createProvider(url: plan.providerURL, clientIDs: plan.clientIDs, thumbprints: plan.thumbprints))
        }
        for role in plan.roles {
            let wanted = plan.trustPolicyJSON(for: role, providerARN: providerARN)
            guard let existing = current.roles[role.name] else {
                changes.append(.createRole(name: role.name, maxSessionSeconds: role.maxSessionSeconds))
                changes += role.managedPolicyARNs.map { .attachPolicy(role: role.name, policyARN: $0) }
                continue
            }
            if !sameDocument(existing.trustPolicy, wanted) {
                changes.append(.updateTrustPolicy(name: role.name, old: decoded(existing.trustPolicy), new: wanted))
            }
            if existing.maxSessionSeconds != role.maxSessionSeconds {
                changes.append(
                    .updateMaxSession(name: role.name, from: existing.maxSessionSeconds, to: role.maxSessionSeconds))
            }
            for arn in role.managedPolicyARNs where !existing.attachedPolicyARNs.contains(arn) {
                changes.append(.attachPolicy(role: role.name, policyARN: arn))
            }
        }
        return changes
    }

    /// Whether two policy documents say the same (JSON values equal; key order, spacing and URL encoding ignored).
    public static func sameDocument(_ a: String, _ b: String) -> Bool {
        guard let left = parse(a), let right = parse(b) else { return a == b }
        return left == right
    }

    /// The document as JSON text, URL-decoded when IAM returned it encoded.
    public static func decoded(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("%7B") || trimmed.hasPrefix("%7b") { return trimmed.removingPercentEncoding ?? trimmed }
        return trimmed
    }

    static func parse(_ text: String) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(decoded(text).utf8))
    }
}
