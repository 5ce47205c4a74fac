import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failure in a test partner (a server that would not start, an unexpected HTTP answer); the message says what to check.
public struct TestSupportError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, with the log or answer that shows why.
    public let message: String

    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

/// The directory holding the package's `Package.swift` (found by walking up from this source file, then from the working directory).
public func repositoryRoot() -> String {
    func walkUp(from start: String) -> String? {
        var directory = URL(fileURLWithPath: start).standardizedFileURL
        while true {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path) {
                return directory.path
            }
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { return nil }
            directory = parent
        }
    }
    let thisFile = "\(#filePath)"
    return walkUp(from: (thisFile as NSString).deletingLastPathComponent)
        ?? walkUp(from: FileManager.default.currentDirectoryPath)
        ?? FileManager.default.currentDirectoryPath
}

/// A binary of this package (`keyless`, `keyless-cli`) as built for the running tests: in `KEYLESS_BIN_DIR` when that is
/// set (for example to `$(swift build --show-bin-path)`), else beside the running test executable, since `swift test`
/// runs it from the build's bin directory; so a `--scratch-path` or `-c release` build is found as well as the default.
/// `environment` and `executable` are the process's own unless a test passes others.
public func builtBinary(
    _ name: String, environment: [String: String] = ProcessInfo.processInfo.environment,
    executable: String? = nil
) throws -> String {
    if let directory = environment["KEYLESS_BIN_DIR"], !directory.isEmpty {
        let path = (directory as NSString).appendingPathComponent(name)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError(
                "KEYLESS_BIN_DIR is \(directory), which holds no executable \(name); build it there or unset KEYLESS_BIN_DIR"
            )
        }
        return path
    }
    let running =
        executable ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]
    let path = ((running as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: path) else {
        throw TestSupportError(
            "\(name) is not built beside the tests (\(path)); run `swift build` first (scripts/test does), "
                + "or set KEYLESS_BIN_DIR to the directory that holds it")
    }
    return path
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read the port, close).
public func freePort() throws -> Int {
    try boundPort(0, keep: false)
}

/// A TCP port on 127.0.0.1, free now, below the kernel's ephemeral range, for a port chosen long before it is bound
/// (a redirect URI registered with a provider before the login). A port that `freePort()` gives is in the ephemeral
/// range, so until it is bound the kernel may hand it to any outgoing connection or `bind(0)` on the machine (seen in
/// CI: "Address already in use" at the login); a port below the range only goes to a program that asks for it by number.
public func freeFixedPort() throws -> Int {
    let range = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? ""
    let low = range.split(whereSeparator: \.isWhitespace).first.flatMap { Int($0) } ?? 32768
    let ports = 20000..<max(20001, min(low, 32768))
    for _ in 0..<500 {
        let port = Int.random(in: ports)
        if (try? boundPort(port, keep: false)) != nil { return port }
    }
    throw TestSupportError("no free port in \(ports.lowerBound)-\(ports.upperBound - 1) on 127.0.0.1 after 500 tries")
}

/// A TCP port on 127.0.0.1 that refuses connections for the rest of the process: a socket bound to it is kept open and
/// never listens, so no partner another test starts later can take the port (a port that was merely free a moment ago
/// can be, and a "down" server then answers).
public func closedPort() throws -> Int {
    try boundPort(0, keep: true)
}

/// Binds a TCP socket to 127.0.0.1:`port` (0: the kernel picks) and returns the port; the socket is closed unless `keep`.
private func boundPort(_ port: Int, keep: Bool) throws -> Int {
    #if os(Linux)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { throw TestSupportError("socket() failed: \(String(cString: strerror(errno)))") }
    var kept = false
    defer { if !kept { close(fd) } }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        throw TestSupportError("bind(127.0.0.1:\(port)) failed: \(String(cString: strerror(errno)))")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestSupportError("getsockname failed: \(String(cString: strerror(errno)))") }
    kept = keep
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A fresh private temporary directory (mode 0700) whose name starts with `prefix`.
public func makeTemporaryDirectory(prefix: String = "keyless-test") throws -> String {
    var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("\(prefix)-XXXXXX").utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw TestSupportError("mkdtemp failed: \(String(cString: strerror(errno)))")
    }
    return String(cString: made)
}

/// Whether partner files (server directories, logs) should survive the test, for debugging: KEYLESS_KEEP_PARTNER_FILES is set.
var keepPartnerFiles: Bool {
    !(ProcessInfo.processInfo.environment["KEYLESS_KEEP_PARTNER_FILES"] ?? "").isEmpty
}

/// What one attempt to start a partner on a port came to.
public enum PartnerStart<Partner> {
    case started(Partner)
    /// It did not start: why (with its log), and whether it says the port was taken (worth another port).
    case failed(String, portTaken: Bool)
}

/// Every partner launcher's loop: `attempt(port)` starts the partner on `port` and says how it went. A port found free
/// can be taken before the partner binds it, so a failure that says so is tried again on a new free port, three tries
/// in all. `first` is the port of the first try (a caller's fixed port, or one already written into a configuration);
/// with `otherPorts: false` there is no second.
public func startOnFreePort<Partner>(
    first: Int? = nil, otherPorts: Bool = true, _ attempt: (Int) async throws -> PartnerStart<Partner>
) async throws -> Partner {
    var lastFailure = ""
    for number in 1...3 {
        let port = try (number == 1 ? first : nil) ?? freePort()
        switch try await attempt(port) {
        case .started(let partner): return partner
        case .failed(let why, let portTaken):
            lastFailure = why
            guard portTaken, otherPorts else { throw TestSupportError(lastFailure) }
        }
    }
    throw TestSupportError(lastFailure)
}

/// The YAML block after `<!-- readme-example: NAME -->` in README.md, so that tests run what the README shows.
public func readmeExample(_ name: String) throws -> String {
    let readme = try String(contentsOfFile: repositoryRoot() + "/README.md", encoding: .utf8)
    guard let marker = readme.range(of: "<!-- readme-example: \(name) -->") else {
        throw TestSupportError("README.md lost the example \(name) (<!-- readme-example: \(name) -->)")
    }
    let rest = readme[marker.upperBound...]
    guard let start = rest.range(of: "```yaml\n"), let end = rest[start.upperBound...].range(of: "```") else {
        throw TestSupportError("the README example \(name) is not followed by a ```yaml block")
    }
    return String(rest[start.upperBound..<end.lowerBound])
}
