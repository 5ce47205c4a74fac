import Foundation
import KeylessCore
import Testing

@Suite("Base64URL")
struct Base64URLTests {
    @Test("encoding matches Foundation's base64 with the url-safe alphabet and no padding, for every length 0...67")
    func matchesFoundation() {
        var rng = SystemRandomNumberGenerator()
        for length in 0...67 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let reference = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(Base64URL.encode(bytes) == reference)
            #expect(Base64URL.decode(reference) == Data(bytes))
        }
    }

    @Test("RFC 4648 test vectors, and text outside the alphabet is refused")
    func vectorsAndRejects() {
        let vectors = [
            "": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy",
        ]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("ab$c") == nil)
        #expect(Base64URL.decode("a=bc") == nil)
    }
}

@Suite("Hex")
struct HexTests {
    @Test("Hex.encode writes two lower-case digits per byte, as String(format: \"%02x\") does")
    func encode() {
        let bytes: [UInt8] = [0x00, 0x01, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xff]
        #expect(Hex.encode(bytes) == "00010f107f80abff")
        #expect(Hex.encode(bytes) == bytes.map { String(format: "%02x", $0) }.joined())
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test("randomToken: the asked number of random bytes, base64url without padding, never the same twice")
    func randomTokens() {
        for count in [0, 1, 7, 8, 9, 16, 32, 33] {
            #expect(secureRandomBytes(count).count == count)
            #expect(Base64URL.decode(randomToken(bytes: count))?.count == count)
        }
        let tokens = (0..<200).map { _ in randomToken() }
        #expect(Set(tokens).count == 200)
        #expect(
            tokens.allSatisfy { $0.count == 43 && $0.allSatisfy { $0.isLetter || $0.isNumber || "-_".contains($0) } })
        // Every byte value turns up across 64 KiB (a generator stuck on a value, or on a few, would not).
        #expect(Set(secureRandomBytes(65536)).count == 256)
    }
}
