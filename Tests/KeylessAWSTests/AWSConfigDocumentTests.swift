import Foundation
import KeylessAWSConfig
import KeylessCore
import KeylessTestSupport
import Testing

/// The hand-written corpus under Fixtures/aws-config: one realistic file per quirk.
private let documentCorpus = [
    "01-sso-sessions.ini", "02-credential-process-quotes.ini", "03-nested-s3.ini", "04-comments-after-sections.ini",
    "05-profile-default.ini", "06-crlf.ini", "07-no-final-newline.ini", "08-tabs.ini", "09-duplicate-keys.ini",
    "10-spacing.ini", "11-unicode-comments.ini", "12-services.ini", "13-unknown-sections.ini",
    "14-comments-only.ini", "15-indented-sections.ini",
]

private let keylessCredentialProcess =
    "/usr/local/bin/keyless creds-process --issuer-url https://idp.example.com --client-id keyless --aws-role-arn arn:aws:iam::123456789012:role/dev"

private func corpusDirectory() -> String { repositoryRoot() + "/Tests/KeylessAWSTests/Fixtures/aws-config" }

private func corpusText(_ name: String) throws -> String {
    String(decoding: try Data(contentsOf: URL(fileURLWithPath: corpusDirectory() + "/" + name)), as: UTF8.self)
}

// MARK: - botocore's view

/// A value as botocore hands it out: a string, or a dictionary for an indented block such as `s3 =`.
private enum BotoValue: Decodable, Equatable, CustomStringConvertible {
    case text(String)
    case nested([String: String])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            self = .text(text)
        } else {
            self = .nested(try container.decode([String: String].self))
        }
    }

    var description: String {
        switch self {
        case .text(let text): return String(reflecting: text)
        case .nested(let values): return "\(values)"
        }
    }
}

/// What `scripts/partners/botocore_config.py` prints for one file: `build_profile_map(raw_config_parse(path))`, or a refusal.
private struct BotoView: Decodable, Equatable {
    typealias Sections = [String: [String: BotoValue]]
    var profiles: Sections = [:]
    var ssoSessions: Sections = [:]
    var services: Sections = [:]
    var sections: Sections = [:]
    var error: String?

    enum CodingKeys: String, CodingKey {
        case profiles, services, sections, error
        case ssoSessions = "sso_sessions"
    }

    init(error: String? = nil) { self.error = error }

    init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        error = try container.decodeIfPresent(String.self, forKey: .error)
        profiles = try container.decodeIfPresent(Sections.self, forKey: .profiles) ?? [:]
        ssoSessions = try container.decodeIfPresent(Sections.self, forKey: .ssoSessions) ?? [:]
        services = try container.decodeIfPresent(Sections.self, forKey: .services) ?? [:]
        sections = try container.decodeIfPresent(Sections.self, forKey: .sections) ?? [:]
    }

    /// Two refusals are equal whatever their messages.
    static func == (lhs: BotoView, rhs: BotoView) -> Bool {
        if (lhs.error == nil) != (rhs.error == nil) { return false }
        if lhs.error != nil { return true }
        return lhs.profiles == rhs.profiles && lhs.ssoSessions == rhs.ssoSessions && lhs.services == rhs.services
            && lhs.sections == rhs.sections
    }
}

/// Runs the botocore script once over many files.
private func botocoreViews(_ paths: [String]) throws -> [BotoView] {
    let script = repositoryRoot() + "/scripts/partners/botocore_config.py"
    let (status, output) = try PartnerProcess.run(Tooling.python(), [script] + paths, timeout: 120)
    try #require(status == 0, "botocore_config.py failed: \(output)")
    // The output is combined with stderr; the JSON is the last line.
    let json = output.split(separator: "\n").last.map(String.init) ?? ""
    return try JSONDecoder().decode([BotoView].self, from: Data(json.utf8))
}

/// What the document says botocore will see.
private func documentView(_ document: AWSConfigDocument) -> BotoView {
    if !document.problems.isEmpty {
        return BotoView(error: document.problems.map(\.description).joined(separator: "; "))
    }
    func converted(_ values: [String: String]) -> [String: BotoValue] {
        values.mapValues { $0.hasPrefix("\n") ? .nested(AWSConfigDocument.parseNested($0) ?? [:]) : .text($0) }
    }
    var view = BotoView()
    for kind in document.sections {
        let values = converted(document.values(in: kind) ?? [:])
        switch kind {
        case .default: view.profiles["default"] = values
        case .profile(let name): view.profiles[name] = values
        case .ssoSession(let name): view.ssoSessions[name] = values
        case .services(let name): view.services[name] = values
        case .other(let name): view.sections[name] = values
        case .unnamed: break
        }
    }
    return view
}

private func write(_ text: String, to path: String) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
}

// MARK: - Line diffs

/// The lines of a text and the break after each (`""` for the last line when the text lacks a final newline).
private func splitLines(_ text: String) -> [(content: String, terminator: String)] {
    var result: [(String, String)] = []
    var current = String.UnicodeScalarView()
    var scalars = Array(text.unicodeScalars)[...]
    while let scalar = scalars.popFirst() {
        if scalar == "\n" || scalar == "\r" {
            var terminator = String(scalar)
            if scalar == "\r", scalars.first == "\n" { terminator += "\n"; scalars = scalars.dropFirst() }
            result.append((String(current), terminator))
            current = String.UnicodeScalarView()
        } else {
            current.append(scalar)
        }
    }
    if !current.isEmpty { result.append((String(current), "")) }
    return result
}

/// Lines removed from `old` and added in `new`, by longest common subsequence (byte-wise comparison).
private func lineDiff(_ old: String, _ new: String) -> (removed: [String], added: [String]) {
    let a = splitLines(old).map { Array($0.content.utf8) }
    let b = splitLines(new).map { Array($0.content.utf8) }
    var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in stride(from: a.count - 1, through: 0, by: -1) {
        for j in stride(from: b.count - 1, through: 0, by: -1) {
            table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
        }
    }
    var removed: [String] = []
    var added: [String] = []
    var i = 0
    var j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            i += 1; j += 1
        } else if j < b.count, i == a.count || table[i][j + 1] >= table[i + 1][j] {
            added.append(String(decoding: b[j], as: UTF8.self)); j += 1
        } else {
            removed.append(String(decoding: a[i], as: UTF8.self)); i += 1
        }
    }
    return (removed, added)
}

private func isIndented(_ line: String) -> Bool { line.first == " " || line.first == "\t" }

/// The value part of a `key = value` line.
private func valueOf(_ line: String) -> String {
    guard let delimiter = line.firstIndex(where: { $0 == "=" || $0 == ":" }) else { return "" }
    return line[line.index(after: delimiter)...].trimmingCharacters(in: .whitespaces)
}

// MARK: - Edits applied to every corpus file

/// One kind of edit, with what botocore should see afterwards.
private enum CorpusEdit: String, CaseIterable, CustomStringConvertible {
    case replaceValue, addKey, newProfile, removeValue, removeProfile, upsertKeylessProfile, upsertExistingProfile

    var description: String { rawValue }

    /// The profile and key an edit of an existing profile works on (the first profile with keys, its first key).
    static func target(_ document: AWSConfigDocument) -> (profile: String, key: String)? {
        for name in document.profileNames {
            if let key = document.values(profile: name)?.keys.sorted().first { return (name, key) }
        }
        return nil
    }

    /// Applies the edit; nil when the file has no profile for it to work on.
    func apply(to document: inout AWSConfigDocument) throws -> ((inout BotoView) -> Void)? {
        let target = Self.target(document)
        switch self {
        case .replaceValue:
            guard let (profile, key) = target else { return nil }
            try document.setValue("eu-west-3", for: key, profile: profile)
            return { $0.profiles[profile]![key] = .text("eu-west-3") }
        case .addKey:
            guard let (profile, _) = target else { return nil }
            try document.setValue("1", for: "keyless_marker", profile: profile)
            return { $0.profiles[profile]!["keyless_marker"] = .text("1") }
        case .newProfile:
            try document.setValue("us-west-2", for: "region", profile: "keyless-new")
            return { $0.profiles["keyless-new"] = ["region": .text("us-west-2")] }
        case .removeValue:
            guard let (profile, key) = target else { return nil }
            #expect(try document.removeValue(for: key, profile: profile))
            return { $0.profiles[profile]![key] = nil }
        case .removeProfile:
            guard let (profile, _) = target else { return nil }
            #expect(try document.removeProfile(profile))
            return { $0.profiles[profile] = nil }
        case .upsertKeylessProfile:
            try document.upsertProfile(
                "keyless-dev", values: [("credential_process", keylessCredentialProcess), ("region", "eu-west-1")])
            return {
                $0.profiles["keyless-dev"] = [
                    "credential_process": .text(keylessCredentialProcess), "region": .text("eu-west-1"),
                ]
            }
        case .upsertExistingProfile:
            guard let (profile, _) = target else { return nil }
            try document.upsertProfile(
                profile, values: [("credential_process", keylessCredentialProcess), ("Region", "eu-west-1")])
            return {
                $0.profiles[profile]!["credential_process"] = .text(keylessCredentialProcess)
                $0.profiles[profile]!["region"] = .text("eu-west-1")
            }
        }
    }
}

// MARK: - Generated inputs

/// SplitMix64: a fixed seed gives the same inputs on every run.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A config-like text mixing every construct the parser distinguishes, including ones botocore refuses.
private func generatedConfig(_ random: inout SeededGenerator) -> String {
    let headers = [
        "[default]", "[profile default]", "[profile a]", "[profile b]", "  [profile c]", "[profile \"d e\"]",
        "[profile x y]", "[sso-session s]", "[services svc]", "[plugins]", "[DEFAULT]", "[a]b]", "[]",
        "[profile café] ; note", "\t[profile t]",
    ]
    let keys = [
        "region", "Region", "output", "s3", "credential_process", "sso_session", "cli_pager", "k", "café", "x\u{00A0}y",
    ]
    let gaps = ["=", " = ", "=  ", " =", "\t=\t", ": ", ":", " = = "]
    let values = ["us-east-1", "", "a = b", "\"quoted value\" 'x'", "# not a comment", "é\u{301}", "x\u{2028}y", "1"]
    let others = [
        "# comment", "; comment", "  # indented comment", "", "   ", "\t", "no delimiter", "= empty key",
        "  nested = 1", "\tnested = 2", "    deeper", "\u{00A0}nbsp = indent", "[unclosed", "🙂 = 1",
    ]
    let breaks = ["\n", "\n", "\n", "\r\n", "\r"]
    var text = ""
    for index in 0..<Int.random(in: 0...14, using: &random) {
        let line: String
        switch Int.random(in: 0..<10, using: &random) {
        case 0...1: line = headers.randomElement(using: &random)!
        case 2...6:
            let indent = Int.random(in: 0..<6, using: &random) == 0 ? "  " : ""
            line =
                indent + keys.randomElement(using: &random)! + gaps.randomElement(using: &random)!
                + values.randomElement(using: &random)!
        default: line = others.randomElement(using: &random)!
        }
        text += line
        // Most files end with a newline; some stop mid-line.
        if index < 13 || Bool.random(using: &random) { text += breaks.randomElement(using: &random)! }
    }
    return text
}

// MARK: - Tests

@Suite("AWSConfigDocument: a round-trip editor for ~/.aws/config, checked against botocore")
struct AWSConfigDocumentTests {
    @Test("the corpus folder holds the listed files, at least 12")
    func corpusIsComplete() throws {
        let present = try FileManager.default.contentsOfDirectory(atPath: corpusDirectory()).sorted()
        #expect(present == documentCorpus.sorted())
        #expect(documentCorpus.count >= 12)
    }

    @Test("every corpus file renders back byte for byte", arguments: documentCorpus)
    func corpusRoundTrip(name: String) throws {
        let text = try corpusText(name)
        #expect(Array(AWSConfigDocument(text: text).text.utf8) == Array(text.utf8))
    }

    @Test("generated inputs render back byte for byte (CR, CRLF, LF, no final newline, combining marks)")
    func generatedRoundTrip() {
        var random = SeededGenerator(state: 0x6B65_796C_6573_73)
        for _ in 0..<3000 {
            let text = generatedConfig(&random)
            let rendered = AWSConfigDocument(text: text).text
            #expect(Array(rendered.utf8) == Array(text.utf8), "\(String(reflecting: text))")
        }
        for text in [
            "", "\n", "\r", "\r\n", "\r\r\n\n", "a", "[default]", "\u{FEFF}[default]\n", "\n\u{301}x", "é\r\n\u{301}",
        ] {
            #expect(Array(AWSConfigDocument(text: text).text.utf8) == Array(text.utf8))
        }
    }

    @Test("botocore reads generated files, before and after an edit, exactly as the document predicts")
    func generatedFilesMatchBotocore() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig-gen")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var random = SeededGenerator(state: 42)
        var paths: [String] = []
        var documents: [AWSConfigDocument] = []
        for index in 0..<250 {
            let original = AWSConfigDocument(text: generatedConfig(&random))
            var edited = original
            do {
                try edited.upsertProfile(
                    "keyless-dev", values: [("credential_process", keylessCredentialProcess), ("region", "eu-west-1")])
                if let name = edited.profileNames.randomElement(using: &random) {
                    try edited.setValue("us-east-2", for: "Region", profile: name)
                }
            } catch let error as KeylessError {
                // Refused because indentation would fold the edit into another value: nothing changed.
                #expect(error.code == .configInvalid)
            }
            for (suffix, document) in [("a", original), ("b", edited)] {
                let path = "\(directory)/\(index)\(suffix).ini"
                try write(document.text, to: path)
                paths.append(path)
                documents.append(document)
            }
        }
        let views = try botocoreViews(paths)
        #expect(views.count == documents.count)
        var refused = 0
        for (index, (view, document)) in zip(views, documents).enumerated() {
            #expect(
                view == documentView(document),
                "file \(index): \(String(reflecting: document.text))\nbotocore: \(view)\ndocument: \(documentView(document))"
            )
            if view.error != nil { refused += 1 }
        }
        // The generator must exercise both readable and refused files.
        #expect(refused > 20 && refused < views.count - 50, "\(refused) of \(views.count) refused")
    }

    @Test("each kind of edit changes only its own lines and keeps line breaks", arguments: documentCorpus)
    func editsTouchOnlyTheirLines(name: String) throws {
        let original = try corpusText(name)
        let document = AWSConfigDocument(text: original)
        let originalLines = splitLines(original)
        for edit in CorpusEdit.allCases {
            var edited = document
            let target = CorpusEdit.target(document)
            guard try edit.apply(to: &edited) != nil else { continue }
            let text = edited.text
            let (removed, added) = lineDiff(original, text)
            let context = Comment(rawValue: "\(name), \(edit): removed \(removed), added \(added)")
            switch edit {
            case .replaceValue:
                let key = try #require(target?.key)
                #expect(added.count == 1, context)
                #expect(
                    removed.first.map { $0.lowercased().trimmingCharacters(in: .whitespaces).hasPrefix(key) } == true,
                    context)
                #expect(removed.dropFirst().allSatisfy(isIndented), context)
                if let old = removed.first, let new = added.first,
                    let delimiter = old.firstIndex(where: { $0 == "=" || $0 == ":" })
                {
                    // Same indentation, key spelling and delimiter; only the value differs.
                    #expect(new.hasPrefix(String(old[...delimiter])) && valueOf(new) == "eu-west-3", context)
                }
            case .addKey:
                #expect(removed.isEmpty, context)
                #expect(added.map { $0.trimmingCharacters(in: .whitespaces) } == ["keyless_marker = 1"], context)
            case .newProfile, .upsertKeylessProfile:
                let lastIsBlank =
                    originalLines.last.map { $0.content.trimmingCharacters(in: .whitespaces).isEmpty } ?? true
                let body =
                    edit == .newProfile
                    ? ["[profile keyless-new]", "region = us-west-2"]
                    : [
                        "[profile keyless-dev]", "credential_process = \(keylessCredentialProcess)",
                        "region = eu-west-1",
                    ]
                #expect(removed.isEmpty, context)
                #expect(added == (lastIsBlank ? [] : [""]) + body, context)
                #expect(
                    splitLines(text).prefix(originalLines.count).map(\.content) == originalLines.map(\.content), context
                )
            case .removeValue:
                let key = try #require(target?.key)
                #expect(added.isEmpty, context)
                #expect(
                    removed.first.map { $0.lowercased().trimmingCharacters(in: .whitespaces).hasPrefix(key) } == true,
                    context)
                // The key's lines (every copy, when botocore-refused duplicates exist) and the block under it.
                #expect(removed.allSatisfy { isIndented($0) || $0.lowercased().hasPrefix(key) }, context)
            case .removeProfile:
                let profile = try #require(target?.profile)
                let headers = document.sections.filter {
                    $0 == .profile(profile) || (profile == "default" && $0 == .default)
                }.count
                #expect(added.isEmpty, context)
                #expect(
                    removed.filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("[") }.count == headers, context)
                #expect(edited.profileNames == document.profileNames.filter { $0 != profile }, context)
            case .upsertExistingProfile:
                #expect(added.count == 2, context)
                #expect(added.map(valueOf).sorted() == [keylessCredentialProcess, "eu-west-1"].sorted(), context)
            }
            // Line breaks: only the file's own kinds, and a missing final newline stays missing.
            let newLines = splitLines(text)
            let breaks = Set(originalLines.map(\.terminator).filter { !$0.isEmpty })
            #expect(Set(newLines.dropLast().map(\.terminator)).isSubset(of: breaks.isEmpty ? ["\n"] : breaks), context)
            if !originalLines.isEmpty {
                #expect(newLines.last?.terminator.isEmpty == originalLines.last?.terminator.isEmpty, context)
            }
        }
    }

    @Test(
        "botocore sees exactly the intended profiles after each kind of edit, written with write(to:)",
        arguments: documentCorpus)
    func editsMatchBotocore(name: String) throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let document = AWSConfigDocument(text: try corpusText(name))
        let originalPath = "\(directory)/original"
        try document.write(to: originalPath)
        var paths = [originalPath]
        var expectations: [(CorpusEdit, AWSConfigDocument, (inout BotoView) -> Void)] = []
        for edit in CorpusEdit.allCases {
            var edited = document
            guard let intended = try edit.apply(to: &edited) else { continue }
            let path = "\(directory)/\(edit)"
            try edited.write(to: path)
            paths.append(path)
            expectations.append((edit, edited, intended))
        }
        let views = try botocoreViews(paths)
        let before = views[0]
        #expect(before == documentView(document), "botocore: \(before)\ndocument: \(documentView(document))")
        for ((edit, edited, intended), after) in zip(expectations, views.dropFirst()) {
            var expected = before
            if before.error == nil { intended(&expected) }
            // botocore sees the intended change and nothing else (a refused file stays refused: edits do not repair it).
            #expect(after == expected, "\(name), \(edit): botocore \(after)\nexpected \(expected)")
            #expect(
                after == documentView(edited), "\(name), \(edit): botocore \(after)\ndocument \(documentView(edited))")
        }
        #expect(name != "09-duplicate-keys.ini" || before.error != nil, "botocore refuses duplicate keys")
    }

    @Test("write(to:) keeps the previous file as a byte-for-byte backup, keeps its mode and leaves no temporary files")
    func writeKeepsBackupAndMode() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig-write")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/config"
        let previous = try corpusText("06-crlf.ini")
        try write(previous, to: path)
        #expect(chmod(path, 0o640) == 0)
        var document = AWSConfigDocument(text: previous)
        try document.setValue("ap-south-1", for: "region", profile: "win")
        try document.write(to: path)

        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".keyless-backup")) == Data(previous.utf8))
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(document.text.utf8))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == [
                "config", "config.keyless-backup",
            ])
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o640)
        #expect(stat(path + ".keyless-backup", &info) == 0 && info.st_mode & 0o777 == 0o640)

        // A second write backs up the first write's result, not the original.
        let first = document.text
        try document.removeProfile("win")
        try document.write(to: path, backupSuffix: ".bak")
        #expect(try Data(contentsOf: URL(fileURLWithPath: path + ".bak")) == Data(first.utf8))
    }

    @Test("write(to:) creates a new file with mode 0600, a missing parent with mode 0700, and no backup")
    func writeCreatesPrivateFile() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig-new")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/home/.aws/config"
        var document = AWSConfigDocument(text: "")
        try document.upsertProfile("keyless-dev", values: [("credential_process", keylessCredentialProcess)])
        try document.write(to: path)
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(stat("\(directory)/home/.aws", &info) == 0 && info.st_mode & 0o777 == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(directory)/home/.aws") == ["config"])
        #expect(document.text == "[profile keyless-dev]\ncredential_process = \(keylessCredentialProcess)\n")
    }

    @Test("write(to:) through a symbolic link replaces the link's target and keeps the link")
    func writeFollowsSymlink() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig-link")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write("[default]\nregion = us-east-1\n", to: "\(directory)/dotfiles-config")
        #expect(symlink("\(directory)/dotfiles-config", "\(directory)/config") == 0)
        var document = try AWSConfigDocument.load("\(directory)/config")
        try document.setValue("eu-west-1", for: "region", profile: "default")
        try document.write(to: "\(directory)/config")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: "\(directory)/config")
                == "\(directory)/dotfiles-config")
        #expect(
            try String(contentsOfFile: "\(directory)/dotfiles-config", encoding: .utf8)
                == "[default]\nregion = eu-west-1\n")
        #expect(
            try String(contentsOfFile: "\(directory)/dotfiles-config.keyless-backup", encoding: .utf8)
                == "[default]\nregion = us-east-1\n")
    }

    @Test("bad profile names, keys and values throw configInvalid and change nothing")
    func badInputsAreRefused() throws {
        let original = try corpusText("01-sso-sessions.ini")
        let document = AWSConfigDocument(text: original)
        let badProfiles = ["", "a]b", "x\ny", "x\ry", " lead", "trail ", "tab\t"]
        let badKeys = ["", "a\nb", "a=b", "a:b", " region", "region ", "#region", ";region", "[region"]
        let badValues = ["a\nb", "a\r\nb", "a\rb", " leading", "trailing ", "\t"]
        var attempts: [(AWSConfigDocument) throws -> AWSConfigDocument] = []
        for profile in badProfiles {
            attempts.append {
                var d = $0; try d.setValue("x", for: "region", profile: profile); return d
            }
            attempts.append {
                var d = $0; try d.upsertProfile(profile, values: [("region", "x")]); return d
            }
        }
        for key in badKeys {
            attempts.append {
                var d = $0; try d.setValue("x", for: key, profile: "dev"); return d
            }
            attempts.append {
                var d = $0; try d.upsertProfile("dev", values: [("region", "ok"), (key, "x")]); return d
            }
        }
        for value in badValues {
            attempts.append {
                var d = $0; try d.setValue(value, for: "region", profile: "dev"); return d
            }
            attempts.append {
                var d = $0; try d.upsertProfile("new", values: [("region", "ok"), ("output", value)]); return d
            }
        }
        for attempt in attempts {
            var copy = document
            let error = #expect(throws: KeylessError.self) { copy = try attempt(copy) }
            #expect(error?.code == .configInvalid)
            #expect(error?.hint != nil)
            #expect(Array(copy.text.utf8) == Array(original.utf8))
        }
    }

    @Test("the later of [default] and [profile default] is the default profile, and edits go to it")
    func laterDefaultSectionWins() throws {
        var document = AWSConfigDocument(text: try corpusText("05-profile-default.ini"))
        #expect(document.value("region", profile: "default") == "eu-central-1")
        #expect(document.profileNames == ["default", "other"])
        try document.setValue("us-east-2", for: "region", profile: "default")
        #expect(
            lineDiff(try corpusText("05-profile-default.ini"), document.text) == (
                ["region = eu-central-1"], ["region = us-east-2"]
            ))

        let reversed = AWSConfigDocument(text: "[profile default]\nregion = a\n\n[default]\nregion = b\n")
        #expect(reversed.value("region", profile: "default") == "b")
    }

    @Test("keys match case-insensitively; an in-place edit keeps indentation, key spelling and spacing")
    func inPlaceEditKeepsSpelling() throws {
        var document = AWSConfigDocument(text: "[default]\n   Max_Attempts   =   5\noutput=json\n")
        #expect(document.value("max_attempts", profile: "default") == "5")
        #expect(document.value("MAX_ATTEMPTS", profile: "default") == "5")
        try document.setValue("7", for: "max_attempts", profile: "default")
        try document.setValue("text", for: "OUTPUT", profile: "default")
        #expect(document.text == "[default]\n   Max_Attempts   =   7\noutput=text\n")
    }

    @Test("replacing a nested block's key drops its indented lines; a new key follows the block")
    func nestedBlocks() throws {
        var document = AWSConfigDocument(
            text:
                "[default]\ns3 =\n  max_concurrent_requests = 10\n  # kept comment\n  max_queue_size = 5\n\n[profile x]\nregion = a\n"
        )
        #expect(document.value("s3", profile: "default") == "\nmax_concurrent_requests = 10\nmax_queue_size = 5")
        var withKey = document
        try withKey.setValue("us-east-1", for: "region", profile: "default")
        #expect(
            withKey.text
                == "[default]\ns3 =\n  max_concurrent_requests = 10\n  # kept comment\n  max_queue_size = 5\nregion = us-east-1\n\n[profile x]\nregion = a\n"
        )
        try document.setValue("off", for: "s3", profile: "default")
        #expect(document.text == "[default]\ns3 = off\n  # kept comment\n\n[profile x]\nregion = a\n")
    }

    @Test("a profile name that needs quoting is shell-quoted in its new header, as botocore shell-splits it")
    func quotedProfileNames() throws {
        var document = AWSConfigDocument(text: "[default]\nregion = us-east-1")
        try document.setValue("eu-west-1", for: "region", profile: "my team")
        #expect(document.text == "[default]\nregion = us-east-1\n\n[profile 'my team']\nregion = eu-west-1")
        #expect(document.profileNames == ["default", "my team"])
    }

    @Test("an edit that indentation would fold into another key's value is refused")
    func indentationHazardIsRefused() throws {
        let text = "[profile a]\nx = 1\n[profile b]\n  y = 2\n  [profile c]\n  z = 3\n"
        var document = AWSConfigDocument(text: text)
        #expect(document.profileNames == ["a", "b", "c"])
        #expect(throws: KeylessError(.configInvalid, "")) { try document.removeProfile("b") }
        #expect(document.text == text)
    }

    @Test("problems name what botocore refuses: duplicate keys (any case), duplicate sections, lines without =")
    func problemsPredictRefusals() {
        #expect(AWSConfigDocument(text: "[default]\nRegion = a\nregion = b\n").problems.map(\.line) == [3])
        #expect(AWSConfigDocument(text: "[default]\n[default]\n").problems.map(\.line) == [2])
        #expect(AWSConfigDocument(text: "region = a\n[default]\n").problems.map(\.line) == [1])
        #expect(AWSConfigDocument(text: "[default]\njunk\n").problems.map(\.line) == [2])
        #expect(AWSConfigDocument(text: "[default]\ns3 =\n  junk\n").problems.map(\.line) == [2])
        #expect(AWSConfigDocument(text: try! corpusText("03-nested-s3.ini")).problems.isEmpty)
    }
}
