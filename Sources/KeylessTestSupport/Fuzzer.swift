import Foundation

/// A small mutation fuzzer for what outsiders reach: it takes valid inputs (seeds), mutates them the ways attackers
/// and broken peers do (flipped bits, cut short, repeated, spliced with tokens that mean something to the parser, huge
/// or non-finite numbers, odd Unicode), and hands each case to a check that must neither crash nor hang.
///
/// The number of cases per target is `KEYLESS_FUZZ_CASES` (default 3000) and the seed `KEYLESS_FUZZ_SEED` (default:
/// random, printed, so a failure is reproduced by setting it). Every run prints its target, count and seed.
public struct Fuzzer {
    /// Cases per target.
    public static let cases: Int =
        ProcessInfo.processInfo.environment["KEYLESS_FUZZ_CASES"].flatMap { Int($0) }.map { max(1, $0) } ?? 3000
    /// The seed of this process's runs.
    public static let seed: UInt64 =
        ProcessInfo.processInfo.environment["KEYLESS_FUZZ_SEED"].flatMap { UInt64($0) }
        ?? UInt64.random(in: 1...UInt64.max)

    /// Tokens spliced into inputs whatever the target: numbers and strings that break naive parsers.
    public static let commonTokens = [
        "", " ", "\0", "\r\n", "%", "%00", "%zz", "%%", "+", "&", "=", "&&==", "\"", "'", "\\", "\\u0000", "\\ud800",
        "{", "}", "[", "]", ":",
        ",", "null", "true", "NaN", "nan", "Infinity", "-Infinity", "1e308", "1e309", "-1e308", "1e-400",
        "9223372036854775808",
        "-9223372036854775809", "18446744073709551616", "0x7fffffff", "-0", "1.", ".5",
        "00000000000000000000000000000000001",
        String(repeating: "9", count: 400), String(repeating: "A", count: 5000), "\u{212A}", "\u{FEFF}", "e\u{301}",
        "𝔘", "\u{202E}",
        "<", ">", "</", "<!--", "<![CDATA[", "&amp;", "&#0;", "*", "&a", "*a", "!!binary", "? ", "- ", "|", ">-", "#",
        "---", "...",
        "9999-12-31T23:59:59Z", "0000-00-00T00:00:00Z",
        "2026-12-06T12:00:00.0000000000000000000000000000000000000000000000000000Z",
        "2026-13-45T25:61:61+99:99",
    ]

    private var state: UInt64

    /// FNV-1a of the target's name: the same in every process (Swift's `hashValue` is seeded per process).
    static func stableHash(_ text: String) -> UInt64 {
        text.utf8.reduce(0xcbf2_9ce4_8422_2325 as UInt64) { ($0 ^ UInt64($1)) &* 0x100_0000_01b3 }
    }

    /// A fuzzer whose cases follow from `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next pseudo-random number (SplitMix64).
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in `0..<bound`.
    public mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }

    /// `input` after one to four mutations; `tokens` are spliced in besides the common ones.
    public mutating func mutate(_ input: [UInt8], tokens: [String]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(4) {
            let at = below(bytes.count + 1)
            switch below(9) {
            case 0 where !bytes.isEmpty:  // flip a bit
                let index = below(bytes.count)
                bytes[index] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty:  // a random byte
                bytes[below(bytes.count)] = UInt8(truncatingIfNeeded: next())
            case 2:  // cut short
                bytes = Array(bytes.prefix(at))
            case 3 where !bytes.isEmpty:  // delete a run
                let end = min(bytes.count, at + 1 + below(16))
                if at < end { bytes.removeSubrange(at..<end) }
            case 4 where !bytes.isEmpty:  // repeat a run
                let start = below(bytes.count), end = min(bytes.count, start + 1 + below(32))
                let run = Array(bytes[start..<end])
                let times = 1 + below(below(4) == 0 ? 200 : 4)
                bytes.insert(contentsOf: (0..<times).flatMap { _ in run }, at: at)
            case 5, 6:  // splice a token
                let all = tokens + Self.commonTokens
                bytes.insert(contentsOf: Array(all[below(all.count)].utf8), at: at)
            case 7 where !bytes.isEmpty:  // replace a token-sized run with a token
                let end = min(bytes.count, at + below(12))
                let all = tokens + Self.commonTokens
                if at < end { bytes.replaceSubrange(at..<end, with: Array(all[below(all.count)].utf8)) }
            default:  // swap two runs
                guard bytes.count > 2 else { continue }
                let a = below(bytes.count - 1), b = below(bytes.count - 1)
                bytes.swapAt(a, b)
            }
        }
        return bytes
    }

    /// The cases of one run: the seeds themselves, then mutations of them, `cases` in all (at least the seeds).
    static func inputs(_ target: String, seeds: [String], tokens: [String], cases: Int) -> some Sequence<[UInt8]> {
        var fuzzer = Fuzzer(seed: seed ^ stableHash(target))
        let seedBytes = seeds.map { Array($0.utf8) }
        return (0..<max(cases, seedBytes.count)).lazy.map { index in
            index < seedBytes.count
                ? seedBytes[index] : fuzzer.mutate(seedBytes[fuzzer.below(seedBytes.count)], tokens: tokens)
        }
    }

    /// Runs `check` on `Fuzzer.cases` cases mutated from `seeds` (the seeds themselves first), prints the target, the
    /// count and the seed, and returns the count. `check` records its own failures; a crash or a hang stops the run.
    @discardableResult
    public static func run(
        _ target: String, seeds: [String], tokens: [String] = [], cases: Int = Fuzzer.cases,
        _ check: ([UInt8]) throws -> Void
    ) rethrows -> Int {
        var count = 0
        for input in inputs(target, seeds: seeds, tokens: tokens, cases: cases) { try check(input); count += 1 }
        print("fuzz: \(target): \(count) cases, KEYLESS_FUZZ_SEED=\(seed)")
        return count
    }

    /// The async form of `run`.
    @discardableResult
    public static func run(
        _ target: String, seeds: [String], tokens: [String] = [], cases: Int = Fuzzer.cases,
        _ check: ([UInt8]) async throws -> Void
    ) async rethrows -> Int {
        var count = 0
        for input in inputs(target, seeds: seeds, tokens: tokens, cases: cases) { try await check(input); count += 1 }
        print("fuzz: \(target): \(count) cases, KEYLESS_FUZZ_SEED=\(seed)")
        return count
    }
}

/// An HTTP request as fuzz input: `METHOD TARGET`, then header lines `Name: value`, an empty line, the body.
/// Mutations reach every part: the method, the path and query, header names and values, the body.
public struct FuzzRequest: Sendable {
    /// The method as written (mutations may make it anything).
    public var method: String
    /// The request target: path and query.
    public var target: String
    /// Header lines, in order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// A request.
    public init(_ method: String, _ target: String, headers: [(String, String)] = [], body: String = "") {
        self.method = method; self.target = target; self.headers = headers.map { (name: $0.0, value: $0.1) };
        self.body = Array(body.utf8)
    }

    /// The request as fuzz input text.
    public var text: String {
        ([method + " " + target] + headers.map { $0.name + ": " + $0.value }).joined(separator: "\n") + "\n\n"
            + String(decoding: body, as: UTF8.self)
    }

    /// Reads fuzz input back; nil when it no longer has a request line and a blank line.
    public init?(fuzzed bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\n\n") else { return nil }
        let lines = text[..<split.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
        guard let requestLine = lines.first, let space = requestLine.firstIndex(of: " ") else { return nil }
        method = String(requestLine[..<space])
        target = String(requestLine[requestLine.index(after: space)...])
        headers = lines.dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (
                String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
            )
        }
        body = Array(text[split.upperBound...].utf8)
    }
}
