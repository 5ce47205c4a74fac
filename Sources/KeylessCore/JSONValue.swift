#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A JSON value: the claims of a verified token as the policy and the server read them.
public enum JSONValue: Sendable, Equatable, Hashable, Codable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([JSONValue])
    case object([String: JSONValue])
    case null

    /// The value as text when it is a string, a number or a boolean.
    public var text: String? {
        switch self {
        case .string(let value): return value
        case .number(let value):
            return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .bool(let value): return value ? "true" : "false"
        default: return nil
        }
    }

    /// The value as a list of texts: an array's scalar members, or the scalar itself as one element.
    public var texts: [String] {
        if case .array(let values) = self { return values.compactMap(\.text) }
        return text.map { [$0] } ?? []
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}

extension JSONValue {
    /// The members of the JSON object in `bytes` (a peer's answer), read with Codable; empty when the bytes are not a
    /// JSON object, so that a missing member and a broken answer read the same.
    public static func members(of bytes: some Sequence<UInt8>) -> [String: JSONValue] {
        (try? JSONDecoder().decode([String: JSONValue].self, from: Data(bytes))) ?? [:]
    }

    /// The value when it is a string (a number or boolean is not one).
    public var string: String? { if case .string(let value) = self { value } else { nil } }

    /// The value when it is an array of strings only.
    public var stringArray: [String]? {
        guard case .array(let values) = self else { return nil }
        let strings = values.compactMap(\.string)
        return strings.count == values.count ? strings : nil
    }
}

/// A JSON Web Key Set as a peer publishes it (RFC 7517 §5), read with Codable: each key's members as JSON values, so
/// that every reader decides for itself which members and types it needs (the provider's keys for ID tokens and for
/// bearer tokens, a client's keys for `private_key_jwt`, `keyless doctor`'s checks).
public struct JWKSet: Decodable, Sendable {
    public let keys: [[String: JSONValue]]

    /// The set in `bytes`; nil when they are not a JSON object with a `keys` array of objects.
    public init?(json bytes: some Sequence<UInt8>) {
        guard let set = try? JSONDecoder().decode(JWKSet.self, from: Data(bytes)) else { return nil }
        self = set
    }

    /// The members of `key` whose values are strings (all a public RSA or EC key has).
    public static func stringMembers(_ key: [String: JSONValue]) -> [String: String] {
        key.compactMapValues(\.string)
    }
}
