import KeylessCore
import KeylessYAML
import Testing
import Yams

@Suite("YAMLFile: every configuration file's mistakes read as file:line:column")
struct YAMLFileTests {
    static let hint = "Fix the file at the position shown."

    static func failure(_ text: String, basic: Bool = false) -> KeylessError? {
        #expect(throws: KeylessError.self) {
            _ = try YAMLFile.compose(text, file: "conf.yaml", hint: hint, basicResolver: basic)
        }
    }

    @Test("a syntax error names the file, line and column of the problem, with the file's hint")
    func syntax() throws {
        let error = try #require(Self.failure("a: 1\nb: [2, 3\nc: 4\n"))
        #expect(error.code == .configInvalid)
        #expect(error.reason.hasPrefix("conf.yaml:3:"), "\(error.reason)")
        #expect(error.reason.contains("not valid YAML"))
        #expect(error.hint == Self.hint)
    }

    @Test("a key twice in one mapping is refused at the mapping, naming the key")
    func duplicateKey() throws {
        let error = try #require(Self.failure("top:\n  a: 1\n  a: 2\n"))
        #expect(error.reason.hasPrefix("conf.yaml:2:"), "\(error.reason)")
        #expect(error.reason.contains("the key 'a' appears more than once"))
    }

    @Test("YAMLGuard's refusals come through with their own position: an alias is never composed")
    func guarded() throws {
        let error = try #require(Self.failure("a: &x 1\nb: *x\n"))
        #expect(error.reason.hasPrefix("conf.yaml:2:4:"), "\(error.reason)")
    }

    @Test("an empty text composes to nothing; the basic resolver leaves scalars as text")
    func emptyAndBasic() throws {
        #expect(try YAMLFile.compose("", file: "f", hint: "") == nil)
        #expect(try YAMLFile.compose("# only a comment\n", file: "f", hint: "") == nil)
        let basic = try #require(try YAMLFile.compose("n: 12\n", file: "f", hint: "", basicResolver: true))
        let typed = try #require(try YAMLFile.compose("n: 12\n", file: "f", hint: ""))
        #expect(basic["n"]?.tag == Tag(.str))
        #expect(typed["n"]?.tag == Tag(.int))
    }

    @Test("error points at a node as file:line:column, and at the file alone when there is no node")
    func errorPlace() throws {
        let root = try #require(try YAMLFile.compose("a:\n  b: wrong\n", file: "f.yaml", hint: ""))
        let node = try #require(root["a"]?["b"])
        #expect(YAMLFile.error(node, in: "f.yaml", "b is wrong", hint: "h").reason == "f.yaml:2:6: b is wrong")
        #expect(YAMLFile.error(nil, in: "f.yaml", "empty", hint: "h").reason == "f.yaml: empty")
        #expect(YAMLFile.position(node) == "2:6")
        #expect(YAMLFile.position(nil) == "1:1")
    }
}
