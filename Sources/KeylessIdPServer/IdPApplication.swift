import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import KeylessHTTPServer
import KeylessCore
import KeylessIdP
import KeylessStorage
import Logging
import NIOCore
import ServiceLifecycle

/// Where and how the provider listens.
public struct IdPServerConfiguration: Sendable {
    /// Address to bind (loopback by default).
    public var host: String
    /// Port (0 picks a free one; the bound address is logged).
    public var port: Int
    /// Whether cookies get `Secure` (the issuer is https).
    public var secureCookies: Bool
    /// Seconds a connection may stay silent (between requests, or before its request head is complete) before it is
    /// closed, so idle and half-sent connections cannot hold the server's descriptors.
    public var idleTimeout: TimeInterval
    /// Who may read `/metrics`.
    public var metrics: MetricsAccess
    /// Proxies whose X-Forwarded-For names the client (for throttles and logs).
    public var trustedProxies: TrustedProxies
    /// Connections taken at once (nil: as many as the descriptor limit allows, less `ConnectionLimit.reserve`).
    public var maxConnections: Int?

    /// A configuration.
    public init(
        host: String, port: Int, secureCookies: Bool, idleTimeout: TimeInterval = 30, metrics: MetricsAccess = .off,
        trustedProxies: TrustedProxies = .none, maxConnections: Int? = nil
    ) {
        self.host = host; self.port = port; self.secureCookies = secureCookies; self.idleTimeout = idleTimeout;
        self.metrics = metrics
        self.trustedProxies = trustedProxies; self.maxConnections = maxConnections
    }
}

/// Builds the provider's HTTP application around an engine: discovery, JWKS, the login and device pages, the token,
/// device-authorization, userinfo and revocation endpoints, health and metrics.
public func buildIdPApplication(
    engine: OAuthEngine, configuration: IdPServerConfiguration, logger: Logger,
    metrics: HTTPMetrics = .provider(),
    onRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let router = Router(context: IdPRequestContext.self)
    router.add(middleware: ClientAddressMiddleware<IdPRequestContext>(proxies: configuration.trustedProxies))
    router.add(
        middleware: RequestLogMiddleware<IdPRequestContext>(
            quiet: ["/healthz", "/metrics"]
        ) { route, status, duration in
            metrics.request(route: route, status: status, duration: duration)
        })
    router.add(middleware: SecurityHeadersMiddleware())
    IdPRoutes(
        engine: engine, metrics: metrics, metricsAccess: configuration.metrics,
        secureCookies: configuration.secureCookies, logger: logger
    )
    .add(to: router)
    return keylessApplication(
        router: router, host: configuration.host, port: configuration.port, idleTimeout: configuration.idleTimeout,
        maxConnections: configuration.maxConnections, services: [Housekeeping(engine: engine, logger: logger)],
        logger: logger, onRunning: onRunning)
}

/// Deletes expired rows and re-reads the keys every minute; stops with the application.
struct Housekeeping: Service {
    let engine: OAuthEngine
    let logger: Logger

    func run() async throws {
        let engine = engine, logger = logger
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await engine.store.purgeExpired(now: engine.clock.now())
                    try await engine.keys.reload()
                } catch {
                    logger.warning("housekeeping failed", metadata: ["error": .string(String(describing: error))])
                }
                try? await Task.sleep(for: .seconds(60))
            }
        }
    }
}

struct IdPRoutes {
    let engine: OAuthEngine
    let metrics: HTTPMetrics
    let metricsAccess: MetricsAccess
    let secureCookies: Bool
    let logger: Logger

    /// The session cookie's name: `__Host-` prefixed when cookies are Secure, so no other site (a sibling subdomain
    /// included) can set or shadow it.
    var sessionCookie: String { secureCookies ? "__Host-keyless_session" : "keyless_session" }
    /// The form cookie's name (the random value form tokens are bound to), prefixed the same way.
    var formCookie: String { secureCookies ? "__Host-keyless_csrf" : "keyless_csrf" }
    /// The cookie that ties an upstream sign-in ("Sign in with …") to the browser that started it: SameSite=Lax, so it
    /// comes back with the upstream provider's top-level redirect.
    var upstreamCookie: String { secureCookies ? "__Host-keyless_upstream" : "keyless_upstream" }

    func add(to router: Router<IdPRequestContext>) {
        router.get("/.well-known/openid-configuration") { _, _ in
            var response = Responses.json(engine.discoveryDocument(), cache: "public, max-age=300")
            response.headers[.accessControlAllowOrigin] = "*"
            return response
        }
        router.get("/jwks.json") { _, _ in
            var response = Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: ByteBuffer(bytes: try await engine.keys.jwks())))
            response.headers[.accessControlAllowOrigin] = "*"
            return response
        }
        router.get("/authorize") { request, context in try await authorizeGet(request, context) }
        router.post("/authorize") { request, context in try await authorizePost(request, context) }
        router.post("/token") { request, context in try await token(request, peer: context.peer) }
        router.post("/device_authorization") { request, context in
            try await deviceAuthorization(request, peer: context.peer)
        }
        router.get("/callback/:connector") { request, context in try await upstreamCallback(request, context) }
        router.get("/device") { request, context in try await deviceGet(request, context) }
        router.get("/passkeys") { request, context in try await passkeysGet(request, context) }
        router.post("/passkeys") { request, context in try await passkeysPost(request, context) }
        router.get("/passkeys/enrol") { request, context in try await enrolGet(request, context) }
        router.post("/passkeys/enrol") { request, context in try await enrolPost(request, context) }
        router.get(RouterPath(PasskeyScript.path)) { _, _ in PasskeyScript.response() }
        router.post("/device") { request, context in try await devicePost(request, context) }
        router.get("/userinfo") { request, _ in try await userinfo(request) }
        router.post("/userinfo") { request, _ in try await userinfo(request) }
        router.post("/revoke") { request, context in try await revoke(request, peer: context.peer) }
        router.get("/healthz") { _, _ in
            do {
                _ = try await engine.store.session(idHash: "healthz", now: engine.clock.now())
                return Responses.json(["status": "ok"])
            } catch {
                return Responses.json(["status": "store unavailable"], status: .serviceUnavailable)
            }
        }
        router.get("/metrics") { request, _ in metricsAccess.respond(request) { metrics.render() } }
    }

    // MARK: Authorization endpoint

    func authorizeGet(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let query: [String: String]
        do { query = try FormFields.query(request) } catch {
            return Responses.html(
                Pages.error("The sign-in link is malformed (a parameter is repeated or badly encoded)."),
                status: .badRequest)
        }
        let authorization: AuthorizationRequest
        switch engine.validateAuthorization(query) {
        case .failure(.page(let message)): return Responses.html(Pages.error(message), status: .badRequest)
        case .failure(.redirect(let code)): return Responses.redirect(engine.errorRedirect(code, request: query))
        case .success(let valid): authorization = valid
        }
        let sessionValue = request.cookies[sessionCookie]?.value
        let session = try await engine.session(cookie: sessionValue)
        if let session, authorization.prompt != "login", engine.sessionSatisfies(session, authorization) {
            if isFirstParty(authorization.clientID) && authorization.prompt != "consent" {
                return Responses.redirect(try await engine.issueCode(authorization, authentication: session))
            }
            // OpenID Connect Core §3.1.2.1: prompt=none must not show any page.
            if authorization.prompt == "none" {
                return Responses.redirect(engine.errorRedirect("consent_required", request: query))
            }
            return withFormToken(request, session: sessionValue) { token in
                Responses.html(
                    Pages.consent(
                        clientID: authorization.clientID, scope: authorization.scope, request: authorization.fields,
                        csrf: token, username: Self.shownName(session)))
            }
        }
        if authorization.prompt == "none" {
            return Responses.redirect(engine.errorRedirect("login_required", request: query))
        }
        return withFormToken(request, session: sessionValue) { token in
            Responses.html(
                Pages.login(
                    clientID: authorization.clientID, request: authorization.fields, csrf: token,
                    connectors: connectorChoices, passkey: passkeyCeremony()))
        }
    }

    func authorizePost(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let form: [String: String]
        do { form = try await FormFields.body(request) } catch {
            return Responses.html(Pages.error("The form could not be read."), status: .badRequest)
        }
        guard let binding = checkForm(request, form) else {
            return Responses.html(
                Pages.error(
                    "This form expired or came from another site. Go back to the application and start the sign-in again."
                ), status: .forbidden)
        }
        let authorization: AuthorizationRequest
        switch engine.validateAuthorization(form) {
        case .failure(.page(let message)): return Responses.html(Pages.error(message), status: .badRequest)
        case .failure(.redirect(let code)): return Responses.redirect(engine.errorRedirect(code, request: form))
        case .success(let valid): authorization = valid
        }
        let sessionValue = request.cookies[sessionCookie]?.value
        let token = engine.formToken(binding: binding, session: sessionValue)
        switch form["action"] {
        case "cancel", "deny":
            return Responses.redirect(
                engine.errorRedirect("access_denied", request: form, description: "The user declined."))
        case "allow":
            guard let session = try await engine.session(cookie: sessionValue),
                engine.sessionSatisfies(session, authorization)
            else {
                return Responses.html(
                    Pages.login(
                        clientID: authorization.clientID, request: authorization.fields, csrf: token,
                        message: "Your session ended; sign in again.", connectors: connectorChoices,
                        selected: form["connector"], passkey: passkeyCeremony()))
            }
            return Responses.redirect(try await engine.issueCode(authorization, authentication: session))
        default:
            if let upstream = form["upstream"], !upstream.isEmpty {
                return await startUpstream(upstream, authorization, token: token, peer: context.peer)
            }
            let username = form["username"] ?? ""
            switch await signIn(
                form, connector: form["connector"], peer: context.peer,
                phishingResistant: authorization.wantsPhishingResistant)
            {
            case .failure(.passkeyRequired(let step)):
                return passkeyStep(
                    action: "/authorize", fields: authorization.fields + [("csrf", token), ("action", "passkey")],
                    ceremony: step)
            case .failure(let failure):
                return loginFailed(failure, peer: context.peer) { message in
                    Pages.login(
                        clientID: authorization.clientID, request: authorization.fields, csrf: token,
                        username: username, message: message, connectors: connectorChoices,
                        selected: form["connector"], passkey: passkeyCeremony())
                }
            case .success(let authentication):
                metrics.login(outcome: "success")
                let sessionID = try await engine.startSession(authentication)
                var response: Response
                if isFirstParty(authorization.clientID) {
                    response = Responses.redirect(
                        try await engine.issueCode(authorization, authentication: authentication))
                } else {
                    // The consent form is submitted with the new session, so its token is bound to that session.
                    response = Responses.html(
                        Pages.consent(
                            clientID: authorization.clientID, scope: authorization.scope, request: authorization.fields,
                            csrf: engine.formToken(binding: binding, session: sessionID),
                            username: Self.shownName(authentication)))
                }
                response.setCookie(cookie(sessionCookie, sessionID, sameSite: .lax))
                return response
            }
        }
    }

    // MARK: Upstream providers

    /// "Sign in with …": the browser goes to the upstream provider with a sealed state, and a cookie that only this
    /// browser sends back.
    func startUpstream(_ id: String, _ authorization: AuthorizationRequest, token: String, peer: String) async
        -> Response
    {
        let browser = randomToken()
        do {
            var response = Responses.redirect(
                try await engine.startUpstream(connector: id, request: authorization, browser: browser))
            response.setCookie(
                Cookie(
                    name: upstreamCookie, value: browser, maxAge: 600, path: "/", secure: secureCookies,
                    httpOnly: true, sameSite: .lax))
            return response
        } catch {
            let name = engine.config.connector(id)?.displayName ?? id
            logger.notice(
                "upstream sign-in could not start",
                metadata: ["connector": .string(id), "detail": .string("\(error)"), "peer": .string(peer)])
            metrics.login(outcome: "upstream_unavailable")
            var response = Responses.html(
                Pages.login(
                    clientID: authorization.clientID, request: authorization.fields, csrf: token,
                    message:
                        "Sign-in with \(name) cannot start right now (its provider does not answer). Try again in a minute.",
                    connectors: connectorChoices), status: .serviceUnavailable)
            response.headers[.retryAfter] = "30"
            return response
        }
    }

    /// The upstream provider's redirect back: finish its sign-in, then go on as after a password login.
    func upstreamCallback(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let id = context.parameters.get("connector") ?? ""
        let query: [String: String]
        do { query = try FormFields.query(request) } catch {
            return Responses.html(Pages.error("The sign-in answer is malformed."), status: .badRequest)
        }
        let browser = request.cookies[upstreamCookie]?.value
        var response: Response
        switch await engine.finishUpstream(connector: id, query: query, browser: browser) {
        case .failure(.page(let message)):
            metrics.login(outcome: "upstream_invalid")
            logger.notice(
                "upstream callback refused", metadata: ["connector": .string(id), "peer": .string(context.peer)])
            response = Responses.html(Pages.error(message), status: .badRequest)
        case .failure(.refused(let message, let authorization)):
            metrics.login(outcome: "upstream_refused")
            logger.notice(
                "upstream sign-in refused",
                metadata: ["connector": .string(id), "detail": .string(message), "peer": .string(context.peer)])
            response = loginPage(request, authorization, message: message, status: .forbidden)
        case .failure(.unavailable(let detail, let authorization)):
            metrics.login(outcome: "upstream_unavailable")
            logger.notice(
                "upstream sign-in failed",
                metadata: ["connector": .string(id), "detail": .string(detail), "peer": .string(context.peer)])
            let name = engine.config.connector(id)?.displayName ?? id
            response = loginPage(
                request, authorization,
                message:
                    "Sign-in with \(name) could not be completed (its provider did not answer as expected). Try again in a minute.",
                status: .serviceUnavailable)
            response.headers[.retryAfter] = "30"
        case .success(let (authentication, authorization)):
            metrics.login(outcome: "success")
            let sessionID = try await engine.startSession(authentication)
            if isFirstParty(authorization.clientID) {
                response = Responses.redirect(try await engine.issueCode(authorization, authentication: authentication))
            } else {
                response = withFormToken(request, session: sessionID) { token in
                    Responses.html(
                        Pages.consent(
                            clientID: authorization.clientID, scope: authorization.scope, request: authorization.fields,
                            csrf: token, username: Self.shownName(authentication)))
                }
            }
            response.setCookie(cookie(sessionCookie, sessionID, sameSite: .lax))
        }
        // The cookie has done its job either way.
        response.setCookie(
            Cookie(
                name: upstreamCookie, value: "", maxAge: 0, path: "/", secure: secureCookies, httpOnly: true,
                sameSite: .lax))
        return response
    }

    /// The login page again for `authorization`, with `message`, after an upstream sign-in that did not finish.
    func loginPage(
        _ request: Request, _ authorization: AuthorizationRequest, message: String, status: HTTPResponse.Status
    ) -> Response {
        withFormToken(request, session: nil) { token in
            Responses.html(
                Pages.login(
                    clientID: authorization.clientID, request: authorization.fields, csrf: token, message: message,
                    connectors: connectorChoices, passkey: passkeyCeremony()), status: status)
        }
    }

    /// The answer to a failed login on either form: `page` renders the form again with the message. Records the
    /// outcome in the metrics and the log (never what was typed).
    func loginFailed(_ failure: LoginFailure, peer: String, page: (String) -> String) -> Response {
        let (outcome, message, status): (String, String, HTTPResponse.Status) =
            switch failure {
            case .throttled(let wait):
                ("throttled", "Too many failed attempts. Try again in \(wait) seconds.", .tooManyRequests)
            case .otpRequired:
                (
                    "otp_required",
                    "Your account needs a one-time code: enter your password and the code from your authenticator.",
                    .unauthorized
                )
            case .invalid: ("invalid", "Wrong username, password or one-time code.", .unauthorized)
            case .passkeyRequired:
                ("passkey_required", "Your account needs your passkey after the password.", .unauthorized)
            case .passkeyRefused(let reason, _):
                ("passkey_refused", "The passkey was not accepted: \(reason)", .unauthorized)
            case .unavailable(let wait):
                (
                    "unavailable",
                    "Sign-in is busy or cannot reach its database right now. Try again in \(wait) seconds.",
                    .serviceUnavailable
                )
            case .accountRefused(let reason):
                ("account_refused", "Your password is right, but \(reason). Ask your administrator.", .forbidden)
            case .directoryUnavailable(let connector, _):
                (
                    "directory_unavailable",
                    "Sign-in cannot reach \(connector) right now, so nobody can be signed in through it. Try again in a minute; if it goes on, tell your administrator.",
                    .serviceUnavailable
                )
            }
        metrics.login(outcome: outcome)
        var metadata: Logger.Metadata = ["reason": .string(outcome), "peer": .string(peer)]
        if case .directoryUnavailable(let connector, let reason) = failure {
            metadata["connector"] = .string(connector)
            metadata["detail"] = .string(reason)
        }
        if case .passkeyRefused(_, let code?) = failure { metadata["webauthn"] = .string(code) }
        logger.notice("login failed", metadata: metadata)
        var response = Responses.html(page(message), status: status)
        if case .throttled(let wait) = failure { response.headers[.retryAfter] = String(wait) }
        if case .unavailable(let wait) = failure { response.headers[.retryAfter] = String(wait) }
        if case .directoryUnavailable = failure { response.headers[.retryAfter] = "30" }
        return response
    }

    /// A sign-in from a form: the passkey form's answer when it carries a ceremony (`passkey_state`), else the
    /// password form's fields against `connector`.
    func signIn(_ form: [String: String], connector: String?, peer: String, phishingResistant: Bool = false) async
        -> Result<Authentication, LoginFailure>
    {
        if let state = form["passkey_state"] {
            return await engine.finishPasskeySignIn(state: state, credential: form["credential"] ?? "")
        }
        return await engine.login(
            connector: connector, username: form["username"] ?? "", password: form["password"] ?? "",
            otp: form["otp"], address: peer, phishingResistant: phishingResistant)
    }

    /// A passwordless passkey ceremony for a sign-in form, when the people of idp.yaml sign in here.
    func passkeyCeremony() -> PasskeyCeremonyStart? {
        engine.passkeysOffered ? try? engine.passkeySignInStart() : nil
    }

    /// The step after a right password, for a person with passkeys.
    func passkeyStep(action: String, fields: [(String, String)], ceremony: PasskeyCeremonyStart) -> Response {
        metrics.login(outcome: "passkey_required")
        return Responses.html(Pages.passkeyStep(action: action, fields: fields, ceremony: ceremony))
    }

    /// How a page names the signed-in person: a directory's login name, or the subject.
    static func shownName(_ authentication: Authentication) -> String {
        authentication.identity?.username ?? authentication.identity?.email ?? authentication.subject
    }

    /// The login form's "Sign in with" choices.
    var connectorChoices: [Pages.ConnectorChoice] {
        engine.config.effectiveConnectors.map {
            Pages.ConnectorChoice(id: $0.id, name: $0.displayName, upstream: $0.type == "oidc")
        }
    }

    func isFirstParty(_ clientID: String) -> Bool { engine.config.client(clientID)?.firstParty ?? true }

    // MARK: Device pages

    func deviceGet(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let query = (try? FormFields.query(request)) ?? [:]
        let sessionValue = request.cookies[sessionCookie]?.value
        let session = try await engine.session(cookie: sessionValue)
        let userCode = query["user_code"] ?? ""
        // A code in the link is looked up, to name the client and scopes before anyone approves (RFC 8628 §5.4);
        // the lookups are guesses like any other and are throttled the same way.
        var asking: (client: String, scope: String)?
        var message: String?
        if !userCode.isEmpty {
            if let wait = try await engine.throttle.retryAfter(
                .deviceCode, address: context.peer, now: engine.clock.now())
            {
                message = "Too many wrong codes. Try again in \(wait) seconds."
            } else if let pending = try await engine.pendingDevice(userCode: userCode) {
                asking = (pending.clientID, pending.scope)
            } else {
                try await engine.throttle.recordFailure(.deviceCode, address: context.peer, now: engine.clock.now())
                message = "That code is unknown, expired or already used. Check the code your device shows."
            }
        }
        // With the code in the link, a passkey can sign in and approve in one step.
        let passkey = session == nil && asking != nil ? passkeyCeremony() : nil
        return withFormToken(request, session: sessionValue) { token in
            Responses.html(
                Pages.device(
                    connectors: connectorChoices, selected: nil,
                    userCode: userCode, csrf: token, signedInAs: session.map(Self.shownName), request: asking,
                    message: message, passkey: passkey))
        }
    }

    func devicePost(_ request: Request, _ context: IdPRequestContext) async throws -> Response {
        let form: [String: String]
        do { form = try await FormFields.body(request) } catch {
            return Responses.html(Pages.error("The form could not be read."), status: .badRequest)
        }
        guard let binding = checkForm(request, form) else {
            return Responses.html(
                Pages.error("This form expired or came from another site. Open the device page again."),
                status: .forbidden)
        }
        let sessionValue = request.cookies[sessionCookie]?.value
        let token = engine.formToken(binding: binding, session: sessionValue)
        let userCode = form["user_code"] ?? ""
        let session = try await engine.session(cookie: sessionValue)
        // RFC 8628 §5.1: user codes are short, so guesses are throttled per source address.
        if let wait = try await engine.throttle.retryAfter(.deviceCode, address: context.peer, now: engine.clock.now())
        {
            var response = Responses.html(
                Pages.device(
                    connectors: connectorChoices, selected: form["connector"],
                    userCode: userCode, csrf: token, signedInAs: session.map(Self.shownName),
                    message: "Too many wrong codes. Try again in \(wait) seconds."), status: .tooManyRequests)
            response.headers[.retryAfter] = String(wait)
            return response
        }
        guard let pending = try await engine.pendingDevice(userCode: userCode) else {
            try await engine.throttle.recordFailure(.deviceCode, address: context.peer, now: engine.clock.now())
            return Responses.html(
                Pages.device(
                    connectors: connectorChoices, selected: form["connector"],
                    userCode: userCode, csrf: token, signedInAs: session.map(Self.shownName),
                    message: "That code is unknown, expired or already used. Check the code your device shows."),
                status: .badRequest)
        }
        var authentication = session
        var newSession: String?
        if authentication == nil {
            guard form["step"] != "consent" else {
                return Responses.html(
                    Pages.device(
                        connectors: connectorChoices, selected: form["connector"],
                        userCode: userCode, csrf: token, signedInAs: nil, request: (pending.clientID, pending.scope),
                        message: "Your session ended; sign in again."), status: .unauthorized)
            }
            switch await signIn(form, connector: form["connector"], peer: context.peer) {
            case .failure(.passkeyRequired(let step)):
                return passkeyStep(
                    action: "/device", fields: [("csrf", token), ("user_code", userCode), ("action", "approve")],
                    ceremony: step)
            case .failure(let failure):
                return loginFailed(failure, peer: context.peer) { message in
                    Pages.device(
                        connectors: connectorChoices, selected: form["connector"],
                        userCode: userCode, csrf: token, signedInAs: nil, request: (pending.clientID, pending.scope),
                        message: message)
                }
            case .success(let fresh):
                metrics.login(outcome: "success")
                authentication = fresh
                newSession = try await engine.startSession(fresh)
            }
        }
        let action = form["action"] ?? "approve"
        let declined = action == "deny"
        // A third-party client gets its consent page, as at /authorize, before anything is approved.
        if !declined && !isFirstParty(pending.clientID) && !(form["step"] == "consent" && action == "allow") {
            var response = Responses.html(
                Pages.deviceConsent(
                    clientID: pending.clientID, scope: pending.scope, userCode: userCode,
                    csrf: engine.formToken(binding: binding, session: newSession ?? sessionValue),
                    username: Self.shownName(authentication!)))
            if let newSession { response.setCookie(cookie(sessionCookie, newSession, sameSite: .lax)) }
            return response
        }
        guard try await engine.decideDevice(userCode: userCode, approve: !declined, authentication: authentication!)
        else {
            return Responses.html(
                Pages.error("That code expired or was used while you were signing in. Start again on your device."),
                status: .badRequest)
        }
        var response = Responses.html(Pages.deviceDone(approved: !declined))
        if let newSession { response.setCookie(cookie(sessionCookie, newSession, sameSite: .lax)) }
        return response
    }

    // MARK: JSON endpoints

    // Every OAuthError these throw is rendered by its HTTPResponseError conformance (Support.swift); anything else by
    // the shared SecurityHeadersMiddleware as a logged server_error.
    func token(_ request: Request, peer: String) async throws -> Response {
        let form: [String: String]
        let response: TokenResponse
        do {
            form = try await FormFields.body(request)
            response = try await engine.token(
                form: form, credentials: ClientCredentials(authorization: request.headers[.authorization], form: form),
                address: peer)
        } catch let error as OAuthError {
            metrics.tokenError(code: error.code)
            throw error
        }
        metrics.tokenIssued(grant: form["grant_type"] ?? "")
        var result = Response(
            status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: response.jsonText)))
        result.headers[HTTPField.Name("Pragma")!] = "no-cache"
        return result
    }

    func deviceAuthorization(_ request: Request, peer: String) async throws -> Response {
        let form = try await FormFields.body(request)
        let device = try await engine.authorizeDevice(
            form: form, credentials: ClientCredentials(authorization: request.headers[.authorization], form: form),
            address: peer)
        return Responses.json(device)
    }

    func userinfo(_ request: Request) async throws -> Response {
        let header = request.headers[.authorization] ?? ""
        let bearer =
            header.lowercased().hasPrefix("bearer ")
            ? String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil
        return Responses.json(try await engine.userinfo(bearer: bearer))
    }

    func revoke(_ request: Request, peer: String) async throws -> Response {
        let form = try await FormFields.body(request)
        try await engine.revoke(
            form: form, credentials: ClientCredentials(authorization: request.headers[.authorization], form: form),
            address: peer)
        return Response(status: .ok, headers: [.cacheControl: "no-store"])
    }

    // MARK: Cookies and form tokens

    func cookie(_ name: String, _ value: String, sameSite: Cookie.SameSite) -> Cookie {
        Cookie(name: name, value: value, path: "/", secure: secureCookies, httpOnly: true, sameSite: sameSite)
    }

    /// Renders a form page with a form token for the browser's form cookie (a new one is set with the page when it has
    /// none) and `session`, the session cookie the browser will send with the form.
    func withFormToken(_ request: Request, session: String?, _ render: (String) -> Response) -> Response {
        if let existing = request.cookies[formCookie]?.value, existing.utf8.count == 43 {
            return render(engine.formToken(binding: existing, session: session))
        }
        let binding = randomToken()
        var response = render(engine.formToken(binding: binding, session: session))
        response.setCookie(cookie(formCookie, binding, sameSite: .strict))
        return response
    }

    /// Checks a submitted form: its token must be the one for the browser's form cookie and session cookie, and the
    /// request must not come from another site (`Sec-Fetch-Site: cross-site`, or an `Origin` other than the issuer's,
    /// `null` included: sandboxed frames and data: pages send it). Returns the form cookie when the form is good.
    func checkForm(_ request: Request, _ form: [String: String]) -> String? {
        guard let binding = request.cookies[formCookie]?.value, binding.utf8.count == 43, let token = form["csrf"],
            engine.checkFormToken(token, binding: binding, session: request.cookies[sessionCookie]?.value)
        else { return nil }
        if request.headers[Self.secFetchSite]?.lowercased() == "cross-site" { return nil }
        if let origin = request.headers[.origin] {
            guard let issuerURL = URL(string: engine.issuer), let scheme = issuerURL.scheme, let host = issuerURL.host
            else { return nil }
            // Browsers leave the scheme's default port out of Origin.
            let defaultPort = scheme == "https" ? 443 : 80
            let expected = "\(scheme)://\(host)" + (issuerURL.port.flatMap { $0 == defaultPort ? nil : ":\($0)" } ?? "")
            guard origin == expected else { return nil }
        }
        return binding
    }

    static let secFetchSite = HTTPField.Name("Sec-Fetch-Site")!
}
