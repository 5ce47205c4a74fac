import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import KeylessCore
import NIOCore

/// Who may read `/metrics` (both servers). Off by default: the counters tell an outsider how many people sign in,
/// which grants are used and which requests fail, so they are published only when asked, and best behind a token.
public enum MetricsAccess: Sendable, Equatable {
    /// `/metrics` answers 404.
    case off
    /// Anyone who can reach the listener may read it (a listener only a scraper reaches).
    case open
    /// Only requests with `Authorization: Bearer TOKEN` (the SHA-256 of the token is kept).
    case token(digest: [UInt8])

    /// Parses `off`, `open` or `token-file:PATH` (a file readable by its owner only, holding the token); `what` names
    /// the flag or key in errors.
    public static func parse(_ text: String, what: String) throws -> MetricsAccess {
        switch text {
        case "off": return .off
        case "open": return .open
        default:
            guard text.hasPrefix("token-file:"), case let path = String(text.dropFirst("token-file:".count)),
                !path.isEmpty
            else {
                throw KeylessError(
                    .usage, "\(what) must be off, open or token-file:PATH, not '\(text)'.",
                    hint:
                        "Use token-file:/etc/keyless/metrics-token (a file of mode 0600 holding the token your scraper sends as a Bearer token)."
                )
            }
            guard let bytes = try Files.read(path, requirePrivate: true) else {
                throw KeylessError(
                    .configInvalid, "the metrics token file \(path) does not exist.",
                    hint: "Create it with mode 0600, holding one random token.")
            }
            let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard token.utf8.count >= 16 else {
                throw KeylessError(
                    .configInvalid, "the metrics token in \(path) is shorter than 16 characters.",
                    hint: "Write a random token, e.g. `openssl rand -hex 32 > \(path)`.")
            }
            return .token(digest: Array(SHA256.hash(data: Data(token.utf8))))
        }
    }

    /// The answer to a request for `/metrics`: `render()` when allowed, else 404 (off) or 401 with a challenge.
    public func respond(_ request: Request, render: () -> String) -> Response {
        switch self {
        case .off:
            return jsonErrorResponse(
                "not_found", "metrics are off; start the server with metrics: open or token-file:PATH",
                status: .notFound)
        case .token(let digest):
            let header = request.headers[.authorization] ?? ""
            let presented =
                header.lowercased().hasPrefix("bearer ")
                ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : ""
            guard !presented.isEmpty, constantTimeEqual(Array(SHA256.hash(data: Data(presented.utf8))), digest) else {
                var response = jsonErrorResponse(
                    "invalid_token", "send the metrics token as Authorization: Bearer TOKEN", status: .unauthorized)
                response.headers[.wwwAuthenticate] = "Bearer realm=\"keyless metrics\""
                return response
            }
            fallthrough
        case .open:
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: render())))
        }
    }
}
