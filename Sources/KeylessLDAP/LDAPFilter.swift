import KeylessCore

/// An LDAP search filter (RFC 4511 §4.5.1.7), parsed from its string form (RFC 4515) and written as BER.
///
/// Values are bytes: `(cn=caf\c3\a9)` holds the UTF-8 of "café". A filter built from a template and a person's input
/// goes through `LDAPFilter.template(_:substituting:)`, which escapes the input (RFC 4515 §3) before parsing, so
/// `*)(uid=*` typed as a user name is matched as those eight characters, never as filter syntax.
public indirect enum LDAPFilter: Equatable, Sendable {
    case and([LDAPFilter])
    case or([LDAPFilter])
    case not(LDAPFilter)
    case equality(attribute: String, value: [UInt8])
    /// `initial*any*any*final`: each part nil or empty when absent.
    case substrings(attribute: String, initial: [UInt8]?, any: [[UInt8]], final: [UInt8]?)
    case greaterOrEqual(attribute: String, value: [UInt8])
    case lessOrEqual(attribute: String, value: [UInt8])
    case present(attribute: String)
    case approximate(attribute: String, value: [UInt8])
    /// `attr:dn:rule:=value`, e.g. Active Directory's `memberOf:1.2.840.113556.1.4.1941:=DN` (nested membership).
    case extensible(matchingRule: String?, attribute: String?, value: [UInt8], dnAttributes: Bool)

    /// `value` with the characters RFC 4515 reserves written as `\XX`: `*`, `(`, `)`, `\` and NUL.
    public static func escape(_ value: String) -> String {
        var escaped = [UInt8]()
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "*"), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\\"), 0:
                escaped += Array(("\\" + Hex.encode([byte])).utf8)
            default:
                escaped.append(byte)
            }
        }
        return String(decoding: escaped, as: UTF8.self)
    }

    /// `template` with every `{u}` replaced by `value`, escaped, then parsed: `(|(uid={u})(mail={u}))`.
    public static func template(_ template: String, substituting value: String, placeholder: String = "{u}") throws
        -> LDAPFilter
    {
        try LDAPFilter(parsing: template.replacing(placeholder, with: escape(value)))
    }

    /// Parses a filter's string form; throws `LDAPError` (`.filterSyntax`) saying where it went wrong.
    public init(parsing text: String) throws {
        var parser = FilterParser(bytes: Array(text.utf8))
        let filter = try parser.parseFilter()
        guard parser.position == parser.bytes.count else {
            throw parser.error("unexpected text after the filter's closing parenthesis")
        }
        self = filter
    }
}

/// RFC 4515's grammar, over bytes.
struct FilterParser {
    let bytes: [UInt8]
    var position = 0
    /// Nesting deeper than this is refused (a filter comes from configuration, but it is parsed before anything else).
    static let maximumDepth = 32
    var depth = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    func error(_ reason: String) -> LDAPError {
        LDAPError(.filterSyntax, "LDAP filter: \(reason) at character \(position + 1)")
    }

    mutating func expect(_ character: Character) throws {
        guard position < bytes.count, bytes[position] == character.asciiValue! else {
            throw error("expected '\(character)'")
        }
        position += 1
    }

    mutating func parseFilter() throws -> LDAPFilter {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { throw error("nested more than \(Self.maximumDepth) deep") }
        try expect("(")
        guard position < bytes.count else { throw error("the filter ends after '('") }
        let filter: LDAPFilter
        switch bytes[position] {
        case UInt8(ascii: "&"):
            position += 1
            filter = .and(try parseList())
        case UInt8(ascii: "|"):
            position += 1
            filter = .or(try parseList())
        case UInt8(ascii: "!"):
            position += 1
            filter = .not(try parseFilter())
        default:
            filter = try parseItem()
        }
        try expect(")")
        return filter
    }

    mutating func parseList() throws -> [LDAPFilter] {
        var filters: [LDAPFilter] = []
        while position < bytes.count, bytes[position] == UInt8(ascii: "(") {
            filters.append(try parseFilter())
        }
        guard !filters.isEmpty else { throw error("'&' and '|' need at least one filter in parentheses") }
        return filters
    }

    /// attr=value, attr~=value, attr>=value, attr<=value, attr=*, attr=a*b*c, attr:dn:rule:=value, :rule:=value.
    mutating func parseItem() throws -> LDAPFilter {
        let start = position
        while position < bytes.count, !"=~<>:()".utf8.contains(bytes[position]) { position += 1 }
        let attribute = String(decoding: bytes[start..<position], as: UTF8.self)
        guard position < bytes.count else { throw error("the filter ends inside an item") }
        if bytes[position] == UInt8(ascii: ":") { return try parseExtensible(attribute: attribute) }
        guard isAttributeDescription(attribute) else { throw error("'\(attribute)' is not an attribute name") }
        switch bytes[position] {
        case UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "<"):
            let operatorByte = bytes[position]
            position += 1
            try expect("=")
            let value = try parseValue(allowStar: false)
            switch operatorByte {
            case UInt8(ascii: "~"): return .approximate(attribute: attribute, value: value)
            case UInt8(ascii: ">"): return .greaterOrEqual(attribute: attribute, value: value)
            default: return .lessOrEqual(attribute: attribute, value: value)
            }
        case UInt8(ascii: "="):
            position += 1
            return try parseEqualityOrSubstrings(attribute: attribute)
        default:
            throw error("expected '=', '~=', '>=', '<=' or ':' after '\(attribute)'")
        }
    }

    mutating func parseEqualityOrSubstrings(attribute: String) throws -> LDAPFilter {
        var parts: [[UInt8]] = [[]]
        while position < bytes.count, bytes[position] != UInt8(ascii: ")") {
            if bytes[position] == UInt8(ascii: "*") {
                parts.append([])
                position += 1
            } else {
                parts[parts.count - 1] += try parseValue(allowStar: false)
            }
        }
        if parts.count == 1 { return .equality(attribute: attribute, value: parts[0]) }
        if parts.count == 2 && parts[0].isEmpty && parts[1].isEmpty { return .present(attribute: attribute) }
        let middle = parts.dropFirst().dropLast()
        guard !middle.contains(where: \.isEmpty) else { throw error("'**' in a substring filter") }
        return .substrings(
            attribute: attribute, initial: parts[0].isEmpty ? nil : parts[0], any: Array(middle),
            final: parts[parts.count - 1].isEmpty ? nil : parts[parts.count - 1])
    }

    /// `attr[:dn][:rule]:=value` or `[:dn]:rule:=value`.
    mutating func parseExtensible(attribute: String) throws -> LDAPFilter {
        var dnAttributes = false
        var rule: String?
        while position < bytes.count, bytes[position] == UInt8(ascii: ":") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "=") {
                position += 1
                let value = try parseValue(allowStar: false)
                guard !attribute.isEmpty || rule != nil else {
                    throw error("an extensible match needs an attribute or a matching rule")
                }
                if !attribute.isEmpty, !isAttributeDescription(attribute) {
                    throw error("'\(attribute)' is not an attribute name")
                }
                return .extensible(
                    matchingRule: rule, attribute: attribute.isEmpty ? nil : attribute, value: value,
                    dnAttributes: dnAttributes)
            }
            let start = position
            while position < bytes.count, !":=()".utf8.contains(bytes[position]) { position += 1 }
            let word = String(decoding: bytes[start..<position], as: UTF8.self)
            if word.lowercased() == "dn" && rule == nil && !dnAttributes {
                dnAttributes = true
            } else if rule == nil, !word.isEmpty, isAttributeDescription(word) || isOID(word) {
                rule = word
            } else {
                throw error("'\(word)' is not a matching rule")
            }
        }
        throw error("an extensible match ends with ':='")
    }

    /// A value up to the next `)` (or `*` when that is syntax), with `\XX` escapes decoded.
    mutating func parseValue(allowStar: Bool) throws -> [UInt8] {
        var value: [UInt8] = []
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: ")") || (!allowStar && byte == UInt8(ascii: "*")) { break }
            if byte == UInt8(ascii: "(") { throw error("'(' in a value must be written \\28") }
            if byte == UInt8(ascii: "\\") {
                guard position + 2 < bytes.count, let high = Hex.digitValue(bytes[position + 1]),
                    let low = Hex.digitValue(bytes[position + 2])
                else { throw error("'\\' must be followed by two hexadecimal digits") }
                value.append(high << 4 | low)
                position += 3
            } else {
                value.append(byte)
                position += 1
            }
        }
        return value
    }

    /// A descriptor (`memberOf`), an OID (`2.5.4.3`), either with options (`cn;lang-en`).
    func isAttributeDescription(_ text: String) -> Bool {
        let parts = text.split(separator: ";", omittingEmptySubsequences: false)
        guard let base = parts.first, !base.isEmpty else { return false }
        let isDescriptor =
            base.first!.isLetter && base.first!.isASCII
            && base.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        guard isDescriptor || isOID(String(base)) else { return false }
        return parts.dropFirst().allSatisfy {
            !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    func isOID(_ text: String) -> Bool {
        let arcs = text.split(separator: ".", omittingEmptySubsequences: false)
        return arcs.count > 1
            && arcs.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isNumber) && ($0 == "0" || $0.first != "0") }
    }
}
