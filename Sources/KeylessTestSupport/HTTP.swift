import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// An HTTP answer from a test partner.
public struct PartnerHTTPResponse: Sendable {
    /// The status code.
    public let status: Int
    /// The headers, names lowercased.
    public let headers: [String: String]
    public let body: Data
    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Refuses redirects, so a 302 (and its Location) reaches the caller.
private final class RefuseRedirects: NSObject, URLSessionTaskDelegate, Sendable {
    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        completionHandler(nil)
    }
}

/// Minimal HTTP for talking to partners: no cookies stored, no redirects followed, no cache.
enum PartnerHTTP {
    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.connectionProxyDictionary = [:]
        return URLSession(configuration: configuration, delegate: RefuseRedirects(), delegateQueue: nil)
    }()

    static func send(
        _ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil,
        timeout: TimeInterval = 15
    ) async throws -> PartnerHTTPResponse {
        guard let target = URL(string: url) else { throw TestSupportError("bad URL \(url)") }
        var request = URLRequest(url: target, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else {
            throw TestSupportError("\(method) \(url): not an HTTP response")
        }
        var lowered: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { lowered[name.lowercased()] = value }
        }
        return PartnerHTTPResponse(status: http.statusCode, headers: lowered, body: data)
    }

    /// `application/x-www-form-urlencoded` encoding of `fields`, in order.
    static func form(_ fields: [(String, String)]) -> Data {
        Data(fields.map { "\(formEscape($0.0))=\(formEscape($0.1))" }.joined(separator: "&").utf8)
    }

    static func formEscape(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
