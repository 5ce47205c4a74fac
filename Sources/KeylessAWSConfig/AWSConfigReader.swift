import Foundation
import KeylessCore

/// A read-only view of `~/.aws/config`: sections and their top-level keys, as botocore reads them.
/// (The round-trip editor that `configure` needs comes with the access server.)
public struct AWSConfigFile: Sendable, Equatable {
    /// Section name (`default`, `profile x`, `sso-session y`) → key → value.
    public var sections: [String: [String: String]]

    /// Parses the text of a config file.
    public init(text: String) {
        var sections: [String: [String: String]] = [:]
        var current: String?
        var lastKey: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = String(rawLine)
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") || trimmed.hasPrefix(";") { continue }
            if trimmed.hasPrefix("[") && trimmed.hasSuffix("]") {
                let name = String(trimmed.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                current = name
                if sections[name] == nil { sections[name] = [:] }
                lastKey = nil
                continue
            }
            guard let section = current else { continue }
            if line.first == " " || line.first == "\t" {
                // A continuation line: part of a nested block such as `s3 =`; keyless reads none of those.
                if let lastKey, sections[section]?[lastKey] != nil { sections[section]![lastKey]! += "\n" + trimmed }
                continue
            }
            guard let equals = trimmed.firstIndex(where: { $0 == "=" || $0 == ":" }) else { continue }
            // botocore lower-cases keys: `Region =` is `region`.
            let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[section, default: [:]][key] = value
            lastKey = key
        }
        self.sections = sections
    }

    /// Reads a config file; a missing file is an empty config.
    public static func load(_ path: String) throws -> AWSConfigFile {
        guard let bytes = try Files.read(path) else { return AWSConfigFile(text: "") }
        return AWSConfigFile(text: String(decoding: bytes, as: UTF8.self))
    }

    /// The keys of profile `name` (`default` is `[default]`, others `[profile name]`).
    public func profile(_ name: String) -> [String: String]? {
        name == "default" ? (sections["default"] ?? sections["profile default"]) : sections["profile \(name)"]
    }

    /// The names of all profiles.
    public var profileNames: [String] {
        sections.keys.compactMap {
            $0 == "default" ? "default" : ($0.hasPrefix("profile ") ? String($0.dropFirst(8)) : nil)
        }.sorted()
    }
}

/// Splits a command line the way botocore does for `credential_process` (POSIX shell words:
/// single quotes, double quotes where backslash escapes `"` and `\\`, backslash outside quotes;
/// words split on spaces, tabs and newlines), matching Python's `shlex.split`.
public enum ShellWords {
    /// The words of `line`; throws on an unterminated quote.
    public static func split(_ line: String) throws -> [String] {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(line).makeIterator()
        while let c = iterator.next() {
            switch c {
            case "'":
                inWord = true
                var closed = false
                while let n = iterator.next() { if n == "'" { closed = true; break }; current.append(n) }
                if !closed { throw unterminated(line) }
            case "\"":
                inWord = true
                var closed = false
                while let n = iterator.next() {
                    if n == "\"" { closed = true; break }
                    // shlex (POSIX mode), which botocore uses: inside double quotes a backslash escapes only " and \\.
                    if n == "\\", let e = iterator.next() {
                        if e == "\"" || e == "\\" { current.append(e) } else { current.append(n); current.append(e) }
                        continue
                    }
                    current.append(n)
                }
                if !closed { throw unterminated(line) }
            case "\\":
                inWord = true
                guard let n = iterator.next() else {
                    throw KeylessError(
                        .configInvalid, "The command line \(line) ends with a lone backslash.",
                        hint: "Remove it or escape it in ~/.aws/config.")
                }
                current.append(n)
            case " ", "\t", "\n", "\r":
                if inWord { words.append(current); current = ""; inWord = false }
            default:
                inWord = true
                current.append(c)
            }
        }
        if inWord { words.append(current) }
        return words
    }

    /// Quotes a word for a POSIX shell when it needs it.
    public static func quote(_ word: String) -> String {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,:/@%+=")
        if !word.isEmpty && word.allSatisfy({ safe.contains($0) }) { return word }
        return "'" + word.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    static func unterminated(_ line: String) -> KeylessError {
        KeylessError(
            .configInvalid, "The command line \(line) has an unterminated quote.",
            hint: "Fix the quoting in ~/.aws/config.")
    }
}
