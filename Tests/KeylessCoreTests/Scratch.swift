import Foundation
import KeylessTestFakes
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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

/// A failure of a test's own set-up (not of the code under test).
struct ScratchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
