import NIOCore
import NIOPosix
import NIOSSL
import NIOTLS

/// Where a directory is and how to reach it: `ldap://host[:389]`, `ldaps://host[:636]`, and for `ldap://` optionally
/// StartTLS. The certificate is always verified (against `caFile` or the system's roots) and must name the host.
public struct LDAPEndpoint: Sendable, Equatable {
    public enum Security: String, Sendable {
        /// No TLS: a password would cross the network in clear; only for loopback tests and trusted links.
        case none
        /// `ldap://` upgraded with StartTLS before anything else is sent.
        case startTLS
        /// `ldaps://`: TLS from the first byte.
        case ldaps
    }

    public var host: String
    public var port: Int
    public var security: Security
    /// PEM file of the certificate authorities to trust (nil: the system's).
    public var caFile: String?

    public init(host: String, port: Int, security: Security, caFile: String? = nil) {
        self.host = host
        self.port = port
        self.security = security
        self.caFile = caFile
    }

    /// `ldap://host:port` or `ldaps://host:port` (default ports 389 and 636); `startTLS` applies to `ldap://` only.
    public init(url: String, startTLS: Bool = false, caFile: String? = nil) throws {
        let scheme: Security
        var rest: Substring
        if url.lowercased().hasPrefix("ldaps://") {
            scheme = .ldaps
            rest = url.dropFirst("ldaps://".count)
        } else if url.lowercased().hasPrefix("ldap://") {
            scheme = startTLS ? .startTLS : .none
            rest = url.dropFirst("ldap://".count)
        } else {
            throw LDAPError(.badURL, "\(url) is not an ldap:// or ldaps:// URL")
        }
        if scheme == .ldaps, startTLS {
            throw LDAPError(.badURL, "\(url): StartTLS is for ldap:// URLs; ldaps:// is TLS already")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/"), !rest.contains("?"), !rest.contains("@") else {
            throw LDAPError(.badURL, "\(url): give only the scheme, host and port (the base DN is its own setting)")
        }
        var host = rest
        var port = scheme == .ldaps ? 636 : 389
        if rest.hasPrefix("[") {  // [::1]:389
            guard let close = rest.firstIndex(of: "]") else { throw LDAPError(.badURL, "\(url): unclosed '['") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Int(after.dropFirst()) else {
                    throw LDAPError(.badURL, "\(url): the port is not a number")
                }
                port = value
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            guard let value = Int(rest[rest.index(after: colon)...]) else {
                throw LDAPError(.badURL, "\(url): the port is not a number")
            }
            port = value
        }
        guard !host.isEmpty else { throw LDAPError(.badURL, "\(url) names no host") }
        guard (1...65535).contains(port) else { throw LDAPError(.badURL, "\(url): port \(port) is out of range") }
        self.init(host: String(host), port: port, security: scheme, caFile: caFile)
    }

    public var url: String { "\(security == .ldaps ? "ldaps" : "ldap")://\(host):\(port)" }
}

/// One connection to a directory: requests answered in order of their message ids, each with a timeout; a
/// connection that timed out or saw anything malformed is closed and fails every request still waiting.
public final class LDAPConnection: Sendable {
    /// Messages larger than this are refused: a directory's answer to a login needs a few kilobytes.
    public static let maximumMessageBytes = 4 * 1024 * 1024

    let channel: Channel
    let handler: NIOLoopBound<LDAPClientHandler>
    public let endpoint: LDAPEndpoint
    let timeout: TimeAmount

    init(channel: Channel, handler: NIOLoopBound<LDAPClientHandler>, endpoint: LDAPEndpoint, timeout: TimeAmount) {
        self.channel = channel
        self.handler = handler
        self.endpoint = endpoint
        self.timeout = timeout
    }

    /// Connects (and with StartTLS or LDAPS, completes the TLS handshake) within `timeout`; every later request has
    /// the same timeout.
    public static func connect(
        to endpoint: LDAPEndpoint, timeout: TimeAmount = .seconds(5),
        group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> LDAPConnection {
        let tlsContext: NIOSSLContext? =
            endpoint.security == .none ? nil : try makeTLSContext(caFile: endpoint.caFile)
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        } catch ChannelError.connectTimeout {
            throw LDAPError(.timeout, "the directory at \(endpoint.url) did not accept a connection within \(timeout)")
        } catch {
            throw LDAPError(.unreachable, "cannot reach the directory at \(endpoint.url): \(error)")
        }
        let handler: NIOLoopBound<LDAPClientHandler>
        do {
            handler = try await channel.eventLoop.submit {
                let sync = channel.pipeline.syncOperations
                if endpoint.security == .ldaps, let tlsContext {
                    try sync.addHandler(try makeTLSHandler(tlsContext, host: endpoint.host))
                }
                try sync.addHandler(ByteToMessageHandler(LDAPFrameDecoder(maximumBytes: maximumMessageBytes)))
                let handler = LDAPClientHandler()
                try sync.addHandler(handler)
                return NIOLoopBound(handler, eventLoop: channel.eventLoop)
            }.get()
        } catch {
            try? await channel.close()
            throw error as? LDAPError ?? LDAPError(.tls, "TLS to \(endpoint.url) cannot start: \(error)")
        }
        let connection = LDAPConnection(channel: channel, handler: handler, endpoint: endpoint, timeout: timeout)
        do {
            if endpoint.security == .startTLS, let tlsContext {
                try await connection.startTLS(tlsContext)
            } else if endpoint.security == .ldaps {
                try await connection.waitForHandshake()
            }
        } catch {
            await connection.close()
            throw error
        }
        return connection
    }

    static func makeTLSContext(caFile: String?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        if let caFile {
            do {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw LDAPError(.tls, "cannot read the directory's CA file \(caFile): \(error)")
            }
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw LDAPError(.tls, "cannot set up TLS for the directory: \(error)")
        }
    }

    /// The TLS handler; an IP address is not sent as SNI (RFC 6066 §3) and is checked against the certificate's IP
    /// addresses instead.
    static func makeTLSHandler(_ context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host)
    }

    /// StartTLS (RFC 4511 §4.14): the extended request in clear, then the TLS handler first in the pipeline and its
    /// handshake, before anything else is sent.
    func startTLS(_ context: NIOSSLContext) async throws {
        let result = try await request(.startTLS).terminalResult
        guard result.code == LDAPResult.success else {
            throw LDAPError(
                .tls,
                "the directory at \(endpoint.url) refused StartTLS (result \(result.code)\(result.diagnosticMessage.isEmpty ? "" : ": " + result.diagnosticMessage))",
                resultCode: result.code, diagnosticMessage: result.diagnosticMessage)
        }
        let host = endpoint.host
        try await channel.eventLoop.submit { [channel] in
            try channel.pipeline.syncOperations.addHandler(
                try Self.makeTLSHandler(context, host: host), position: .first)
        }.get()
        try await waitForHandshake()
    }

    /// Sends nothing until the TLS handshake has finished (or failed, or timed out).
    func waitForHandshake() async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let handler = self.handler
        let url = endpoint.url
        let timeout = self.timeout
        channel.eventLoop.execute { [channel] in
            if handler.value.handshakeCompleted { return promise.succeed() }
            guard channel.isActive else {
                return promise.fail(
                    LDAPError(.tls, "the directory at \(url) closed the connection during the TLS handshake"))
            }
            handler.value.handshake = promise
            let deadline = channel.eventLoop.scheduleTask(in: timeout) {
                promise.fail(LDAPError(.timeout, "the TLS handshake with \(url) did not finish within \(timeout)"))
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in deadline.cancel() }
        }
        do {
            try await promise.futureResult.get()
        } catch let error as LDAPError {
            throw error
        } catch {
            throw LDAPError(.tls, "TLS with the directory at \(url) failed: \(error)")
        }
    }

    /// A simple bind. Result 49 (invalid credentials) and every other failure throw `.result` with the server's code
    /// and message; an empty password is refused before anything is sent (LDAP would take it as an anonymous bind).
    public func bind(name: String, password: String) async throws {
        guard !password.isEmpty else {
            throw LDAPError(.refused, "an empty password is an anonymous bind in LDAP, never a login")
        }
        let result = try await request(.simpleBind(name: name, password: Array(password.utf8))).terminalResult
        guard result.code == LDAPResult.success else {
            throw LDAPError(
                .result, "the directory refused the bind as \(name) (result \(result.code))",
                resultCode: result.code, diagnosticMessage: result.diagnosticMessage)
        }
    }

    /// The entries a search returns (references are skipped: keyless never chases them).
    public func search(_ search: LDAPSearch) async throws -> [LDAPEntry] {
        let responses = try await request(.search(search))
        let result = responses.terminalResult
        guard result.code == LDAPResult.success || result.code == LDAPResult.noSuchObject else {
            throw LDAPError(
                .result, "the directory refused a search under \(search.base) (result \(result.code))",
                resultCode: result.code, diagnosticMessage: result.diagnosticMessage)
        }
        return responses.compactMap { if case .searchEntry(let entry) = $0 { entry } else { nil } }
    }

    /// Sends an unbind (no answer comes) and closes the connection.
    public func close() async {
        let handler = self.handler
        try? await channel.eventLoop.flatSubmit { [channel] in
            guard channel.isActive, let bytes = try? LDAPRequest.unbind.encoded(messageID: handler.value.allocateID())
            else { return channel.eventLoop.makeSucceededVoidFuture() }
            return channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        }.get()
        try? await channel.close()
    }

    /// Whether the connection can still carry requests.
    public var isActive: Bool { channel.isActive }

    /// Sends `request` and returns every response up to its final one.
    func request(_ request: LDAPRequest) async throws -> [LDAPResponse] {
        let promise = channel.eventLoop.makePromise(of: [LDAPResponse].self)
        let handler = self.handler
        let timeout = self.timeout
        let url = endpoint.url
        channel.eventLoop.execute { [channel] in
            let id = handler.value.allocateID()
            let bytes: [UInt8]
            do { bytes = try request.encoded(messageID: id) } catch {
                promise.fail(LDAPError.malformed("cannot encode the request: \(error)"))
                return
            }
            handler.value.pending[id] = LDAPClientHandler.Pending(promise: promise)
            let deadline = channel.eventLoop.scheduleTask(in: timeout) {
                // A directory that stops answering gets its connection closed: a late answer must not be taken for
                // the next request's.
                handler.value.fail(
                    id, LDAPError(.timeout, "the directory at \(url) did not answer within \(timeout)"))
                channel.close(promise: nil)
            }
            promise.futureResult.whenComplete { _ in deadline.cancel() }
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenFailure { error in
                handler.value.fail(id, LDAPError(.closed, "the connection to \(url) closed: \(error)"))
            }
        }
        return try await promise.futureResult.get()
    }
}

extension [LDAPResponse] {
    /// The result of the final response (bind, search done, extended).
    var terminalResult: LDAPResult {
        switch last {
        case .bind(let result), .searchDone(let result), .extended(let result, _, _): result
        default: LDAPResult(code: -1, diagnosticMessage: "no final response")
        }
    }
}

/// Splits the byte stream into LDAPMessages.
struct LDAPFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximumBytes: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = try LDAPFrame.length(of: buffer.readableBytesView, maximum: maximumBytes) else {
            return .needMoreData
        }
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: length)!))
        return .continue
    }
}

/// How long the next LDAPMessage is, from its header.
enum LDAPFrame {
    /// The whole message's length when `bytes` starts with a complete header; nil when more bytes are needed.
    static func length<Bytes: Collection>(of bytes: Bytes, maximum: Int) throws -> Int? where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        guard let tag = iterator.next() else { return nil }
        guard tag == 0x30 else { throw LDAPError.malformed("a message that does not start with a SEQUENCE") }
        guard let first = iterator.next() else { return nil }
        var header = 2
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7f)
            guard count > 0 else { throw LDAPError.malformed("an indefinite length, which LDAP forbids") }
            guard count <= 4 else { throw LDAPError.malformed("a length of \(count) bytes") }
            for _ in 0..<count {
                guard let byte = iterator.next() else { return nil }
                length = length << 8 | Int(byte)
            }
            header += count
        }
        guard length <= maximum - header else {
            throw LDAPError.malformed("a message of \(length) bytes, more than the \(maximum) allowed")
        }
        return bytes.count >= header + length ? header + length : nil
    }
}

/// Matches answers to requests by message id.
final class LDAPClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    struct Pending {
        let promise: EventLoopPromise<[LDAPResponse]>
        var responses: [LDAPResponse] = []
        var bytes = 0
    }

    /// One answer (a search's entries together) may hold this many messages and bytes at most: a login reads one
    /// person and their groups, and a directory that sends without end must not fill the provider's memory before the
    /// timeout.
    static let maximumResponses = 10_000
    static let maximumAnswerBytes = 32 * 1024 * 1024

    var pending: [Int32: Pending] = [:]
    var lastID: Int32 = 0
    var handshake: EventLoopPromise<Void>?
    var handshakeCompleted = false

    func allocateID() -> Int32 {
        lastID = lastID == Int32.max ? 1 : lastID + 1
        return lastID
    }

    func fail(_ id: Int32, _ error: Error) {
        pending.removeValue(forKey: id)?.promise.fail(error)
    }

    func failAll(_ error: Error) {
        let waiting = pending
        pending = [:]
        for entry in waiting.values { entry.promise.fail(error) }
        handshake?.fail(error)
        handshake = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let decoded: (messageID: Int32, response: LDAPResponse)
        do {
            decoded = try LDAPResponse.decode(ArraySlice(buffer.readableBytesView))
        } catch {
            failAll(error)
            context.close(promise: nil)
            return
        }
        guard decoded.messageID != 0 else {
            // An unsolicited notification (RFC 4511 §4.4): the server is about to close the connection.
            failAll(LDAPError(.closed, "the directory ended the connection (notice of disconnection)"))
            context.close(promise: nil)
            return
        }
        guard var entry = pending[decoded.messageID] else { return }  // an answer to a request that timed out
        entry.responses.append(decoded.response)
        entry.bytes += buffer.readableBytes
        guard entry.responses.count <= Self.maximumResponses, entry.bytes <= Self.maximumAnswerBytes else {
            fail(
                decoded.messageID,
                LDAPError(
                    .malformed,
                    "the directory sent more than \(Self.maximumResponses) entries or \(Self.maximumAnswerBytes / 1_048_576) MiB for one request; narrow the search (its base or filter)"
                ))
            context.close(promise: nil)
            return
        }
        switch decoded.response {
        case .searchEntry, .searchReference:
            pending[decoded.messageID] = entry
        case .bind, .searchDone, .extended:
            pending.removeValue(forKey: decoded.messageID)
            entry.promise.succeed(entry.responses)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            handshakeCompleted = true
            handshake?.succeed()
            handshake = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(LDAPError(.closed, "the directory closed the connection"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        let failure: LDAPError
        switch error {
        case let error as LDAPError: failure = error
        case is NIOSSLError, is BoringSSLError, is NIOSSLExtraError:
            failure = LDAPError(.tls, "TLS with the directory failed: \(error)")
        default: failure = LDAPError(.closed, "the connection to the directory failed: \(error)")
        }
        failAll(failure)
        context.close(promise: nil)
    }
}
