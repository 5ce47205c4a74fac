import Foundation
import KeylessCore
import Testing

@Suite("FormText: form and query decoding without Foundation, held to Foundation's decoder")
struct FormTextTests {
    @Test("plus is a space, %XX a byte (either case), UTF-8 sequences join, text without escapes comes back whole")
    func vectors() {
        #expect(FormText.decode("a+b%20c") == "a b c")
        #expect(FormText.decode("%2B%2b%3D%26") == "++=&")
        #expect(FormText.decode("caf%C3%A9%20%E2%9C%93") == "café ✓")
        #expect(FormText.decode("plain-text_~.") == "plain-text_~.")
        #expect(FormText.decode("") == "")
    }

    @Test("a malformed escape or bytes that are not UTF-8 give nil")
    func refusals() {
        for bad in ["%", "%4", "%G0", "a%2", "%zz", "%C3", "%FF%FE"] {
            #expect(FormText.decode(Substring(bad)) == nil, "\(bad)")
        }
    }

    @Test(
        "on 20,000 random strings of escapes, pluses and text, the same answer as Foundation's removingPercentEncoding")
    func sameAsFoundation() {
        let pieces = [
            "%", "%2", "%20", "%41", "%e2", "%E2%9C%93", "%C3%A9", "%ff", "+", "a", "Z", "0", "é", "=", "%%", "%4g",
        ]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let text = (0..<Int.random(in: 0...8, using: &generator)).map { _ in
                pieces.randomElement(using: &generator)!
            }
            .joined()
            let reference = text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            #expect(FormText.decode(Substring(text)) == reference, "\(text)")
        }
    }
}
