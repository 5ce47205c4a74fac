import Foundation
import HTTPTypes
import Hummingbird
import KeylessHTTPServer
import KeylessCore
import KeylessIdP
import Logging
import NIOCore

/// The request context: Hummingbird's core storage plus the peer address, for throttling and logs.
public struct IdPRequestContext: RequestContext, RemoteAddressRequestContext, ForwardedClientContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer.
    public let remoteAddress: SocketAddress?
    /// The client behind a trusted proxy (`ClientAddressMiddleware`).
    public var forwardedPeer: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text: from a trusted proxy's X-Forwarded-For, else the TCP peer's ("unknown" when
    /// there is none).
    public var peer: String { forwardedPeer ?? remoteAddress?.ipAddress ?? "unknown" }
}

/// Form and query parsing that refuses repeated parameters (RFC 6749 §3.1).
enum FormFields {
    static func parse(_ text: Substring) throws -> [String: String] {
        var result: [String: String] = [:]
        var seen = Set<String>()
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = FormText.decode(parts[0]),
                let value = FormText.decode(parts.count > 1 ? parts[1] : Substring())
            else {
                throw OAuthError("invalid_request", "the request is not valid form encoding.")
            }
            guard seen.insert(name).inserted else {
                throw OAuthError("invalid_request", "parameter \(name) appears more than once.")
            }
            // RFC 6749 §3.1: parameters sent without a value are treated as omitted.
            if !value.isEmpty { result[name] = value }
        }
        return result
    }

    static func body(_ request: Request) async throws -> [String: String] {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/x-www-form-urlencoded")
        else {
            throw OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded.")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 64 * 1024)
        } catch {
            throw OAuthError("invalid_request", "the request body is larger than 64 KiB.", status: 413)
        }
        return try parse(Substring(String(buffer: buffer)))
    }

    static func query(_ request: Request) throws -> [String: String] {
        try parse(Substring(request.uri.query ?? ""))
    }
}

/// Response helpers.
enum Responses {
    /// `body` as JSON (keys sorted, slashes unescaped).
    static func json(_ body: some Encodable, status: HTTPResponse.Status = .ok, cache: String = "no-store") -> Response
    {
        // The bodies are strings, numbers, booleans and lists of them: encoding cannot fail.
        let data = (try? JSONWriter.bytes(body)) ?? Array("{}".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: cache],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// An HTML page; one that loads the passkey script gets the Content-Security-Policy that lets it run.
    static func html(_ page: String, status: HTTPResponse.Status = .ok) -> Response {
        var response = Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: page)))
        if page.contains(Pages.scriptTag) {
            response.headers[.contentSecurityPolicy] = PasskeyScript.contentSecurityPolicy
        }
        return response
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }
}

extension IdPRequestContext: RequestLogContext {
    public func logMetadata(for request: Request) -> Logger.Metadata { [:] }
}

/// The JSON endpoints throw OAuthError; this renders it (the shared SecurityHeadersMiddleware calls it): RFC 6749 §5.2's
/// JSON body, Retry-After when throttled, and on 401 a challenge: Basic for a client that authenticated with Basic or
/// failed client authentication, else Bearer (RFC 6750 §3.1: with no error code when the request carried no token).
extension OAuthError: HTTPResponseError {
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = Responses.json(code == "missing_token" ? ["error_description": detail] : json, status: status)
        if statusCode == 401 {
            let basic = request.headers[.authorization]?.lowercased().hasPrefix("basic ") ?? false
            response.headers[.wwwAuthenticate] =
                basic || code == "invalid_client"
                ? "Basic realm=\"keyless\""
                : code == "missing_token" ? "Bearer realm=\"keyless\"" : "Bearer realm=\"keyless\", error=\"\(code)\""
        }
        if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}
