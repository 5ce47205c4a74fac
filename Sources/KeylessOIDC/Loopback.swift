import Foundation
import KeylessCore
import KeylessHTTP
import NIOCore
import NIOHTTP1
import NIOPosix

/// The loopback redirect listener of a native-app login (RFC 8252 §7.3): 127.0.0.1 only, one path,
/// answers the browser with a page that says the person can close the tab.
public final class LoopbackServer: Sendable {
    /// The port it listens on.
    public let port: Int
    /// The redirect URI to register and send.
    public let redirectURI: String
    let channel: any Channel
    let callbacks: AsyncStream<[String: String]>

    private init(port: Int, redirectURI: String, channel: any Channel, callbacks: AsyncStream<[String: String]>) {
        self.port = port
        self.redirectURI = redirectURI
        self.channel = channel
        self.callbacks = callbacks
    }

    /// Listens on 127.0.0.1:`port` (0 picks a free port); `expectedState` decides which page the browser sees.
    public static func start(port: Int, path: String = "/callback", expectedState: String) async throws
        -> LoopbackServer
    {
        let (stream, continuation) = AsyncStream<[String: String]>.makeStream()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(
                        CallbackHandler(path: path, expectedState: expectedState, continuation: continuation))
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
        } catch {
            throw KeylessError(
                .loginFailed, "Cannot listen on 127.0.0.1:\(port) for the login redirect: \(error).",
                hint: port == 0
                    ? "Check that loopback networking works."
                    : "Another program uses port \(port); close it or choose another --redirect-port that the identity provider allows."
            )
        }
        let actual = channel.localAddress?.port ?? port
        return LoopbackServer(
            port: actual, redirectURI: "http://127.0.0.1:\(actual)\(path)", channel: channel, callbacks: stream)
    }

    /// The query parameters of the first request to the callback path that carries the expected `state`.
    public func nextCallback() async -> [String: String]? {
        for await parameters in callbacks { return parameters }
        return nil
    }

    /// Stops listening.
    public func stop() async {
        try? await channel.close()
    }
}

final class CallbackHandler: ChannelInboundHandler, @unchecked Sendable {
    // @unchecked: NIO calls a handler only on its channel's event loop.
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let path: String
    let expectedState: String
    let continuation: AsyncStream<[String: String]>.Continuation
    var head: HTTPRequestHead?

    init(path: String, expectedState: String, continuation: AsyncStream<[String: String]>.Continuation) {
        self.path = path
        self.expectedState = expectedState
        self.continuation = continuation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead): head = requestHead
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context: context, head: head)
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let parts = head.uri.split(separator: "?", maxSplits: 1).map(String.init)
        let status: HTTPResponseStatus
        let page: String
        if head.method == .GET, parts.first == path {
            let query = FormEncoding.decode(parts.count > 1 ? parts[1] : "")
            if query["state"] != expectedState {
                // Any local process can reach this port: a callback that does not carry the login's state is
                // answered and dropped, and the login keeps waiting for the real one (RFC 8252 §8.9, RFC 6749 §10.12).
                status = .badRequest
                page = Self.page(
                    title: "Login not accepted",
                    body:
                        "This response does not belong to the login keyless started (the state does not match), so it was ignored. If you are logging in, finish in the tab keyless opened; otherwise run the login again."
                )
            } else if let error = query["error"] {
                status = .ok
                page = Self.page(
                    title: "Login failed",
                    body:
                        "The identity provider said: \(htmlEscaped(error)) \(htmlEscaped(query["error_description"] ?? "")). Return to the terminal for details."
                )
                continuation.yield(query)
            } else {
                status = .ok
                page = Self.page(
                    title: "You are logged in",
                    body: "keyless received your login. You can close this tab and return to the terminal.")
                continuation.yield(query)
            }
        } else {
            status = .notFound
            page = Self.page(title: "Not found", body: "keyless is waiting for a login on \(path).")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/html; charset=utf-8")
        headers.add(name: "Cache-Control", value: "no-store")
        headers.add(name: "Referrer-Policy", value: "no-referrer")
        headers.add(name: "Content-Security-Policy", value: "default-src 'none'; style-src 'unsafe-inline'")
        headers.add(name: "Connection", value: "close")
        headers.add(name: "Content-Length", value: "\(page.utf8.count)")
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
            promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: page)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    static func page(title: String, body: String) -> String {
        """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>keyless: \(title)</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}</style></head>
        <body><main><h1>\(title)</h1><p>\(body)</p></main></body></html>
        """
    }
}

/// Proof Key for Code Exchange (RFC 7636) with S256, and the random `state` and `nonce` values.
public struct PKCE: Sendable {
    /// The secret verifier (43 base64url characters).
    public let verifier: String
    /// `BASE64URL(SHA256(verifier))`.
    public let challenge: String

    /// A fresh random verifier and its challenge.
    public init() {
        verifier = randomToken()
        challenge = Base64URL.encode(Array(SHA256Digest.of(Array(verifier.utf8))))
    }
}
