import KeylessAWS
import Testing

@Suite("Session names")
struct SessionNameTests {
    @Test("the session name is the email when there is one")
    func prefersEmail() {
        #expect(
            SessionName.from(email: "alice@example.com", preferredUsername: "alice", subject: "sub-1")
                == "alice@example.com")
    }

    @Test("without email the session name is the preferred username")
    func thenPreferredUsername() {
        #expect(SessionName.from(email: nil, preferredUsername: "alice.smith", subject: "sub-1") == "alice.smith")
    }

    @Test("without email or username the session name is the subject")
    func thenSubject() {
        #expect(SessionName.from(email: nil, preferredUsername: nil, subject: "248289761001") == "248289761001")
    }

    @Test("the chosen value is sanitised too")
    func fromSanitises() {
        #expect(SessionName.from(email: nil, preferredUsername: "Alice Smith", subject: "x") == "Alice-Smith")
    }

    @Test(
        "characters STS allows are kept",
        arguments: [
            "alice@example.com", "a_b+c=d,e.f@g-h", "ABCxyz0123456789", "xx",
        ])
    func keepsAllowed(name: String) {
        #expect(SessionName.sanitize(name) == name)
    }

    @Test(
        "characters STS rejects become '-'",
        arguments: [
            ("Alice Smith", "Alice-Smith"),
            ("auth0|5f7c8ec7", "auth0-5f7c8ec7"),
            ("a/b:c", "a-b-c"),
            ("josé", "jos-"),
            ("名前", "--"),
            ("tab\there", "tab-here"),
            ("a#b$c%d", "a-b-c-d"),
        ])
    func replacesDisallowed(raw: String, expected: String) {
        #expect(SessionName.sanitize(raw) == expected)
    }

    @Test("names longer than 64 characters are cut to 64")
    func cutsTo64() {
        let long = String(repeating: "a", count: 63) + "bcdef"
        let name = SessionName.sanitize(long)
        #expect(name.count == 64)
        #expect(name == String(repeating: "a", count: 63) + "b")
    }

    @Test("names shorter than 2 characters are padded with '-'", arguments: [("", "--"), ("a", "a-"), ("é", "--")])
    func padsTo2(raw: String, expected: String) {
        #expect(SessionName.sanitize(raw) == expected)
    }

    @Test("every sanitised name matches STS's pattern [\\w+=,.@-]{2,64}")
    func alwaysValid() throws {
        let pattern = try Regex("^[A-Za-z0-9_+=,.@-]{2,64}$")
        for raw in ["", "x", "a b", String(repeating: "ü", count: 100), "alice@example.com", "🙂🙂🙂", "\u{0}\u{1}"] {
            #expect(SessionName.sanitize(raw).wholeMatch(of: pattern) != nil, "\(raw.debugDescription)")
        }
    }
}
