import Foundation
import KeylessAWSConfig
import KeylessCore
import KeylessTestSupport
import Testing

/// Runs `python3 -c script arguments...` and returns its stdout; Python is the outside reference
/// (botocore itself reads `~/.aws/config` with configparser and splits `credential_process` with `shlex.split`).
func runPython(_ script: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: Tooling.python())
    process.arguments = ["-c", script] + arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    let diagnostics = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TestSupportError(
            "python3 -c … exited \(process.terminationStatus): \(String(decoding: diagnostics, as: UTF8.self))")
    }
    return String(decoding: data, as: UTF8.self)
}

/// What Python's `shlex.split(line)` returns, or nil when it raises ValueError.
func shlexSplit(_ line: String) throws -> [String]? {
    let script = """
        import json, shlex, sys
        try:
            print(json.dumps(shlex.split(sys.argv[1])))
        except ValueError:
            print("null")
        """
    return try JSONDecoder().decode([String]?.self, from: Data(try runPython(script, [line]).utf8))
}

/// What botocore's `raw_config_parse` makes of `text` (section → key → raw value).
func botocoreSections(_ text: String) throws -> [String: [String: String]] {
    let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = (directory as NSString).appendingPathComponent("config")
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    let script = """
        import json, sys
        from botocore.configloader import raw_config_parse
        print(json.dumps(raw_config_parse(sys.argv[1], parse_subsections=False)))
        """
    return try JSONDecoder().decode([String: [String: String]].self, from: Data(try runPython(script, [path]).utf8))
}

let sampleConfig = """
    # profiles written by hand and by keyless
    [default]
    region = us-east-1
    output=json

    ; the development account
    [profile dev]
    credential_process = /usr/local/bin/keyless credential-process --profile dev --role arn:aws:iam::123456789012:role/dev
    region: eu-west-1
    s3 =
        max_concurrent_requests = 20
        # a comment inside the block
        addressing_style = path
    duration_seconds = 3600
    note = kept ; not a comment # nor this

    [profile prod]
    region = us-west-2

    [sso-session corp]
    sso_start_url = https://corp.awsapps.com/start
    """

@Suite("~/.aws/config reading")
struct AWSConfigFileTests {
    @Test("[default] is the default profile and [profile x] is profile x")
    func profiles() {
        let config = AWSConfigFile(text: sampleConfig)
        #expect(config.profile("default") == ["region": "us-east-1", "output": "json"])
        #expect(config.profile("prod") == ["region": "us-west-2"])
        #expect(config.profile("dev")?["region"] == "eu-west-1")
        #expect(config.profile("corp") == nil)
        #expect(config.profile("missing") == nil)
        #expect(config.profileNames == ["default", "dev", "prod"])
    }

    @Test("a section named like a profile without the 'profile ' prefix is not a profile")
    func bareSectionIsNotProfile() {
        let config = AWSConfigFile(text: "[dev]\nregion = eu-west-1\n")
        #expect(config.profile("dev") == nil)
        #expect(config.profileNames == [])
    }

    @Test("[profile default] serves as the default profile when there is no [default]")
    func profileDefault() {
        let config = AWSConfigFile(text: "[profile default]\nregion = ap-south-1\n")
        #expect(config.profile("default") == ["region": "ap-south-1"])
    }

    @Test("comment lines are skipped and a value keeps text after ';' or '#'")
    func comments() {
        let config = AWSConfigFile(text: sampleConfig)
        let dev = config.profile("dev")
        #expect(dev?["note"] == "kept ; not a comment # nor this")
        #expect(config.sections.values.allSatisfy { $0.keys.allSatisfy { !$0.hasPrefix("#") && !$0.hasPrefix(";") } })
    }

    @Test("indented continuation lines belong to the key above and do not become keys")
    func continuationLines() {
        let dev = AWSConfigFile(text: sampleConfig).profile("dev")
        #expect(dev?["s3"] == "\nmax_concurrent_requests = 20\naddressing_style = path")
        #expect(dev?["max_concurrent_requests"] == nil)
        #expect(dev?["duration_seconds"] == "3600")
    }

    @Test("a value may contain '=' and ':' after the first separator")
    func separators() {
        let dev = AWSConfigFile(text: sampleConfig).profile("dev")
        #expect(
            dev?["credential_process"]
                == "/usr/local/bin/keyless credential-process --profile dev --role arn:aws:iam::123456789012:role/dev")
    }

    @Test("CRLF line endings read like LF")
    func crlf() {
        let config = AWSConfigFile(text: "[default]\r\nregion = us-east-1\r\n[profile a]\r\nregion=eu-west-3\r\n")
        #expect(config.profile("default") == ["region": "us-east-1"])
        #expect(config.profile("a") == ["region": "eu-west-3"])
    }

    @Test("a missing file reads as an empty config")
    func missingFile() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-awsconfig")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = try AWSConfigFile.load((directory as NSString).appendingPathComponent("config"))
        #expect(config.sections.isEmpty)
    }

    @Test(
        "sections and raw values match botocore's raw_config_parse",
        arguments: [
            sampleConfig,
            "[default]\r\nregion = us-east-1\r\n\r\n[profile a b]\r\nregion=eu-west-3\r\n",
            "[profile dev]\nRegion = eu-west-1\nCredential_Process = keyless credential-process --profile dev\n",
        ])
    func matchesBotocore(text: String) throws {
        let botocore = try botocoreSections(text)
        let sections = AWSConfigFile(text: text).sections
        #expect(sections == botocore)
    }
}

@Suite("credential_process word splitting")
struct ShellWordsTests {
    /// Lines checked against Python's shlex.split, which botocore uses for credential_process.
    static let lines: [String] = [
        "/usr/local/bin/keyless credential-process --profile dev",
        "   leading   and\ttrailing   ",
        #""/opt/my tools/keyless" credential-process"#,
        "'/opt/my tools/keyless' credential-process",
        #"/opt/my\ tools/keyless credential-process"#,
        #"keyless --name="Alice Smith" --other='a b'"#,
        #"a"b c"d e'f g'h"#,
        #""it's" 'say "hi"'"#,
        #""a\"b" "back\\slash" "keep\n" "keep\x""#,
        #"'single\quote' 'a\\b'"#,
        #""cost \$5" "tick \`x\`""#,
        "'' a \"\" b",
        #"C:\Users\me\keyless.exe --flag"#,
        "#not-a-comment x;y|z&w",
        "héllo wörld ünïcode",
        #"x\  y"#,
        "/usr/bin/keyless\n    --profile dev",
        "keyless --role arn:aws:iam::123456789012:role/dev --session=\"a=b,c\"",
    ]

    @Test("ShellWords.split agrees with shlex.split", arguments: lines)
    func agreesWithShlex(line: String) throws {
        let reference = try #require(try shlexSplit(line), "shlex rejects \(line.debugDescription)")
        let words = try ShellWords.split(line)
        #expect(words == reference)
    }

    @Test(
        "lines shlex.split rejects throw configInvalid",
        arguments: [
            #""unterminated"#, "'unterminated", #"keyless "a\""#, #"trailing\"#, "ok 'also unterminated",
        ])
    func rejectsLikeShlex(line: String) throws {
        #expect(try shlexSplit(line) == nil, "shlex accepts \(line.debugDescription)")
        #expect(throws: KeylessError(.configInvalid, "")) { try ShellWords.split(line) }
    }

    @Test(
        "quote makes any word come back as itself from ShellWords.split and from shlex.split",
        arguments: [
            "plain", "", "two words", "it's", #"a"b"#, #"back\slash"#, "$HOME", "tab\there", "é", "--opt=a b",
        ])
    func quoteRoundTrips(word: String) throws {
        let quoted = ShellWords.quote(word)
        #expect(try ShellWords.split(quoted) == [word])
        #expect(try shlexSplit(quoted) == [word])
    }
}
