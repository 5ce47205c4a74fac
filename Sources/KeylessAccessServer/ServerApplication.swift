import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import KeylessAWS
import KeylessCore
import KeylessHTTPServer
import KeylessPolicy
import KeylessWire
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The request context: the peer, a request id, and the caller once the bearer token is verified.
public struct AccessRequestContext: RequestContext, RemoteAddressRequestContext, ForwardedClientContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP peer.
    public let remoteAddress: SocketAddress?
    /// The client behind a trusted proxy (`ClientAddressMiddleware`).
    public var forwardedPeer: String?
    /// The request id sent back in X-Request-Id and written to the audit log.
    public let requestID: String
    /// The verified caller (set by the bearer middleware).
    public var caller: Caller?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
        requestID = Self.newRequestID()
    }

    /// The client's IP address as text: from a trusted proxy's X-Forwarded-For, else the TCP peer's.
    public var peer: String { forwardedPeer ?? remoteAddress?.ipAddress ?? "unknown" }
    var origin: RequestOrigin { RequestOrigin(address: peer, requestID: requestID) }

    /// A random prefix per process and a counter: unique, unguessable enough for correlation, and no system call per request.
    static let requestIDPrefix: String = {
        var generator = SystemRandomNumberGenerator()
        return String(UInt32.random(in: 0x1000_0000...UInt32.max, using: &generator), radix: 16)
    }()
    static let requestCounter = Atomic<UInt64>(0)

    static func newRequestID() -> String {
        let hex = String(requestCounter.add(1, ordering: .relaxed).newValue, radix: 16)
        return requestIDPrefix + String(repeating: "0", count: max(0, 8 - hex.count)) + hex
    }
}

/// Builds the access server: the API under /api/v1 behind bearer authentication, the web page, health, metrics and
/// the OpenAPI document; the policy reloader runs beside it.
public func buildServerApplication(
    service: AccessService, metrics: HTTPMetrics, logger: Logger, web: WebPage? = nil,
    onRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: AccessRequestContext.self)
    router.add(middleware: ClientAddressMiddleware<AccessRequestContext>(proxies: service.configuration.trustedProxies))
    router.add(
        middleware: RequestLogMiddleware<AccessRequestContext>(
            quiet: ["/healthz", "/metrics", "/readyz"]
        ) { route, status, duration in
            metrics.request(route: route, status: status, duration: duration)
        })
    router.add(middleware: SecurityHeadersMiddleware<AccessRequestContext>())
    APIRoutes(service: service, metrics: metrics).add(to: router)
    web?.add(to: router)
    let configuration = service.configuration
    return keylessApplication(
        router: router, host: configuration.host, port: configuration.port, idleTimeout: configuration.idleTimeout,
        maxConnections: configuration.maxConnections,
        services: [PolicyReloader(service: service, logger: logger), RequestSweeper(service: service, logger: logger)],
        logger: logger, onRunning: onRunning)
}

/// Re-reads the policy file when it changes; a broken edit is logged with its line and the old policy stays.
///
/// Each reload runs on a thread of its own, off the request threads, and is given `reloadTimeBox` seconds: a reload
/// still running then is reported, the policy in force stays, and no other reload starts until it ends.
struct PolicyReloader: Service {
    let service: AccessService
    let logger: Logger
    /// Seconds a reload may take before it is reported as stuck.
    static let reloadTimeBox: Double = 10

    func run() async throws {
        let interval = service.configuration.policyReloadInterval
        await service.verifier.prefetch()
        try await cancelWhenGracefulShutdown {
            var running: Task<PolicyReload, Never>?
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                let reload = running ?? Self.offRequestThreads { service.policy.reloadIfChanged() }
                guard let outcome = await Self.value(of: reload, within: Self.reloadTimeBox) else {
                    if running == nil {
                        logger.error(
                            "policy reload still running after \(Int(Self.reloadTimeBox)) s; keeping the policy in force until it ends",
                            metadata: ["path": .string(service.policy.path)])
                    }
                    running = reload
                    continue
                }
                running = nil
                switch outcome {
                case .unchanged: break
                case .reloaded:
                    logger.notice(
                        "policy reloaded", metadata: ["roles": .stringConvertible(service.policy.current.roles.count)])
                case .rejected(let reason):
                    logger.error(
                        "policy change rejected; keeping the previous policy", metadata: ["reason": .string(reason)])
                }
            }
        }
    }

    /// Runs `work` on a Dispatch thread, so that a long parse does not hold one of the few threads serving requests.
    static func offRequestThreads<T: Sendable>(_ work: @escaping @Sendable () -> T) -> Task<T, Never> {
        Task {
            await withCheckedContinuation { continuation in
                DispatchQueue.global(qos: .utility).async { continuation.resume(returning: work()) }
            }
        }
    }

    /// The task's value, or nil when it has not finished within `seconds` (the task keeps running).
    static func value<T: Sendable>(of task: Task<T, Never>, within seconds: Double) async -> T? {
        await withCheckedContinuation { continuation in
            let first = FirstAnswer(continuation)
            Task { first.resume(await task.value) }
            Task {
                try? await Task.sleep(for: .milliseconds(Int(seconds * 1000))); first.resume(nil)
            }
        }
    }
}

/// Expires access requests nobody decided and grants that ran out (`AccessService.sweepRequests`), every
/// `requests.sweep_interval`, and once a day deletes requests that ended more than 90 days ago (the audit log keeps
/// their story). Every replica sweeps; the store gives each request to one of them.
struct RequestSweeper: Service {
    let service: AccessService
    let logger: Logger
    static let keptFor: TimeInterval = 90 * 86400

    func run() async throws {
        let interval = service.configuration.requests.sweepInterval
        try await cancelWhenGracefulShutdown {
            var lastPurge = Date.distantPast
            while !Task.isCancelled {
                // A shutdown ends the wait and the loop: no sweep on the way out.
                do { try await Task.sleep(for: .milliseconds(Int(interval * 1000))) } catch { break }
                do {
                    let expired = try await service.sweepRequests()
                    if expired > 0 { logger.notice("access requests expired", metadata: ["count": "\(expired)"]) }
                    let now = service.clock.now()
                    if now.timeIntervalSince(lastPurge) > 86400 {
                        try await service.requests.purge(endedBefore: now.addingTimeInterval(-Self.keptFor))
                        lastPurge = now
                    }
                } catch {
                    logger.error("sweeping access requests failed", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Resumes a continuation with the first answer given, and ignores the rest.
final class FirstAnswer<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T?, Never>?>

    init(_ continuation: CheckedContinuation<T?, Never>) { self.continuation = Mutex(continuation) }

    func resume(_ value: T?) {
        continuation.withLock {
            $0?.resume(returning: value); $0 = nil
        }
    }
}

/// Verifies `Authorization: Bearer` and puts the caller in the context; anything else is 401 with a challenge.
struct BearerAuthMiddleware: RouterMiddleware {
    typealias Context = AccessRequestContext
    let service: AccessService

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws
        -> Response
    {
        guard let header = request.headers[.authorization] else {
            throw AccessError(
                401, "missing_token", "Send the ID token from keyless login as Authorization: Bearer TOKEN.")
        }
        guard header.utf8.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw AccessError(401, "invalid_token", "Use the Bearer scheme: Authorization: Bearer TOKEN.")
        }
        var context = context
        do {
            context.caller = try await service.authenticate(Self.token(afterScheme: header))
        } catch let error as AccessError {
            // Operators see why (the token itself is never logged): the answer's description, with its request id.
            context.logger.notice(
                "bearer token refused",
                metadata: [
                    "reason": .string(error.message), "request_id": .string(context.requestID),
                    "peer": .string(context.peer),
                ])
            throw error
        }
        return try await next(request, context)
    }

    /// The credentials after "Bearer ", without surrounding spaces and tabs (RFC 9110 OWS). Trimmed on UTF-8 bytes:
    /// Foundation's `trimmingCharacters` went through UTF-16 and cost an eighth of a /api/v1/config request.
    static func token(afterScheme header: String) -> String {
        var bytes = Substring(header).utf8.dropFirst(7)
        while let first = bytes.first, first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
            bytes = bytes.dropFirst()
        }
        while let last = bytes.last, last == UInt8(ascii: " ") || last == UInt8(ascii: "\t") {
            bytes = bytes.dropLast()
        }
        return String(Substring(bytes))
    }
}

/// The JSON API.
struct APIRoutes {
    let service: AccessService
    let metrics: HTTPMetrics

    func add(to router: Router<AccessRequestContext>) {
        router.get("/healthz") { _, _ in Self.json("{\"status\":\"ok\"}") }
        router.get("/readyz") { _, _ in
            let (ready, detail) = await service.readiness()
            return Self.json(
                Self.encode(["status": ready ? "ready" : "not ready", "detail": detail]),
                status: ready ? .ok : .serviceUnavailable)
        }
        let access = service.configuration.metrics
        router.get("/metrics") { request, _ in access.respond(request) { metrics.render() } }
        router.get("/openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml", .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
        let api = router.group("/api/v1").add(middleware: BearerAuthMiddleware(service: service))
        api.get("config") { _, context in
            var response = Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: service.configBody(for: context.caller!)))
            response.headers[APIRoutes.requestIDField] = context.requestID
            return response
        }
        api.post("credentials") { request, context in
            do {
                let body = try await Self.body(request, as: CredentialsRequest.self)
                let scope = SessionScope(
                    policy: body.sessionPolicy, policyArns: body.policyArns ?? [], agent: body.agent)
                do { try scope.validate() } catch let error as KeylessError {
                    throw AccessError(400, "invalid_request", error.reason)
                }
                let (credentials, entitlement) = try await service.credentials(
                    for: context.caller!, roleArn: body.roleArn, durationSeconds: body.durationSeconds,
                    origin: context.origin, scope: scope)
                metrics.decision(action: "credentials", outcome: "granted")
                return Self.json(
                    Self.encode(AccessService.credentialsDocument(credentials, roleArn: entitlement.role.arn)),
                    requestID: context.requestID)
            } catch let error as AccessError {
                metrics.decision(action: "credentials", outcome: error.statusCode == 403 ? "denied" : "failed")
                throw error
            }
        }
        api.post("requests") { request, context in
            let body = try await Self.body(request, as: AccessRequestCreate.self)
            let created = try await service.createRequest(
                for: context.caller!, roleArn: body.roleArn, durationSeconds: body.durationSeconds, reason: body.reason,
                origin: context.origin)
            metrics.decision(action: "access_request", outcome: "requested")
            return Self.json(
                Self.encode(service.document(created)), status: .created, requestID: context.requestID)
        }
        api.get("requests") { _, context in
            let view = try await service.requestsView(for: context.caller!)
            return Self.json(
                Self.encode(
                    AccessRequestsDocument(
                        mine: view.mine.map(service.document), toApprove: view.toApprove.map(service.document),
                        active: view.active.map(service.document))), requestID: context.requestID)
        }
        api.get("requests/:id") { _, context in
            let id = context.parameters.get("id") ?? ""
            let found = try await service.visibleRequest(id: id, for: context.caller!)
            return Self.json(Self.encode(service.document(found)), requestID: context.requestID)
        }
        for verb in ["approve", "deny", "revoke"] {
            api.post("requests/:id/\(verb)") { request, context in
                let id = context.parameters.get("id") ?? ""
                let body = try await Self.optionalBody(request, as: AccessRequestAction.self) ?? AccessRequestAction()
                let changed =
                    verb == "revoke"
                    ? try await service.revokeRequest(
                        id: id, by: context.caller!, reason: body.reason, origin: context.origin)
                    : try await service.decideRequest(
                        id: id, approve: verb == "approve", by: context.caller!, note: body.reason,
                        origin: context.origin)
                metrics.decision(action: "access_request", outcome: changed.status.rawValue)
                return Self.json(Self.encode(service.document(changed)), requestID: context.requestID)
            }
        }
        api.post("console") { request, context in
            do {
                let body = try await Self.body(request, as: ConsoleRequest.self)
                let url = try await service.consoleURL(
                    for: context.caller!, roleArn: body.roleArn, destination: body.destination, origin: context.origin)
                metrics.decision(action: "console", outcome: "granted")
                return Self.json(Self.encode(ConsoleDocument(url: url)), requestID: context.requestID)
            } catch let error as AccessError {
                metrics.decision(action: "console", outcome: error.statusCode == 403 ? "denied" : "failed")
                throw error
            }
        }
    }

    static let requestIDField = HTTPField.Name("X-Request-Id")!

    static func body<T: Decodable>(_ request: Request, as type: T.Type) async throws -> T {
        guard let contentType = request.headers[.contentType], contentType.lowercased().hasPrefix("application/json")
        else {
            throw AccessError(415, "invalid_request", "Send the request body as application/json.")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.body.collect(upTo: 16 * 1024) } catch {
            throw AccessError(
                413, "invalid_request",
                "The request body is larger than 16 KiB; send only role_arn and duration_seconds (or destination).")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
        } catch {
            throw AccessError(
                400, "invalid_request",
                "The request body is not the expected JSON (role_arn is required): \(Self.decodingProblem(error)).")
        }
    }

    /// A body that may be left out (approve without a note): nil for an empty body, else as `body(_:as:)`.
    static func optionalBody<T: Decodable>(_ request: Request, as type: T.Type) async throws -> T? {
        if request.headers[.contentType] == nil,
            request.headers[.contentLength] == nil || request.headers[.contentLength] == "0"
        {
            return nil
        }
        return try await body(request, as: type)
    }

    static func decodingProblem(_ error: any Error) -> String {
        switch error as? DecodingError {
        case .keyNotFound(let key, _): return "\(key.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        default: return "it is not valid JSON"
        }
    }

    /// A `/api/v1` body as JSON text (slashes unescaped, keys sorted, so the same answer is the same bytes).
    static func encode(_ body: some Encodable) -> String {
        // The bodies are strings, numbers and booleans: encoding them cannot fail.
        (try? JSONWriter.text(body)) ?? "{}"
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok, requestID: String? = nil) -> Response {
        var response = Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: text)))
        if let requestID { response.headers[requestIDField] = requestID }
        return response
    }
}

/// The API's refusals are thrown and rendered here (by the shared SecurityHeadersMiddleware): JSON with the code, the
/// sentence and the request id, and a Bearer challenge on 401.
extension AccessError: HTTPResponseError {
    public var status: HTTPResponse.Status { HTTPResponse.Status(code: statusCode) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let requestID = (context as? AccessRequestContext)?.requestID ?? ""
        var response = APIRoutes.json(
            APIRoutes.encode(APIErrorDocument(error: code, errorDescription: message, requestID: requestID)),
            status: status, requestID: requestID)
        if statusCode == 401 {
            response.headers[.wwwAuthenticate] =
                code == "missing_token"
                ? "Bearer realm=\"keyless\"" : "Bearer realm=\"keyless\", error=\"invalid_token\""
        }
        return response
    }
}

extension AccessRequestContext: RequestLogContext {
    /// The request id, and the Authorization header only as "[redacted]".
    public func logMetadata(for request: Request) -> Logger.Metadata {
        var metadata: Logger.Metadata = ["request_id": .string(requestID)]
        if request.headers[.authorization] != nil { metadata["authorization"] = "[redacted]" }
        return metadata
    }
}
