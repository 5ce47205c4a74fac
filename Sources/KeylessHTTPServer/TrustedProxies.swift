#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Hummingbird
import KeylessCore
import NIOCore

/// The load balancers and proxies whose `X-Forwarded-For` is believed (both servers). Behind a proxy every
/// connection comes from the proxy's address, so per-address throttles and the audit log need the client's address
/// from the header; from anyone else the header is ignored, since a client can write anything in it.
public struct TrustedProxies: Sendable, Equatable {
    struct Network: Sendable, Equatable {
        var bytes: [UInt8]
        var prefix: Int

        func contains(_ address: [UInt8]) -> Bool {
            guard address.count == bytes.count else { return false }
            var bits = prefix
            for index in 0..<bytes.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
                if address[index] & mask != bytes[index] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    let networks: [Network]

    /// No proxy is trusted: the TCP peer is the client.
    public static let none = TrustedProxies(networks: [])

    init(networks: [Network]) { self.networks = networks }

    /// Proxies given as addresses or CIDR blocks (`10.0.0.0/8`, `127.0.0.1`, `fd00::/8`); `what` names the setting in
    /// errors.
    public init(_ specs: [String], what: String) throws {
        networks = try specs.map { spec in
            let parts = spec.split(separator: "/", maxSplits: 1).map(String.init)
            guard let bytes = Self.parse(parts[0]) else {
                throw KeylessError(
                    .usage, "\(what): '\(spec)' is not an IP address or CIDR block.",
                    hint: "Write it as 10.0.0.5, 10.0.0.0/8 or fd00::/8.")
            }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...(bytes.count * 8)).contains(prefix) else {
                throw KeylessError(
                    .usage, "\(what): '\(spec)' has a prefix length outside 0...\(bytes.count * 8).",
                    hint: "Write it as 10.0.0.0/8.")
            }
            return Network(bytes: bytes, prefix: prefix)
        }
    }

    /// The client's address: the TCP peer's, unless the peer is a trusted proxy; then the right-most address of
    /// `X-Forwarded-For` (every header line, in order) that is not itself a trusted proxy. Entries that are not IP
    /// addresses end the walk: what lies left of them cannot be trusted either.
    public func clientAddress(peer: String, forwardedFor: [String]) -> String {
        guard !networks.isEmpty, isTrusted(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        var client = peer
        for hop in hops.reversed() {
            guard Self.parse(hop) != nil else { break }
            client = hop
            if !isTrusted(hop) { break }
        }
        return client
    }

    func isTrusted(_ address: String) -> Bool {
        guard let bytes = Self.parse(address) else { return false }
        return networks.contains { $0.contains(bytes) }
    }

    /// The bytes of an IPv4 or IPv6 address in text (IPv4-mapped IPv6 addresses as IPv4).
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
            return Array(bytes[12...])
        }
        return bytes
    }
}

/// A request context whose client address may come from a trusted proxy's `X-Forwarded-For`.
public protocol ForwardedClientContext: RequestContext {
    /// The address `ClientAddressMiddleware` found, when the TCP peer is a trusted proxy.
    var forwardedPeer: String? { get set }
    /// The TCP peer.
    var remoteAddress: SocketAddress? { get }
}

/// Sets the context's client address from `X-Forwarded-For` when the TCP peer is a trusted proxy.
public struct ClientAddressMiddleware<Context: ForwardedClientContext>: RouterMiddleware {
    let proxies: TrustedProxies

    public init(proxies: TrustedProxies) { self.proxies = proxies }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard !proxies.networks.isEmpty, let peer = context.remoteAddress?.ipAddress else {
            return try await next(request, context)
        }
        var context = context
        let forwarded = request.headers[values: .init("X-Forwarded-For")!]
        let client = proxies.clientAddress(peer: peer, forwardedFor: forwarded)
        if client != peer { context.forwardedPeer = client }
        return try await next(request, context)
    }
}
