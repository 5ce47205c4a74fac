import Foundation
import KeylessCore
#if canImport(Glibc)
    import Glibc
#endif

/// Secrets and keys for workloads must be readable by their owner only.
public enum PrivateFile {
    /// The file's bytes; refuses (with the chmod that fixes it) a file others can read or write, or that is not ours.
    public static func read(_ path: String, what: String) throws -> [UInt8] {
        let bytes = try Files.read(path) { info in
            if info.st_uid != geteuid() {
                throw KeylessError(
                    .configInvalid, "The \(what) \(path) is not owned by you; keyless will not use it.",
                    hint: "Run: chown $(id -u) '\(path)' && chmod 600 '\(path)'")
            }
            if info.st_mode & 0o077 != 0 {
                throw KeylessError(
                    .configInvalid,
                    "The \(what) \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); others could read it, so keyless refuses it.",
                    hint: "Run: chmod 600 '\(path)'")
            }
        }
        guard let bytes else {
            throw KeylessError(
                .configInvalid, "The \(what) \(path) does not exist.", hint: "Check the path given to keyless.")
        }
        return bytes
    }
}
