import Foundation
import KeylessCore

/// An IAM role trust policy (the `AssumeRolePolicyDocument`), parsed into what evaluation needs.
public struct TrustPolicy: Sendable, Equatable {
    /// One statement.
    public struct Statement: Sendable, Equatable {
        /// Its position, from 1, for messages.
        public var index: Int
        /// `Sid`, when present.
        public var sid: String?
        /// Allow (true) or Deny.
        public var allow: Bool
        /// `Principal` or `NotPrincipal`: kind ("Federated", "AWS", "Service", "*") to values.
        public var principals: [String: [String]]?
        public var notPrincipals: [String: [String]]?
        /// `Action` or `NotAction`.
        public var actions: [String]?
        public var notActions: [String]?
        /// Conditions in document order.
        public var conditions: [Condition]

        /// "statement 2 (Sid GitHub)".
        public var name: String { "statement \(index)" + (sid.map { " (Sid \($0))" } ?? "") }
    }

    /// One condition: an operator, a key and the values it allows.
    public struct Condition: Sendable, Equatable {
        /// The operator as written, e.g. "ForAnyValue:StringLike" or "StringEqualsIfExists".
        public var operatorText: String
        /// The key as written (keys compare case-insensitively).
        public var key: String
        /// The values in the policy.
        public var values: [String]
    }

    public var statements: [Statement]

    /// Parses a policy document (JSON text; IAM returns it URL-encoded, which is decoded first when needed).
    public static func parse(_ text: String) throws -> TrustPolicy {
        var text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("%7B") || text.hasPrefix("%7b"), let decoded = text.removingPercentEncoding { text = decoded }
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw invalid("it is not a JSON object")
        }
        let rawStatements: [[String: JSONValue]]
        switch object["Statement"] {
        case .array(let list)?:
            rawStatements = try list.map { item in
                guard case .object(let statement) = item else { throw invalid("a statement is not an object") }
                return statement
            }
        case .object(let single)?: rawStatements = [single]
        default: throw invalid("it has no Statement")
        }
        var statements: [Statement] = []
        for (offset, raw) in rawStatements.enumerated() {
            let index = offset + 1
            guard case .string(let effect)? = raw["Effect"], effect == "Allow" || effect == "Deny" else {
                throw invalid("statement \(index) has no Effect of Allow or Deny")
            }
            var conditions: [Condition] = []
            if let block = raw["Condition"] {
                guard case .object(let operators) = block else {
                    throw invalid("statement \(index)'s Condition is not an object")
                }
                for operatorText in operators.keys.sorted() {
                    guard case .object(let keys)? = operators[operatorText] else {
                        throw invalid("statement \(index)'s condition \(operatorText) is not an object of keys")
                    }
                    for key in keys.keys.sorted() {
                        conditions.append(
                            Condition(
                                operatorText: operatorText, key: key,
                                values: try strings(keys[key]!, "statement \(index)'s condition \(operatorText) \(key)")
                            ))
                    }
                }
            }
            statements.append(
                Statement(
                    index: index, sid: raw["Sid"]?.text, allow: effect == "Allow",
                    principals: try principals(raw["Principal"], index: index),
                    notPrincipals: try principals(raw["NotPrincipal"], index: index),
                    actions: try raw["Action"].map { try strings($0, "statement \(index)'s Action") },
                    notActions: try raw["NotAction"].map { try strings($0, "statement \(index)'s NotAction") },
                    conditions: conditions))
        }
        return TrustPolicy(statements: statements)
    }

    static func principals(_ value: JSONValue?, index: Int) throws -> [String: [String]]? {
        guard let value else { return nil }
        if case .string("*") = value { return ["*": ["*"]] }
        guard case .object(let map) = value else {
            throw invalid("statement \(index)'s Principal is not \"*\" or an object")
        }
        var result: [String: [String]] = [:]
        for (kind, values) in map { result[kind] = try strings(values, "statement \(index)'s Principal \(kind)") }
        return result
    }

    static func strings(_ value: JSONValue, _ what: String) throws -> [String] {
        switch value {
        case .string, .number, .bool: return [value.text!]
        case .array(let list): return try list.flatMap { try strings($0, what) }
        default: throw invalid("\(what) must be text or a list of text")
        }
    }

    static func invalid(_ why: String) -> KeylessError {
        KeylessError(
            .configInvalid, "The trust policy cannot be read: \(why).",
            hint: "Pass the role's AssumeRolePolicyDocument (JSON), e.g. from aws iam get-role.")
    }
}
