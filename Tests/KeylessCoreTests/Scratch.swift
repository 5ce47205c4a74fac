import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A fresh directory made with mkdtemp for one test; `remove()` deletes it and everything in it.
struct Scratch {
    let path: String

    init() throws {
        var template = Array(
            (NSTemporaryDirectory() as NSString).appendingPathComponent("keyless-core-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ScratchError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// `name` inside the directory.
    func file(_ name: String) -> String { path + "/" + name }

    func remove() {
        // A test may have left the directory read-only; give it back so it can be removed.
        chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }
}

struct ScratchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The permission bits of `path`, or nil when it cannot be stat'ed.
func permissions(_ path: String) -> mode_t? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o777
}

/// The contents of `path` read with Foundation, independently of the code under test.
func contents(_ path: String) -> [UInt8]? {
    FileManager.default.contents(atPath: path).map(Array.init)
}

/// Writes `text` to `path` with Foundation and sets its mode.
func plant(_ text: String, at path: String, mode: mode_t) throws {
    guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) else {
        throw ScratchError("cannot create \(path)")
    }
    guard chmod(path, mode) == 0 else { throw ScratchError("chmod \(path) failed") }
}

/// Whether the tests run as root, for whom directory permissions do not stop writes.
let runningAsRoot = geteuid() == 0
