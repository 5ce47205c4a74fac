import KeylessCBOR
import Testing

/// Bytes from hex, spaces ignored.
func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8.filter { $0 != UInt8(ascii: " ") })
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}

/// RFC 8949 Appendix A ("Examples of Encoded CBOR Data Items"): each encoding beside the value it denotes.
let rfc8949Examples: [(String, CBORValue)] = [
    ("00", .unsigned(0)), ("01", .unsigned(1)), ("0a", .unsigned(10)), ("17", .unsigned(23)), ("1818", .unsigned(24)),
    ("1819", .unsigned(25)), ("1864", .unsigned(100)), ("1903e8", .unsigned(1000)),
    ("1a000f4240", .unsigned(1_000_000)),
    ("1b000000e8d4a51000", .unsigned(1_000_000_000_000)), ("1bffffffffffffffff", .unsigned(UInt64.max)),
    ("c249010000000000000000", .tagged(2, .bytes(hex("010000000000000000")))),
    ("3bffffffffffffffff", .negative(UInt64.max)),
    ("c349010000000000000000", .tagged(3, .bytes(hex("010000000000000000")))),
    ("20", .negative(0)), ("29", .negative(9)), ("3863", .negative(99)), ("3903e7", .negative(999)),
    ("f90000", .float(0)), ("f98000", .float(-0.0)), ("f93c00", .float(1)), ("fb3ff199999999999a", .float(1.1)),
    ("f93e00", .float(1.5)), ("f97bff", .float(65504)), ("fa47c35000", .float(100000)),
    ("fa7f7fffff", .float(3.4028234663852886e+38)), ("fb7e37e43c8800759c", .float(1.0e+300)),
    ("f90001", .float(5.960464477539063e-8)), ("f90400", .float(0.00006103515625)), ("f9c400", .float(-4)),
    ("fbc010666666666666", .float(-4.1)), ("f97c00", .float(.infinity)), ("f97e00", .float(.nan)),
    ("f9fc00", .float(-.infinity)), ("fa7f800000", .float(.infinity)), ("fa7fc00000", .float(.nan)),
    ("faff800000", .float(-.infinity)), ("fb7ff0000000000000", .float(.infinity)),
    ("fb7ff8000000000000", .float(.nan)), ("fbfff0000000000000", .float(-.infinity)),
    ("f4", .bool(false)), ("f5", .bool(true)), ("f6", .null), ("f7", .undefined), ("f0", .simple(16)),
    ("f8ff", .simple(255)),
    ("c074323031332d30332d32315432303a30343a30305a", .tagged(0, .text("2013-03-21T20:04:00Z"))),
    ("c11a514b67b0", .tagged(1, .unsigned(1_363_896_240))), ("c1fb41d452d9ec200000", .tagged(1, .float(1363896240.5))),
    ("d74401020304", .tagged(23, .bytes([1, 2, 3, 4]))), ("d818456449455446", .tagged(24, .bytes(hex("6449455446")))),
    ("d82076687474703a2f2f7777772e6578616d706c652e636f6d", .tagged(32, .text("http://www.example.com"))),
    ("40", .bytes([])), ("4401020304", .bytes([1, 2, 3, 4])), ("60", .text("")), ("6161", .text("a")),
    ("6449455446", .text("IETF")), ("62225c", .text("\"\\")), ("62c3bc", .text("\u{00fc}")),
    ("63e6b0b4", .text("\u{6c34}")), ("64f0908591", .text("\u{10151}")),
    ("80", .array([])), ("83010203", .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
    (
        "8301820203820405",
        .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])
    ),
    (
        "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        .array((1...25).map { .unsigned(UInt64($0)) })
    ),
    ("a0", .map([])), ("a201020304", .map([(.unsigned(1), .unsigned(2)), (.unsigned(3), .unsigned(4))])),
    (
        "a26161016162820203",
        .map([(.text("a"), .unsigned(1)), (.text("b"), .array([.unsigned(2), .unsigned(3)]))])
    ),
    ("826161a161626163", .array([.text("a"), .map([(.text("b"), .text("c"))])])),
    (
        "a56161614161626142616361436164614461656145",
        .map(["a", "b", "c", "d", "e"].map { (.text($0), .text($0.uppercased())) })
    ),
]

@Suite("CBOR decoding: RFC 8949's examples, and input that is not CBOR")
struct CBORDecoderTests {
    @Test("every definite-length example of RFC 8949 Appendix A decodes to the value the RFC gives")
    func appendixA() throws {
        for (encoded, expected) in rfc8949Examples {
            #expect(try CBORDecoder().decode(hex(encoded)) == expected, "\(encoded)")
        }
    }

    @Test("indefinite-length items (RFC 8949 Appendix A's last examples) are refused: CTAP2's canonical form has none")
    func indefiniteRefused() {
        for encoded in [
            "5f42010243030405ff", "7f657374726561646d696e67ff", "9fff", "9f018202039f0405ffff",
            "bf61610161629f0203ffff", "bf6346756ef563416d7421ff",
        ] {
            #expect(throws: CBORError(.unsupported, "")) { try CBORDecoder().decode(hex(encoded)) }
        }
    }

    @Test("decodePrefix says how many bytes the first item took, so what follows it can be read")
    func prefix() throws {
        let (value, used) = try CBORDecoder().decodePrefix(hex("a201020304" + "a16178f5"))
        #expect(value[int: 1] == .unsigned(2) && value[int: 3]?.int == 4)
        #expect(used == 5)
        #expect(throws: CBORError(.trailingBytes, "")) { try CBORDecoder().decode(hex("0102")) }
    }

    @Test(
        "malformed input is an error, never a crash: truncation, reserved values, a stray break, lying lengths, invalid UTF-8, repeated keys, too deep"
    )
    func malformed() {
        let cases: [(String, CBORError.Code)] = [
            ("", .truncated), ("18", .truncated), ("1a0001", .truncated), ("4401", .truncated),
            ("62c3", .truncated), ("83 01 02", .truncated), ("a1 01", .truncated),
            ("1c", .malformed), ("fc", .malformed), ("ff", .malformed), ("f81f", .malformed),
            ("62 c3 28", .malformed), ("a2 01 02 01 03", .malformed),
            ("9b ffffffffffffffff", .truncated), ("bb ffffffffffffffff", .truncated),
            ("5b ffffffffffffffff", .truncated),
            (String(repeating: "81", count: 40) + "00", .tooLarge),
        ]
        for (encoded, code) in cases {
            do {
                _ = try CBORDecoder().decode(hex(encoded))
                Issue.record("accepted \(encoded)")
            } catch let error as CBORError {
                #expect(error.code == code, "\(encoded): \(error)")
            } catch {
                Issue.record("\(encoded): \(error)")
            }
        }
        #expect(throws: CBORError(.tooLarge, "")) {
            try CBORDecoder(maxItems: 10).decode(hex("98190102030405060708090a0b0c0d0e0f101112131415161718181819"))
        }
    }

    @Test("30,000 random mutations of the examples decode or throw a CBORError; none crashes or hangs")
    func mutations() {
        var generator = SystemRandomNumberGenerator()
        var decoded = 0
        for round in 0..<30_000 {
            var bytes = hex(rfc8949Examples[round % rfc8949Examples.count].0)
            for _ in 0..<(1 + round % 3) {
                switch Int.random(in: 0..<3, using: &generator) {
                case 0 where !bytes.isEmpty:
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = .random(in: 0...255, using: &generator)
                case 1:
                    bytes.insert(
                        .random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
                default: if !bytes.isEmpty { bytes.remove(at: Int.random(in: 0..<bytes.count, using: &generator)) }
                }
            }
            do {
                _ = try CBORDecoder().decode(bytes)
                decoded += 1
            } catch is CBORError {
            } catch {
                Issue.record("not a CBORError: \(error)")
            }
        }
        #expect(decoded > 0, "some mutations are still CBOR")
    }
}
