import KeylessCore
import Testing

@Suite("htmlEscaped: the one HTML escape both servers' pages and the loopback page use")
struct HTMLTextTests {
    @Test("the five markup characters become references; everything else, Unicode included, stays as it is")
    func escapes() {
        #expect(
            htmlEscaped(#"<a href="x" title='y'>Tom & Jerry</a>"#)
                == "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;Tom &amp; Jerry&lt;/a&gt;")
        #expect(htmlEscaped("Zoë 🔑 ABCD-EFGH") == "Zoë 🔑 ABCD-EFGH")
        #expect(htmlEscaped("") == "")
        #expect(htmlEscaped("&amp;") == "&amp;amp;", "escaping is not undone: already-escaped text is escaped again")
    }

    @Test("no output of any input closes an attribute or opens a tag")
    func neverBreaksOut() {
        let alphabet: [Character] = ["<", ">", "\"", "'", "&", "a", "é", "/", "=", " "]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let input = String((0..<Int.random(in: 0...12, using: &generator)).map { _ in alphabet.randomElement()! })
            let output = htmlEscaped(input)
            #expect(!output.contains(where: { "<>\"'".contains($0) }), "\(input) -> \(output)")
        }
    }
}
