#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A reader for the small, flat JSON objects keyless writes itself (entry headers, cached credentials).
/// The cached `credential_process` path reads two of them per call; JSONDecoder's generic machinery
/// costs more start-up time than the rest of that path together.
public enum FlatJSON {
    /// A value: a string, a number, a boolean, null, or an object of strings (one level, for labels).
    public enum Value: Equatable, Sendable {
        case string(String)
        case number(Double)
        case bool(Bool)
        case null
        case object([String: String])

        /// The string, if this is one.
        public var string: String? { if case .string(let value) = self { return value }; return nil }
        /// The number, if this is one.
        public var number: Double? { if case .number(let value) = self { return value }; return nil }
        /// The object, if this is one.
        public var object: [String: String]? { if case .object(let value) = self { return value }; return nil }
    }

    /// Parses one JSON object; `nil` for anything else (arrays, deeper nesting, trailing garbage).
    public static func parse(_ bytes: some Collection<UInt8>) -> [String: Value]? {
        var parser = Parser(bytes: Array(bytes))
        guard let object = parser.object(depth: 0), parser.atEnd() else { return nil }
        var result: [String: Value] = [:]
        for (key, value) in object { result[key] = value }
        return result
    }

    /// Seconds since 1970 for an RFC 3339 time such as `2026-11-21T06:00:00Z` or `2026-11-21T07:00:00.25+01:00`: at most
    /// nine fractional digits and every field in range, so what a peer sends (STS, IMDS, a container endpoint, a file)
    /// can neither trap nor stand for another date. The one date parser for AWS answers and store headers.
    public static func parseRFC3339(_ text: String) -> Double? {
        let utf8 = Array(text.utf8)
        guard (20...35).contains(utf8.count) else { return nil }
        func number(_ range: Range<Int>) -> Int32? {
            var value: Int32 = 0
            for index in range {
                let digit = utf8[index]
                guard digit >= 48 && digit <= 57 else { return nil }
                value = value * 10 + Int32(digit - 48)
            }
            return value
        }
        guard utf8[4] == UInt8(ascii: "-"), utf8[7] == UInt8(ascii: "-"),
            utf8[10] == UInt8(ascii: "T") || utf8[10] == UInt8(ascii: "t"),
            utf8[13] == UInt8(ascii: ":"), utf8[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour <= 23, minute <= 59, second <= 60
        else { return nil }
        // The zone: "Z", or "+HH:MM" / "-HH:MM" at the end.
        var end = utf8.count
        var offset: Int32 = 0
        if utf8[end - 1] == UInt8(ascii: "Z") || utf8[end - 1] == UInt8(ascii: "z") {
            end -= 1
        } else {
            guard end >= 25, utf8[end - 3] == UInt8(ascii: ":"),
                utf8[end - 6] == UInt8(ascii: "+") || utf8[end - 6] == UInt8(ascii: "-"),
                let hours = number((end - 5)..<(end - 3)), let minutes = number((end - 2)..<end), hours <= 23,
                minutes <= 59
            else { return nil }
            offset = (hours * 60 + minutes) * 60 * (utf8[end - 6] == UInt8(ascii: "-") ? -1 : 1)
            end -= 6
        }
        var fraction = 0.0
        if end > 19 {
            guard utf8[19] == UInt8(ascii: "."), (21...29).contains(end) else { return nil }
            var scale = 0.1
            for index in 20..<end {
                let digit = utf8[index]
                guard digit >= 48 && digit <= 57 else { return nil }
                fraction += Double(digit - 48) * scale
                scale /= 10
            }
        } else if end != 19 {
            return nil
        }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = month - 1
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        let seconds = timegm(&parts)
        guard seconds != -1 else { return nil }
        return Double(seconds) - Double(offset) + fraction
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [32, 9, 10, 13].contains(bytes[index]) { index += 1 }
        }

        mutating func atEnd() -> Bool {
            skipSpace()
            return index == bytes.count
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        mutating func object(depth: Int) -> [(String, Value)]? {
            guard expect(UInt8(ascii: "{")) else { return nil }
            var members: [(String, Value)] = []
            if expect(UInt8(ascii: "}")) { return members }
            repeat {
                skipSpace()
                guard let key = string(), expect(UInt8(ascii: ":")), let value = value(depth: depth) else { return nil }
                members.append((key, value))
            } while expect(UInt8(ascii: ","))
            return expect(UInt8(ascii: "}")) ? members : nil
        }

        mutating func value(depth: Int) -> Value? {
            skipSpace()
            guard index < bytes.count else { return nil }
            switch bytes[index] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "{"):
                guard depth == 0, let members = object(depth: 1) else { return nil }
                var strings: [String: String] = [:]
                for (key, value) in members {
                    guard case .string(let text) = value else { return nil }
                    strings[key] = text
                }
                return .object(strings)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            default: return number()
            }
        }

        mutating func literal(_ word: String) -> Bool {
            let utf8 = Array(word.utf8)
            guard index + utf8.count <= bytes.count, Array(bytes[index..<(index + utf8.count)]) == utf8 else {
                return false
            }
            index += utf8.count
            return true
        }

        mutating func number() -> Value? {
            let start = index
            while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
            guard index > start, let value = Double(String(decoding: bytes[start..<index], as: UTF8.self)) else {
                return nil
            }
            return .number(value)
        }

        mutating func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var out: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                    case UInt8(ascii: "b"): out.append(8)
                    case UInt8(ascii: "f"): out.append(12)
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "r"): out.append(13)
                    case UInt8(ascii: "t"): out.append(9)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800..<0xDC00).contains(scalar) {
                            guard literal("\\u"), let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: Array(String(Character(unicode)).utf8))
                    default: return nil
                    }
                default:
                    guard byte >= 0x20 else { return nil }
                    out.append(byte)
                }
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count,
                let value = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16)
            else { return nil }
            index += 4
            return value
        }
    }
}
