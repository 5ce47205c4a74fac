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
        let vectors = ["": "", "f": "Zg", "fo": "Zm8", "foo": "Zm9v", "foob": "Zm9vYg", "fooba": "Zm9vYmE", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in vectors {
            #expect(Base64URL.encode(Array(plain.utf8)) == encoded)
        }
        #expect(Base64URL.encode([0xfb, 0xff]) == "-_8")
        #expect(Base64URL.decode("ab$c") == nil)
        #expect(Base64URL.decode("a=bc") == nil)
    }
}
