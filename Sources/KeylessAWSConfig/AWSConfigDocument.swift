import Foundation
import KeylessCore
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `~/.aws/config` as an editable document: every byte that an edit does not touch survives it, and the settings are
/// read the way botocore reads them (Python's strict `configparser.RawConfigParser`, then `build_profile_map`).
///
/// What botocore does, and so what this type does:
/// - Keys are case-insensitive: `Region = x` is `region`. Lookups and edits match keys case-insensitively; an edit of
///   an existing key keeps its spelling.
/// - `[default]` and `[profile default]` both name the profile `default`; when a file has both, the one whose header
///   comes later in the file wins outright (its keys are not merged with the other's). Edits go to that one.
/// - A profile header's name is shell-split (`[profile "my dev"]` is `my dev`, `[profile a b]` is ignored); new
///   headers quote names that need it.
/// - A line indented deeper than the key line above it continues that key's value (`s3 =` blocks), even when it looks
///   like a key or a header. Full-line `#` and `;` comments never end a value; nothing is an inline comment.
/// - Duplicate keys in a section, duplicate sections, lines without `=` or `:` and keys before the first header make
///   botocore refuse the whole file; ``problems`` lists them and edits leave them as they are.
public struct AWSConfigDocument: Sendable, Equatable {
    /// What a section header declares, as botocore classifies it.
    public enum SectionKind: Sendable, Hashable {
        /// `[default]`.
        case `default`
        /// `[profile NAME]` (including `[profile default]`).
        case profile(String)
        /// `[sso-session NAME]`.
        case ssoSession(String)
        /// `[services NAME]`.
        case services(String)
        /// Any other section; botocore keeps it as a top-level setting block.
        case other(String)
        /// A `profile`, `sso-session` or `services` header botocore cannot name (`[profile a b]`), so it ignores it.
        case unnamed(String)
    }

    /// A line botocore would refuse, which makes it reject the whole file.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// The 1-based line number.
        public let line: Int
        /// What botocore objects to.
        public let reason: String

        /// `line N: reason`.
        public var description: String { "line \(line): \(reason)" }
    }

    /// One physical line: its text and the line break that ends it (`"\n"`, `"\r\n"`, `"\r"`, or `""` at the end).
    struct Line: Sendable {
        var content: String
        var terminator: String
    }

    private var lines: [Line]

    /// Reads the text of a config file; never fails, and keeps every byte (``text`` gives it back unchanged).
    public init(text: String) {
        var lines: [Line] = []
        let scalars = text.unicodeScalars
        var start = scalars.startIndex
        var index = start
        // Python reads the file with universal newlines: `\r\n`, `\n` and a lone `\r` each end a line.
        while index < scalars.endIndex {
            let scalar = scalars[index]
            guard scalar == "\n" || scalar == "\r" else {
                index = scalars.index(after: index)
                continue
            }
            var next = scalars.index(after: index)
            if scalar == "\r", next < scalars.endIndex, scalars[next] == "\n" { next = scalars.index(after: next) }
            lines.append(Line(content: String(scalars[start..<index]), terminator: String(scalars[index..<next])))
            start = next
            index = next
        }
        if start < scalars.endIndex { lines.append(Line(content: String(scalars[start...]), terminator: "")) }
        self.lines = lines
    }

    /// Reads a config file; a missing file is an empty document.
    public static func load(_ path: String) throws -> AWSConfigDocument {
        guard let bytes = try Files.read(path) else { return AWSConfigDocument(text: "") }
        return AWSConfigDocument(text: String(decoding: bytes, as: UTF8.self))
    }

    /// The document's text, byte for byte as read except where edited.
    public var text: String {
        var result = ""
        for line in lines {
            result += line.content
            result += line.terminator
        }
        return result
    }

    /// Byte-for-byte equality (`String`'s `==` would treat canonically equivalent text as equal).
    public static func == (lhs: AWSConfigDocument, rhs: AWSConfigDocument) -> Bool {
        lhs.lines.count == rhs.lines.count
            && zip(lhs.lines, rhs.lines).allSatisfy {
                $0.content.utf8.elementsEqual($1.content.utf8) && $0.terminator.utf8.elementsEqual($1.terminator.utf8)
            }
    }

    // MARK: - Queries

    /// The sections in the order their headers first appear (`[DEFAULT]`, configparser's defaults block, excluded).
    public var sections: [SectionKind] {
        analysis.sectionNames.filter { $0 != Analysis.defaultsName }.map(Analysis.kind(of:))
    }

    /// The profile names botocore sees, in order of first appearance.
    public var profileNames: [String] {
        var names: [String] = []
        for kind in sections {
            if let name = Self.profileName(kind), !names.contains(name) { names.append(name) }
        }
        return names
    }

    /// The value of `key` (case-insensitive) in profile `profile`, as botocore reads it: a nested block such as `s3 =`
    /// is its raw text (`"\nmax_concurrent_requests = 10"`; see ``parseNested(_:)``).
    public func value(_ key: String, profile: String) -> String? {
        values(profile: profile)?[key.lowercased()]
    }

    /// All keys of profile `profile` (lowercased) and their values; `nil` when there is no such profile.
    public func values(profile: String) -> [String: String]? {
        values(in: .profile(profile))
    }

    /// All keys of the section `kind` names, as botocore reads them (keys from `[DEFAULT]` included, as configparser
    /// does); for profiles, `.default` and `.profile("default")` are the same profile.
    public func values(in kind: SectionKind) -> [String: String]? {
        let analysis = self.analysis
        guard let name = analysis.effectiveName(for: kind) else { return nil }
        var result = analysis.ownValues[Analysis.defaultsName] ?? [:]
        result.merge(analysis.ownValues[name] ?? [:]) { $1 }
        return result
    }

    /// What in the file makes botocore refuse it (empty when botocore reads it).
    public var problems: [Problem] { analysis.problems }

    /// How botocore reads a nested block's raw value (`_parse_nested`): `nil` when a non-empty line has no `=`.
    public static func parseNested(_ raw: String) -> [String: String]? {
        var result: [String: String] = [:]
        // str.splitlines() boundaries.
        let breaks: Set<Unicode.Scalar> = [
            "\n", "\r", "\u{0B}", "\u{0C}", "\u{1C}", "\u{1D}", "\u{1E}", "\u{85}", "\u{2028}", "\u{2029}",
        ]
        for piece in raw.unicodeScalars.split(omittingEmptySubsequences: true, whereSeparator: { breaks.contains($0) })
        {
            let line = Python.strip(String(piece))
            if line.isEmpty { continue }
            guard let equals = line.unicodeScalars.firstIndex(of: "=") else { return nil }
            let key = Python.strip(String(line.unicodeScalars[..<equals]))
            result[key] = Python.strip(String(line.unicodeScalars[line.unicodeScalars.index(after: equals)...]))
        }
        return result
    }

    // MARK: - Edits

    /// Sets `key` in profile `profile` to `value`: in place when the key exists (keeping the line's indentation and the
    /// key's spelling, dropping an indented block under it), else as a new line after the section's last setting; a
    /// missing profile is appended at the end as `[profile NAME]` (or `[default]`) after one blank line.
    public mutating func setValue(_ value: String, for key: String, profile: String) throws {
        try Self.validate(profile: profile)
        try Self.validate(key: key)
        try Self.validate(value: value)
        var edited = self
        edited.apply(value, for: key, profile: profile)
        try edited.checkOnly(
            changed: self,
            intended: { view in
                view[edited.analysis.effectiveName(for: .profile(profile))!, default: [:]][key.lowercased()] = value
            })
        self = edited
    }

    /// Sets several keys of profile `name`, in order, creating the profile if missing; all or nothing.
    public mutating func upsertProfile(_ name: String, values: [(String, String)]) throws {
        try Self.validate(profile: name)
        for (key, value) in values {
            try Self.validate(key: key)
            try Self.validate(value: value)
        }
        var edited = self
        for (key, value) in values { edited.apply(value, for: key, profile: name) }
        try edited.checkOnly(
            changed: self,
            intended: { view in
                let section = edited.analysis.effectiveName(for: .profile(name))!
                view[section, default: [:]] = view[section] ?? [:]
                for (key, value) in values { view[section]![key.lowercased()] = value }
            })
        self = edited
    }

    /// Removes `key` (case-insensitive, with any indented block under it) from profile `profile`; false when absent.
    @discardableResult
    public mutating func removeValue(for key: String, profile: String) throws -> Bool {
        let analysis = self.analysis
        guard let name = analysis.effectiveName(for: .profile(profile)) else { return false }
        let lowered = key.lowercased()
        var doomed = Set<Int>()
        for block in analysis.blocks where block.name == name {
            for option in block.options where option.key == lowered {
                doomed.insert(option.line)
                doomed.formUnion(option.continuation)
            }
        }
        if doomed.isEmpty { return false }
        var edited = self
        edited.removeLines(doomed)
        try edited.checkOnly(changed: self, intended: { view in view[name]?[lowered] = nil })
        self = edited
        return true
    }

    /// Removes every section that defines profile `name` (for `default`, both `[default]` and `[profile default]`),
    /// with the blank lines that separated it; comments above a header stay. False when there is no such profile.
    @discardableResult
    public mutating func removeProfile(_ name: String) throws -> Bool {
        let analysis = self.analysis
        let names = Set(analysis.sectionNames.filter { Self.profileName(Analysis.kind(of: $0)) == name })
        if names.isEmpty { return false }
        var doomed = Set<Int>()
        for block in analysis.blocks where names.contains(block.name) {
            doomed.formUnion(block.header...block.lastContent)
            var after = block.lastContent + 1
            while after < lines.count, analysis.roles[after] == .blank { doomed.insert(after); after += 1 }
            if after == lines.count {
                // The last section: drop the blank lines before it instead, so the file does not end in them.
                var before = block.header - 1
                while before >= 0, analysis.roles[before] == .blank { doomed.insert(before); before -= 1 }
            }
        }
        var edited = self
        edited.removeLines(doomed)
        try edited.checkOnly(
            changed: self,
            intended: { view in
                for name in names { view[name] = nil }
            })
        self = edited
        return true
    }

    // MARK: - Writing

    /// Writes the document to `path` atomically (a temporary file in the same directory, then a rename), after
    /// copying the previous file, if any, to `path + backupSuffix`. Keeps the old file's permission bits (0600 for a
    /// new file), creates a missing parent directory with mode 0700, and writes through a symbolic link to its target.
    public func write(to path: String, backupSuffix: String = ".keyless-backup") throws {
        var target = path
        var info = stat()
        if lstat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFLNK, let resolved = realpath(path, nil) {
            target = String(cString: resolved)
            free(resolved)
        }
        let directory = Files.parentDirectory(target)
        if !Files.exists(directory) { try Files.ensurePrivateDirectory(directory) }
        var mode: mode_t = 0o600
        if stat(target, &info) == 0 { mode = info.st_mode & 0o777 }
        if let previous = try Files.read(target) {
            try Files.writeAtomically(previous, to: target + backupSuffix, mode: mode)
        }
        try Files.writeAtomically(Array(text.utf8), to: target, mode: mode)
    }

    // MARK: - Editing internals

    /// The line break new lines use: the file's first one, else `\n`.
    private var newline: String { lines.first(where: { !$0.terminator.isEmpty })?.terminator ?? "\n" }

    private mutating func apply(_ value: String, for key: String, profile: String) {
        let analysis = self.analysis
        let lowered = key.lowercased()
        guard let name = analysis.effectiveName(for: .profile(profile)),
            let block = analysis.blocks.last(where: { $0.name == name })
        else {
            appendSection(header: Self.header(for: profile), lines: [Self.keyLine(key, value, indent: "")])
            return
        }
        if let option = analysis.blocks.filter({ $0.name == name }).flatMap(\.options).last(where: { $0.key == lowered }
        ) {
            lines[option.line].content = Self.replacingValue(in: lines[option.line].content, with: value)
            removeLines(Set(option.continuation))
            return
        }
        // Indent like the section's last key (or its header) so the lines after keep their meaning.
        let model = block.options.last?.line ?? block.header
        let indent = String(lines[model].content.unicodeScalars.prefix(while: Python.isSpace))
        insert([Self.keyLine(key, value, indent: indent)], after: block.lastContent)
    }

    private mutating func appendSection(header: String, lines added: [String]) {
        var block = [header] + added
        if let last = lines.last, !Python.strip(last.content).isEmpty { block.insert("", at: 0) }
        insert(block, after: lines.count - 1)
    }

    /// Inserts lines after line `index` (-1: at the start), keeping a missing final newline missing.
    private mutating func insert(_ contents: [String], after index: Int) {
        guard !contents.isEmpty else { return }
        let newline = self.newline
        var added = contents.map { Line(content: $0, terminator: newline) }
        if index >= 0, lines[index].terminator.isEmpty {
            lines[index].terminator = newline
            added[added.count - 1].terminator = ""
        }
        lines.insert(contentsOf: added, at: index + 1)
    }

    /// Removes lines, keeping a missing final newline missing.
    private mutating func removeLines(_ doomed: Set<Int>) {
        guard !doomed.isEmpty else { return }
        let endedWithoutNewline = lines.last?.terminator.isEmpty ?? false
        lines = lines.enumerated().filter { !doomed.contains($0.offset) }.map(\.element)
        if endedWithoutNewline, !lines.isEmpty { lines[lines.count - 1].terminator = "" }
    }

    /// Refuses an edit whose result botocore would read differently from `original` plus the intended change
    /// (an indentation quirk could otherwise fold a following header or key into a value).
    private func checkOnly(changed original: AWSConfigDocument, intended: (inout [String: [String: String]]) -> Void)
        throws
    {
        var expected = original.analysis.ownValues
        intended(&expected)
        guard analysis.ownValues == expected, analysis.problems.count <= original.analysis.problems.count else {
            throw KeylessError(
                .configInvalid,
                "Editing the AWS config would change settings other than the ones asked for (the file's indentation folds lines into values).",
                hint:
                    "Fix the indentation of ~/.aws/config by hand (section headers and keys at the start of the line), then retry."
            )
        }
    }

    private static func replacingValue(in content: String, with value: String) -> String {
        let scalars = content.unicodeScalars
        let delimiter = scalars.firstIndex(where: { $0 == "=" || $0 == ":" })!
        var valueStart = scalars.index(after: delimiter)
        while valueStart < scalars.endIndex, Python.isSpace(scalars[valueStart]) {
            valueStart = scalars.index(after: valueStart)
        }
        var prefix = String(scalars[..<valueStart])
        // `s3 =` (an empty value, often a block's first line) becomes `s3 = value`; `output=json` stays unspaced.
        if valueStart == scalars.endIndex, valueStart == scalars.index(after: delimiter), !value.isEmpty {
            prefix += " "
        }
        return prefix + value
    }

    private static func keyLine(_ key: String, _ value: String, indent: String) -> String {
        value.isEmpty ? "\(indent)\(key) =" : "\(indent)\(key) = \(value)"
    }

    private static func header(for profile: String) -> String {
        profile == "default" ? "[default]" : "[profile \(ShellWords.quote(profile))]"
    }

    private static func profileName(_ kind: SectionKind) -> String? {
        switch kind {
        case .default: return "default"
        case .profile(let name): return name
        default: return nil
        }
    }

    // MARK: - Validation

    private static func validate(profile: String) throws {
        let problem: String? =
            if profile.isEmpty {
                "is empty"
            } else if profile.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
                "contains a line break"
            } else if profile.contains("]") { "contains ]" } else if Python.strip(profile) != profile {
                "starts or ends with white space"
            } else { nil }
        if let problem {
            throw KeylessError(
                .configInvalid,
                "The AWS profile name \(debugQuote(profile)) \(problem), so it cannot be a section header in ~/.aws/config.",
                hint: "Choose a name of letters, digits, - and _ (for example keyless-dev).")
        }
    }

    private static func validate(key: String) throws {
        let scalars = key.unicodeScalars
        let problem: String? =
            if key.isEmpty { "is empty" } else if scalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
                "contains a line break"
            } else if scalars.contains(where: { $0 == "=" || $0 == ":" }) {
                "contains = or :"
            } else if Python.strip(key) != key {
                "starts or ends with white space"
            } else if let first = scalars.first, first == "#" || first == ";" || first == "[" {
                "starts with \(first), which botocore reads as a comment or a section"
            } else { nil }
        if let problem {
            throw KeylessError(
                .configInvalid, "The AWS config key \(debugQuote(key)) \(problem).",
                hint: "Use a setting name such as region or credential_process.")
        }
    }

    private static func validate(value: String) throws {
        let problem: String? =
            if value.unicodeScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
                "contains a line break"
            } else if Python.strip(value) != value { "starts or ends with white space, which botocore would drop" } else
            { nil }
        if let problem {
            throw KeylessError(
                .configInvalid, "The AWS config value \(debugQuote(value)) \(problem).",
                hint: "Pass a single-line value without surrounding spaces.")
        }
    }

    private static func debugQuote(_ text: String) -> String { String(reflecting: text) }

    // MARK: - How botocore reads the lines

    private var analysis: Analysis { Analysis(lines) }
}

/// A mirror of `configparser.RawConfigParser._read` (strict, `=` and `:` delimiters, `#`/`;` full-line comments,
/// empty lines allowed in values) over the document's lines.
private struct Analysis {
    enum Role: Equatable { case blank, comment, header, option, continuation, invalid }

    struct Option {
        var key: String
        var line: Int
        var continuation: [Int] = []
        var parts: [String]
        var value: String { Python.rstrip(parts.joined(separator: "\n")) }
    }

    /// One header occurrence and the lines under it.
    struct Block {
        var name: String
        var header: Int
        var options: [Option] = []
        /// The last header, key, continuation or unparseable line of the block.
        var lastContent: Int
    }

    static let defaultsName = "DEFAULT"

    var roles: [Role] = []
    var blocks: [Block] = []
    var problems: [AWSConfigDocument.Problem] = []
    /// Section names in order of first appearance.
    var sectionNames: [String] = []
    /// Section name → its own keys (later definitions win, as non-strict configparser would have it).
    var ownValues: [String: [String: String]] = [:]

    init(_ lines: [AWSConfigDocument.Line]) {
        var seenOptions = Set<[String]>()
        var open: (block: Int, option: Int)?
        var indentLevel = 0
        for (number, line) in lines.enumerated() {
            let stripped = Python.strip(line.content)
            if let first = stripped.unicodeScalars.first, first == "#" || first == ";" {
                roles.append(.comment)
                continue
            }
            if stripped.isEmpty {
                roles.append(.blank)
                if let open { blocks[open.block].options[open.option].parts.append("") }
                continue
            }
            let indent = line.content.unicodeScalars.prefix(while: Python.isSpace).count
            if let open, indent > indentLevel {
                roles.append(.continuation)
                blocks[open.block].options[open.option].parts.append(stripped)
                blocks[open.block].options[open.option].continuation.append(number)
                blocks[open.block].lastContent = number
                continue
            }
            indentLevel = indent
            if let name = Self.headerName(stripped) {
                roles.append(.header)
                if name != Self.defaultsName && sectionNames.contains(name) {
                    problems.append(.init(line: number + 1, reason: "the section [\(name)] appears twice"))
                }
                if !sectionNames.contains(name) { sectionNames.append(name) }
                blocks.append(Block(name: name, header: number, lastContent: number))
                open = nil
            } else if blocks.isEmpty {
                roles.append(.invalid)
                problems.append(.init(line: number + 1, reason: "a line before the first section header"))
            } else if let (key, value) = Self.option(stripped) {
                roles.append(.option)
                let block = blocks.count - 1
                if key.isEmpty { problems.append(.init(line: number + 1, reason: "a key with no name")) }
                if !seenOptions.insert([blocks[block].name, key]).inserted {
                    problems.append(
                        .init(line: number + 1, reason: "the key \(key) appears twice in [\(blocks[block].name)]"))
                }
                blocks[block].options.append(Option(key: key, line: number, parts: [value]))
                blocks[block].lastContent = number
                open = (block, blocks[block].options.count - 1)
            } else {
                // configparser notes the error and reads on; the open key stays open.
                roles.append(.invalid)
                problems.append(
                    .init(line: number + 1, reason: "a line with neither = nor : that is not a header or a comment"))
                blocks[blocks.count - 1].lastContent = number
            }
        }
        for block in blocks {
            for option in block.options {
                let value = option.value
                ownValues[block.name, default: [:]][option.key] = value
                if value.hasPrefix("\n"), AWSConfigDocument.parseNested(value) == nil {
                    problems.append(
                        .init(line: option.line + 1, reason: "the block under \(option.key) has a line without ="))
                }
            }
            if ownValues[block.name] == nil { ownValues[block.name] = [:] }
        }
    }

    /// `\[(?P<header>.+)\]` matched at the start of the stripped line: everything up to the last `]`.
    static func headerName(_ stripped: String) -> String? {
        let scalars = stripped.unicodeScalars
        guard scalars.first == "[", let close = scalars.lastIndex(of: "]") else { return nil }
        let start = scalars.index(after: scalars.startIndex)
        guard close > start else { return nil }
        return String(scalars[start..<close])
    }

    /// `(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$`: the key ends at the first `=` or `:`.
    static func option(_ stripped: String) -> (key: String, value: String)? {
        let scalars = stripped.unicodeScalars
        guard let delimiter = scalars.firstIndex(where: { $0 == "=" || $0 == ":" }) else { return nil }
        let key = Python.rstrip(String(scalars[..<delimiter])).lowercased()
        return (key, Python.strip(String(scalars[scalars.index(after: delimiter)...])))
    }

    /// botocore's `build_profile_map`: prefixes decide the kind, `shlex.split` the name.
    static func kind(of name: String) -> AWSConfigDocument.SectionKind {
        func named(_ make: (String) -> AWSConfigDocument.SectionKind) -> AWSConfigDocument.SectionKind {
            if let parts = try? ShellWords.split(name), parts.count == 2 { return make(parts[1]) }
            return .unnamed(name)
        }
        if name.unicodeScalars.starts(with: "profile".unicodeScalars) { return named { .profile($0) } }
        if name.unicodeScalars.starts(with: "sso-session".unicodeScalars) { return named { .ssoSession($0) } }
        if name.unicodeScalars.starts(with: "services".unicodeScalars) { return named { .services($0) } }
        if name == "default" { return .default }
        return .other(name)
    }

    /// The section name botocore takes `kind` from: the last one (in order of first appearance) that names it.
    func effectiveName(for kind: AWSConfigDocument.SectionKind) -> String? {
        func isProfile(_ candidate: AWSConfigDocument.SectionKind, _ wanted: String) -> Bool {
            switch candidate {
            case .default: return wanted == "default"
            case .profile(let name): return name == wanted
            default: return false
            }
        }
        let candidates = sectionNames.filter { $0 != Self.defaultsName }
        switch kind {
        case .default: return candidates.last { isProfile(Self.kind(of: $0), "default") }
        case .profile(let wanted): return candidates.last { isProfile(Self.kind(of: $0), wanted) }
        default: return candidates.last { Self.kind(of: $0) == kind }
        }
    }
}

/// The parts of Python's string handling that decide how configparser reads a line.
enum Python {
    /// `str.isspace()`.
    static func isSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default: return false
        }
    }

    /// `str.strip()`.
    static func strip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
            let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(scalars[first...last])
    }

    /// `str.rstrip()`.
    static func rstrip(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[...last])
    }
}
