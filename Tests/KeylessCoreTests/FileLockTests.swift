import Foundation
import KeylessCore
import KeylessTestFakes
import Testing
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

private let flockTool = "/usr/bin/flock"

@Suite("FileLock: exclusive flock locks between descriptors and processes")
struct FileLockTests {
    @Test("tryLock creates the lock file with mode 0600")
    func createsLockFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")

        let lock = try #require(try FileLock.tryLock(path))
        defer { lock.unlock() }

        #expect(permissions(path) == 0o600)
    }

    @Test("a second tryLock in the same process returns nil while the first is held, and succeeds after unlock")
    func tryLockConflictsWithinProcess() throws {
        // flock locks belong to the open file description, so a second open of the same file conflicts.
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")

        let first = try #require(try FileLock.tryLock(path))
        #expect(try FileLock.tryLock(path) == nil)

        first.unlock()
        let second = try #require(try FileLock.tryLock(path))
        second.unlock()
    }

    @Test("unlock is idempotent")
    func unlockTwice() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")

        let lock = try #require(try FileLock.tryLock(path))
        lock.unlock()
        lock.unlock()

        let again = try #require(try FileLock.tryLock(path))
        again.unlock()
    }

    @Test("releasing the last reference to a FileLock releases the lock")
    func deinitReleases() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")

        func holdBriefly() throws -> Bool {
            let held = try FileLock.tryLock(path)
            let second = try FileLock.tryLock(path)
            return held != nil && second == nil
        }
        #expect(try holdBriefly())

        let after = try #require(try FileLock.tryLock(path))
        after.unlock()
    }

    @Test("locks on different files do not conflict")
    func differentFiles() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }

        let a = try #require(try FileLock.tryLock(scratch.file("a.lock")))
        let b = try #require(try FileLock.tryLock(scratch.file("b.lock")))
        a.unlock()
        b.unlock()
    }

    @Test("lock with a 0.2 s timeout throws lockTimeout while the lock is held, after waiting and saying so once")
    func lockTimesOut() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")
        let holder = try #require(try FileLock.tryLock(path))
        defer { holder.unlock() }

        var waits = 0
        let start = monotonicSeconds()
        #expect(throws: KeylessError(.lockTimeout, "")) {
            try FileLock.lock(path, timeout: 0.2, onWait: { waits += 1 })
        }
        let elapsed = monotonicSeconds() - start

        #expect(waits == 1)
        #expect(elapsed >= 0.2)
        #expect(elapsed < 10)
    }

    @Test("lock returns at once without calling onWait when the lock is free")
    func lockFree() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }

        var waits = 0
        let lock = try FileLock.lock(scratch.file("login.lock"), timeout: 5, onWait: { waits += 1 })
        lock.unlock()

        #expect(waits == 0)
    }

    @Test("lock takes the lock once the holder releases it within the timeout")
    func lockAfterRelease() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")
        let holder = try #require(try FileLock.tryLock(path))

        // The holder lets go as soon as the waiter announces it is waiting: no timing assumptions.
        let lock = try FileLock.lock(path, timeout: 30, onWait: { holder.unlock() })

        #expect(try FileLock.tryLock(path) == nil)
        lock.unlock()
    }

    @Test("tryLock throws io when the lock file cannot be created")
    func unopenableLockFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }

        #expect(throws: KeylessError(.io, "")) {
            try FileLock.tryLock(scratch.file("absent/login.lock"))
        }
    }

    @Test(
        "a lock held by another process blocks tryLock until that process exits",
        .enabled(if: FileManager.default.isExecutableFile(atPath: flockTool), "util-linux flock(1) is not installed"))
    func childProcessHoldsLock() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")
        let holder = try LockHoldingChild(path: path)
        defer { holder.release() }

        #expect(try FileLock.tryLock(path) == nil)
        #expect(throws: KeylessError(.lockTimeout, "")) {
            try FileLock.lock(path, timeout: 0.2)
        }

        holder.release()
        let lock = try #require(try FileLock.tryLock(path))
        lock.unlock()
    }

    @Test(
        "a lock held here makes another process's non-blocking flock fail",
        .enabled(if: FileManager.default.isExecutableFile(atPath: flockTool), "util-linux flock(1) is not installed"))
    func lockVisibleToOtherProcesses() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("login.lock")

        let lock = try #require(try FileLock.tryLock(path))
        #expect(try runFlockNonBlocking(path) == 1)
        lock.unlock()
        #expect(try runFlockNonBlocking(path) == 0)
    }
}

/// Runs `flock -n PATH true` and returns its exit status (1: the lock was held elsewhere).
private func runFlockNonBlocking(_ path: String) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: flockTool)
    process.arguments = ["-n", "-E", "1", path, "true"]
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// A `flock(1)` child that holds an exclusive lock on `path` until its standard input closes.
private final class LockHoldingChild {
    private let process = Process()
    private let input = Pipe()
    private var released = false

    init(path: String) throws {
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: flockTool)
        // The shell reports once the lock is held, then blocks reading stdin: closing it ends the child.
        process.arguments = ["-x", path, "/bin/sh", "-c", "echo locked; read ignored"]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        guard String(decoding: line, as: UTF8.self) == "locked\n" else {
            release()
            throw ScratchError(
                "flock child did not report holding the lock (got \(String(decoding: line, as: UTF8.self).debugDescription))"
            )
        }
    }

    /// Ends the child and waits for it, which releases its lock.
    func release() {
        guard !released else { return }
        released = true
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
