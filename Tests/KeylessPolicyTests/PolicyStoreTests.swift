import Foundation
import KeylessCore
@testable import KeylessPolicy
import KeylessTestFakes
import Synchronization
import Testing

@Suite("Reloading the policy file")
struct PolicyStoreTests {
    static let version1 = """
        accounts:
          - id: "123456789012"
            alias: prod
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
        grants:
          - groups: [admins]
            roles: [prod/admin]

        """
    static let version2 =
        version1 + """
              - groups: [everyone]
                roles: ["*"]

            """
    /// Version 1 with a typo on line 7.
    static let broken = version1.replacingOccurrences(of: "  - groups: [admins]", with: "  - grups: [admins]")

    static let everyone = Fixture.caller(groups: ["everyone"])

    @Test("a store starts with the file's policy; a missing or invalid file fails the start")
    func initialLoad() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        #expect(throws: KeylessError(.configInvalid, "")) { try PolicyStore(path: path) }
        try writeInPlace(Self.broken, to: path)
        #expect(throws: KeylessError(.configInvalid, "")) { try PolicyStore(path: path) }
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path)
        #expect(store.current.roles.map(\.name) == ["admin"])
    }

    @Test("an untouched file is unchanged, before and after it settles")
    func untouched() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        #expect(store.reloadIfChanged() == .unchanged)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .unchanged)
        #expect(store.reloadIfChanged() == .unchanged)
    }

    @Test("a valid change is picked up once settled, whether written in place or renamed over the file")
    func validChange() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        #expect(store.current.entitlements(for: Self.everyone).isEmpty)

        // Same inode, written within moments of the first version: the stamp may not differ, the bytes do.
        try writeInPlace(Self.version2, to: path)
        clock.fresh(path)
        #expect(store.reloadIfChanged() == .unchanged)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).map(\.profileName) == ["prod-admin"])
        #expect(store.reloadIfChanged() == .unchanged)

        try Files.writeAtomically(Array(Self.version1.utf8), to: path, mode: 0o644)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).isEmpty)
    }

    @Test("a settled file's stamp decides: a rename over it is seen")
    func settledFileUsesStamp() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        try writeInPlace(Self.version1, to: path)
        // A clock an hour ahead: every file looks long settled.
        let store = try PolicyStore(path: path, clock: WallClock { Date().addingTimeInterval(3600) })
        #expect(store.reloadIfChanged() == .unchanged)
        try Files.writeAtomically(Array(Self.version2.utf8), to: path, mode: 0o644)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).count == 1)
    }

    @Test("a broken edit is rejected with its line, once, and the old policy stays until the file is fixed")
    func brokenEdit() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version2, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        try writeInPlace(Self.broken, to: path)
        clock.settle(after: path)
        #expect(
            store.reloadIfChanged()
                == .rejected(
                    "\(path):7:5: unknown key 'grups' in a grant (did you mean 'groups'?); allowed keys: description, groups, claims, issuer, roles, eligible, max_duration, approvers, reason_required"
                ))
        #expect(store.current.entitlements(for: Self.everyone).map(\.profileName) == ["prod-admin"])
        #expect(store.reloadIfChanged() == .unchanged)
        #expect(store.current.entitlements(for: Self.everyone).map(\.profileName) == ["prod-admin"])

        try writeInPlace(Self.version1, to: path)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).isEmpty)
    }

    @Test("a hostile edit (a billion-laughs alias as a mapping key) is rejected at once and the old policy stays")
    func hostileEdit() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version2, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        var laughs = ["a0: &a0 [lol]"]
        for level in 1...9 {
            laughs.append(
                "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]")
        }
        try writeInPlace(Self.version1 + laughs.joined(separator: "\n") + "\n? *a9\n: boom\n", to: path)
        clock.settle(after: path)
        guard case .rejected(let reason) = store.reloadIfChanged() else {
            Issue.record("the hostile file was not rejected"); return
        }
        #expect(reason.hasPrefix("\(path):10:") && reason.contains("YAML alias (*name) is not accepted"), "\(reason)")
        #expect(store.current.entitlements(for: Self.everyone).map(\.profileName) == ["prod-admin"])
    }

    @Test("a half-written file never replaces the good policy, fresh or settled; the finished file does")
    func halfWritten() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        let full = Self.version2
        // Cut in a flow sequence, in an ARN (what is left would parse), at a line end before a grant's roles, and
        // before anything was written.
        let cuts: [(String.Index, String)] = [
            (full.range(of: "[\"*")!.upperBound, "\(path):10:15: the file ends in the middle of a line"),
            (full.range(of: "role/ad")!.upperBound, "\(path):5:43: the file ends in the middle of a line"),
            (full.range(of: "[everyone]\n")!.upperBound, "\(path):9:5: this grant has no roles"),
            (full.startIndex, "\(path):1:1: the policy is empty"),
        ]
        for (cut, expected) in cuts {
            try writeInPlace(String(full[..<cut]), to: path)
            clock.fresh(path)
            #expect(store.reloadIfChanged() == .unchanged)  // still fresh: not even read
            clock.settle(after: path)
            let outcome = store.reloadIfChanged()
            guard case .rejected(let reason) = outcome else {
                Issue.record("a file cut at \(full.distance(from: full.startIndex, to: cut)) gave \(outcome)")
                continue
            }
            #expect(reason.hasPrefix(expected), "\(reason)")
            #expect(
                store.current.entitlements(for: Fixture.caller(groups: ["admins"])).map(\.profileName) == ["prod-admin"]
            )
            #expect(store.current.entitlements(for: Self.everyone).isEmpty)
        }
        try writeInPlace(full, to: path)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).map(\.profileName) == ["prod-admin"])
    }

    @Test("a deleted file is reported once and the policy stays; its return is picked up")
    func deletedFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        let clock = TestClock()
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path, clock: clock.wallClock)
        try Files.remove(path)
        #expect(
            store.reloadIfChanged()
                == .rejected(
                    "\(path): cannot read the policy file: No such file or directory; keeping the policy loaded before")
        )
        #expect(store.reloadIfChanged() == .unchanged)
        #expect(store.current.roles.count == 1)
        try writeInPlace(Self.version2, to: path)
        clock.settle(after: path)
        #expect(store.reloadIfChanged() == .reloaded)
        #expect(store.current.entitlements(for: Self.everyone).count == 1)
    }

    @Test("readers always see a whole policy while another task reloads")
    func concurrentReaders() async throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("policy.yaml")
        try writeInPlace(Self.version1, to: path)
        let store = try PolicyStore(path: path, clock: WallClock { Date().addingTimeInterval(3600) })
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for round in 0..<20 {
                    try? Files.writeAtomically(
                        Array((round % 2 == 0 ? Self.version2 : Self.version1).utf8), to: path, mode: 0o644)
                    _ = store.reloadIfChanged()
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<2000 {
                        let count = store.current.entitlements(for: Self.everyone).count
                        #expect(count == 0 || count == 1)
                    }
                }
            }
        }
        #expect(store.reloadIfChanged() == .unchanged)
        #expect(store.current.entitlements(for: Self.everyone).isEmpty)
    }
}

/// A clock the test sets relative to a file's modification time: `fresh` right at it, `settle` past the store's
/// settle time. Starts at the real time.
final class TestClock: Sendable {
    private let now = Mutex<Date>(Date())

    var wallClock: WallClock { WallClock { self.now.withLock { $0 } } }

    func fresh(_ path: String) { now.withLock { $0 = Self.modified(path) } }

    func settle(after path: String) {
        now.withLock { $0 = Self.modified(path).addingTimeInterval(PolicyStore.settleSeconds + 1) }
    }

    private static func modified(_ path: String) -> Date {
        (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? Date()
    }
}
