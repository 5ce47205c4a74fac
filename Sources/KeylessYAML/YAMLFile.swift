import KeylessCore
import Yams

/// The one way keyless reads a YAML configuration file (idp.yaml, server.yaml, the access policy): the text is checked
/// by `YAMLGuard`, composed by Yams, and every mistake, syntax or meaning, is reported as "file:line:column: reason"
/// with the file's own hint.
public enum YAMLFile {
    /// The composed document, or nil when the text holds none. `limits` bound the text (see `YAMLGuard`); the basic
    /// resolver leaves every scalar untyped, for files that read values from their text themselves.
    public static func compose(
        _ text: String, file: String, hint: String, limits: YAMLGuard.Limits = YAMLGuard.Limits(),
        basicResolver: Bool = false
    ) throws -> Node? {
        try YAMLGuard.check(text, file: file, limits: limits)
        do {
            return try Yams.compose(yaml: text, basicResolver ? .basic : .default, .default, .utf8)
        } catch let error as YamlError {
            throw syntaxError(error, file: file, hint: hint)
        }
    }

    /// The text of the file at `path`, to pass to `compose`; `missing` is thrown when there is no such file.
    public static func text(atPath path: String, missing: @autoclosure () -> KeylessError) throws -> String {
        guard let bytes = try Files.read(path) else { throw missing() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// "line:column" of `node`, 1:1 when it has no mark.
    public static func position(_ node: Node?) -> String {
        let mark = node?.mark
        return "\(mark?.line ?? 1):\(mark?.column ?? 1)"
    }

    /// `config_invalid`: "file:line:column: reason", or "file: reason" when there is no node to point at.
    public static func error(_ node: Node?, in file: String, _ reason: String, hint: String) -> KeylessError {
        let place = node?.mark == nil ? file : "\(file):\(position(node))"
        return KeylessError(.configInvalid, "\(place): \(reason)", hint: hint)
    }

    /// A YAML syntax error as "file:line:column: problem".
    static func syntaxError(_ error: YamlError, file: String, hint: String) -> KeylessError {
        let (mark, problem): ((line: Int, column: Int), String)
        switch error {
        case .scanner(let context, let text, let at, _), .parser(let context, let text, let at, _),
            .composer(let context, let text, let at, _):
            mark = (at.line, at.column)
            problem =
                "not valid YAML: \(text)"
                + (context.map { " (\($0.text) at \($0.mark.line):\($0.mark.column))" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, let context):
            mark = (context.mark.line, context.mark.column)
            problem =
                "the key \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) appears more than once in the same mapping; keep one"
        case .reader(let text, let offset, _, _):
            mark = (1, 1)
            problem = "not readable as UTF-8 text: \(text)" + (offset.map { " at byte \($0)" } ?? "")
        default:
            mark = (1, 1)
            problem = "not valid YAML: \(error)"
        }
        return KeylessError(.configInvalid, "\(file):\(mark.line):\(mark.column): \(problem)", hint: hint)
    }
}
