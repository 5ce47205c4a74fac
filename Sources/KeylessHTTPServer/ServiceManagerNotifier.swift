import KeylessCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// systemd's readiness protocol (sd_notify(3)): with `Type=notify` in the unit, systemd sets `NOTIFY_SOCKET` and waits
/// for `READY=1` before it counts the service as started, so `systemctl start` returns, and units ordered after it
/// start, only once the listener is bound. Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.
public struct ServiceManagerNotifier: Sendable {
    /// The datagram socket systemd listens on: a path, or `@name` in the abstract namespace.
    public let socketPath: String?

    public init(environment: Environment) {
        socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Tells systemd the service is ready, with a one-line status for `systemctl status`.
    @discardableResult
    public func ready(status: String) -> Bool {
        send("READY=1\nSTATUS=" + Self.oneLine(status))
    }

    /// Tells systemd the service is shutting down.
    @discardableResult
    public func stopping() -> Bool { send("STOPPING=1") }

    /// Sends one notification datagram; false when there is no socket or it cannot be reached (never fatal).
    @discardableResult
    public func send(_ state: String) -> Bool {
        guard let socketPath else { return false }
        var path = Array(socketPath.utf8)
        if path.first == UInt8(ascii: "@") { path[0] = 0 }  // abstract namespace
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity, path.first == 0 || path.first == UInt8(ascii: "/") else { return false }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        #if os(Linux)
            let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
            let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let length = socklen_t(MemoryLayout.offset(of: \sockaddr_un.sun_path)! + path.count)
        let bytes = Array(state.utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, socketAddress, length) }
            }
        }
        return sent == bytes.count
    }

    /// A status value on one line: systemd's notification is newline-separated assignments.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
