import Foundation
import KeylessCore

/// A policy-shaped value whose object keys keep their order, rendered as JSON, as an HCL expression (Terraform's
/// `jsonencode(...)` argument) or as YAML (CloudFormation). Order matters: generated files are read by people and
/// compared byte for byte in tests.
public indirect enum DocumentValue: Sendable, Equatable {
    case string(String)
    case number(Int)
    case array([DocumentValue])
    case object([Field])
    /// A reference the target language evaluates: `aws_iam_openid_connect_provider.issuer.arn` in HCL,
    /// `!Ref OIDCProvider` in YAML. JSON writes `json`, the value it stands for.
    case expression(hcl: String, yaml: String, json: String)

    /// One key and its value.
    public struct Field: Sendable, Equatable {
        public var key: String
        public var value: DocumentValue
        /// A field.
        public init(_ key: String, _ value: DocumentValue) { self.key = key; self.value = value }
    }

    /// One string as itself, several as an array (IAM's own shorthand for condition values).
    public static func strings(_ values: [String]) -> DocumentValue {
        values.count == 1 ? .string(values[0]) : .array(values.map(DocumentValue.string))
    }

    // MARK: JSON

    /// Compact JSON, keys in order, no insignificant whitespace.
    public var compactJSON: String {
        switch self {
        case .string(let text): return jsonString(text)
        case .number(let value): return String(value)
        case .expression(_, _, let json): return jsonString(json)
        case .array(let items): return "[" + items.map(\.compactJSON).joined(separator: ",") + "]"
        case .object(let fields):
            return "{" + fields.map { jsonString($0.key) + ":" + $0.value.compactJSON }.joined(separator: ",")
                + "}"
        }
    }

    /// JSON indented by two spaces per level.
    public func prettyJSON(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch self {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { pad + $0.prettyJSON(indent: indent + 1) }.joined(separator: ",\n") + "\n" + end
                + "]"
        case .object(let fields) where !fields.isEmpty:
            return "{\n"
                + fields.map { pad + jsonString($0.key) + ": " + $0.value.prettyJSON(indent: indent + 1) }.joined(
                    separator: ",\n") + "\n" + end + "}"
        default: return compactJSON
        }
    }

    // MARK: HCL

    /// The value as an HCL expression, indented for a Terraform file.
    public func hcl(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch self {
        case .string(let text): return Self.hclQuoted(text)
        case .number(let value): return String(value)
        case .expression(let hcl, _, _): return hcl
        case .array(let items):
            if items.allSatisfy({
                if case .string = $0 { return true }; if case .expression = $0 { return true }; return false
            }) {
                return "[" + items.map { $0.hcl() }.joined(separator: ", ") + "]"
            }
            return "[\n" + items.map { pad + $0.hcl(indent: indent + 1) }.joined(separator: ",\n") + "\n" + end + "]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n"
                + fields.map { pad + Self.hclKey($0.key) + " = " + $0.value.hcl(indent: indent + 1) }.joined(
                    separator: "\n") + "\n" + end + "}"
        }
    }

    /// `text` as an HCL string literal: JSON escapes, and template sequences (`${`, `%{`) doubled so they stay literal.
    public static func hclQuoted(_ text: String) -> String {
        jsonString(text).replacingOccurrences(of: "${", with: "$${").replacingOccurrences(of: "%{", with: "%%{")
    }

    static func hclKey(_ key: String) -> String {
        let identifier =
            key.first.map { $0.isLetter || $0 == "_" } == true
            && key.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" || $0 == "-" }
        return identifier ? key : hclQuoted(key)
    }

    // MARK: YAML

    /// The value as YAML lines (block style) at `indent` levels; strings are double-quoted, so no YAML surprise
    /// (`yes`, `0123`, `*`, `:`) can change their meaning.
    public func yamlLines(indent: Int) -> [String] {
        let pad = String(repeating: "  ", count: indent)
        switch self {
        case .string, .number, .expression: return [pad + yamlScalar]
        case .array(let items):
            if items.isEmpty { return [pad + "[]"] }
            return items.flatMap { item -> [String] in
                switch item {
                case .object(let fields) where !fields.isEmpty:
                    // "- Key: value" then the rest of the mapping under it.
                    var lines = DocumentValue.object(fields).yamlLines(indent: indent + 1)
                    lines[0] = pad + "- " + lines[0].dropFirst(pad.count + 2)
                    return lines
                case .array(let inner) where !inner.isEmpty:
                    return [pad + "-"] + item.yamlLines(indent: indent + 1)
                default: return [pad + "- " + item.yamlScalar]
                }
            }
        case .object(let fields):
            if fields.isEmpty { return [pad + "{}"] }
            return fields.flatMap { field -> [String] in
                let key = pad + Self.yamlKey(field.key) + ":"
                switch field.value {
                case .object(let inner) where !inner.isEmpty: return [key] + field.value.yamlLines(indent: indent + 1)
                case .array(let inner) where !inner.isEmpty: return [key] + field.value.yamlLines(indent: indent + 1)
                default: return [key + " " + field.value.yamlScalar]
                }
            }
        }
    }

    var yamlScalar: String {
        switch self {
        case .string(let text): return jsonString(text)
        case .number(let value): return String(value)
        case .expression(_, let yaml, _): return yaml
        case .array(let items) where items.isEmpty: return "[]"
        case .object(let fields) where fields.isEmpty: return "{}"
        default: return compactJSON
        }
    }

    static func yamlKey(_ key: String) -> String {
        let plain =
            key.first.map { $0.isLetter } == true
            && key.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "_" || $0 == "-" }
        return plain ? key : jsonString(key)
    }
}
