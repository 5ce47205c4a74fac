import AsyncHTTPClient
import Foundation
import KeylessCore
import NIOCore
import NIOHTTP1

/// An HTTP response: status, headers and the whole body.
public struct HTTPResponseData: Sendable {
    /// The status code.
    public var status: Int
    /// The headers (lower-cased names).
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// Sends HTTP requests; one method so tests can substitute a closure.
public protocol HTTPTransport: Sendable {
    /// Sends `method url` with `headers` and `body` and returns the whole response.
    func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPResponseData
}

/// The AsyncHTTPClient transport used by the CLI. Connection failures surface as plain errors;
/// callers map them to `idpUnreachable` or `stsUnreachable`.
public struct AsyncHTTPTransport: HTTPTransport {
    let client: HTTPClient
    let timeout: TimeAmount

    /// A process-wide client that fails fast when a server is down: AsyncHTTPClient's default retries a
    /// refused connection until the request's deadline, which turns "STS is down" into a 30 s hang.
    public static let defaultClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        // Lives as long as the process; never deinitialised, so it needs no shutdown.
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// The same, but a redirect is answered as it is, never followed: for senders whose requests must reach only the URL
    /// they were configured with (the access server's signed webhook).
    public static let clientWithoutRedirects: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(30))
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Uses the process-wide client with a per-request timeout.
    public init(client: HTTPClient = AsyncHTTPTransport.defaultClient, timeout: TimeAmount = .seconds(30)) {
        self.client = client
        self.timeout = timeout
    }

    public func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws
        -> HTTPResponseData
    {
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 4 << 20)
        var flat: [String: String] = [:]
        for header in response.headers { flat[header.name.lowercased()] = header.value }
        return HTTPResponseData(status: Int(response.status.code), headers: flat, body: Array(buffer.readableBytesView))
    }
}

/// `application/x-www-form-urlencoded` encoding (RFC 6749 appendix B).
public enum FormEncoding {
    static let unreserved: CharacterSet = {
        var set = CharacterSet.alphanumerics
        set.insert(charactersIn: "-._~")
        return set
    }()

    /// Percent-encodes one value.
    public static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }

    /// Encodes pairs in order.
    public static func encode(_ pairs: [(String, String)]) -> String {
        pairs.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&")
    }

    /// Decodes a query or form body; later duplicates win.
    public static func decode(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for part in text.split(separator: "&") {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard let first = pair.first, let name = FormText.decode(first) else { continue }
            result[name] = pair.count > 1 ? (FormText.decode(pair[1]) ?? String(pair[1])) : ""
        }
        return result
    }
}
