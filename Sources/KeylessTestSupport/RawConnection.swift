import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plain TCP connection to a test server, for what no HTTP client does: stay silent, send half a request, or send
/// headers an HTTP client would fix (a rebound Host, two Hosts).
public enum RawConnection {
    /// Connects to 127.0.0.1:`port`, sends `bytes` (maybe nothing, maybe half a request head), then waits up to
    /// `within` seconds for the server to close the connection. Returns whether it did (read gave end of file or a reset).
    public static func serverCloses(port: Int, after bytes: [UInt8] = [], within: TimeInterval) throws -> Bool {
        let fd = try connected(port: port, sending: bytes)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let deadline = Date().addingTimeInterval(within)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { continue }
                return errno == ECONNRESET
            }
            // The server answered something (an error page for a half request) and may close after it: keep reading.
        }
        return false
    }

    /// Sends `request` (raw HTTP/1.1 text, which should say `Connection: close`) and returns the status code and body,
    /// reading until the server closes or, when given, `timeout` seconds have passed (status 0 when nothing came).
    public static func exchange(_ request: String, port: Int, timeout: TimeInterval? = nil) throws -> (
        status: Int, body: String
    ) {
        let fd = try connected(port: port, sending: Array(request.utf8))
        defer { close(fd) }
        if timeout != nil {
            var wait = timeval(tv_sec: 0, tv_usec: 200_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        }
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while deadline.map({ Date() < $0 }) ?? true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { continue }
            if count <= 0 { break }
            answer += buffer[0..<count]
        }
        let text = String(decoding: answer, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    /// A connection to 127.0.0.1:`port` that sends nothing (a silent client); the caller closes it.
    public static func silent(port: Int) throws -> Int32 { try connected(port: port, sending: []) }

    /// A socket connected to 127.0.0.1:`port` that has sent `bytes`; the caller closes it.
    static func connected(port: Int, sending bytes: [UInt8]) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestSupportError("socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TestSupportError("cannot connect to 127.0.0.1:\(port): \(reason)")
        }
        if !bytes.isEmpty, bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) != bytes.count {
            close(fd)
            throw TestSupportError("cannot send to 127.0.0.1:\(port)")
        }
        return fd
    }
}
