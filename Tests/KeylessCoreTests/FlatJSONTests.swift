import Foundation
import KeylessCore
import Testing

@Suite("FlatJSON, the reader on the cached credential_process path")
struct FlatJSONTests {
    @Test("what JSONEncoder writes for headers and credentials reads back field for field")
    func roundTripsEncoderOutput() throws {
        struct Sample: Encodable {
            var name = "sts/ab\"c\\d\u{1}é😀"
            var expiresAt = Date(timeIntervalSince1970: 1_795_000_000)
            var labels = ["issuer": "https://idp.example.com/", "subject": "alice@example.com"]
            var v = 1
            var expiration = 1_795_000_000.5
            var empty: String? = nil
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        let bytes = Array(try encoder.encode(Sample()))
        let fields = try #require(FlatJSON.parse(bytes))
        #expect(fields["name"]?.string == "sts/ab\"c\\d\u{1}é😀")
        #expect(fields["expiresAt"]?.string.flatMap(FlatJSON.parseRFC3339) == 1_795_000_000)
        #expect(fields["labels"]?.object == ["issuer": "https://idp.example.com/", "subject": "alice@example.com"])
        #expect(fields["v"]?.number == 1)
        #expect(fields["expiration"]?.number == 1_795_000_000.5)
        #expect(fields["empty"] == nil)
    }

    @Test("escapes, surrogate pairs and literals decode as JSONSerialization decodes them")
    func matchesJSONSerialization() throws {
        let text = #"{"a":"\u00e9\ud83d\ude00\n\t\/","b":true,"c":false,"d":null,"e":-1.5e3}"#
        let fields = try #require(FlatJSON.parse(Array(text.utf8)))
        let reference = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(fields["a"]?.string == reference["a"] as? String)
        #expect(fields["b"] == .bool(true) && fields["c"] == .bool(false) && fields["d"] == .null)
        #expect(fields["e"]?.number == -1500)
    }

    @Test(
        "anything but one flat object is refused",
        arguments: [
            "", "[]", "{", "{\"a\":1", "{\"a\":1}x", "{\"a\":{\"b\":{\"c\":\"d\"}}}", "{\"a\":{\"b\":1}}",
            "{\"a\":\"\u{1}\"}", "{\"a\":\"\\q\"}", "{\"a\":\"\\ud800\"}", "{a:1}", "{\"a\":tru}",
        ])
    func refusesMalformed(_ text: String) {
        #expect(FlatJSON.parse(Array(text.utf8)) == nil)
    }

    @Test(
        "RFC 3339 times (Z or a numeric offset, at most 9 fractional digits, fields in range) parse to the seconds Foundation computes; other shapes are refused"
    )
    func rfc3339() throws {
        let formatter = ISO8601DateFormatter()
        for text in ["2026-11-21T06:11:24Z", "1970-01-01T00:00:00Z", "2038-01-19T03:14:08Z", "2024-02-29T23:59:59Z"] {
            #expect(FlatJSON.parseRFC3339(text) == formatter.date(from: text)?.timeIntervalSince1970, "\(text)")
        }
        #expect(FlatJSON.parseRFC3339("2026-11-21T06:11:24.250Z") == 1_795_241_484.25)
        #expect(FlatJSON.parseRFC3339("2026-11-21T07:11:24+01:00") == FlatJSON.parseRFC3339("2026-11-21T06:11:24Z"))
        #expect(FlatJSON.parseRFC3339("2026-11-21T05:41:24.5-00:30") == 1_795_241_484.5)
        for bad in [
            "2026-11-21 06:11:24Z", "2026-11-21T06:11:24", "2026-1x-21T06:11:24Z", "2026-11-21T06:11:24.Z",
            "2026-13-21T06:11:24Z", "2026-11-32T06:11:24Z", "2026-11-21T24:00:00Z", "2026-11-21T06:60:00Z",
            "2026-11-21T06:11:24.1234567890Z", "2026-11-21T06:11:24+24:00", "2026-11-21T06:11:24+0100",
        ] {
            #expect(FlatJSON.parseRFC3339(bad) == nil, "\(bad)")
        }
    }
}

@Suite("JSONWriter: the one encoder for JSON keyless does not write by hand")
struct JSONWriterTests {
    struct Sample: Encodable {
        let zeta = "z/1"
        let alpha = 2
        let middle: String? = nil
        let list = ["b", "a"]
    }

    @Test("keys sorted, slashes and non-ASCII left as they are, absent optionals left out, arrays in their order")
    func shape() throws {
        #expect(try JSONWriter.text(Sample()) == #"{"alpha":2,"list":["b","a"],"zeta":"z/1"}"#)
        #expect(try JSONWriter.text(["é": "ü", "b": "\"q\"\n"]) == #"{"b":"\"q\"\n","é":"ü"}"#)
    }

    @Test("the same dictionary is the same bytes however it was built")
    func deterministic() throws {
        var forward: [String: String] = [:]
        var backward: [String: String] = [:]
        let keys = (0..<50).map { "key\($0)" }
        for key in keys { forward[key] = key }
        for key in keys.reversed() { backward[key] = key }
        #expect(try JSONWriter.bytes(forward) == JSONWriter.bytes(backward))
    }
}
