import Foundation
import KeylessHTTPServer
import Logging
import Testing

@Suite("JSON log lines (both servers)")
struct JSONLogHandlerTests {
    @Test(
        "a log line is one JSON object that JSONSerialization reads back exactly, with quotes, control characters and nested metadata"
    )
    func roundTrip() throws {
        let message = "login \"failed\"\n\tfor ü\u{1}"
        let line = JSONLogHandler.line(
            timestamp: "2026-11-21T07:00:00.123Z", level: .notice, label: "keyless.idp", message: message,
            metadata: [
                "peer": .string("127.0.0.1"), "status": .stringConvertible(401),
                "tags": .array([.string("a"), .string("b\"")]), "nested": .dictionary(["k": .string("v\\")]),
                "msg": .string("must not replace the message"),
            ])
        #expect(line.hasSuffix("}\n"))
        #expect(line.dropLast().contains("\n") == false, "one line")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["msg"] as? String == message)
        #expect(object["ts"] as? String == "2026-11-21T07:00:00.123Z")
        #expect(object["level"] as? String == "notice")
        #expect(object["status"] as? String == "401")
        #expect(object["tags"] as? [String] == ["a", "b\""])
        #expect((object["nested"] as? [String: String])?["k"] == "v\\")
    }
}
