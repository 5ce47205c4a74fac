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

    /// Creates a token set.
    public init(idToken: String, refreshToken: String?, accessToken: String?, accessTokenExpiresAt: Date?, obtainedAt: Date) {
        self.idToken = idToken
        self.refreshToken = refreshToken
        self.accessToken = accessToken
        self.accessTokenExpiresAt = accessTokenExpiresAt
        self.obtainedAt = obtainedAt
    }
}

/// Which OpenID Provider and client to log in with.
public struct OIDCClientConfiguration: Sendable, Equatable {
    /// The issuer URL.
    public var issuer: String
    /// The client id registered at the provider.
    public var clientID: String
    /// The client secret, for confidential clients only.
    public var clientSecret: String?
    /// Scopes to request; `openid` is always included.
    public var scopes: [String]

    /// Creates a configuration.
    public init(issuer: String, clientID: String, clientSecret: String? = nil, scopes: [String] = ["openid", "email", "profile", "offline_access"]) {
        self.issuer = Discovery.normalize(issuer)
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.scopes = scopes.contains("openid") ? scopes : ["openid"] + scopes
    }
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

    /// Creates a client.
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
            verifierCache = IDTokenVerifier(issuer: configuration.issuer, clientID: configuration.clientID,
                                            jwksURI: metadata.jwksURI, http: http, clock: clock, logger: logger)
        }
        return try await verifierCache!.verify(idToken, nonce: nonce)
    }

    /// Logs in through the browser: authorization code with PKCE S256, `state` and `nonce`, redirect to 127.0.0.1.
    /// - Parameters:
    ///   - redirectPort: the loopback port (0: any free port; providers that match redirect URIs exactly need a fixed one).
    ///   - timeout: how long to wait for the person, in seconds.
    public func loginWithBrowser(redirectPort: Int, presenter: any LoginPresenter, timeout: Double = 300) async throws -> TokenSet {
        let metadata = try await metadata()
        let pkce = PKCE()
        let state = PKCE.randomToken()
        let nonce = PKCE.randomToken()
        let server = try await LoopbackServer.start(port: redirectPort, expectedState: state)
        defer { Task { await server.stop() } }
        let query = [
            ("response_type", "code"), ("client_id", configuration.clientID), ("redirect_uri", server.redirectURI),
            ("scope", configuration.scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", pkce.challenge), ("code_challenge_method", "S256"),
        ]
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
            throw KeylessError(.loginFailed, "No login arrived from the browser within \(Int(timeout)) s.",
                               hint: "Run the login again; with no browser on this machine use --device or --no-browser.")
        }
        guard parameters["state"] == state else {
            throw KeylessError(.stateMismatch, "The browser returned a login that keyless did not start (state mismatch); it was ignored.",
                               hint: "Close old login tabs and run the login again.")
        }
        if let error = parameters["error"] {
            throw KeylessError(.loginFailed, "The identity provider refused the login: \(error) \(parameters["error_description"] ?? "").",
                               hint: "Check that you may use this client (\(configuration.clientID)), then log in again.")
        }
        guard let code = parameters["code"] else {
            throw KeylessError(.loginFailed, "The browser returned no authorization code.", hint: "Run the login again.")
        }
        return try await exchange(tokenEndpoint: metadata.tokenEndpoint, form: [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", server.redirectURI), ("code_verifier", pkce.verifier),
        ], nonce: nonce, previous: nil)
    }

    /// The authorization URL for a web application's login (authorization code with PKCE S256, `state` and `nonce`).
    public func authorizationURL(redirectURI: String, state: String, nonce: String, pkce: PKCE) async throws -> String {
        let metadata = try await metadata()
        let query = [
            ("response_type", "code"), ("client_id", configuration.clientID), ("redirect_uri", redirectURI),
            ("scope", configuration.scopes.joined(separator: " ")), ("state", state), ("nonce", nonce),
            ("code_challenge", pkce.challenge), ("code_challenge_method", "S256"),
        ]
        return metadata.authorizationEndpoint + (metadata.authorizationEndpoint.contains("?") ? "&" : "?") + FormEncoding.encode(query)
    }

    /// Exchanges a web application's authorization code; the ID token is verified, with `nonce`.
    public func exchange(code: String, redirectURI: String, verifier: String, nonce: String) async throws -> TokenSet {
        let metadata = try await metadata()
        return try await exchange(tokenEndpoint: metadata.tokenEndpoint, form: [
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", redirectURI), ("code_verifier", verifier),
        ], nonce: nonce, previous: nil)
    }

    /// Logs in with the device authorization grant (RFC 8628): shows a code, polls until approved.
    public func loginWithDevice(presenter: any LoginPresenter) async throws -> TokenSet {
        let metadata = try await metadata()
        guard let endpoint = metadata.deviceAuthorizationEndpoint else {
            throw KeylessError(.usage, "\(configuration.issuer) does not offer the device flow.", hint: "Log in without --device (browser, or --no-browser to copy the URL).")
        }
        let body = try await post(endpoint, form: clientAuthentication() + [("scope", configuration.scopes.joined(separator: " "))], what: "device authorization")
        guard let deviceCode = body["device_code"] as? String, let userCode = body["user_code"] as? String,
              let verificationURI = (body["verification_uri"] ?? body["verification_url"]) as? String else {
            throw KeylessError(.idpError, "The device authorization response lacks device_code, user_code or verification_uri.",
                               hint: "Check the identity provider's device-flow configuration.")
        }
        presenter.showDeviceCode(userCode: userCode, verificationURI: verificationURI,
                                 verificationURIComplete: body["verification_uri_complete"] as? String)
        var interval = min(max(Self.number(body["interval"]) ?? 5, 0), 60)
        let deadline = clock.now().addingTimeInterval(Self.number(body["expires_in"]) ?? 600)
        let stopWaiting = presenter.waiting("Waiting for you to approve code \(userCode)")
        defer { stopWaiting() }
        while clock.now() < deadline {
            try await Task.sleep(nanoseconds: UInt64(interval * 1e9))
            let response = try await send(metadata.tokenEndpoint, form: clientAuthentication() + [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode),
            ], what: "device token")
            if response.status == 200 { return try await tokens(from: response, nonce: nil, previous: nil) }
            let error = Self.json(response.body)["error"] as? String
            switch error {
            case "authorization_pending": continue
            case "slow_down": interval = min(interval + 5, 60)
            case "expired_token":
                throw KeylessError(.loginFailed, "The device code \(userCode) expired before it was approved.", hint: "Run the login again and approve the new code sooner.")
            case "access_denied":
                throw KeylessError(.loginFailed, "The device login was denied.", hint: "Run the login again and approve it.")
            default:
                throw tokenError(response, what: "device token")
            }
        }
        throw KeylessError(.loginFailed, "The device code \(userCode) expired before it was approved.", hint: "Run the login again.")
    }

    /// Uses the refresh token. Throws `loginRequired` when the provider no longer accepts it, or when it
    /// returns no new ID token and the old one has expired (glewlwyd and others return none on refresh).
    public func refresh(_ tokens: TokenSet) async throws -> TokenSet {
        guard let refreshToken = tokens.refreshToken else {
            throw KeylessError(.loginRequired, "There is no refresh token (the provider issued none).", hint: "Log in again: keyless login.")
        }
        let metadata = try await metadata()
        let response = try await send(metadata.tokenEndpoint, form: clientAuthentication() + [
            ("grant_type", "refresh_token"), ("refresh_token", refreshToken), ("scope", configuration.scopes.joined(separator: " ")),
        ], what: "refresh")
        guard response.status == 200 else {
            let error = Self.json(response.body)["error"] as? String
            if error == "invalid_grant" || error == "invalid_token" || response.status == 401 || response.status == 400 {
                throw KeylessError(.loginRequired, "The identity provider no longer accepts the refresh token (\(error ?? "HTTP \(response.status)")).",
                                   hint: "Log in again: keyless login.")
            }
            throw tokenError(response, what: "refresh")
        }
        return try await self.tokens(from: response, nonce: nil, previous: tokens)
    }

    /// Revokes a refresh token (RFC 7009); returns false when the provider has no revocation endpoint.
    public func revoke(refreshToken: String) async throws -> Bool {
        let metadata = try await metadata()
        guard let endpoint = metadata.revocationEndpoint else { return false }
        let response = try await send(endpoint, form: clientAuthentication() + [("token", refreshToken), ("token_type_hint", "refresh_token")], what: "revocation")
        guard response.status == 200 else { throw tokenError(response, what: "revocation") }
        return true
    }

    // MARK: - token endpoint

    private func exchange(tokenEndpoint: String, form: [(String, String)], nonce: String?, previous: TokenSet?) async throws -> TokenSet {
        let response = try await send(tokenEndpoint, form: clientAuthentication() + form, what: "code exchange")
        guard response.status == 200 else { throw tokenError(response, what: "code exchange") }
        return try await tokens(from: response, nonce: nonce, previous: previous)
    }

    private func tokens(from response: HTTPResponseData, nonce: String?, previous: TokenSet?) async throws -> TokenSet {
        let body = Self.json(response.body)
        let now = clock.now()
        let idToken: String
        if let fresh = body["id_token"] as? String {
            _ = try await verify(idToken: fresh, nonce: nonce)
            idToken = fresh
        } else if let previous, let old = UnverifiedJWT.claims(previous.idToken), old.expiresAt.timeIntervalSince(now) > 30 {
            idToken = previous.idToken
        } else if previous != nil {
            throw KeylessError(.loginRequired, "The refresh returned no new ID token and the previous one has expired.", hint: "Log in again: keyless login.")
        } else {
            throw KeylessError(.idpError, "The identity provider returned no ID token.", hint: "Request the openid scope (--scopes openid ...) and check the client's settings.")
        }
        let expiresIn = Self.number(body["expires_in"])
        return TokenSet(idToken: idToken,
                        refreshToken: (body["refresh_token"] as? String) ?? previous?.refreshToken,
                        accessToken: body["access_token"] as? String,
                        accessTokenExpiresAt: expiresIn.map { now.addingTimeInterval($0) },
                        obtainedAt: now)
    }

    private func clientAuthentication() -> [(String, String)] {
        var form = [("client_id", configuration.clientID)]
        if let secret = configuration.clientSecret { form.append(("client_secret", secret)) }
        return form
    }

    private func post(_ url: String, form: [(String, String)], what: String) async throws -> [String: Any] {
        let response = try await send(url, form: form, what: what)
        guard response.status == 200 else { throw tokenError(response, what: what) }
        return Self.json(response.body)
    }

    private func send(_ url: String, form: [(String, String)], what: String) async throws -> HTTPResponseData {
        logger.debug("oidc request", metadata: ["oidc.step": "\(what)", "oidc.url": "\(url)"])
        do {
            return try await http.send(method: "POST", url: url,
                                       headers: ["content-type": "application/x-www-form-urlencoded", "accept": "application/json"],
                                       body: Array(FormEncoding.encode(form).utf8))
        } catch {
            throw KeylessError(.idpUnreachable, "Cannot reach the identity provider for the \(what) (\(url)): \(error).",
                               hint: "Check the network and that \(configuration.issuer) is up, then retry.")
        }
    }

    private func tokenError(_ response: HTTPResponseData, what: String) -> KeylessError {
        let body = Self.json(response.body)
        let error = body["error"] as? String ?? "HTTP \(response.status)"
        let description = body["error_description"] as? String
        return KeylessError(.idpError, "The identity provider rejected the \(what): \(error)\(description.map { " (\($0))" } ?? "").",
                            hint: "Check --client-id and the client's allowed grants and redirect URIs at the provider.")
    }

    static func json(_ bytes: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    static func number(_ value: Any?) -> Double? {
        if let number = value as? NSNumber { return number.doubleValue }
        if let text = value as? String { return Double(text) }
        return nil
    }
}
