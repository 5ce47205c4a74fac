#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import KeylessCore
import Synchronization

/// Holds the current policy and swaps in a new one when the file changes, keeping the old one when the new content is
/// broken or half-written.
///
/// A changed file is taken only once it has settled: not modified for `settleSeconds`, not changing while it is read,
/// ending with a newline, and valid. Readers take one lock for the time of copying a reference; a reload reads and
/// parses under a second lock, so requests never wait for a parse.
public final class PolicyStore: Sendable {
    /// How long a file must go unmodified before a reload reads it. It lets a writer finish, and it makes the stat
    /// comparison sound: timestamps are coarse, so two writes in one tick can leave the same stamp, but not two writes
    /// this far apart.
    public static let settleSeconds = 2.0

    /// The policy file.
    public let path: String
    private let clock: WallClock
    private let policy: Mutex<(policy: AccessPolicy, generation: Int)>
    private let watch: Mutex<WatchState>

    /// What the file looked like when last examined.
    private struct WatchState {
        /// The file's stat when last read, once settled; nil when it must be read again to be sure.
        var stamp: FileStamp?
        /// The bytes last read, good or not, so the same broken content is reported once.
        var seen: [UInt8]
        /// The bytes the current policy came from.
        var good: [UInt8]
        /// The last rejection reported while the file could not be read, so it is reported once.
        var unreadable: String?
    }

    /// Loads the policy at `path`; throws when it is missing or invalid. `clock` tells when a file has settled.
    public init(path: String, clock: WallClock = .system) throws {
        self.path = path
        self.clock = clock
        let stamp = FileStamp(path: path)
        guard let bytes = try Files.read(path) else { throw AccessPolicy.missingFile(path) }
        let initial = try AccessPolicy.parse(String(decoding: bytes, as: UTF8.self), file: path)
        policy = Mutex((initial, 0))
        // A stamp taken before the read predates the content; one too fresh to trust is not kept, so the first settled
        // reload reads the file again and compares bytes.
        let trusted = stamp.flatMap { Self.isSettled($0, now: clock.now()) ? $0 : nil }
        watch = Mutex(WatchState(stamp: trusted, seen: bytes, good: bytes, unreadable: nil))
    }

    /// The policy in force.
    public var current: AccessPolicy { policy.withLock { $0.policy } }

    /// The policy in force and its generation, which grows by one with every reload that replaces it (for caches of
    /// answers derived from the policy).
    public var snapshot: (policy: AccessPolicy, generation: Int) { policy.withLock { $0 } }

    /// Re-reads the file if it changed since last time and has settled. Content that is invalid, cut short or changing
    /// while read never replaces the policy in force; a given broken content is reported once.
    public func reloadIfChanged() -> PolicyReload {
        watch.withLock { state in
            guard let before = FileStamp(path: path) else {
                let reason =
                    "\(path): cannot read the policy file: \(Files.errnoString()); keeping the policy loaded before"
                state.stamp = nil
                defer { state.unreadable = reason }
                return state.unreadable == reason ? .unchanged : .rejected(reason)
            }
            state.unreadable = nil
            if before == state.stamp { return .unchanged }
            // Still fresh: a writer may be at work. Look again at a later call.
            guard Self.isSettled(before, now: clock.now()) else { return .unchanged }
            let bytes: [UInt8]
            do {
                // Removed since the stat: seen next time.
                guard let read = try Files.read(path) else { return .unchanged }
                bytes = read
            } catch {
                return .rejected(
                    "\(path): cannot read the policy file: \((error as? KeylessError)?.reason ?? "\(error)")")
            }
            // Changed while we read: a writer is at work. Look again at a later call rather than parse a torn file.
            guard FileStamp(path: path) == before else { return .unchanged }
            state.stamp = before
            if bytes == state.seen { return .unchanged }
            state.seen = bytes
            if bytes == state.good { return .reloaded }  // back to the content of the policy in force
            if let last = bytes.last, last != UInt8(ascii: "\n") {
                return .rejected(
                    "\(Self.endPosition(of: bytes, path: path)): the file ends in the middle of a line, so it may be cut short (still being written?); end it with a newline. Keeping the policy loaded before"
                )
            }
            do {
                let next = try AccessPolicy.parse(String(decoding: bytes, as: UTF8.self), file: path)
                policy.withLock { $0 = (next, $0.generation + 1) }
                state.good = bytes
                return .reloaded
            } catch let error as KeylessError {
                return .rejected(error.reason)
            } catch {
                return .rejected("\(path): \(error)")
            }
        }
    }

    /// Whether the file was last modified at least `settleSeconds` before `now`.
    private static func isSettled(_ stamp: FileStamp, now: Date) -> Bool {
        let modified = Double(stamp.modifiedSeconds) + Double(stamp.modifiedNanoseconds) / 1e9
        return now.timeIntervalSince1970 - modified >= settleSeconds
    }

    /// "path:line:column" of the end of the text, as YAML counts them.
    private static func endPosition(of bytes: [UInt8], path: String) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return "\(path):\(lines.count):\((lines.last?.unicodeScalars.count ?? 0) + 1)"
    }
}

/// The parts of `stat` that change when a file is written or replaced.
struct FileStamp: Equatable, Sendable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modifiedSeconds: Int
    let modifiedNanoseconds: Int
    let changedSeconds: Int
    let changedNanoseconds: Int

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        #if canImport(Darwin)
            modifiedSeconds = Int(info.st_mtimespec.tv_sec)
            modifiedNanoseconds = Int(info.st_mtimespec.tv_nsec)
            changedSeconds = Int(info.st_ctimespec.tv_sec)
            changedNanoseconds = Int(info.st_ctimespec.tv_nsec)
        #else
            modifiedSeconds = Int(info.st_mtim.tv_sec)
            modifiedNanoseconds = Int(info.st_mtim.tv_nsec)
            changedSeconds = Int(info.st_ctim.tv_sec)
            changedNanoseconds = Int(info.st_ctim.tv_nsec)
        #endif
    }
}
