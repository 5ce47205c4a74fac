import Foundation
import KeylessCore

/// What STS sees when a token is presented to `AssumeRoleWithWebIdentity`: the federated principal and the condition keys.
public struct WebIdentityContext: Sendable, Equatable {
    /// `arn:aws:iam::ACCOUNT:oidc-provider/HOST[/PATH]`.
    public var providerArn: String
    /// `HOST[/PATH]`, the prefix of the condition keys.
    public var providerName: String
    public var action: String
    /// Condition keys (lowercased) and their values.
    public var keys: [String: [String]]
    /// Keys that hold several values (set operators apply).
    public var multiValued: Set<String>
    /// The session tags the token asks for (`https://aws.amazon.com/tags`): STS then also needs `sts:TagSession`.
    public var sessionTags: [String: String] = [:]
    /// Their transitive keys.
    public var transitiveTagKeys: [String] = []
    /// The source identity the token sets (`https://aws.amazon.com/source_identity`): STS then also needs
    /// `sts:SetSourceIdentity`.
    public var sourceIdentity: String?

    /// The context for a token with `claims` from `issuer`, presented to a role in `account`. STS's web-identity keys:
    /// `aud` (the `azp` claim when present, else `aud`), `azp`, `sub`, `amr` (multi-valued), `email`.
    public static func forToken(claims: [String: JSONValue], issuer: String, account: String, partition: String = "aws")
        -> WebIdentityContext
    {
        var name = issuer
        for scheme in ["https://", "http://"] where name.hasPrefix(scheme) { name.removeFirst(scheme.count) }
        while name.hasSuffix("/") { name.removeLast() }
        var keys: [String: [String]] = [:]
        let prefix = name.lowercased() + ":"
        if let azp = claims["azp"]?.text {
            keys[prefix + "aud"] = [azp]
            keys[prefix + "azp"] = [azp]
        } else if let aud = claims["aud"] {
            keys[prefix + "aud"] = aud.texts
        }
        if let sub = claims["sub"]?.text { keys[prefix + "sub"] = [sub] }
        if let amr = claims["amr"] { keys[prefix + "amr"] = amr.texts }
        if let email = claims["email"]?.text { keys[prefix + "email"] = [email] }
        keys["aws:federatedprovider"] = ["arn:\(partition):iam::\(account):oidc-provider/\(name)"]
        // Session tags and the source identity (docs.aws.amazon.com/IAM/latest/UserGuide/id_session-tags.html,
        // "Passing session tags using AssumeRoleWithWebIdentity"): their condition keys, aws:RequestTag/KEY,
        // aws:TagKeys and sts:SourceIdentity, are set for every action the request needs.
        var tags: [String: String] = [:]
        var transitive: [String] = []
        if case .object(let claim) = claims["https://aws.amazon.com/tags"] {
            if case .object(let principal) = claim["principal_tags"] {
                for (key, value) in principal { if let first = value.texts.first { tags[key] = first } }
            }
            transitive = claim["transitive_tag_keys"]?.texts ?? []
        }
        var multiValued: Set<String> = [prefix + "amr", prefix + "aud"]
        if !tags.isEmpty {
            for (key, value) in tags { keys["aws:requesttag/" + key.lowercased()] = [value] }
            keys["aws:tagkeys"] = tags.keys.sorted()
            multiValued.insert("aws:tagkeys")
        }
        let sourceIdentity = claims["https://aws.amazon.com/source_identity"]?.text
        if let sourceIdentity { keys["sts:sourceidentity"] = [sourceIdentity] }
        var context = WebIdentityContext(
            providerArn: "arn:\(partition):iam::\(account):oidc-provider/\(name)", providerName: name,
            action: "sts:AssumeRoleWithWebIdentity", keys: keys, multiValued: multiValued)
        context.sessionTags = tags
        context.transitiveTagKeys = transitive
        context.sourceIdentity = sourceIdentity
        return context
    }
}

/// How one statement fared.
public struct StatementVerdict: Sendable, Equatable {
    public var statement: TrustPolicy.Statement
    /// Whether it applies to the request (principal, action and every condition match).
    public var applies: Bool
    /// Why it does not apply, one line per failing part (principal, action, each failing condition with the value seen).
    public var failures: [String]
}

/// The outcome of evaluating a trust policy for a web-identity request, as STS does: an applicable Deny wins, else an
/// applicable Allow, else the implicit deny.
public struct TrustExplanation: Sendable, Equatable {
    /// Allowed or not.
    public var allowed: Bool
    /// Every statement's verdict, in order.
    public var verdicts: [StatementVerdict]
    /// Warnings about the policy itself (multi-valued keys without a set operator, unsupported operators).
    public var notes: [String]
    /// What else the request needs and whether it has it: session tags (`sts:TagSession`), the source identity
    /// (`sts:SetSourceIdentity`), one line each.
    public var alsoNeeded: [String] = []

    /// The explanation as text for a person.
    public var text: String {
        var lines: [String] = []
        let allowing = verdicts.first { $0.applies && $0.statement.allow }
        let denying = verdicts.first { $0.applies && !$0.statement.allow }
        if allowed, let allow = allowing {
            lines.append("ALLOWED by \(allow.statement.name).")
        } else if denying == nil, let allow = allowing {
            lines.append(
                "DENIED: \(allow.statement.name) allows sts:AssumeRoleWithWebIdentity, but not all the token asks for:")
        } else if let deny = verdicts.first(where: { $0.applies && !$0.statement.allow }) {
            lines.append("DENIED: \(deny.statement.name) is an explicit Deny that matches this token.")
        } else {
            lines.append("DENIED: no statement allows sts:AssumeRoleWithWebIdentity for this token.")
        }
        lines += alsoNeeded.map { "  \($0)" }
        for verdict in verdicts {
            let effect = verdict.statement.allow ? "Allow" : "Deny"
            if verdict.applies {
                lines.append("  \(verdict.statement.name), \(effect): matches.")
            } else {
                lines.append("  \(verdict.statement.name), \(effect): does not apply:")
                lines += verdict.failures.map { "    - \($0)" }
            }
        }
        if !notes.isEmpty {
            lines.append("Notes:")
            lines += notes.map { "  - \($0)" }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Evaluates trust policies the way STS does for web-identity principals.
public enum TrustEvaluator {
    /// Explains `policy` for `context`.
    public static func explain(_ policy: TrustPolicy, context: WebIdentityContext) -> TrustExplanation {
        var explanation = explainAction(policy, context: context)
        // A token with session tags or a source identity makes STS check sts:TagSession / sts:SetSourceIdentity too;
        // without them the whole AssumeRoleWithWebIdentity is denied.
        var extra: [(String, String)] = []
        if !context.sessionTags.isEmpty {
            let tags = context.sessionTags.keys.sorted().map { "\($0)=\(context.sessionTags[$0]!)" }.joined(
                separator: ", ")
            let transitive =
                context.transitiveTagKeys.isEmpty
                ? "" : " (transitive: \(context.transitiveTagKeys.joined(separator: ", ")))"
            extra.append(("sts:TagSession", "session tags \(tags)\(transitive)"))
        }
        if let source = context.sourceIdentity { extra.append(("sts:SetSourceIdentity", "source identity \(source)")) }
        for (action, what) in extra {
            var needed = context
            needed.action = action
            let verdict = explainAction(policy, context: needed)
            if verdict.allowed {
                explanation.alsoNeeded.append("The token sets \(what): \(action) is allowed too.")
            } else {
                explanation.allowed = false
                explanation.alsoNeeded.append(
                    "DENIED as well: the token sets \(what), and no statement allows \(action) for it; add \(action) to the Action of the statement that allows sts:AssumeRoleWithWebIdentity (keyless bootstrap --session-tags does)."
                )
            }
        }
        return explanation
    }

    static func explainAction(_ policy: TrustPolicy, context: WebIdentityContext) -> TrustExplanation {
        var notes: [String] = []
        let verdicts = policy.statements.map { statement -> StatementVerdict in
            var failures: [String] = []
            if let failure = principalFailure(statement, context: context) { failures.append(failure) }
            if let failure = actionFailure(statement, context: context) { failures.append(failure) }
            for condition in statement.conditions {
                let (ok, detail, note) = evaluate(condition, context: context)
                if !ok { failures.append(detail) }
                if let note, !notes.contains(note) { notes.append(note) }
            }
            return StatementVerdict(statement: statement, applies: failures.isEmpty, failures: failures)
        }
        let denied = verdicts.contains { $0.applies && !$0.statement.allow }
        let allowed = !denied && verdicts.contains { $0.applies && $0.statement.allow }
        return TrustExplanation(allowed: allowed, verdicts: verdicts, notes: notes)
    }

    static func principalFailure(_ statement: TrustPolicy.Statement, context: WebIdentityContext) -> String? {
        if let principals = statement.principals {
            if principals["*"] != nil || principals["AWS"]?.contains("*") == true { return nil }
            let federated = principals["Federated"] ?? []
            if federated.contains(where: { glob($0, matches: context.providerArn, ignoreCase: false) }) { return nil }
            if federated.isEmpty {
                return
                    "Principal names no Federated provider (it has \(principals.keys.sorted().joined(separator: ", "))); a web-identity token needs \"Federated\": \"\(context.providerArn)\""
            }
            return
                "Principal Federated is \(federated.joined(separator: ", ")), but this token's provider is \(context.providerArn)"
        }
        if let notPrincipals = statement.notPrincipals {
            if (notPrincipals["Federated"] ?? []).contains(where: {
                glob($0, matches: context.providerArn, ignoreCase: false)
            }) {
                return "NotPrincipal excludes \(context.providerArn)"
            }
            return nil
        }
        return "the statement has no Principal"
    }

    static func actionFailure(_ statement: TrustPolicy.Statement, context: WebIdentityContext) -> String? {
        if let actions = statement.actions {
            if actions.contains(where: { glob($0, matches: context.action, ignoreCase: true) }) { return nil }
            return "Action is \(actions.joined(separator: ", ")), which does not include \(context.action)"
        }
        if let notActions = statement.notActions {
            if notActions.contains(where: { glob($0, matches: context.action, ignoreCase: true) }) {
                return "NotAction excludes \(context.action)"
            }
            return nil
        }
        return "the statement has no Action"
    }

    /// One condition: (holds, the explanation when it does not, a note about the policy).
    static func evaluate(_ condition: TrustPolicy.Condition, context: WebIdentityContext) -> (Bool, String, String?) {
        var name = condition.operatorText
        var qualifier: String?
        for prefix in ["ForAnyValue:", "ForAllValues:"] where name.hasPrefix(prefix) {
            qualifier = String(prefix.dropLast())
            name.removeFirst(prefix.count)
        }
        var ifExists = false
        if name.hasSuffix("IfExists") { ifExists = true; name.removeLast("IfExists".count) }
        let key = condition.key.lowercased()
        let present = context.keys[key]
        let seen =
            present.map { $0.isEmpty ? "an empty list" : $0.map { "\"\($0)\"" }.joined(separator: ", ") }
            ?? "nothing (the token has no such claim)"
        let wanted = condition.values.map { "\"\($0)\"" }.joined(separator: ", ")
        var note: String?
        if context.multiValued.contains(key), qualifier == nil, (present?.count ?? 0) > 1 {
            note =
                "\(condition.key) has several values in this token; use ForAnyValue: or ForAllValues: to say whether one or all must match."
        }
        func result(_ ok: Bool) -> (Bool, String, String?) {
            (ok, "\(condition.operatorText) \(condition.key): the token has \(seen); the policy wants \(wanted)", note)
        }

        if name == "Null" {
            let wantsAbsent = condition.values.contains { $0.lowercased() == "true" }
            return result(wantsAbsent ? (present == nil || present!.isEmpty) : (present != nil && !present!.isEmpty))
        }
        guard let comparison = Comparison(name) else {
            return (
                false,
                "\(condition.operatorText) \(condition.key): keyless cannot evaluate this operator, so it counts as not matching",
                "\(condition.operatorText) is not evaluated by keyless (string operators, Null, ForAnyValue/ForAllValues and IfExists are)."
            )
        }
        guard let values = present, !values.isEmpty else {
            if ifExists { return result(true) }
            switch qualifier {
            case "ForAllValues": return result(true)  // vacuously true for an absent key
            case "ForAnyValue": return result(false)
            default: return result(comparison.negated)  // negated operators match when the key is absent
            }
        }
        let matchesOne = { (value: String) in
            condition.values.contains { comparison.positiveMatch(pattern: $0, value: value) }
        }
        switch qualifier {
        case "ForAllValues":
            return result(values.allSatisfy { comparison.negated ? !matchesOne($0) : matchesOne($0) })
        case "ForAnyValue":
            return result(values.contains { comparison.negated ? !matchesOne($0) : matchesOne($0) })
        default:
            return result(comparison.negated ? !values.contains(where: matchesOne) : values.contains(where: matchesOne))
        }
    }

    /// The string operators.
    struct Comparison {
        let like: Bool
        let ignoreCase: Bool
        let negated: Bool

        init?(_ name: String) {
            switch name {
            case "StringEquals": (like, ignoreCase, negated) = (false, false, false)
            case "StringNotEquals": (like, ignoreCase, negated) = (false, false, true)
            case "StringEqualsIgnoreCase": (like, ignoreCase, negated) = (false, true, false)
            case "StringNotEqualsIgnoreCase": (like, ignoreCase, negated) = (false, true, true)
            case "StringLike": (like, ignoreCase, negated) = (true, false, false)
            case "StringNotLike": (like, ignoreCase, negated) = (true, false, true)
            default: return nil
            }
        }

        func positiveMatch(pattern: String, value: String) -> Bool {
            like
                ? glob(pattern, matches: value, ignoreCase: ignoreCase)
                : (ignoreCase ? pattern.lowercased() == value.lowercased() : pattern == value)
        }
    }

    /// IAM's wildcard match: `*` any run of characters (also none), `?` exactly one.
    static func glob(_ pattern: String, matches text: String, ignoreCase: Bool) -> Bool {
        let p = Array(ignoreCase ? pattern.lowercased() : pattern), t = Array(ignoreCase ? text.lowercased() : text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
