/// A CBOR data item (RFC 8949), as WebAuthn authenticators send them (attestation objects, COSE keys).
public indirect enum CBORValue: Sendable, Equatable {
    /// Major type 0: 0 … 2^64−1.
    case unsigned(UInt64)
    /// Major type 1: the value −1 − n.
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBORValue])
    /// Major type 5, pairs in the order sent (keys are compared by value when looked up).
    case map([(CBORValue, CBORValue)])
    case tagged(UInt64, CBORValue)
    case bool(Bool)
    case null
    case undefined
    /// Other simple values (major type 7, 0…19 and 32…255).
    case simple(UInt8)
    /// Half, single and double precision, as a Double.
    case float(Double)

    public static func == (a: CBORValue, b: CBORValue) -> Bool {
        switch (a, b) {
        case (.unsigned(let x), .unsigned(let y)), (.negative(let x), .negative(let y)): x == y
        case (.bytes(let x), .bytes(let y)): x == y
        case (.text(let x), .text(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.map(let x), .map(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.tagged(let t, let x), .tagged(let u, let y)): t == u && x == y
        case (.bool(let x), .bool(let y)): x == y
        case (.null, .null), (.undefined, .undefined): true
        case (.simple(let x), .simple(let y)): x == y
        // Bit for bit (so -0.0 is not 0.0), every NaN equal to every NaN.
        case (.float(let x), .float(let y)): x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)
        default: false
        }
    }

    /// The value for `key` in a map (nil for other items or a missing key).
    public subscript(key: CBORValue) -> CBORValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    /// The value for an integer key (COSE labels are small integers, positive or negative).
    public subscript(int key: Int) -> CBORValue? {
        self[key >= 0 ? .unsigned(UInt64(key)) : .negative(UInt64(-1 - key))]
    }

    /// The value for a text key.
    public subscript(text key: String) -> CBORValue? { self[.text(key)] }

    /// The integer, when it fits an Int.
    public var int: Int? {
        switch self {
        case .unsigned(let value): value <= UInt64(Int.max) ? Int(value) : nil
        case .negative(let value): value <= UInt64(Int.max) ? -1 - Int(value) : nil
        default: nil
        }
    }

    /// The byte string's bytes.
    public var bytes: [UInt8]? { if case .bytes(let value) = self { value } else { nil } }

    /// The text string.
    public var text: String? { if case .text(let value) = self { value } else { nil } }
}

/// Why bytes are not the CBOR keyless accepts.
public struct CBORError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The bytes end inside an item.
        case truncated = "cbor_truncated"
        /// Something RFC 8949 does not allow (a reserved additional-information value, invalid UTF-8, a break outside
        /// an indefinite item).
        case malformed = "cbor_malformed"
        /// Well-formed, but not what WebAuthn's CTAP2 encoding allows: indefinite lengths.
        case unsupported = "cbor_unsupported"
        /// Nested deeper, or holding more items, than the limits allow.
        case tooLarge = "cbor_too_large"
        /// Bytes left after the item, where one whole item was expected.
        case trailingBytes = "cbor_trailing_bytes"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) (\(code.rawValue))" }

    /// Errors are equal when their codes are (the message is for people).
    public static func == (a: CBORError, b: CBORError) -> Bool { a.code == b.code }
}

/// Decodes CBOR. Definite lengths only (WebAuthn requires the CTAP2 canonical form, which has no indefinite lengths);
/// limits on depth and on the number of items keep a hostile input from using much memory or stack.
public struct CBORDecoder {
    /// How deep arrays, maps and tags may nest.
    public var maxDepth = 16
    /// How many items in all (each array element, map key and value counts).
    public var maxItems = 10_000

    public init(maxDepth: Int = 16, maxItems: Int = 10_000) {
        self.maxDepth = maxDepth
        self.maxItems = maxItems
    }

    /// The one item `bytes` hold; throws when bytes remain after it.
    public func decode(_ bytes: [UInt8]) throws -> CBORValue {
        let (value, used) = try decodePrefix(bytes)
        guard used == bytes.count else {
            throw CBORError(.trailingBytes, "\(bytes.count - used) bytes follow the CBOR item")
        }
        return value
    }

    /// The first item of `bytes` and how many bytes it took (WebAuthn's authenticator data holds a COSE key followed by
    /// extensions, with no length before it).
    public func decodePrefix(_ bytes: [UInt8]) throws -> (CBORValue, Int) {
        var reader = Reader(bytes: bytes, items: 0, limits: self)
        let value = try reader.item(depth: 0)
        return (value, reader.offset)
    }

    struct Reader {
        let bytes: [UInt8]
        var offset = 0
        var items: Int
        let limits: CBORDecoder

        init(bytes: [UInt8], items: Int, limits: CBORDecoder) {
            self.bytes = bytes
            self.items = items
            self.limits = limits
        }

        mutating func byte() throws -> UInt8 {
            guard offset < bytes.count else { throw CBORError(.truncated, "the CBOR ends inside an item") }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func take(_ count: UInt64) throws -> [UInt8] {
            guard count <= UInt64(bytes.count - offset) else {
                throw CBORError(.truncated, "a CBOR string says \(count) bytes, but \(bytes.count - offset) remain")
            }
            let end = offset + Int(count)
            defer { offset = end }
            return Array(bytes[offset..<end])
        }

        /// The argument of an item head: the additional information itself (0…23) or the 1, 2, 4 or 8 bytes after.
        mutating func argument(_ info: UInt8) throws -> UInt64 {
            switch info {
            case 0...23: return UInt64(info)
            case 24...27:
                var value: UInt64 = 0
                for _ in 0..<(1 << (info - 24)) { value = value << 8 | UInt64(try byte()) }
                return value
            case 31:
                throw CBORError(
                    .unsupported, "indefinite-length CBOR items are not allowed here (CTAP2 canonical form)")
            default:
                throw CBORError(.malformed, "reserved CBOR additional information \(info)")
            }
        }

        mutating func count() throws {
            items += 1
            guard items <= limits.maxItems else {
                throw CBORError(.tooLarge, "more than \(limits.maxItems) CBOR items")
            }
        }

        mutating func item(depth: Int) throws -> CBORValue {
            guard depth <= limits.maxDepth else {
                throw CBORError(.tooLarge, "CBOR nested deeper than \(limits.maxDepth)")
            }
            try count()
            let head = try byte()
            let major = head >> 5
            let info = head & 0x1f
            switch major {
            case 0: return .unsigned(try argument(info))
            case 1: return .negative(try argument(info))
            case 2: return .bytes(try take(try argument(info)))
            case 3:
                let raw = try take(try argument(info))
                guard let text = String(validating: raw, as: UTF8.self) else {
                    throw CBORError(.malformed, "a CBOR text string is not valid UTF-8")
                }
                return .text(text)
            case 4:
                let length = try argument(info)
                // Each element takes at least one byte: a length beyond what remains is a lie, not a reason to reserve.
                guard length <= UInt64(bytes.count - offset) else {
                    throw CBORError(
                        .truncated, "a CBOR array says \(length) items, but \(bytes.count - offset) bytes remain")
                }
                var elements: [CBORValue] = []
                elements.reserveCapacity(Int(length))
                for _ in 0..<length { elements.append(try item(depth: depth + 1)) }
                return .array(elements)
            case 5:
                let length = try argument(info)
                guard length <= UInt64(bytes.count - offset) / 2 else {
                    throw CBORError(
                        .truncated, "a CBOR map says \(length) pairs, but \(bytes.count - offset) bytes remain")
                }
                var pairs: [(CBORValue, CBORValue)] = []
                for _ in 0..<length {
                    let key = try item(depth: depth + 1)
                    let value = try item(depth: depth + 1)
                    guard !pairs.contains(where: { $0.0 == key }) else {
                        throw CBORError(.malformed, "a CBOR map repeats a key")
                    }
                    pairs.append((key, value))
                }
                return .map(pairs)
            case 6:
                let tag = try argument(info)
                return .tagged(tag, try item(depth: depth + 1))
            default:
                return try simpleOrFloat(info)
            }
        }

        mutating func simpleOrFloat(_ info: UInt8) throws -> CBORValue {
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 23: return .undefined
            case 0...19: return .simple(info)
            case 24:
                let value = try byte()
                // RFC 8949 §3.3: simple values 0…31 in the extra byte are not well-formed.
                guard value >= 32 else { throw CBORError(.malformed, "simple value \(value) in two bytes") }
                return .simple(value)
            case 25: return .float(Self.half(UInt16(try argument(info))))
            case 26: return .float(Double(Float(bitPattern: UInt32(try argument(info)))))
            case 27: return .float(Double(bitPattern: try argument(info)))
            case 31: throw CBORError(.malformed, "a CBOR break outside an indefinite-length item")
            default: throw CBORError(.malformed, "reserved CBOR additional information \(info) in major type 7")
            }
        }

        /// IEEE 754 half precision (RFC 8949 Appendix D).
        static func half(_ bits: UInt16) -> Double {
            let exponent = Int((bits >> 10) & 0x1f)
            let mantissa = Double(bits & 0x3ff)
            let magnitude: Double =
                switch exponent {
                case 0: mantissa * 0x1p-24
                case 31: mantissa == 0 ? .infinity : .nan
                default: (mantissa + 1024) * Double(sign: .plus, exponent: exponent - 25, significand: 1)
                }
            return bits & 0x8000 != 0 ? -magnitude : magnitude
        }
    }
}
