import Foundation
import HTTPTypes
import Hummingbird
import KeylessCore
import Logging
import NIOCore

/// A JSON error body, `{"error":CODE,"error_description":TEXT}` (the OAuth 2.0 shape both servers answer with).
public func jsonErrorResponse(_ code: String, _ description: String, status: HTTPResponse.Status) -> Response {
    let body = (try? JSONWriter.text(["error": code, "error_description": description])) ?? "{}"
    return Response(
        status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
        body: .init(byteBuffer: ByteBuffer(string: body)))
}

/// Security headers on every response of both servers, error responses included.
public struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            // Thrown errors (404, 405, body limits) become responses here, so they get the headers too.
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("unhandled error", metadata: ["error": .string(String(describing: error))])
            response = jsonErrorResponse(
                "server_error", "the server could not complete the request; see its log.", status: .internalServerError)
        }
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        // No form-action: Chrome applies it to the redirect after the login form, which goes to the client. A page
        // that sets its own (one that runs the server's own script) keeps it.
        if response.headers[.contentSecurityPolicy] == nil {
            response.headers[.contentSecurityPolicy] =
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
        }
        if response.headers[.cacheControl] == nil { response.headers[.cacheControl] = "no-store" }
        return response
    }
}

/// A request context that names its peer for the request log, and may add fields of its own.
public protocol RequestLogContext: RequestContext {
    /// The peer's IP address as text.
    var peer: String { get }
    /// Fields this server adds to a request's log line (never a header's value or a body).
    func logMetadata(for request: Request) -> Logger.Metadata
}

/// One JSON log line per request: method, the route the router matched (Hummingbird's endpoint path; "other" when none
/// did, so a scanner's made-up paths never become log fields or metric labels), status, duration, peer, and the
/// context's own fields; never headers or bodies. Every request is counted by `record`; the `quiet` routes (health,
/// metrics) are not logged.
public struct RequestLogMiddleware<Context: RequestLogContext>: RouterMiddleware {
    let quiet: Set<String>
    let record: @Sendable (_ route: String, _ status: Int, _ duration: Duration) -> Void

    /// A middleware logging every request but the `quiet` routes, and reporting each to `record`.
    public init(
        quiet: Set<String>, record: @escaping @Sendable (_ route: String, _ status: Int, _ duration: Duration) -> Void
    ) {
        self.quiet = quiet; self.record = record
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let start = ContinuousClock.now
        do {
            let response = try await next(request, context)
            // The router sets the endpoint path in storage the context shares, so it is known once `next` returns.
            finish(
                request, context, route: Self.route(context), status: Int(response.status.code),
                start: start)
            return response
        } catch {
            let status = (error as? HTTPResponseError)?.status.code ?? 500
            finish(request, context, route: Self.route(context), status: Int(status), start: start)
            throw error
        }
    }

    /// The matched route, else "other" (Hummingbird names an unmatched request's endpoint "NotFound"; routes start with /).
    static func route(_ context: Context) -> String {
        guard let path = context.endpointPath, path.hasPrefix("/") else { return "other" }
        return path
    }

    func finish(_ request: Request, _ context: Context, route: String, status: Int, start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        record(route, status, elapsed)
        guard !quiet.contains(route) else { return }
        var metadata: Logger.Metadata = [
            "method": .string(request.method.rawValue), "path": .string(route), "status": .stringConvertible(status),
            "duration_us": .stringConvertible(
                elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000),
            "peer": .string(context.peer),
        ]
        metadata.merge(context.logMetadata(for: request)) { _, own in own }
        context.logger.info("request", metadata: metadata)
    }
}

/// How every HTML page of both servers starts, up to its title. The referrer meta matters: the security headers send
/// `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` with every form POST, and the Origin checks
/// of both servers' forms would then refuse their own pages.
public let htmlDocumentStart = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="same-origin">
    """
