import Foundation
import KeylessCore
import KeylessHTTP
import Logging

/// Tokens from one login, as kept (encrypted) in the secret store.
public struct TokenSet: Codable, Sendable, Equatable {
    /// The ID token: what STS receives.
    public var idToken: String
    /// The refresh token, when the provider issued one.
    public var refreshToken: String?
    /// The access token (for `keyless token --access`), when issued.
    public var accessToken: String?
    /// When the access token expires.
    public var accessTokenExpiresAt: Date?
    /// When this set was obtained.
    public var obtainedAt: Date
    /// The `--auth-param` values the login used, so a later login started by `creds-process` asks the same.
    public var authorizationParameters: [AuthorizationParameter]?
    /// The `--scopes` the login was given (nil: chosen from discovery), reused the same way.
    public var requestedScopes: [String]?

    public init(
        idToken: String, refreshToken: String?, accessToken: String?, accessTokenExpiresAt: Date?, obtainedAt: Date,
        authorizationParameters: [AuthorizationParameter]? = nil
    ) {
        self.idToken = idToken
        self.refreshToken = refreshToken
        self.accessToken = accessToken
        self.accessTokenExpiresAt = accessTokenExpiresAt
        self.obtainedAt = obtainedAt
        self.authorizationParameters = authorizationParameters
    }
}

/// Which OpenID Provider and client to log in with.
public struct OIDCClientConfiguration: Sendable, Equatable {
    /// The issuer URL.
    public var issuer: String
    /// The client id registered at the provider.
    public var clientID: String
    /// The client secret, for confidential clients (and installed apps whose secret is public by design, as Google's).
    public var clientSecret: String?
    /// Scopes the person asked for (`openid` added); nil: chosen from the provider's discovery document.
    public var scopes: [String]?
    /// Extra authorization parameters (`--auth-param`).
    public var authorizationParameters: [AuthorizationParameter]
    /// The provider's dialect (detected from the issuer unless given).
    public var dialect: ProviderDialect
    /// Whether a login asks for a refresh token (`offline_access`) when no scopes were given; a web sign-in does not.
    public var refreshTokens: Bool

    public init(
        issuer: String, clientID: String, clientSecret: String? = nil, scopes: [String]? = nil,
        authorizationParameters: [AuthorizationParameter] = [], dialect: ProviderDialect? = nil,
        refreshTokens: Bool = true
    ) {
        self.refreshTokens = refreshTokens
        self.issuer = Discovery.normalize(issuer)
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scopes = scopes.flatMap { $0.isEmpty ? nil : ($0.contains("openid") ? $0 : ["openid"] + $0) }
        self.authorizationParameters = authorizationParameters
        self.dialect = dialect ?? ProviderDialect.detect(issuer: issuer)
    }

    /// How requests to this provider are shaped.
    public var profile: ProviderProfile { ProviderProfile(dialect: dialect) }
}

/// How a login talks to the person: it shows URLs and codes and a waiting indicator.
public protocol LoginPresenter: Sendable {
    /// Tries to open `url` in a browser; returns whether a browser was started.
    func openBrowser(_ url: String) -> Bool
    /// Shows the URL to open by hand (when no browser was started) or for reference.
    func showLoginURL(_ url: String, browserOpened: Bool)
    /// Shows the device-flow user code and where to enter it.
    func showDeviceCode(userCode: String, verificationURI: String, verificationURIComplete: String?)
    /// Starts a waiting indicator; the returned closure stops it.
    func waiting(_ message: String) -> @Sendable () -> Void
}

/// An OpenID Connect relying party for native apps: authorization code + PKCE via a loopback
/// redirect, the device authorization grant, refresh and revocation.
public actor OIDCClient {
    /// The provider and client.
    public let configuration: OIDCClientConfiguration
    let http: any HTTPTransport
    let clock: WallClock
    let logger: Logger
    private var metadataCache: ProviderMetadata?
    private var verifierCache: IDTokenVerifier?

    public init(configuration: OIDCClientConfiguration, http: any HTTPTransport, clock: WallClock, logger: Logger) {
        self.configuration = configuration
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// The provider's discovery document, fetched once.
    public func metadata() async throws -> ProviderMetadata {
        if let metadataCache { return metadataCache }
        let metadata = try await Discovery.fetch(issuer: configuration.issuer, http: http, logger: logger)
        metadataCache = metadata
        return metadata
    }

    /// Verifies an ID token from this provider for this client.
    public func verify(idToken: String, nonce: String? = nil) async throws -> IDTokenClaims {
        if verifierCache == nil {
            let metadata = try await metadata()
            verifierCache = IDTokenVerifier(
                issuer: configuration.issuer, clientID: configuration.clientID,
                jwksURI: metadata.jwksURI, http: http, clock: clock, logger: logger,
                alternativeIssuers: configuration.profile.alternativeIssuers(configuration.issuer),
                tenantTemplate: metadata.isTenantTemplate ? metadata.issuer : nil)
        }
        return try await verifierCache!.verify(idToken, nonce: nonce)
    }

    /// The scopes this client requests: the person's (given now, else at the previous login), or those the provider
    /// supports of openid, email, profile, groups, offline_access (`ProviderProfile.scopes`).
    public func scopes(previous: TokenSet? = nil) async throws -> [String] {
        configuration.profile.scopes(
            explicit: configuration.scopes ?? previous?.requestedScopes, metadata: try await metadata(),
            refresh: configuration.refreshTokens)
    }

    /// Records on `tokens` what the login asked for, so that later logins ask the same.
    func remembering(_ tokens: TokenSet, previous: TokenSet?) -> TokenSet {
        var tokens = tokens
        tokens.refreshToken = tokens.refreshToken ?? previous?.refreshToken
        tokens.authorizationParameters = authorizationParameters(previous: previous).nilIfEmpty
        tokens.requestedScopes = configuration.scopes ?? previous?.requestedScopes
        return tokens
    }

    /// The extra authorization parameters of a login: the configured ones, else those of the previous login.
    func authorizationParameters(previous: TokenSet?) -> [AuthorizationParameter] {
        configuration.authorizationParameters.isEmpty
            ? (previous?.authorizationParameters ?? []) : configuration.authorizationParameters
    }

    /// The authorization request's query for a login.
    func authorizationQuery(
        redirectURI: String, state: String, nonce: String, pkce: PKCE, previous: TokenSet?, offline: Bool = true
    ) async throws -> [(String, String)] {
        let scopes = try await scopes(previous: previous)
        let extra = configuration.profile.authorizationParameters(
            explicit: authorizationParameters(previous: previous),
            holdsRefreshToken: previous?.refreshToken != nil, offline: offline)
        return [
            ("response_type", "code"), ("client_id", configuration.clientID), ("redirect_uri", redirectURI),
            ("scope", scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", pkce.challenge), ("code_challenge_method", "S256"),
        ] + extra
    }

    /// Logs in through the browser: authorization code with PKCE S256, `state` and `nonce`, redirect to 127.0.0.1.
    /// - Parameters:
    ///   - redirectPort: the loopback port (0: any free port; providers that match redirect URIs exactly need a fixed one).
    ///   - timeout: how long to wait for the person, in seconds.
    ///   - previous: the tokens kept from an earlier login, if any: its refresh token is kept when the provider issues
    ///     no new one (Google issues one only at the first consent), and its `--auth-param` values are reused.
    public func loginWithBrowser(
        redirectPort: Int, presenter: any LoginPresenter, timeout: Double = 300, previous: TokenSet? = nil
    ) async throws -> TokenSet {
        let metadata = try await metadata()
        let pkce = PKCE()
        let state = randomToken()
        let nonce = randomToken()
        let server = try await LoopbackServer.start(port: redirectPort, expectedState: state)
        defer { Task { await server.stop() } }
        let query = try await authorizationQuery(
            redirectURI: server.redirectURI, state: state, nonce: nonce, pkce: pkce, previous: previous)
        let separator = metadata.authorizationEndpoint.contains("?") ? "&" : "?"
        let url = metadata.authorizationEndpoint + separator + FormEncoding.encode(query)
        let opened = presenter.openBrowser(url)
        presenter.showLoginURL(url, browserOpened: opened)
        let stopWaiting = presenter.waiting("Waiting for the login to finish in the browser")
        defer { stopWaiting() }

        let parameters = try await withThrowingTaskGroup(of: [String: String]?.self) { group in
            group.addTask { await server.nextCallback() }
            group.addTask {
                try await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
                return nil
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let parameters else {
            throw KeylessError(
                .loginFailed, "No login arrived from the browser within \(Int(timeout)) s.",
                hint: ProviderErrorAdvice.noCallbackHint(
                    redirectURI: server.redirectURI, clientID: configuration.clientID))
        }
        // The listener delivers only callbacks with this login's state; checked again here so that stays true.
        guard parameters["state"] == state else {
            throw KeylessError(
                .stateMismatch, "The browser returned a login that keyless did not start (state mismatch).",
                hint: "Close old login tabs and run the login again.")
        }
        if let error = parameters["error"] {
            let description = parameters["error_description"].map { " (\($0))" } ?? ""
            throw KeylessError(
                .loginFailed, "The identity provider refused the login: \(error)\(description).",
                hint: advice.hint(error: error, description: parameters["error_description"], step: .authorization))
        }
        guard let code = parameters["code"] else {
            throw KeylessError(
                .loginFailed, "The browser returned no authorization code.", hint: "Run the login again.")
        }
        let tokens = try await exchange(
            tokenEndpoint: metadata.tokenEndpoint,
            form: [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", server.redirectURI),
                ("code_verifier", pkce.verifier),
            ], nonce: nonce, previous: nil)
        return remembering(tokens, previous: previous)
    }

    /// The authorization URL for a web application's sign-in (authorization code with PKCE S256, `state` and `nonce`);
    /// it asks for no refresh token (no Google `access_type=offline`, no `prompt=consent`) unless `offline`.
    public func authorizationURL(
        redirectURI: String, state: String, nonce: String, pkce: PKCE, offline: Bool = false
    ) async throws -> String {
        let metadata = try await metadata()
        let query = try await authorizationQuery(
            redirectURI: redirectURI, state: state, nonce: nonce, pkce: pkce, previous: nil, offline: offline)
        return metadata.authorizationEndpoint + (metadata.authorizationEndpoint.contains("?") ? "&" : "?")
            + FormEncoding.encode(query)
    }

    /// Exchanges a web application's authorization code; the ID token is verified, with `nonce`.
    public func exchange(code: String, redirectURI: String, verifier: String, nonce: String) async throws -> TokenSet {
        let metadata = try await metadata()
        return try await exchange(
            tokenEndpoint: metadata.tokenEndpoint,
            form: [
                ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI),
                ("code_verifier", verifier),
            ], nonce: nonce, previous: nil)
    }

    /// Logs in with the device authorization grant (RFC 8628): shows a code, polls until approved.
    public func loginWithDevice(presenter: any LoginPresenter, previous: TokenSet? = nil) async throws -> TokenSet {
        let metadata = try await metadata()
        guard let endpoint = metadata.deviceAuthorizationEndpoint else {
            throw KeylessError(
                .usage, "\(configuration.issuer) does not offer the device flow.",
                hint: "Log in without --device (browser, or --no-browser to copy the URL).")
        }
        // Provider-specific parameters (Auth0's audience) belong in the device request too; Google's access_type does not.
        let extra = authorizationParameters(previous: previous).map { ($0.name, $0.value) }
        let body = try await post(
            endpoint, form: [("scope", try await scopes(previous: previous).joined(separator: " "))] + extra,
            what: "device authorization")
        guard let deviceCode = body["device_code"]?.string, let userCode = body["user_code"]?.string,
            let verificationURI = (body["verification_uri"] ?? body["verification_url"])?.string
        else {
            throw KeylessError(
                .idpError, "The device authorization response lacks device_code, user_code or verification_uri.",
                hint: "Check the identity provider's device-flow configuration.")
        }
        presenter.showDeviceCode(
            userCode: userCode, verificationURI: verificationURI,
            verificationURIComplete: body["verification_uri_complete"]?.string)
        var interval = min(max(Self.number(body["interval"]) ?? 5, 0), 60)
        // RFC 8628 §3.2: expires_in is required; a device code that lives more than a day is not one to wait for.
        let deadline = clock.now().addingTimeInterval(min(max(Self.number(body["expires_in"]) ?? 600, 1), 86_400))
        let stopWaiting = presenter.waiting("Waiting for you to approve code \(userCode)")
        defer { stopWaiting() }
        while clock.now() < deadline {
            try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
            let response = try await send(
                metadata.tokenEndpoint,
                form: [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode),
                ], what: "device token")
            if response.status == 200 {
                return remembering(try await tokens(from: response, nonce: nil, previous: nil), previous: previous)
            }
            let error = Self.json(response.body)["error"]?.string
            switch error {
            case "authorization_pending": continue
            case "slow_down": interval = min(interval + 5, 60)
            case "expired_token":
                throw KeylessError(
                    .loginFailed, "The device code \(userCode) expired before it was approved.",
                    hint: "Run the login again and approve the new code sooner.")
            case "access_denied":
                throw KeylessError(
                    .loginFailed, "The device login was denied.", hint: "Run the login again and approve it.")
            default:
                throw tokenError(response, what: "device token")
            }
        }
        throw KeylessError(
            .loginFailed, "The device code \(userCode) expired before it was approved.", hint: "Run the login again.")
    }

    /// Uses the refresh token. Throws `loginRequired` when the provider no longer accepts it, or when it
    /// returns no new ID token and the old one has expired (glewlwyd and others return none on refresh).
    public func refresh(_ tokens: TokenSet) async throws -> TokenSet {
        guard let refreshToken = tokens.refreshToken else {
            throw KeylessError(
                .loginRequired, "There is no refresh token (the provider issued none).",
                hint: "Log in again: keyless login.")
        }
        let metadata = try await metadata()
        let response = try await send(
            metadata.tokenEndpoint,
            form: [
                ("grant_type", "refresh_token"), ("refresh_token", refreshToken),
                ("scope", try await scopes(previous: tokens).joined(separator: " ")),
            ], what: "refresh")
        guard response.status == 200 else {
            if let refusal = Self.refreshRefusal(response) {
                throw KeylessError(
                    .loginRequired, "The identity provider no longer accepts the refresh token (\(refusal)).",
                    hint: "Log in again: keyless login.")
            }
            throw tokenError(response, what: "refresh")
        }
        var refreshed = try await self.tokens(from: response, nonce: nil, previous: tokens)
        refreshed.authorizationParameters = tokens.authorizationParameters
        refreshed.requestedScopes = tokens.requestedScopes
        return refreshed
    }

    /// A provider brokering another's sign-in checks the upstream session: a refresh that succeeds (HTTP 200) proves it
    /// alive even without a new ID token (glewlwyd sends none). Returns the new ID token (verified) and refresh token,
    /// when sent. Throws `loginRequired`, with the provider's reason, when the refresh token is refused.
    public func refreshSession(refreshToken: String, scopes: [String]? = nil) async throws -> (
        idToken: String?, refreshToken: String?
    ) {
        let metadata = try await metadata()
        var form = [("grant_type", "refresh_token"), ("refresh_token", refreshToken)]
        if let scopes { form.append(("scope", scopes.joined(separator: " "))) }
        let response = try await send(metadata.tokenEndpoint, form: form, what: "refresh")
        let body = Self.json(response.body)
        guard response.status == 200 else {
            if let refusal = Self.refreshRefusal(response) {
                throw KeylessError(
                    .loginRequired, "\(configuration.issuer) no longer accepts the session (\(refusal)).",
                    hint: "Sign in again.")
            }
            throw tokenError(response, what: "refresh")
        }
        let idToken = body["id_token"]?.string
        if let idToken { _ = try await verify(idToken: idToken) }
        return (idToken, body["refresh_token"]?.string)
    }

    /// When a refresh was refused for good (`invalid_grant`, `invalid_token`, 400, 401): the error and the provider's
    /// reason (a person deleted or disabled in its directory, a session ended), shortened, as it is shown to people.
    /// nil for other failures (the provider down, a 5xx), which a retry may cure.
    static func refreshRefusal(_ response: HTTPResponseData) -> String? {
        let body = json(response.body)
        let error = body["error"]?.string
        guard error == "invalid_grant" || error == "invalid_token" || response.status == 401 || response.status == 400
        else { return nil }
        let description = body["error_description"]?.string.map { ": " + String($0.prefix(300)) } ?? ""
        return (error ?? "HTTP \(response.status)") + description
    }

    /// Revokes a refresh token (RFC 7009); returns false when the provider has no revocation endpoint.
    public func revoke(refreshToken: String) async throws -> Bool {
        let metadata = try await metadata()
        guard let endpoint = metadata.revocationEndpoint else { return false }
        let response = try await send(
            endpoint, form: [("token", refreshToken), ("token_type_hint", "refresh_token")], what: "revocation")
        guard response.status == 200 else { throw tokenError(response, what: "revocation") }
        return true
    }

    /// What the token endpoint says about this client, without logging anyone in: a code exchange with a made-up
    /// code. A known client with the right authentication gets `invalid_grant` (the code is unknown); an unknown
    /// client or a wrong secret gets `invalid_client` (RFC 6749 §5.2). Returns the error code and description.
    public func probeClient() async throws -> (error: String?, description: String?, status: Int) {
        let metadata = try await metadata()
        let response = try await send(
            metadata.tokenEndpoint,
            form: [
                ("grant_type", "authorization_code"), ("code", "keyless-doctor-probe-" + randomToken()),
                ("redirect_uri", "http://127.0.0.1/callback"), ("code_verifier", PKCE().verifier),
            ], what: "client check")
        let body = Self.json(response.body)
        return (body["error"]?.string, body["error_description"]?.string, response.status)
    }

    // MARK: - token endpoint

    private func exchange(tokenEndpoint: String, form: [(String, String)], nonce: String?, previous: TokenSet?)
        async throws -> TokenSet
    {
        let response = try await send(tokenEndpoint, form: form, what: "code exchange")
        guard response.status == 200 else { throw tokenError(response, what: "code exchange") }
        return try await tokens(from: response, nonce: nonce, previous: previous)
    }

    private func tokens(from response: HTTPResponseData, nonce: String?, previous: TokenSet?) async throws -> TokenSet {
        let body = Self.json(response.body)
        let now = clock.now()
        let idToken: String
        if let fresh = body["id_token"]?.string {
            _ = try await verify(idToken: fresh, nonce: nonce)
            idToken = fresh
        } else if let previous, let old = UnverifiedJWT.claims(previous.idToken),
            old.expiresAt.timeIntervalSince(now) > 30
        {
            idToken = previous.idToken
        } else if previous != nil {
            throw KeylessError(
                .loginRequired, "The refresh returned no new ID token and the previous one has expired.",
                hint: "Log in again: keyless login.")
        } else {
            throw KeylessError(
                .idpError, "The identity provider returned no ID token.",
                hint: "Request the openid scope (--scopes openid ...) and check the client's settings.")
        }
        let expiresIn = Self.number(body["expires_in"]).map { min(max($0, 0), 366 * 86_400) }
        return TokenSet(
            idToken: idToken,
            refreshToken: (body["refresh_token"]?.string) ?? previous?.refreshToken,
            accessToken: body["access_token"]?.string,
            accessTokenExpiresAt: expiresIn.map { now.addingTimeInterval($0) },
            obtainedAt: now)
    }

    /// The client's identification or authentication for a request to the provider: `client_id` in the form for a
    /// public client; with a secret, HTTP Basic or the form as the provider's discovery says it accepts.
    private func clientAuthentication() async throws -> (form: [(String, String)], headers: [String: String]) {
        guard let secret = configuration.clientSecret else { return ([("client_id", configuration.clientID)], [:]) }
        switch configuration.profile.secretMethod(metadata: try await metadata()) {
        case .post:
            return ([("client_id", configuration.clientID), ("client_secret", secret)], [:])
        case .basic:
            // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
            let credentials = FormEncoding.escape(configuration.clientID) + ":" + FormEncoding.escape(secret)
            return ([], ["authorization": "Basic " + Data(credentials.utf8).base64EncodedString()])
        }
    }

    var advice: ProviderErrorAdvice {
        ProviderErrorAdvice(
            issuer: configuration.issuer, clientID: configuration.clientID,
            hasSecret: configuration.clientSecret != nil,
            scopesSupported: metadataCache?.scopesSupported)
    }

    private func post(_ url: String, form: [(String, String)], what: String) async throws -> [String: JSONValue] {
        let response = try await send(url, form: form, what: what)
        guard response.status == 200 else { throw tokenError(response, what: what) }
        return Self.json(response.body)
    }

    /// POSTs `form` with the client's authentication added.
    private func send(_ url: String, form: [(String, String)], what: String) async throws -> HTTPResponseData {
        logger.debug("oidc request", metadata: ["oidc.step": "\(what)", "oidc.url": "\(url)"])
        let authentication = try await clientAuthentication()
        let headers = ["content-type": "application/x-www-form-urlencoded", "accept": "application/json"].merging(
            authentication.headers
        ) { _, new in new }
        do {
            return try await http.send(
                method: "POST", url: url, headers: headers,
                body: Array(FormEncoding.encode(authentication.form + form).utf8))
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot reach the identity provider for the \(what) (\(url)): \(error).",
                hint: "Check the network and that \(configuration.issuer) is up, then retry.")
        }
    }

    private func tokenError(_ response: HTTPResponseData, what: String) -> KeylessError {
        let body = Self.json(response.body)
        let error = body["error"]?.string ?? "HTTP \(response.status)"
        let description = body["error_description"]?.string
        return KeylessError(
            .idpError, "The identity provider rejected the \(what): \(error)\(description.map { " (\($0))" } ?? "").",
            hint: advice.hint(
                error: error, description: description,
                step: what == "device authorization" || what == "device token" ? .device : .token))
    }

    static func json(_ bytes: [UInt8]) -> [String: JSONValue] { JSONValue.members(of: bytes) }

    /// A number a provider sent (as a number or a string), or nil when it is missing, not a number, or not finite:
    /// "nan", "inf" and "1e999" become durations and dates, where they would trap.
    static func number(_ value: JSONValue?) -> Double? {
        let number: Double? =
            switch value {
            case .number(let value): value
            case .string(let text): Double(text)
            default: nil
            }
        guard let number, number.isFinite else { return nil }
        return number
    }
}

extension Array {
    /// nil for an empty array.
    var nilIfEmpty: [Element]? { isEmpty ? nil : self }
}
