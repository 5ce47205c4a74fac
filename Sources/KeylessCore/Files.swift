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

/// POSIX file helpers: private directories, permission checks, and atomic writes.
public enum Files {
    /// Creates `path` and its parents with mode 0700 where missing; fails if `path` is group- or world-accessible.
    public static func ensurePrivateDirectory(_ path: String) throws {
        var built = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            built += "/" + component
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw KeylessError(
                    .io, "Cannot create directory \(built): \(errnoString()).",
                    hint: "Check that the parent directory exists and is writable.")
            }
        }
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw KeylessError(
                .io, "Cannot read \(path): \(errnoString()).", hint: "Check the path and its permissions.")
        }
        if info.st_uid != geteuid() || (info.st_mode & 0o077) != 0 {
            throw KeylessError(
                .cacheInsecure,
                "\(path) is readable or writable by others (mode \(octal(info.st_mode & 0o777))) or not owned by you.",
                hint: "Run: chmod 700 '\(path)' (keyless keeps secrets there and refuses to use it otherwise).")
        }
    }

    /// Reads a whole file; `nil` when it does not exist. With `requirePrivate`, refuses files others can read.
    public static func read(_ path: String, requirePrivate: Bool = false) throws -> [UInt8]? {
        try read(path) { info in
            if requirePrivate && (info.st_uid != geteuid() || (info.st_mode & 0o077) != 0) {
                throw KeylessError(
                    .cacheInsecure,
                    "\(path) is accessible to other users (mode \(octal(info.st_mode & 0o777))) or not owned by you; keyless will not trust it.",
                    hint: "Delete it (keyless logout) or run: chmod 600 '\(path)'.")
            }
        }
    }

    /// Reads a whole file after `check` has accepted its `stat` (taken on the opened file, so the file checked is the
    /// file read); `nil` when it does not exist.
    public static func read(_ path: String, check: (stat) throws -> Void) throws -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw KeylessError(.io, "Cannot open \(path): \(errnoString()).", hint: "Check the file's permissions.")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw KeylessError(.io, "Cannot stat \(path): \(errnoString()).", hint: "Check the file's permissions.")
        }
        try check(info)
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw KeylessError(.io, "Cannot read \(path): \(errnoString()).", hint: "Check the disk.") }
            if n == 0 { bytes.removeSubrange(offset...); break }
            offset += n
        }
        return bytes
    }

    /// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename, fsync of the directory.
    /// A crash at any point leaves either the old file or the new one, never a mix.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws {
        let directory = parentDirectory(path)
        var random = SystemRandomNumberGenerator()
        let temp = "\(directory)/.\(baseName(path)).\(getpid()).\(random.next() as UInt32).tmp"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw KeylessError(
                .io, "Cannot create \(temp): \(errnoString()).", hint: "Check that \(directory) is writable.")
        }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        do {
            defer { close(fd) }
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    throw KeylessError(.io, "Cannot write \(temp): \(errnoString()).", hint: "Check free disk space.")
                }
                offset += n
            }
            _ = fchmod(fd, mode)
            guard fsync(fd) == 0 else {
                throw KeylessError(.io, "Cannot sync \(temp): \(errnoString()).", hint: "Check the disk.")
            }
        }
        guard rename(temp, path) == 0 else {
            throw KeylessError(
                .io, "Cannot replace \(path): \(errnoString()).", hint: "Check that \(directory) is writable.")
        }
        ok = true
        let dfd = open(directory, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Removes a file; a missing file is not an error.
    public static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT {
            throw KeylessError(
                .io, "Cannot remove \(path): \(errnoString()).", hint: "Check the directory's permissions.")
        }
    }

    /// The names of the entries in a directory (empty when it does not exist).
    public static func list(_ directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether a file exists at `path`.
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The directory part of a path.
    public static func parentDirectory(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The last component of a path.
    public static func baseName(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// The text of the current `errno`.
    public static func errnoString() -> String { String(cString: strerror(errno)) }

    static func octal(_ mode: mode_t) -> String { "0" + String(mode, radix: 8) }
}

/// An exclusive advisory lock on a file (`flock`), released when the value is released or `unlock()` is called.
public final class FileLock: @unchecked Sendable {
    // @unchecked: the descriptor is only touched by the owner that took the lock; unlock is idempotent.
    private var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Takes the lock, trying immediately; `nil` when another process holds it.
    public static func tryLock(_ path: String) throws -> FileLock? {
        let fd = try openLockFile(path)
        if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(fd: fd) }
        close(fd)
        return nil
    }

    /// Takes the lock, waiting up to `timeout` seconds; calls `onWait` once if it has to wait.
    public static func lock(_ path: String, timeout: Double, onWait: () -> Void = {}) throws -> FileLock {
        if let lock = try tryLock(path) { return lock }
        onWait()
        let fd = try openLockFile(path)
        let deadline = monotonicSeconds() + timeout
        while monotonicSeconds() < deadline {
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return FileLock(fd: fd) }
            usleep(5_000)
        }
        close(fd)
        throw KeylessError(
            .lockTimeout,
            "Another keyless process has held \(path) for more than \(timeout < 10 ? String(Double(Int(timeout * 10)) / 10) : String(Int(timeout))) s.",
            hint: "Finish or cancel the other login (look for a browser tab or a prompt), then retry.")
    }

    private static func openLockFile(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw KeylessError(
                .io, "Cannot open lock file \(path): \(Files.errnoString()).",
                hint: "Check the directory's permissions.")
        }
        return fd
    }

    /// Releases the lock.
    public func unlock() {
        if fd >= 0 { flock(fd, LOCK_UN); close(fd); fd = -1 }
    }

    deinit { unlock() }
}

/// Seconds from a monotonic clock, for timeouts.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
