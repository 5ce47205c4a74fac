import KeylessHTTP
import Synchronization

/// The one fake HTTP transport: answers come from a closure, and every request is recorded in order. Fakes of a whole
/// service (an STS, a provider's JWKS) are a closure over their own state.
public final class StubTransport: HTTPTransport, Sendable {
    /// A request as the transport was asked to send it.
    public struct Request: Sendable {
        public let method: String
        public let url: String
        public let headers: [String: String]
        public let body: String
    }

    public typealias Handler = @Sendable (Request) async throws -> HTTPResponseData

    private let handler: Handler
    private let seen = Mutex<[Request]>([])

    public init(_ handler: @escaping Handler) { self.handler = handler }

    /// Every request the same answer: `status` with `body`, or, when `unreachable`, `ConnectionRefused`.
    public convenience init(
        status: Int = 200, body: String = "", headers: [String: String] = [:], unreachable: Bool = false
    ) {
        self.init { _ in
            if unreachable { throw ConnectionRefused() }
            return HTTPResponseData(status: status, headers: headers, body: Array(body.utf8))
        }
    }

    /// The requests so far, in order.
    public var requests: [Request] { seen.withLock { $0 } }

    public func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws
        -> HTTPResponseData
    {
        let request = Request(
            method: method, url: url, headers: headers, body: String(decoding: body ?? [], as: UTF8.self))
        seen.withLock { $0.append(request) }
        return try await handler(request)
    }
}
