/// A shell-style pattern for claim values: `*` is any run of characters, `?` exactly one; everything else is literal
/// and case-sensitive.
struct Glob: Sendable, Equatable {
    private enum Form: Sendable, Equatable {
        case any
        case exact(String)
        case prefix(String)
        case suffix(String)
        case general([Unicode.Scalar])
    }

    /// The pattern as written in the policy.
    let pattern: String
    private let form: Form

    init(_ pattern: String) {
        self.pattern = pattern
        let scalars = Array(pattern.unicodeScalars)
        let stars = scalars.filter { $0 == "*" }.count
        if scalars.contains("?") {
            form = .general(scalars)
        } else if stars == 0 {
            form = .exact(pattern)
        } else if scalars.allSatisfy({ $0 == "*" }) {
            form = .any
        } else if stars == 1 && scalars.last == "*" {
            form = .prefix(String(pattern.unicodeScalars.dropLast()))
        } else if stars == 1 && scalars.first == "*" {
            form = .suffix(String(pattern.unicodeScalars.dropFirst()))
        } else {
            form = .general(scalars)
        }
    }

    /// Whether `value` matches the whole pattern.
    func matches(_ value: String) -> Bool {
        switch form {
        case .any: return true
        // Compared as Unicode scalars, not Characters, so the policy means exactly what it spells.
        case .exact(let text): return value.unicodeScalars.elementsEqual(text.unicodeScalars)
        case .prefix(let text): return value.unicodeScalars.starts(with: text.unicodeScalars)
        case .suffix(let text): return value.unicodeScalars.reversed().starts(with: text.unicodeScalars.reversed())
        case .general(let pattern): return Self.match(pattern, Array(value.unicodeScalars))
        }
    }

    /// Iterative wildcard matching with one backtrack point: linear in practice, O(n·m) at worst, never exponential.
    private static func match(_ pattern: [Unicode.Scalar], _ value: [Unicode.Scalar]) -> Bool {
        var p = 0, v = 0
        var star: Int? = nil, resume = 0
        while v < value.count {
            if p < pattern.count && (pattern[p] == "?" || (pattern[p] != "*" && pattern[p] == value[v])) {
                p += 1; v += 1
            } else if p < pattern.count && pattern[p] == "*" {
                star = p; resume = v; p += 1
            } else if let s = star {
                p = s + 1; resume += 1; v = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}

/// The characters STS accepts in session tag keys and values: `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
enum STSTagText {
    static let maxKeyLength = 128
    static let maxValueLength = 256
    static let maxTags = 50

    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "_", ".", ":", "/", "=", "+", "-", "@": return true
        default: break
        }
        switch scalar.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
            .spaceSeparator, .lineSeparator, .paragraphSeparator,
            .decimalNumber, .letterNumber, .otherNumber:
            return true
        default:
            return false
        }
    }

    /// Why `key` cannot be an STS tag key, or nil when it can.
    static func problem(withKey key: String) -> String? {
        let length = key.utf16.count
        if length == 0 { return "is empty" }
        if length > maxKeyLength { return "is \(length) characters long; STS allows at most \(maxKeyLength)" }
        if let bad = key.unicodeScalars.first(where: { !isAllowed($0) }) {
            return
                "contains '\(bad.escaped(asASCII: true))', which STS does not allow (letters, digits, spaces and _ . : / = + - @ only)"
        }
        if key.lowercased().hasPrefix("aws:") { return "starts with 'aws:', a prefix AWS reserves for itself" }
        return nil
    }

    /// `value` with every character STS refuses replaced by `_`.
    static func sanitize(_ value: String) -> String {
        var result = String.UnicodeScalarView()
        for scalar in value.unicodeScalars { result.append(isAllowed(scalar) ? scalar : "_") }
        return String(result)
    }

    /// The longest prefix of `value` within `limit` UTF-16 code units (the stricter reading of STS's "characters"),
    /// never splitting a scalar.
    static func cut(_ value: String, to limit: Int = maxValueLength) -> String {
        guard value.utf16.count > limit else { return value }
        var result = String.UnicodeScalarView()
        var used = 0
        for scalar in value.unicodeScalars {
            let width = scalar.utf16.count
            if used + width > limit { break }
            result.append(scalar)
            used += width
        }
        return String(result)
    }
}
