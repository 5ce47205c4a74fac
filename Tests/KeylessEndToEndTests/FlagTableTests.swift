import Foundation
@testable import KeylessFastPath
import KeylessTestSupport
import KeylessWire
import Testing

@Suite("The cached answer's flag table and creds-process's real options")
struct FlagTableTests {
    /// The long names of `creds-process`'s options (taking a value) and flags, from ArgumentParser's own description of
    /// the command (`--experimental-dump-help`).
    static func declared() throws -> (options: Set<String>, flags: Set<String>) {
        let result = try PartnerProcess.run(
            try builtBinary("keyless-cli"), ["creds-process", "--experimental-dump-help"], timeout: 60)
        try #require(result.status == 0, "keyless-cli creds-process --experimental-dump-help failed: \(result.output)")
        let start = try #require(result.output.firstIndex(of: "{"))
        let tool = try #require(
            try JSONSerialization.jsonObject(with: Data(result.output[start...].utf8)) as? [String: Any])
        let command = try #require(tool["command"] as? [String: Any])
        var options: Set<String> = [], flags: Set<String> = []
        for argument in command["arguments"] as? [[String: Any]] ?? [] {
            let names = (argument["names"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "long" }
                .compactMap { $0["name"] as? String }
            for name in names where name != "help" && name != "version" {
                switch argument["kind"] as? String {
                case "option": options.insert("--" + name)
                case "flag": flags.insert("--" + name)
                default: break
                }
            }
        }
        return (options, flags)
    }

    @Test(
        "the fast path knows exactly creds-process's options and flags: a new option cannot be served from the cache by mistake, or refused by it"
    )
    func sameFlags() throws {
        let (options, flags) = try Self.declared()
        #expect(options.count > 10 && !flags.isEmpty, "the command's description was read")
        let fastPathOptions = CredsProcessFlags.valued.union(CredsProcessFlags.stepAsideValued)
        #expect(CredsProcessFlags.valued.isDisjoint(with: CredsProcessFlags.stepAsideValued))
        #expect(
            fastPathOptions == options,
            "options only in the fast path: \(fastPathOptions.subtracting(options).sorted()); only in creds-process: \(options.subtracting(fastPathOptions).sorted())"
        )
        let known = CredsProcessFlags.plain.union(CredsProcessFlags.stepAside.filter { $0.hasPrefix("--") })
        #expect(
            known == flags,
            "flags only in the fast path: \(known.subtracting(flags).sorted()); only in creds-process: \(flags.subtracting(known).sorted())"
        )
        #expect(CredsProcessFlags.keyedPlain.isSubset(of: flags))
    }

    @Test(
        "the cached answer reads every option with its value (both spellings) and every plain flag, and steps aside for --verbose and -v"
    )
    func fastPathParsing() throws {
        for option in CredsProcessFlags.valued {
            #expect(FastPath.parse([option, "v a l"])?[option] == "v a l", "\(option) VALUE")
            #expect(FastPath.parse([option + "=v=1"])?[option] == "v=1", "\(option)=VALUE")
            #expect(FastPath.parse([option]) == nil, "\(option) without its value")
        }
        for flag in CredsProcessFlags.plain { #expect(FastPath.parse([flag]) != nil, "\(flag)") }
        for flag in CredsProcessFlags.stepAside {
            #expect(FastPath.parse(["--role-arn", "r", flag]) == nil, "\(flag)")
        }
        // A narrowed session is never answered from the cache by the fast path, in either spelling.
        for option in CredsProcessFlags.stepAsideValued {
            #expect(FastPath.parse(["--role-arn", "r", option, "x"]) == nil, "\(option) VALUE")
            #expect(FastPath.parse(["--role-arn", "r", option + "=x"]) == nil, "\(option)=VALUE")
        }
        #expect(
            FastPath.parse(["--timeout", "600", "--role-arn", "r"])?["--role-arn"] == "r",
            "a profile with --timeout is served from the cache")
    }
}
