import KeylessCore

/// Checks a configuration file's YAML text before a YAML library composes it, so that no file can make a parse take
/// hours or exhaust the stack:
/// - aliases (`*name`) are refused: an alias of a "billion laughs" node used as a mapping key makes the duplicate-key
///   check hash an exponentially large tree (383 bytes took 3.9 s, 1.2 KB hours), and keyless's files never need one;
/// - the text is at most `maxBytes` long, holds at most `maxNodes` nodes, and nests at most `maxDepth` levels (the
///   composer recurses once per level).
///
/// A light scanner, not a YAML parser: it follows quoted scalars, comments, flow collections and block scalars well
/// enough to find where nodes start, and refuses a `*` where a node starts. It errs on the side of refusing: a plain
/// scalar continued on a line that starts with `*` is refused too (quote it).
public enum YAMLGuard {
    /// Limits for one file.
    public struct Limits: Sendable {
        /// Longest text, in bytes.
        public var maxBytes: Int
        /// Most nodes (scalars and collections).
        public var maxNodes: Int
        /// Deepest nesting (indentation columns, sequence entries on one line, and flow brackets, counted together).
        public var maxDepth: Int

        /// Limits; the defaults suit any hand-written configuration (1 MiB, 100,000 nodes, depth 200).
        public init(maxBytes: Int = 1 << 20, maxNodes: Int = 100_000, maxDepth: Int = 200) {
            self.maxBytes = maxBytes; self.maxNodes = maxNodes; self.maxDepth = maxDepth
        }
    }

    /// Throws `config_invalid` naming `file`, the line and column, when the text breaks a limit or holds an alias.
    public static func check(_ text: String, file: String, limits: Limits = Limits()) throws {
        let bytes = Array(text.utf8)
        guard bytes.count <= limits.maxBytes else {
            throw KeylessError(
                .configInvalid,
                "\(file) is \(bytes.count) bytes long; keyless reads configuration files of at most \(limits.maxBytes) bytes",
                hint: "Split or shorten the file; a configuration this large is most likely not the file you meant.")
        }
        var scanner = Scanner(bytes: bytes, limits: limits)
        if let problem = scanner.run() {
            throw KeylessError(
                .configInvalid, "\(file):\(problem.line):\(problem.column): \(problem.message)", hint: problem.hint)
        }
    }

    struct Problem {
        var line: Int, column: Int, message: String, hint: String
    }

    struct Scanner {
        let bytes: [UInt8]
        let limits: Limits
        var index = 0
        var line = 1
        var lineStart = 0
        var nodes = 0
        var flowDepth = 0

        init(bytes: [UInt8], limits: Limits) { self.bytes = bytes; self.limits = limits }

        static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), newline = UInt8(ascii: "\n"),
            cr = UInt8(ascii: "\r")

        var column: Int { index - lineStart + 1 }

        func problem(_ message: String, _ hint: String) -> Problem {
            Problem(line: line, column: column, message: message, hint: hint)
        }

        func byte(at offset: Int) -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

        func isBlank(_ b: UInt8?) -> Bool {
            b == nil || b == Self.space || b == Self.tab || b == Self.newline || b == Self.cr
        }

        mutating func run() -> Problem? {
            while index < bytes.count {
                if let problem = scanLine() { return problem }
            }
            return nil
        }

        /// Scans one line from its first byte (or the rest of a line, after a multi-line quoted scalar ended on it).
        mutating func scanLine() -> Problem? {
            var indent = 0
            while byte(at: index) == Self.space { index += 1; indent += 1 }
            var atNodeStart = true
            var entries = 0
            while index < bytes.count {
                let b = bytes[index]
                if b == Self.newline { index += 1; line += 1; lineStart = index; return nil }
                if b == Self.space || b == Self.tab || b == Self.cr { index += 1; continue }
                if b == UInt8(ascii: "#") && (index == lineStart || isBlank(byte(at: index - 1))) {
                    skipToEndOfLine(); continue
                }
                if atNodeStart {
                    atNodeStart = false
                    switch b {
                    case UInt8(ascii: "*"):
                        return problem(
                            "a YAML alias (*name) is not accepted in keyless configuration files",
                            "Write the value out where it is used (aliases can make a small file expand beyond any limit); quote text that starts with *."
                        )
                    case UInt8(ascii: "&"), UInt8(ascii: "!"):
                        skipToken(); atNodeStart = true; continue
                    case UInt8(ascii: "-"), UInt8(ascii: "?"):
                        guard isBlank(byte(at: index + 1)) else { fallthrough }
                        entries += 1; index += 1; atNodeStart = true
                        if let problem = countNode(depth: indent + entries) { return problem }
                        continue
                    case UInt8(ascii: "\""), UInt8(ascii: "'"):
                        if let problem = countNode(depth: indent + entries) { return problem }
                        skipQuoted(b)
                        continue
                    case UInt8(ascii: "["), UInt8(ascii: "{"):
                        flowDepth += 1; index += 1; atNodeStart = true
                        if let problem = countNode(depth: indent + entries) { return problem }
                        continue
                    case UInt8(ascii: "|"), UInt8(ascii: ">"):
                        guard flowDepth == 0 else { fallthrough }
                        if let problem = countNode(depth: indent + entries) { return problem }
                        skipBlockScalar(parentIndent: indent)
                        return nil
                    default:
                        if let problem = countNode(depth: indent + entries) { return problem }
                    }
                }
                let inFlow = flowDepth > 0
                if b == UInt8(ascii: ":") {
                    let after = byte(at: index + 1)
                    if isBlank(after)
                        || (inFlow
                            && (after == UInt8(ascii: ",") || after == UInt8(ascii: "]") || after == UInt8(ascii: "}")))
                    {
                        atNodeStart = true
                    }
                } else if inFlow && b == UInt8(ascii: ",") {
                    atNodeStart = true
                } else if inFlow && (b == UInt8(ascii: "[") || b == UInt8(ascii: "{")) {
                    flowDepth += 1
                    atNodeStart = true
                } else if inFlow && (b == UInt8(ascii: "]") || b == UInt8(ascii: "}")) {
                    flowDepth -= 1
                }
                index += 1
            }
            return nil
        }

        mutating func countNode(depth: Int) -> Problem? {
            nodes += 1
            if nodes > limits.maxNodes {
                return problem(
                    "the file holds more than \(limits.maxNodes) YAML nodes",
                    "Shorten the file; keyless's configuration files are far smaller.")
            }
            if depth + flowDepth > limits.maxDepth {
                return problem(
                    "the YAML nests deeper than \(limits.maxDepth) levels",
                    "Flatten the structure; keyless's configuration files nest a few levels.")
            }
            return nil
        }

        mutating func skipToEndOfLine() {
            while index < bytes.count, bytes[index] != Self.newline { index += 1 }
        }

        /// Skips an anchor or tag token.
        mutating func skipToken() {
            while index < bytes.count, !isBlank(bytes[index]),
                ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(bytes[index])
            { index += 1 }
        }

        /// Skips a quoted scalar, across lines; `'` escapes itself by doubling, `"` with a backslash.
        /// A quote never closed is left to the YAML parser, which reports it with its own position.
        mutating func skipQuoted(_ quote: UInt8) {
            index += 1
            while index < bytes.count {
                let b = bytes[index]
                if b == Self.newline { index += 1; line += 1; lineStart = index; continue }
                if quote == UInt8(ascii: "\"") && b == UInt8(ascii: "\\") { index += 2; continue }
                if b == quote {
                    if quote == UInt8(ascii: "'") && byte(at: index + 1) == quote { index += 2; continue }
                    index += 1
                    return
                }
                index += 1
            }
        }

        /// Skips a block scalar's header line and every following line that is blank or indented more than the line
        /// that started it.
        mutating func skipBlockScalar(parentIndent: Int) {
            skipToEndOfLine()
            while index < bytes.count {
                // At a newline: look at the next line.
                let next = index + 1
                var probe = next, spaces = 0
                while probe < bytes.count, bytes[probe] == Self.space { probe += 1; spaces += 1 }
                let blank = probe >= bytes.count || bytes[probe] == Self.newline || bytes[probe] == Self.cr
                guard blank || spaces > parentIndent else {
                    index = next; line += 1; lineStart = index
                    return
                }
                index = next; line += 1; lineStart = index
                skipToEndOfLine()
            }
        }
    }
}
