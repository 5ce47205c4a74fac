import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import KeylessAWS
import KeylessCore
import KeylessHTTP
import KeylessOIDC
import KeylessPolicy
import KeylessStorage
import KeylessWire
import Logging
import Mustache
import NIOCore

/// The server-rendered web page: sign in through the OIDC provider (authorization code with PKCE), roles by account,
/// open the console, shell credentials, and the `keyless configure` line. No JavaScript: forms and links only.
///
/// The session is the ID token itself in an HttpOnly, SameSite=Lax cookie, verified on every request like a bearer
/// token (and cached by the verifier), so replicas need no shared session store. Forms carry a CSRF value derived from
/// that token, which a cross-site page cannot read.
public struct WebPage: Sendable {
    let service: AccessService
    let login: WebLogin
    let client: OIDCClient
    let logger: Logger
    let library: MustacheLibrary
    let secureCookies: Bool

    static let sessionCookie = "keyless_web_session"
    static let loginCookie = "keyless_web_login"

    /// A page signing in with `login` at its issuer.
    public init(service: AccessService, login: WebLogin, http: any HTTPTransport, logger: Logger) throws {
        self.service = service
        self.login = login
        self.logger = logger
        // The provider's own choice of openid, email, profile and groups (when it lists groups): no refresh token.
        client = OIDCClient(
            configuration: OIDCClientConfiguration(
                issuer: login.issuer, clientID: login.clientID, clientSecret: login.clientSecret,
                refreshTokens: false),
            http: http, clock: service.clock, logger: logger)
        var library = MustacheLibrary()
        try library.register(WebTemplates.layout, named: "layout")
        try library.register(WebTemplates.signIn, named: "signin")
        try library.register(WebTemplates.roles, named: "roles")
        try library.register(WebTemplates.credentials, named: "credentials")
        try library.register(WebTemplates.message, named: "message")
        self.library = library
        secureCookies = service.configuration.publicURL.hasPrefix("https://")
    }

    var redirectURI: String { service.configuration.publicURL + "/callback" }

    func add(to router: Router<AccessRequestContext>) {
        router.get("/") { request, context in await home(request, context) }
        router.get("/login") { _, _ in try await startLogin() }
        router.get("/callback") { request, context in await callback(request, context) }
        router.post("/logout") { request, context in await logout(request, context) }
        router.post("/web/console") { request, context in await console(request, context) }
        router.post("/web/credentials") { request, context in await credentials(request, context) }
        router.post("/web/requests") { request, context in await ask(request, context) }
        for verb in ["approve", "deny", "revoke"] {
            router.post("/web/requests/\(verb)") { request, context in await act(verb, request, context) }
        }
    }

    // MARK: Pages

    func home(_ request: Request, _ context: AccessRequestContext) async -> Response {
        guard let (caller, token) = await session(request) else {
            var response = page(
                "signin", ["title": "Sign in", "issuer": Self.hostAndPort(of: login.issuer)], status: .ok)
            // An expired or rejected session cookie is dropped, so the browser stops sending it.
            if request.cookies[Self.sessionCookie] != nil {
                response.headers[.setCookie] = cookie(Self.sessionCookie, "", path: "/", maxAge: 0)
            }
            return response
        }
        return await rolesPage(caller, token: token, notice: nil)
    }

    func rolesPage(_ caller: Caller, token: String, notice: String?, status: HTTPResponse.Status = .ok) async
        -> Response
    {
        // The entitlements come sorted by account, as /api/v1/config lists them; consecutive ones share an account.
        let listing = service.policy.current.listing(for: caller.policyCaller)
        var grouped: [(account: PolicyAccount, roles: [(entitlement: Entitlement, onRequest: Eligibility?)])] = []
        for entry in listing {
            if grouped.last?.account.id == entry.entitlement.account.id {
                grouped[grouped.count - 1].roles.append(entry)
            } else {
                grouped.append((entry.entitlement.account, [entry]))
            }
        }
        var notice = notice
        var requests: (mine: [AccessRequestRecord], toApprove: [AccessRequestRecord], active: [AccessRequestRecord]) = (
            [], [], []
        )
        do {
            requests = try await service.requestsView(for: caller)
        } catch let error as AccessError {
            notice = notice ?? error.message
        } catch {
            notice = notice ?? "Access requests cannot be shown right now."
        }
        let now = service.clock.now()
        let csrf = Self.csrf(token)
        let groups = caller.policyCaller.groups.joined(separator: ", ")
        // Mustache renders a section for any present value, even an empty string or a boxed nil: only set what is there.
        var view: [String: Any] = [
            "title": "Your AWS roles",
            "name": caller.name,
            "csrf": csrf,
            "hasGroups": !groups.isEmpty,
            "groups": groups,
            "hasAccounts": !grouped.isEmpty,
            "accounts": grouped.map { account, roles -> [String: Any] in
                let alias = account.alias.flatMap { $0.isEmpty ? nil : $0 }
                return [
                    "heading": alias.map { "\($0) (\(account.id))" } ?? account.id, "anchor": "account-\(account.id)",
                    "roles": roles.map { entitlement, onRequest -> [String: Any] in
                        let role = entitlement.role
                        var entry: [String: Any] = [
                            "arn": role.arn, "name": role.name, "label": "\(role.name) in \(alias ?? account.id)",
                            "session": DurationText.describe(seconds: role.maxSessionSeconds), "mfa": role.mfaRequired,
                            "passkey": role.phishingResistantRequired, "csrf": csrf,
                        ]
                        if let description = role.description, !description.isEmpty {
                            entry["description"] = description
                        }
                        guard let onRequest else {
                            entry["usable"] = true
                            return entry
                        }
                        entry["onRequest"] = true
                        let open = requests.mine.filter { $0.roleArn == role.arn && AccessService.isOpen($0, now: now) }
                        if let grant = open.first(where: { $0.status == .approved }) {
                            entry["usable"] = true
                            entry["grantedUntil"] = AuditRecord.timestamp(grant.endsAt ?? now)
                        } else if let pending = open.first {
                            entry["pending"] = pending.id
                        } else {
                            entry["askable"] = true
                            entry["reasonRequired"] = onRequest.reasonRequired
                            entry["durations"] = Self.durationChoices(upTo: onRequest.maxDurationSeconds)
                        }
                        return entry
                    },
                ]
            },
            "configure": [
                "keyless", "configure", "--config-url", service.configuration.publicURL, "--issuer-url",
                caller.issuer.trusted.issuer,
                "--client-id", caller.issuer.clientID,
            ].map(CredentialProcessLine.quoted).joined(separator: " "),
        ]
        if let notice { view["notice"] = notice }
        func row(_ request: AccessRequestRecord) -> [String: Any] {
            let document = service.document(request)
            var row: [String: Any] = [
                "id": request.id, "role": document.role ?? request.roleArn, "requester": request.requester.name,
                "reason": request.reason, "createdAt": document.createdAt,
                "duration": DurationText.describe(seconds: request.durationSeconds),
                "state": AccessService.state(request, now: now), "csrf": csrf,
            ]
            if AccessService.isOpen(request, now: now) {
                row["open"] = request.status == .pending ? "Withdraw" : "End now"
            }
            return row
        }
        view["hasToApprove"] = !requests.toApprove.isEmpty
        view["toApprove"] = requests.toApprove.map(row)
        view["hasActive"] = !requests.active.isEmpty
        view["active"] = requests.active.map(row)
        view["hasMine"] = !requests.mine.isEmpty
        view["mine"] = requests.mine.map(row)
        return page("roles", view, status: status)
    }

    /// The lengths a request may ask for: 15 min, 30 min, 1, 2, 4, 8, 12 and 24 h up to `maximum`, and `maximum`
    /// itself; 1 h (or the longest, if less) chosen.
    static func durationChoices(upTo maximum: Int) -> [[String: Any]] {
        var seconds = [900, 1800, 3600, 7200, 14400, 28800, 43200, 86400].filter { $0 < maximum }
        seconds.append(maximum)
        let chosen = seconds.contains(3600) ? 3600 : maximum
        return seconds.map { ["seconds": $0, "text": DurationText.describe(seconds: $0), "selected": $0 == chosen] }
    }

    func ask(_ request: Request, _ context: AccessRequestContext) async -> Response {
        guard let (caller, token, form) = await authorizedForm(request) else { return forbidden() }
        do {
            let created = try await service.createRequest(
                for: caller, roleArn: form["role_arn"] ?? "", durationSeconds: form["duration"].flatMap { Int($0) },
                reason: form["reason"], origin: context.origin)
            return await rolesPage(
                caller, token: token,
                notice:
                    "Asked for \(service.document(created).role ?? created.roleArn) for \(DurationText.describe(seconds: created.durationSeconds)): request \(created.id) is waiting for an approver."
            )
        } catch let error as AccessError {
            return await rolesPage(caller, token: token, notice: error.message, status: error.status)
        } catch {
            return await rolesPage(
                caller, token: token, notice: "The request could not be made.", status: .internalServerError)
        }
    }

    func act(_ verb: String, _ request: Request, _ context: AccessRequestContext) async -> Response {
        guard let (caller, token, form) = await authorizedForm(request) else { return forbidden() }
        let id = form["id"] ?? ""
        do {
            let changed =
                verb == "revoke"
                ? try await service.revokeRequest(id: id, by: caller, reason: form["reason"], origin: context.origin)
                : try await service.decideRequest(
                    id: id, approve: verb == "approve", by: caller, note: form["reason"], origin: context.origin)
            let name = service.document(changed).role ?? changed.roleArn
            return await rolesPage(
                caller, token: token,
                notice:
                    "Request \(changed.id) (\(name) for \(changed.requester.name)): \(AccessService.state(changed, now: service.clock.now()))."
            )
        } catch let error as AccessError {
            return await rolesPage(caller, token: token, notice: error.message, status: error.status)
        } catch {
            return await rolesPage(
                caller, token: token, notice: "The request could not be changed.", status: .internalServerError)
        }
    }

    func credentials(_ request: Request, _ context: AccessRequestContext) async -> Response {
        guard let (caller, token, form) = await authorizedForm(request) else { return forbidden() }
        let roleArn = form["role_arn"] ?? ""
        do {
            let (credentials, entitlement) = try await service.credentials(
                for: caller, roleArn: roleArn, durationSeconds: nil, origin: context.origin)
            let lines = [
                "export AWS_ACCESS_KEY_ID=\(credentials.accessKeyId)",
                "export AWS_SECRET_ACCESS_KEY=\(credentials.secretAccessKey)",
                "export AWS_SESSION_TOKEN=\(credentials.sessionToken)",
                "export AWS_REGION=\(entitlement.region)",
            ].joined(separator: "\n")
            return page(
                "credentials",
                [
                    "title": "Shell credentials", "role": entitlement.role.arn, "roleName": entitlement.role.name,
                    "expires": AuditRecord.timestamp(credentials.expiration), "exports": lines,
                    "name": caller.name, "csrf": Self.csrf(token),
                ])
        } catch let error as AccessError {
            return await rolesPage(
                caller, token: token, notice: error.message, status: error.status)
        } catch {
            return await rolesPage(
                caller, token: token, notice: "The credentials could not be issued.", status: .internalServerError)
        }
    }

    func console(_ request: Request, _ context: AccessRequestContext) async -> Response {
        guard let (caller, token, form) = await authorizedForm(request) else { return forbidden() }
        do {
            let url = try await service.consoleURL(
                for: caller, roleArn: form["role_arn"] ?? "", destination: nil, origin: context.origin)
            return Response(status: .seeOther, headers: [.location: url, .cacheControl: "no-store"])
        } catch let error as AccessError {
            return await rolesPage(
                caller, token: token, notice: error.message, status: error.status)
        } catch {
            return await rolesPage(
                caller, token: token, notice: "The console link could not be made.", status: .internalServerError)
        }
    }

    // MARK: Sign-in

    func startLogin() async throws -> Response {
        let pkce = PKCE()
        let state = randomToken(), nonce = randomToken()
        let url: String
        do {
            url = try await client.authorizationURL(redirectURI: redirectURI, state: state, nonce: nonce, pkce: pkce)
        } catch let error as KeylessError {
            return page(
                "message",
                [
                    "title": "Sign-in unavailable",
                    "message": "The identity provider cannot be reached: \(error.reason) Try again in a moment.",
                ],
                status: .badGateway)
        }
        var response = Response(status: .seeOther, headers: [.location: url, .cacheControl: "no-store"])
        response.headers[.setCookie] = cookie(
            Self.loginCookie, [state, nonce, pkce.verifier].joined(separator: "."), path: "/callback", maxAge: 600)
        return response
    }

    func callback(_ request: Request, _ context: AccessRequestContext) async -> Response {
        let query = FormEncoding.decode(request.uri.query ?? "")
        let parts = request.cookies[Self.loginCookie]?.value.split(separator: ".").map(String.init) ?? []
        guard parts.count == 3, let state = query["state"], constantTimeEqual(state.utf8, parts[0].utf8) else {
            return page(
                "message",
                [
                    "title": "Sign-in failed",
                    "message": "This sign-in was not started here or has expired. Sign in again from the start page.",
                ],
                status: .badRequest)
        }
        if let error = query["error"] {
            return page(
                "message",
                [
                    "title": "Sign-in refused",
                    "message":
                        "The identity provider refused the sign-in (\(error)). Sign in again, or ask an administrator.",
                ],
                status: .forbidden)
        }
        guard let code = query["code"] else {
            return page(
                "message",
                [
                    "title": "Sign-in failed",
                    "message": "The identity provider sent no authorization code. Sign in again.",
                ], status: .badRequest)
        }
        do {
            let tokens = try await client.exchange(
                code: code, redirectURI: redirectURI, verifier: parts[2], nonce: parts[1])
            let caller = try await service.authenticate(tokens.idToken)
            let maxAge = max(0, Int(caller.bearer.expiresAt.timeIntervalSince(service.clock.now())))
            var response = Response(status: .seeOther, headers: [.location: "/", .cacheControl: "no-store"])
            response.headers.append(
                HTTPField(
                    name: .setCookie, value: cookie(Self.sessionCookie, tokens.idToken, path: "/", maxAge: maxAge)))
            response.headers.append(
                HTTPField(name: .setCookie, value: cookie(Self.loginCookie, "", path: "/callback", maxAge: 0)))
            return response
        } catch let error as AccessError {
            return page(
                "message", ["title": "Sign-in refused", "message": error.message],
                status: error.status)
        } catch let error as KeylessError {
            return page(
                "message", ["title": "Sign-in failed", "message": "\(error.reason) Sign in again."], status: .badGateway
            )
        } catch {
            return page(
                "message", ["title": "Sign-in failed", "message": "Sign in again."], status: .internalServerError)
        }
    }

    func logout(_ request: Request, _ context: AccessRequestContext) async -> Response {
        // A live session ends only through its own form; a dead one (expired, keys rotated) is simply dropped.
        if await session(request) != nil {
            guard await authorizedForm(request) != nil else { return forbidden() }
        }
        var response = Response(status: .seeOther, headers: [.location: "/", .cacheControl: "no-store"])
        response.headers[.setCookie] = cookie(Self.sessionCookie, "", path: "/", maxAge: 0)
        return response
    }

    // MARK: Session and CSRF

    func session(_ request: Request) async -> (Caller, String)? {
        guard let token = request.cookies[Self.sessionCookie]?.value, !token.isEmpty else { return nil }
        guard let caller = try? await service.authenticate(token) else { return nil }
        return (caller, token)
    }

    /// The signed-in caller and the form, when the form's CSRF value matches the session and the Origin (if sent) is ours.
    func authorizedForm(_ request: Request) async -> (Caller, String, [String: String])? {
        if let origin = request.headers[.origin], origin != Self.origin(of: service.configuration.publicURL) {
            return nil
        }
        guard let (caller, token) = await session(request) else { return nil }
        guard let buffer = try? await request.body.collect(upTo: 16 * 1024) else { return nil }
        let form = FormEncoding.decode(String(buffer: buffer))
        guard let csrf = form["csrf"], constantTimeEqual(csrf.utf8, Self.csrf(token).utf8) else { return nil }
        return (caller, token, form)
    }

    func forbidden() -> Response {
        page(
            "message",
            [
                "title": "Not allowed",
                "message": "Your session has ended or the form is stale. Go back to the start page and try again.",
            ], status: .forbidden)
    }

    static func csrf(_ token: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(("keyless-web-csrf\u{0}" + token).utf8))).prefix(24))
    }

    static func origin(of url: String) -> String {
        guard let parsed = URL(string: url), let scheme = parsed.scheme, let host = parsed.host else { return url }
        let defaultPort = scheme == "https" ? 443 : 80
        return "\(scheme)://\(host)" + (parsed.port.map { $0 == defaultPort ? "" : ":\($0)" } ?? "")
    }

    /// `host[:port]` of a URL, for telling people where they sign in without the noise of a full URL.
    static func hostAndPort(of url: String) -> String {
        guard let parsed = URL(string: url), let host = parsed.host else { return url }
        return host + (parsed.port.map { ":\($0)" } ?? "")
    }

    func cookie(_ name: String, _ value: String, path: String, maxAge: Int) -> String {
        "\(name)=\(value); Path=\(path); Max-Age=\(maxAge); HttpOnly; SameSite=Lax" + (secureCookies ? "; Secure" : "")
    }

    // MARK: Rendering

    func page(_ template: String, _ view: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        var view = view
        view["body"] = library.render(view, withTemplate: template) ?? ""
        let html = library.render(view, withTemplate: "layout") ?? ""
        return Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

}
