import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A datagram socket bound where systemd's `NOTIFY_SOCKET` would be, so a test reads what a service tells systemd
/// (`READY=1`, `STATUS=…`, `STOPPING=1`). A path (removed when this is released) or `@name` (abstract namespace).
public final class NotifySocket: @unchecked Sendable {
    // @unchecked: the descriptor is only read from one test task.
    public let path: String
    let fd: Int32

    public init(path: String, mode: mode_t = 0o600) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket(AF_UNIX, SOCK_DGRAM): errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw TestSupportError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + bytes.count)
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard status == 0 else {
            let error = errno
            close(fd)
            throw TestSupportError("bind \(path): errno \(error)")
        }
        if !path.hasPrefix("@") { chmod(path, mode) }
    }

    /// The next datagram, or nil when none comes within `timeout` seconds.
    public func receive(timeout: TimeInterval = 5) -> String? {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
    }

    deinit {
        close(fd)
        if !path.hasPrefix("@") { unlink(path) }
    }
}
