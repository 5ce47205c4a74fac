/// A form on one of keyless idp's pages that its passkey script drives (`data-passkey="get"` or `"create"`): where
/// it posts, the WebAuthn options it hands the browser, and its hidden fields without the `credential` the script
/// fills in — what a test posts with an authenticator's answer.
public struct PasskeyForm: Sendable {
    public var action: String
    public var options: String
    public var fields: [(String, String)]

    /// The first form of `kind` on `html`.
    public init(_ kind: String, in html: String) throws {
        guard let marker = html.range(of: "data-passkey=\"\(kind)\""),
            let start = html[..<marker.lowerBound].range(of: "<form", options: .backwards),
            let end = html[marker.upperBound...].range(of: "</form>")
        else { throw TestSupportError("no \(kind) passkey form on the page: \(html.prefix(300))") }
        let form = String(html[start.lowerBound..<end.upperBound])
        guard let action = form.firstMatch(of: /action="([^"]*)"/)?.1,
            let options = form.firstMatch(of: /data-options="([^"]*)"/)?.1
        else { throw TestSupportError("the \(kind) passkey form has no action or options: \(form.prefix(300))") }
        self.action = Self.unescape(String(action))
        self.options = Self.unescape(String(options))
        fields = form.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map {
            (Self.unescape(String($0.1)), Self.unescape(String($0.2)))
        }.filter { $0.0 != "credential" }
    }

    /// HTML's five character references back to text (what the pages' `htmlEscaped` writes).
    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
            .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
