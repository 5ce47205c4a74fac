import Foundation
import KeylessCore
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Base64url without padding, written out with Foundation: independent of KeylessCore's encoder, which tests check.
public func base64url(_ bytes: some DataProtocol) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// The transport failure a stub throws to play an unreachable server.
public struct ConnectionRefused: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "connection refused (stub)" }
}

/// Runs `body` and returns the `KeylessError` it throws; records an issue when it throws something else or nothing.
@discardableResult
public func keylessError<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async
    -> KeylessError?
{
    do {
        let value = try await body()
        Issue.record("expected a KeylessError, got \(value)", sourceLocation: sourceLocation)
        return nil
    } catch let error as KeylessError {
        return error
    } catch {
        Issue.record("expected a KeylessError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The permission bits of `path`, or nil when it cannot be stat'ed.
public func permissions(_ path: String) -> mode_t? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o777
}

/// A fresh directory made with mkdtemp for one test; `remove()` deletes it and everything in it.
public struct Scratch: Sendable {
    /// The directory.
    public let path: String

    /// A new directory under the temporary directory, named `keyless-<label>-XXXXXX`.
    public init(_ label: String = "test") throws {
        var template = Array(
            (NSTemporaryDirectory() as NSString).appendingPathComponent("keyless-\(label)-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw KeylessError(.io, "mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    /// `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Deletes the directory, first making it writable again if a test left it read-only.
    public func remove() {
        chmod(path, 0o700)
        try? FileManager.default.removeItem(atPath: path)
    }
}
