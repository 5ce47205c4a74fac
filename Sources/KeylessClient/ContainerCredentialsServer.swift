import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import KeylessCore
import KeylessFastPath
import Logging
import NIOCore
import ServiceLifecycle

/// Credentials as the container-credentials endpoint hands them out.
public struct ContainerCredentials: Sendable, Equatable {
    /// Access key id.
    public var accessKeyId: String
    /// Secret access key.
    public var secretAccessKey: String
    /// Session token.
    public var sessionToken: String
    /// When they stop working.
    public var expiration: Date
    /// The account they belong to, when known (botocore uses it for account-based endpoints).
    public var accountId: String?

    /// Creates credentials.
    public init(
        accessKeyId: String, secretAccessKey: String, sessionToken: String, expiration: Date, accountId: String? = nil
    ) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.accountId = accountId
    }

    /// The broker's cached credentials; the account comes from the assumed-role ARN.
    public init(_ cached: CachedCredentials) {
        self.init(
            accessKeyId: cached.accessKeyId, secretAccessKey: cached.secretAccessKey, sessionToken: cached.sessionToken,
            expiration: Date(timeIntervalSince1970: cached.expiration),
            accountId: cached.assumedRoleArn.flatMap(Self.account(inArn:)))
    }

    /// The 12-digit account of an ARN (`arn:aws:sts::123456789012:assumed-role/...`), or nil.
    static func account(inArn arn: String) -> String? {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count > 4 else { return nil }
        let account = parts[4]
        return account.count == 12 && account.allSatisfy(\.isASCII) && account.allSatisfy(\.isNumber)
            ? String(account) : nil
    }

    /// The body botocore's container provider (and every other SDK's) reads: `AccessKeyId`, `SecretAccessKey`,
    /// `Token`, `Expiration` in RFC 3339, and `AccountId` when known.
    public var containerJSON: String {
        var body = [
            "AccessKeyId": accessKeyId, "SecretAccessKey": secretAccessKey, "Token": sessionToken,
            "Expiration": rfc3339(expiration.timeIntervalSince1970),
        ]
        if let accountId { body["AccountId"] = accountId }
        return (try? JSONWriter.text(body)) ?? "{}"  // strings only: encoding cannot fail
    }
}

/// One HTTP request as the endpoint judges it, free of any server framework.
public struct ContainerCredentialsRequest: Sendable {
    /// The method, e.g. "GET".
    public var method: String
    /// The path without the query.
    public var path: String
    /// The `Host` header (HTTP/1.1) or `:authority`.
    public var authority: String?
    /// Every other header field, in order, names as sent.
    public var headers: [(name: String, value: String)]

    public init(method: String, path: String, authority: String?, headers: [(name: String, value: String)]) {
        self.method = method
        self.path = path
        self.authority = authority
        self.headers = headers
    }

    /// The values of header `name` (case-insensitive).
    func values(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name }.map(\.value)
    }
}

/// The endpoint's answer.
public struct ContainerCredentialsResponse: Sendable, Equatable {
    /// HTTP status code.
    public var status: Int
    /// JSON body: the credentials, or `{"code": ..., "message": ...}` for a refusal.
    public var body: String
    /// Extra header fields (`Allow` on a 405).
    public var headers: [String: String]

    public init(status: Int, body: String, headers: [String: String] = [:]) {
        self.status = status
        self.body = body
        self.headers = headers
    }

    static func refusal(_ status: Int, _ code: String, _ message: String, headers: [String: String] = [:])
        -> ContainerCredentialsResponse
    {
        ContainerCredentialsResponse(
            status: status, body: (try? JSONWriter.text(["code": code, "message": message])) ?? "{}", headers: headers)
    }
}

/// Asks the credential source one request at a time: requests that arrive while a fetch runs (an SDK's retries,
/// parallel threads in the child) wait for that fetch's answer, so a login or STS call happens once.
actor ContainerCredentialSupply {
    private enum State {
        case idle
        case fetching(Task<ContainerCredentials, any Error>)
    }

    private var state = State.idle
    private let source: @Sendable () async throws -> ContainerCredentials
    private let clock: WallClock
    private let minimumRemaining: TimeInterval

    init(
        source: @escaping @Sendable () async throws -> ContainerCredentials, clock: WallClock,
        minimumRemaining: TimeInterval
    ) {
        self.source = source
        self.clock = clock
        self.minimumRemaining = minimumRemaining
    }

    func credentials() async throws -> ContainerCredentials {
        if case .fetching(let task) = state { return try await task.value }
        let task = Task { [source, clock, minimumRemaining] in
            let first = try await source()
            if first.expiration.timeIntervalSince(clock.now()) >= minimumRemaining { return first }
            // A cache answered with credentials about to expire (another process's clock, an edited entry):
            // the source refreshes what it cannot serve from its cache, so one more ask gets fresh ones.
            return try await source()
        }
        state = .fetching(task)
        defer { state = .idle }
        return try await task.value
    }
}

/// The AWS container-credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) for one child process: answers
/// `GET /credentials` carrying the per-run token with credentials from `source`, and refuses everything else.
public struct ContainerCredentialsEndpoint: Sendable {
    /// The one path served.
    public static let path = "/credentials"
    /// Credentials with less time left are refetched before they are served: SDKs refresh 15 and 10 minutes
    /// before expiry, and botocore fails a refresh that returns credentials inside its 10-minute window.
    public static let minimumRemaining: TimeInterval = 5 * 60
    /// Credentials with less time left are never served: the request fails and the SDK retries.
    public static let unusableBelow: TimeInterval = 60

    let token: String
    let supply: ContainerCredentialSupply
    let clock: WallClock
    let logger: Logger

    /// An endpoint that expects `token` in the `Authorization` header and asks `source` for credentials
    /// (one call at a time), judging expiry by `clock`. Refusals are logged without any header value.
    public init(
        token: String, clock: WallClock, logger: Logger,
        source: @escaping @Sendable () async throws -> ContainerCredentials
    ) {
        self.token = token
        self.supply = ContainerCredentialSupply(source: source, clock: clock, minimumRemaining: Self.minimumRemaining)
        self.clock = clock
        self.logger = logger
    }

    /// Why a request is refused.
    enum Refusal: String, Sendable, Equatable {
        case browser, host, unauthorized, notFound = "not_found", method

        var status: Int {
            switch self {
            case .browser, .host: return 403
            case .unauthorized: return 401
            case .notFound: return 404
            case .method: return 405
            }
        }

        func response(port: Int) -> ContainerCredentialsResponse {
            switch self {
            case .browser: return .refusal(status, rawValue, "Requests from web browsers are refused.")
            case .host:
                return .refusal(status, rawValue, "The Host header must be 127.0.0.1:\(port) or localhost:\(port).")
            case .unauthorized:
                return .refusal(
                    status, rawValue,
                    "A missing or wrong Authorization header; it must be $AWS_CONTAINER_AUTHORIZATION_TOKEN.")
            case .notFound: return .refusal(status, rawValue, "Only \(ContainerCredentialsEndpoint.path) is served.")
            case .method: return .refusal(status, rawValue, "Only GET is allowed.", headers: ["Allow": "GET"])
            }
        }
    }

    /// Answers `request`, which arrived on local port `port`.
    public func respond(to request: ContainerCredentialsRequest, port: Int) async -> ContainerCredentialsResponse {
        if let refusal = refusal(of: request, port: port) {
            // Never a header value: the caller may have sent a token, a wrong one close to the right one, or a cookie.
            logger.warning(
                "refused a container-credentials request",
                metadata: [
                    "container.status": "\(refusal.status)", "container.reason": .string(refusal.rawValue),
                    "container.method": .string(Self.printable(request.method)),
                ])
            return refusal.response(port: port)
        }
        let credentials: ContainerCredentials
        do {
            credentials = try await supply.credentials()
        } catch let error as KeylessError {
            logger.error("could not get credentials for the child", metadata: ["error": .string(error.description)])
            return .refusal(503, error.code.rawValue, error.reason)
        } catch {
            logger.error(
                "could not get credentials for the child",
                metadata: ["error": .string(String(describing: type(of: error)))])
            return .refusal(503, "unavailable", "keyless could not get credentials; see its log.")
        }
        let remaining = credentials.expiration.timeIntervalSince(clock.now())
        guard remaining >= Self.unusableBelow else {
            logger.error(
                "the credential source returned expired credentials",
                metadata: ["container.remaining_seconds": "\(Int(remaining))"])
            return .refusal(503, "expired", "keyless has no unexpired credentials to hand out; see its log.")
        }
        if remaining < Self.minimumRemaining {
            logger.warning(
                "serving credentials that expire soon; no fresher ones could be had",
                metadata: ["container.remaining_seconds": "\(Int(remaining))"])
        }
        logger.info(
            "served credentials",
            metadata: ["container.expiration": .string(rfc3339(credentials.expiration.timeIntervalSince1970))])
        return ContainerCredentialsResponse(status: 200, body: credentials.containerJSON)
    }

    /// Why `request` is refused, or nil. Browser and Host checks come first so that a web page learns nothing;
    /// the token comes before the path and method so that a caller without it learns nothing either.
    func refusal(of request: ContainerCredentialsRequest, port: Int) -> Refusal? {
        let names = request.headers.map { $0.name.lowercased() }
        if names.contains(where: { $0 == "origin" || $0.hasPrefix("sec-fetch-") }) { return .browser }
        // DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 still sends Host: evil.example.
        // A second Host field (the first one is the authority) is refused too.
        let allowed = ["127.0.0.1:\(port)", "localhost:\(port)"]
        guard let authority = request.authority?.lowercased(), allowed.contains(authority), !names.contains("host")
        else { return .host }
        let authorization = request.values("authorization")
        guard authorization.count == 1, Self.sameToken(authorization[0], token) else { return .unauthorized }
        guard request.path == Self.path else { return .notFound }
        guard request.method == "GET" else { return .method }
        return nil
    }

    /// Equality whose time depends on neither the position of the first difference nor the token's length (both are
    /// hashed first).
    static func sameToken(_ given: String, _ expected: String) -> Bool {
        constantTimeEqual(Array(SHA256.hash(data: Array(given.utf8))), Array(SHA256.hash(data: Array(expected.utf8))))
    }

    /// At most 16 visible ASCII characters of `text`, for logging what a caller sent.
    static func printable(_ text: String) -> String {
        String(
            text.unicodeScalars.prefix(16).map { $0.isASCII && $0.value > 32 && $0.value < 127 ? Character($0) : "?" })
    }
}

/// The request context: the local port the request arrived on, for the Host check.
struct ContainerRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let localPort: Int?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        localPort = source.channel.localAddress?.port
    }
}

/// Serves a ``ContainerCredentialsEndpoint`` on 127.0.0.1 with a port the system picks.
public struct ContainerCredentialsServer: Sendable {
    let endpoint: ContainerCredentialsEndpoint
    let logger: Logger

    /// A server for `endpoint`. Hummingbird's own log lines go to `logger` at notice and above only.
    public init(endpoint: ContainerCredentialsEndpoint, logger: Logger) {
        self.endpoint = endpoint
        var quiet = logger
        if quiet.logLevel < .notice { quiet.logLevel = .notice }
        self.logger = quiet
    }

    /// Binds 127.0.0.1 on a port the system picks and serves until ``RunningContainerCredentialsServer/stop()``.
    public func start() async throws -> RunningContainerCredentialsServer {
        let endpoint = endpoint
        let responder = CallbackResponder<ContainerRequestContext> { request, context in
            let judged = ContainerCredentialsRequest(
                method: request.method.rawValue, path: request.uri.path, authority: request.head.authority,
                headers: request.headers.map { (name: $0.name.rawName, value: $0.value) })
            let answer = await endpoint.respond(to: judged, port: context.localPort ?? -1)
            var fields = HTTPFields()
            fields[.contentType] = "application/json"
            fields[.cacheControl] = "no-store"
            for (name, value) in answer.headers {
                if let field = HTTPField.Name(name) { fields[field] = value }
            }
            return Response(
                status: .init(code: answer.status), headers: fields,
                body: .init(byteBuffer: ByteBuffer(string: answer.body)))
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            responder: responder, configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        // Stopped by graceful shutdown, not by cancellation: cancelled, Hummingbird logs errors on stderr.
        let group = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let serving = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            var why = "it stopped"
            do { try await serving.value } catch { why = "\(error)" }
            throw KeylessError(
                .io, "The credentials endpoint could not listen on 127.0.0.1: \(why).", hint: "Run with -v for details."
            )
        }
        return RunningContainerCredentialsServer(port: port, group: group, serving: serving)
    }
}

/// A started ``ContainerCredentialsServer``.
public struct RunningContainerCredentialsServer: Sendable {
    /// The port it listens on, on 127.0.0.1.
    public let port: Int
    let group: ServiceGroup
    let serving: Task<Void, any Error>

    /// Closes the listener, lets requests in flight finish, and waits until the server has stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await serving.value
    }
}
