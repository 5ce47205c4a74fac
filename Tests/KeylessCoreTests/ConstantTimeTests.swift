import KeylessCore
import Testing

@Suite("constantTimeEqual")
struct ConstantTimeTests {
    @Test("equal byte strings compare equal; a difference anywhere, a different length or one empty side does not")
    func equality() {
        let token = Array("c2VjcmV0LXRva2VuLXZhbHVl".utf8)
        #expect(constantTimeEqual(token, token))
        #expect(constantTimeEqual([UInt8](), [UInt8]()))
        for index in token.indices {
            var changed = token
            changed[index] ^= 0x01
            #expect(!constantTimeEqual(token, changed), "a difference at byte \(index)")
        }
        #expect(!constantTimeEqual(token, token.dropLast()))
        #expect(!constantTimeEqual(token, token + [0]))
        #expect(!constantTimeEqual(token, [UInt8]()))
    }

    @Test("strings compare by their UTF-8 bytes: canonically equivalent but different scalars are different")
    func utf8() {
        #expect(constantTimeEqual("zoë".utf8, "zoë".utf8))
        #expect(!constantTimeEqual("zo\u{EB}".utf8, "zoe\u{308}".utf8))
        #expect(constantTimeEqual("abc".utf8, Substring("xabc").dropFirst().utf8))
    }
}
