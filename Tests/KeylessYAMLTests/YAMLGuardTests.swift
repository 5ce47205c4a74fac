import Foundation
import KeylessCore
import KeylessYAML
import Testing

@Suite("YAMLGuard: configuration text is checked before a YAML library composes it")
struct YAMLGuardTests {
    /// The "billion laughs" shape of finding 13: nine levels of ten aliases each, the last used as a mapping key.
    static let laughsAsKey: String = {
        var lines = ["a0: &a0 [lol]"]
        for level in 1...9 {
            let previous = "*a\(level - 1)"
            lines.append(
                "a\(level): &a\(level) [" + Array(repeating: previous, count: 10).joined(separator: ", ") + "]")
        }
        lines.append("? *a9")
        lines.append(": boom")
        return lines.joined(separator: "\n") + "\n"
    }()

    func refusal(_ text: String, limits: YAMLGuard.Limits = YAMLGuard.Limits()) -> KeylessError? {
        do {
            try YAMLGuard.check(text, file: "policy.yaml", limits: limits)
            return nil
        } catch let error as KeylessError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test(
        "an alias used as a mapping key (the billion-laughs key) is refused at once, naming the file, line and column")
    func aliasAsKeyRefused() throws {
        let error = try #require(refusal(Self.laughsAsKey))
        #expect(error.code == .configInvalid)
        #expect(error.reason.hasPrefix("policy.yaml:2:"), "\(error.reason)")
        #expect(error.reason.contains("YAML alias (*name) is not accepted"))
        #expect(error.hint?.contains("Write the value out") == true)
    }

    @Test(
        "aliases anywhere a node starts are refused: values, sequence entries, flow entries, explicit keys, after tags and anchors",
        arguments: [
            "groups: *admins\n", "roles:\n  - *dev\n", "roles: [a, *b]\n", "x: {k: *v}\n", "? *k\n: v\n", "*k : v\n",
            "x: !!str *v\n", "list:\n- - *deep\n",
        ])
    func aliasesRefused(_ text: String) {
        #expect(refusal(text) != nil, "accepted: \(text)")
    }

    @Test(
        "a * that is not an alias is accepted: inside quotes, inside plain scalars, in comments, in block scalars, anchors alone",
        arguments: [
            "email: \"*@corp.example\"\n", "email: '*@corp.example'\n", "role: arn:aws:iam::*:role/dev\n",
            "# *not an alias\nx: 1\n",
            "x: 1 # *comment\n", "description: |\n  *emphasis* in a block\n  - *still text\nnext: 2\n",
            "description: >-\n    *folded*\n\n    more\nnext: 2\n", "base: &base [a, b]\nother: [c]\n",
            "text: \"line one\n  *line two\"\n",
            "it: don't *panic\n", "groups: a, *b\n", "url: http://x/*\n",
        ])
    func notAliasesAccepted(_ text: String) {
        #expect(refusal(text) == nil, "refused: \(text)")
    }

    @Test("text beyond the byte limit is refused before it is scanned")
    func sizeLimit() throws {
        let error = try #require(
            refusal(String(repeating: "a: b\n", count: 300), limits: YAMLGuard.Limits(maxBytes: 1000)))
        #expect(
            error.reason.contains("1500 bytes long") && error.reason.contains("at most 1000 bytes"), "\(error.reason)")
    }

    @Test("more nodes than the limit are refused")
    func nodeLimit() throws {
        let text = "list: [" + Array(repeating: "x", count: 200).joined(separator: ", ") + "]\n"
        let error = try #require(refusal(text, limits: YAMLGuard.Limits(maxNodes: 100)))
        #expect(error.reason.contains("more than 100 YAML nodes"), "\(error.reason)")
        #expect(refusal(text, limits: YAMLGuard.Limits(maxNodes: 300)) == nil)
    }

    @Test(
        "nesting deeper than the limit is refused: flow brackets, sequence entries on one line, indentation",
        arguments: [
            String(repeating: "[", count: 300) + String(repeating: "]", count: 300) + "\n",
            String(repeating: "- ", count: 300) + "x\n",
            (0..<300).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " v\n",
        ])
    func depthLimit(_ text: String) throws {
        let error = try #require(refusal(text))
        #expect(error.reason.contains("nests deeper than 200 levels"), "\(error.reason)")
    }

    @Test(
        "an unclosed quote is left to the YAML parser, which reports it; an alias after it is not looked for inside it")
    func unclosedQuote() {
        #expect(refusal("a: 1\nb: \"open *x\n") == nil)
    }

    @Test("every YAML file the repository ships (examples, fixtures) passes the guard")
    func repositoryFilesPass() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var checked = 0
        for directory in ["docs", "Tests", "scripts", "bench", "examples"] {
            let url = root.appendingPathComponent(directory)
            guard let walker = FileManager.default.enumerator(atPath: url.path) else { continue }
            for case let path as String in walker where path.hasSuffix(".yaml") || path.hasSuffix(".yml") {
                let text = try String(contentsOf: url.appendingPathComponent(path), encoding: .utf8)
                #expect(refusal(text) == nil, "\(directory)/\(path)")
                checked += 1
            }
        }
        #expect(checked > 0, "no YAML files found under \(root.path)")
    }
}
