import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// A validated authorization request (`/authorize`).
public struct AuthorizationRequest: Sendable, Equatable {
    public var clientID: String
    /// The redirect URI as sent (checked against the registration).
    public var redirectURI: String
    /// Requested scopes, space separated.
    public var scope: String
    /// Passed back unchanged.
    public var state: String?
    /// Put into the ID token.
    public var nonce: String?
    /// PKCE challenge (S256).
    public var codeChallenge: String?
    /// `login` forces a new login even with a session; `none` fails instead of showing a page.
    public var prompt: String?

    /// The request as query or form fields, for carrying it through the login form.
    public var fields: [(String, String)] {
        var result = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope),
        ]
        if let state { result.append(("state", state)) }
        if let nonce { result.append(("nonce", nonce)) }
        if let codeChallenge {
            result.append(("code_challenge", codeChallenge)); result.append(("code_challenge_method", "S256"))
        }
        return result
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.fields.elementsEqual(b.fields) { $0 == $1 } && a.prompt == b.prompt
    }
}

/// Why an authorization request failed: shown on a page (the redirect URI cannot be trusted) or sent back to the client.
public enum AuthorizationFailure: Error, Sendable, Equatable {
    /// Unknown client or unregistered redirect URI: never redirect (no open redirects).
    case page(String)
    /// Anything else: redirect to the client with `error`, `error_description`, `state` and `iss`.
    case redirect(String)
}

/// Why a login attempt failed.
public enum LoginFailure: Error, Sendable, Equatable {
    /// Wrong username, password or one-time code (deliberately not saying which).
    case invalid
    /// The user has a second factor and gave no code.
    case otpRequired
    /// Too many failures; try again after this many seconds.
    case throttled(retryAfter: Int)
    /// The provider cannot check the attempt now (every password-check slot is taken, or the store is down): try again
    /// after this many seconds. Nothing was checked.
    case unavailable(retryAfter: Int)
}

/// The token endpoint's successful answer.
public struct TokenResponse: Sendable, Equatable {
    /// The access token (a JWT, RFC 9068).
    public var accessToken: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    /// The ID token, for user grants.
    public var idToken: String?
    /// A new refresh token, when the client may refresh.
    public var refreshToken: String?
    /// The granted scopes.
    public var scope: String

    /// The response body, written directly (tokens are base64url and need no escaping, but are escaped anyway).
    public var jsonText: String {
        var text =
            "{\"access_token\":" + jsonString(accessToken) + ",\"token_type\":\"Bearer\",\"expires_in\":"
            + String(expiresIn)
        if let idToken { text += ",\"id_token\":" + jsonString(idToken) }
        if let refreshToken { text += ",\"refresh_token\":" + jsonString(refreshToken) }
        return text + ",\"scope\":" + jsonString(scope) + "}"
    }
}

/// The device authorization endpoint's answer (RFC 8628 §3.2).
public struct DeviceAuthorization: Sendable, Equatable {
    /// The secret the device polls with.
    public var deviceCode: String
    /// The code the user types, formatted `XXXX-XXXX`.
    public var userCode: String
    /// Where the user types it.
    public var verificationURI: String
    /// The same with the code filled in.
    public var verificationURIComplete: String
    /// Seconds until it expires.
    public var expiresIn: Int
    /// Seconds between polls.
    public var interval: Int
}

/// The OpenID Provider's protocol logic, free of HTTP: authorization requests, logins, codes, the token endpoint's
/// grants, device authorization, userinfo and revocation. The server maps requests onto it.
public final class OAuthEngine: Sendable {
    /// The configuration.
    public let config: IdPConfiguration
    /// The issuer URL (no trailing slash).
    public let issuer: String
    public let store: any IdPStore
    /// The signing keys.
    public let keys: KeyRing
    public let clock: WallClock
    /// Login, device-code and client-authentication throttling, in the store.
    public let throttle: Throttle
    /// Client authentication.
    public let clients: ClientAuthenticator
    /// Where password checks run: by default as many at once as there are cores, with four times as many waiting.
    public let loginPool: WorkPool
    private let formKey: SymmetricKey

    /// Scopes every client may ask for.
    public static let standardScopes: Set<String> = ["openid", "profile", "email", "groups", "offline_access"]
    /// The device-code grant type URN.
    public static let deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

    /// An engine for `issuer`.
    public init(
        config: IdPConfiguration, issuer: String, store: any IdPStore, keys: KeyRing, clock: WallClock,
        limits: ThrottleLimits = ThrottleLimits(),
        loginPool: WorkPool = WorkPool(
            limit: ProcessInfo.processInfo.activeProcessorCount,
            queue: 4 * ProcessInfo.processInfo.activeProcessorCount),
        clientPool: WorkPool? = nil
    ) throws {
        var trimmed = issuer
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.config = config; self.issuer = trimmed; self.store = store; self.keys = keys; self.clock = clock
        self.throttle = Throttle(store: store, limits: limits)
        self.loginPool = loginPool
        self.formKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: keys.kek, info: Data("keyless idp form tokens".utf8), outputByteCount: 32)
        let audiences: Set<String> = [trimmed, trimmed + "/token"]
        self.clients =
            if let clientPool {
                try ClientAuthenticator(
                    config: config, audiences: audiences, clock: clock, throttle: throttle, pool: clientPool)
            } else {
                try ClientAuthenticator(config: config, audiences: audiences, clock: clock, throttle: throttle)
            }
    }

    /// The longest lifetime of any token this configuration signs (how long a retired key stays published).
    public static func maxTokenLifetime(_ config: IdPConfiguration) -> TimeInterval {
        let perClient = config.clients.flatMap { [$0.idTokenTTL ?? 0, $0.accessTokenTTL ?? 0] }
        return TimeInterval(([config.lifetimes.idToken, config.lifetimes.accessToken] + perClient).max()!)
    }

    // MARK: Discovery

    /// The discovery document (`/.well-known/openid-configuration`).
    public func discoveryDocument() -> [String: Any] {
        let grants = Set(config.clients.flatMap(\.grants)).map { $0 == "device_code" ? Self.deviceGrant : $0 }.sorted()
        return [
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks.json",
            "userinfo_endpoint": issuer + "/userinfo",
            "revocation_endpoint": issuer + "/revoke",
            "device_authorization_endpoint": issuer + "/device_authorization",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grants.isEmpty ? ["authorization_code"] : grants,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [config.signingAlgorithm],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none",
            ],
            "scopes_supported": Self.standardScopes.sorted(),
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "email", "email_verified",
                "preferred_username",
                "groups",
            ],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        ]
    }

    // MARK: Authorization endpoint

    /// Checks an authorization request. The client and redirect URI are checked first: if either is wrong the
    /// error is shown, never redirected.
    public func validateAuthorization(_ q: [String: String]) -> Result<AuthorizationRequest, AuthorizationFailure> {
        guard let clientID = q["client_id"], let client = config.client(clientID) else {
            return .failure(.page("The application is not registered here (unknown client_id)."))
        }
        guard let redirect = q["redirect_uri"], Self.redirectMatches(redirect, registered: client.redirectURIs ?? [])
        else {
            return .failure(
                .page(
                    "The redirect address this application sent is not registered for it, so you are not being sent there."
                ))
        }
        guard q["request"] == nil else { return .failure(.redirect("request_not_supported")) }
        guard q["request_uri"] == nil else { return .failure(.redirect("request_uri_not_supported")) }
        guard q["response_type"] == "code" else { return .failure(.redirect("unsupported_response_type")) }
        guard client.grants.contains("authorization_code") else { return .failure(.redirect("unauthorized_client")) }
        let scope = q["scope"] ?? "openid"
        let scopes = Set(scope.split(separator: " ").map(String.init))
        guard scopes.contains("openid"), scopes.isSubset(of: Self.standardScopes.union(client.scopes ?? [])) else {
            return .failure(.redirect("invalid_scope"))
        }
        let challenge = q["code_challenge"]
        if let challenge {
            guard (q["code_challenge_method"] ?? "plain") == "S256", challenge.utf8.count == 43 else {
                return .failure(.redirect("invalid_request"))
            }
        } else if client.isPublic {
            return .failure(.redirect("invalid_request"))
        }
        if let prompt = q["prompt"], !["none", "login", "consent", "select_account"].contains(prompt) {
            return .failure(.redirect("invalid_request"))
        }
        return .success(
            AuthorizationRequest(
                clientID: clientID, redirectURI: redirect, scope: scope, state: q["state"], nonce: q["nonce"],
                codeChallenge: challenge, prompt: q["prompt"]))
    }

    /// What an authorization error sends the browser to.
    public func errorRedirect(_ code: String, request q: [String: String], description: String? = nil) -> String {
        var items = [("error", code)]
        if let description { items.append(("error_description", description)) }
        if let state = q["state"] { items.append(("state", state)) }
        items.append(("iss", issuer))
        return Self.appendQuery(q["redirect_uri"] ?? "", items)
    }

    /// Issues a code for a validated request and the user's authentication; returns where to send the browser.
    public func issueCode(_ request: AuthorizationRequest, authentication: Authentication) async throws -> String {
        let code = Self.randomToken()
        let now = clock.now()
        try await store.insertCode(
            AuthorizationCodeRecord(
                codeHash: Self.hash(code), clientID: request.clientID, redirectURI: request.redirectURI,
                scope: request.scope, nonce: request.nonce,
                codeChallenge: request.codeChallenge, codeChallengeMethod: request.codeChallenge == nil ? nil : "S256",
                authentication: authentication, familyID: Self.randomToken(bytes: 16),
                expiresAt: now.addingTimeInterval(TimeInterval(config.lifetimes.code))))
        var items = [("code", code)]
        if let state = request.state { items.append(("state", state)) }
        items.append(("iss", issuer))
        return Self.appendQuery(request.redirectURI, items)
    }

    /// RFC 8252 §7.3: exact match, except that the port of a loopback IP literal may differ.
    public static func redirectMatches(_ candidate: String, registered: [String]) -> Bool {
        if registered.contains(candidate) { return true }
        guard let url = URLComponents(string: candidate), url.scheme == "http", let host = url.host,
            ["127.0.0.1", "::1", "[::1]"].contains(host)
        else { return false }
        var portless = url
        portless.port = nil
        return registered.contains { entry in
            guard var registeredURL = URLComponents(string: entry), registeredURL.scheme == "http",
                registeredURL.host == host
            else { return false }
            registeredURL.port = nil
            return registeredURL.string == portless.string
        }
    }

    // MARK: Login

    /// Checks a username, password and (when the user has one) a one-time code, throttled as `ThrottleLimits` says.
    /// Unknown users cost the same as wrong passwords. A one-time code is spent in the store: no replica accepts it, or
    /// an earlier code of the same user, again.
    public func login(username: String, password: String, otp: String?, address: String) async -> Result<
        Authentication, LoginFailure
    > {
        let now = clock.now()
        do {
            // The attempt counts before the password is checked, so parallel guesses cannot outrun the limit.
            if let wait = try await throttle.beginLogin(user: username, address: address, now: now) {
                return .failure(.throttled(retryAfter: wait))
            }
            let user = config.user(username)
            // Same cost for unknown users.
            let hash = user.flatMap { PasswordHash($0.passwordHash) } ?? ClientAuthenticator.dummyHash
            let valid: Bool
            do { valid = try await loginPool.run { await hash.verifyOffloaded(password) } } catch is WorkPoolFull {
                // Nothing was checked: the attempt is not a failure.
                try await throttle.loginNotAttempted(user: username, address: address, now: now)
                return .failure(.unavailable(retryAfter: 1))
            }
            guard valid, let user else { return .failure(.invalid) }
            var amr = ["pwd"]
            if let secretText = user.totpSecret {
                // A secret that does not decode fails closed: never a login with the password alone.
                guard let secret = TOTP.base32Decode(secretText), secret.count >= 10 else { return .failure(.invalid) }
                guard let otp, !otp.isEmpty else { return .failure(.otpRequired) }
                guard let counter = TOTP.matchingCounter(secret: secret, candidate: otp, at: now),
                    try await spendOneTimeCode(user: user.username, counter: counter)
                else {
                    return .failure(.invalid)
                }
                amr = ["pwd", "otp", "mfa"]
            }
            try await throttle.loginSucceeded(user: username, address: address, now: now)
            return .success(Authentication(subject: user.subject ?? user.username, authTime: now, amr: amr))
        } catch {
            return .failure(.unavailable(retryAfter: 5))
        }
    }

    /// Spends a one-time code's time step for a user, and the step before it, so that neither that code nor an earlier
    /// one still inside the accepted window works again (RFC 6238 §5.2). Remembered until the step can no longer match.
    func spendOneTimeCode(user: String, counter: UInt64) async throws -> Bool {
        func key(_ step: UInt64) -> String { Throttle.key("otp", user.lowercased() + "\u{0}" + String(step)) }
        let until = Date(timeIntervalSince1970: TimeInterval(counter + 2) * 30)
        guard try await store.spendOnce(key: key(counter), expiresAt: until, now: clock.now()) else { return false }
        if counter > 0 { _ = try await store.spendOnce(key: key(counter - 1), expiresAt: until, now: clock.now()) }
        return true
    }

    // MARK: Form tokens

    /// The anti-forgery token of the provider's forms: an HMAC, under a key derived from the key-encryption key (so
    /// every replica computes the same), of the browser's random form cookie and of its session cookie. A token is
    /// thus good only for the browser that holds both cookies: someone who can plant a form cookie in a victim's
    /// browser still cannot make a token for the victim's session.
    public func formToken(binding: String, session: String?) -> String {
        let message = "keyless-form\u{0}" + binding + "\u{0}" + (session.map(Self.hash) ?? "")
        return Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: formKey)))
    }

    /// Whether `token` is the form token for these cookies (compared in constant time).
    public func checkFormToken(_ token: String, binding: String, session: String?) -> Bool {
        constantTimeEqual(Array(token.utf8), Array(formToken(binding: binding, session: session).utf8))
    }

    /// Starts a browser session; returns the cookie value.
    public func startSession(_ authentication: Authentication) async throws -> String {
        let id = Self.randomToken()
        try await store.insertSession(
            SessionRecord(
                idHash: Self.hash(id), authentication: authentication,
                expiresAt: clock.now().addingTimeInterval(TimeInterval(config.lifetimes.session))))
        return id
    }

    /// The authentication of a live session cookie.
    public func session(cookie: String?) async throws -> Authentication? {
        guard let cookie, !cookie.isEmpty, cookie.utf8.count < 200 else { return nil }
        guard let record = try await store.session(idHash: Self.hash(cookie), now: clock.now()),
            config.user(subject: record.authentication.subject) != nil
        else { return nil }
        return record.authentication
    }

    /// Ends a session.
    public func endSession(cookie: String?) async throws {
        guard let cookie, !cookie.isEmpty else { return }
        try await store.deleteSession(idHash: Self.hash(cookie))
    }

    // MARK: Token endpoint

    /// The token endpoint: authenticates the client, then runs the grant.
    public func token(form: [String: String], credentials: ClientCredentials, address: String) async throws
        -> TokenResponse
    {
        guard let grant = form["grant_type"] else { throw OAuthError("invalid_request", "grant_type is missing.") }
        let client = try await clients.authenticate(credentials, address: address)
        switch grant {
        case "authorization_code": return try await codeGrant(form, client: client)
        case "refresh_token": return try await refreshGrant(form, client: client)
        case "client_credentials": return try await clientCredentialsGrant(form, client: client)
        case Self.deviceGrant: return try await deviceGrant(form, client: client)
        default: throw OAuthError("unsupported_grant_type", "grant_type \(grant) is not supported.")
        }
    }

    private func require(_ grant: String, _ client: IdPConfiguration.Client) throws {
        guard client.grants.contains(grant) else {
            throw OAuthError("unauthorized_client", "client \(client.id) may not use the \(grant) grant.")
        }
    }

    private func codeGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("authorization_code", client)
        guard let code = form["code"], let redirect = form["redirect_uri"] else {
            throw OAuthError("invalid_request", "code and redirect_uri are required.")
        }
        switch try await store.consumeCode(hash: Self.hash(code), now: clock.now()) {
        case .notFound:
            throw OAuthError("invalid_grant", "the code is unknown or has expired.")
        case .replayed(let family):
            try await store.revokeFamily(id: family)
            throw OAuthError("invalid_grant", "the code was already used; tokens issued for it have been revoked.")
        case .redeemed(let record):
            guard record.clientID == client.id else {
                throw OAuthError("invalid_grant", "the code was issued to another client.")
            }
            guard record.redirectURI == redirect else {
                throw OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
            }
            if let challenge = record.codeChallenge {
                guard let verifier = form["code_verifier"], (43...128).contains(verifier.utf8.count),
                    constantTimeEqual(
                        Array(Base64URL.encode(Array(SHA256.hash(data: Data(verifier.utf8)))).utf8),
                        Array(challenge.utf8))
                else {
                    throw OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE).")
                }
            } else if form["code_verifier"] != nil {
                throw OAuthError("invalid_grant", "code_verifier sent for a code issued without code_challenge.")
            }
            return try await userTokens(
                client: client, scope: record.scope, authentication: record.authentication, nonce: record.nonce,
                familyID: record.familyID)
        }
    }

    private func refreshGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("refresh_token", client)
        guard let token = form["refresh_token"] else {
            throw OAuthError("invalid_request", "refresh_token is required.")
        }
        // Check the request before spending the token, so a refused request leaves it usable (a retry is not reuse).
        let tokenHash = Self.hash(token)
        if let narrowed = form["scope"], let stored = try await store.refreshToken(hash: tokenHash),
            stored.clientID == client.id,
            !Set(narrowed.split(separator: " ")).isSubset(of: Set(stored.scope.split(separator: " ")))
        {
            throw OAuthError("invalid_scope", "a refresh may only narrow the original scopes.")
        }
        let now = clock.now()
        let successor = Self.randomToken()
        let successorRecord = RefreshSuccessor(
            tokenHash: Self.hash(successor), issuedAt: now, expiresAt: refreshExpiry(client, now: now))
        switch try await store.rotateRefreshToken(hash: tokenHash, now: now, successor: successorRecord) {
        case .notFound: throw OAuthError("invalid_grant", "the refresh token is unknown or has expired.")
        case .revoked: throw OAuthError("invalid_grant", "the refresh token was revoked.")
        case .reused:
            throw OAuthError(
                "invalid_grant",
                "the refresh token was already used; every token of this login is now revoked. Log in again.")
        case .valid(let record):
            guard record.clientID == client.id else {
                try await store.revokeFamily(id: record.familyID)
                throw OAuthError("invalid_grant", "the refresh token belongs to another client.")
            }
            var scope = record.scope
            if let narrowed = form["scope"] {
                guard Set(narrowed.split(separator: " ")).isSubset(of: Set(record.scope.split(separator: " "))) else {
                    throw OAuthError("invalid_scope", "a refresh may only narrow the original scopes.")
                }
                scope = narrowed
            }
            guard config.user(subject: record.authentication.subject) != nil else {
                try await store.revokeFamily(id: record.familyID)
                throw OAuthError("invalid_grant", "the user no longer exists.")
            }
            // The successor, stored by the rotation, keeps the original scope even when this response is narrowed (RFC 6749 §6).
            return try await userTokens(
                client: client, scope: scope, authentication: record.authentication, nonce: nil,
                familyID: record.familyID,
                rotatedTo: successor)
        }
    }

    private func clientCredentialsGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws
        -> TokenResponse
    {
        try require("client_credentials", client)
        guard !client.isPublic else { throw OAuthError.invalidClient("public clients cannot use client_credentials.") }
        let allowed = Set(client.scopes ?? [])
        let requested = form["scope"].map { Set($0.split(separator: " ").map(String.init)) } ?? allowed
        guard requested.isSubset(of: allowed) else {
            throw OAuthError(
                "invalid_scope", "client \(client.id) may ask only for: \(allowed.sorted().joined(separator: " ")).")
        }
        let scope = requested.sorted().joined(separator: " ")
        let now = clock.now()
        let ttl = client.accessTokenTTL ?? config.lifetimes.accessToken
        let (kid, key) = try await keys.currentSigningKey()
        let access = try sign(
            AccessClaims(
                iss: issuer, sub: client.id, aud: AudienceList([client.audience ?? client.id]),
                exp: Self.seconds(now) + ttl,
                iat: Self.seconds(now), jti: Self.randomToken(bytes: 16), client_id: client.id, scope: scope),
            typ: "at+jwt", kid: kid, key: key)
        return TokenResponse(accessToken: access, expiresIn: ttl, scope: scope)
    }

    private func deviceGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("device_code", client)
        guard let code = form["device_code"] else { throw OAuthError("invalid_request", "device_code is required.") }
        switch try await store.pollDevice(deviceCodeHash: Self.hash(code), now: clock.now()) {
        case .pending: throw OAuthError("authorization_pending", "the user has not approved the request yet.")
        case .slowDown(let interval):
            throw OAuthError("slow_down", "polling too fast; wait \(interval) seconds between requests.")
        case .denied: throw OAuthError("access_denied", "the user denied the request.")
        case .expired: throw OAuthError("expired_token", "the device code has expired; start again.")
        case .notFound: throw OAuthError("invalid_grant", "the device code is unknown or was already used.")
        case .approved(let record):
            guard record.clientID == client.id, let approval = record.approval else {
                throw OAuthError("invalid_grant", "the device code was issued to another client.")
            }
            return try await userTokens(
                client: client, scope: record.scope, authentication: approval.authentication, nonce: nil,
                familyID: approval.familyID)
        }
    }

    /// The tokens of a user's grant. A refresh token is issued to clients with the grant: `rotatedTo` when a rotation
    /// has already stored it, otherwise a new one of `familyID`.
    private func userTokens(
        client: IdPConfiguration.Client, scope: String, authentication: Authentication, nonce: String?,
        familyID: String,
        rotatedTo: String? = nil
    ) async throws -> TokenResponse {
        let now = clock.now()
        let user = config.user(subject: authentication.subject)
        let (kid, key) = try await keys.currentSigningKey()
        let idTTL = client.idTokenTTL ?? config.lifetimes.idToken
        let accessTTL = client.accessTokenTTL ?? config.lifetimes.accessToken
        let released = ReleasedClaims(user: user, scope: scope)
        let idToken = try sign(
            IDClaims(
                iss: issuer, sub: authentication.subject, aud: client.id, exp: Self.seconds(now) + idTTL,
                iat: Self.seconds(now),
                auth_time: Self.seconds(authentication.authTime), nonce: nonce, amr: authentication.amr, azp: client.id,
                email: released.email, email_verified: released.email.map { _ in true },
                preferred_username: released.preferredUsername, groups: released.groups),
            typ: "JWT", kid: kid, key: key)
        let access = try sign(
            AccessClaims(
                iss: issuer, sub: authentication.subject, aud: AudienceList([client.audience ?? client.id]),
                exp: Self.seconds(now) + accessTTL, iat: Self.seconds(now), jti: Self.randomToken(bytes: 16),
                client_id: client.id, scope: scope, auth_time: Self.seconds(authentication.authTime),
                amr: authentication.amr, groups: released.groups),
            typ: "at+jwt", kid: kid, key: key)
        var refresh = rotatedTo
        if refresh == nil, client.grants.contains("refresh_token") {
            let token = Self.randomToken()
            try await store.insertRefreshToken(
                RefreshTokenRecord(
                    tokenHash: Self.hash(token), familyID: familyID, clientID: client.id, scope: scope,
                    authentication: authentication, issuedAt: now,
                    expiresAt: refreshExpiry(client, now: now)))
            refresh = token
        }
        return TokenResponse(
            accessToken: access, expiresIn: accessTTL, idToken: idToken, refreshToken: refresh, scope: scope)
    }

    private func refreshExpiry(_ client: IdPConfiguration.Client, now: Date) -> Date {
        now.addingTimeInterval(TimeInterval(client.refreshTokenTTL ?? config.lifetimes.refreshToken))
    }

    // MARK: Device authorization

    /// The device authorization endpoint (RFC 8628 §3.1).
    public func authorizeDevice(form: [String: String], credentials: ClientCredentials, address: String) async throws
        -> DeviceAuthorization
    {
        let client = try await clients.authenticate(credentials, address: address)
        try require("device_code", client)
        let scope = form["scope"] ?? "openid"
        guard
            Set(scope.split(separator: " ").map(String.init)).isSubset(
                of: Self.standardScopes.union(client.scopes ?? []))
        else {
            throw OAuthError("invalid_scope", "scope \(scope) is not allowed for client \(client.id).")
        }
        let deviceCode = Self.randomToken()
        let userCode = Self.userCode()
        try await store.insertDeviceCode(
            DeviceCodeRecord(
                deviceCodeHash: Self.hash(deviceCode), userCode: userCode, clientID: client.id, scope: scope,
                interval: config.lifetimes.deviceInterval,
                expiresAt: clock.now().addingTimeInterval(TimeInterval(config.lifetimes.deviceCode))))
        let display = String(userCode.prefix(4)) + "-" + String(userCode.suffix(4))
        return DeviceAuthorization(
            deviceCode: deviceCode, userCode: display, verificationURI: issuer + "/device",
            verificationURIComplete: issuer + "/device?user_code=" + display,
            expiresIn: config.lifetimes.deviceCode, interval: config.lifetimes.deviceInterval)
    }

    /// Normalises what a user typed as a user code: upper case, no dashes or spaces.
    public static func normaliseUserCode(_ text: String) -> String {
        String(text.uppercased().filter { $0.isLetter || $0.isNumber })
    }

    /// The pending device request for a typed user code.
    public func pendingDevice(userCode: String) async throws -> DeviceCodeRecord? {
        let record = try await store.deviceCode(userCode: Self.normaliseUserCode(userCode), now: clock.now())
        return record?.status == .pending ? record : nil
    }

    /// Approves or denies a device request for the logged-in user.
    public func decideDevice(userCode: String, approve: Bool, authentication: Authentication) async throws -> Bool {
        let code = Self.normaliseUserCode(userCode)
        if approve {
            return try await store.approveDevice(
                userCode: code,
                approval: DeviceApproval(authentication: authentication, familyID: Self.randomToken(bytes: 16)),
                now: clock.now())
        }
        return try await store.denyDevice(userCode: code, now: clock.now())
    }

    // MARK: Userinfo and revocation

    /// The userinfo endpoint: the claims of the user an access token from this provider was issued for.
    public func userinfo(bearer: String?) async throws -> [String: Any] {
        guard let bearer, !bearer.isEmpty else {
            throw OAuthError("missing_token", "send the access token as Authorization: Bearer.", status: 401)
        }
        let claims = try await verifyAccessToken(bearer)
        // Only tokens from a user's login (they carry auth_time) describe a user; a client's own token does not.
        guard claims.auth_time != nil, let user = config.user(subject: claims.sub) else {
            throw OAuthError("invalid_token", "the token is not for a user.", status: 401)
        }
        let released = ReleasedClaims(user: user, scope: claims.scope)
        var info: [String: Any] = ["sub": claims.sub]
        if let name = released.preferredUsername { info["preferred_username"] = name }
        if let email = released.email { info["email"] = email; info["email_verified"] = true }
        if let groups = released.groups { info["groups"] = groups }
        return info
    }

    /// Checks one of this provider's access tokens: signature by a published key, `typ`, issuer, expiry.
    public func verifyAccessToken(_ token: String?) async throws -> AccessClaims {
        guard let token, let parts = JWS.parse(token), parts.header.typ?.lowercased() == "at+jwt",
            let kid = parts.header.kid,
            let key = try await keys.verificationKeys()[kid], key.algorithm == parts.header.alg,
            key.verify(parts.signature, for: parts.signingInput),
            let claims = try? JSONDecoder().decode(AccessClaims.self, from: parts.payload)
        else {
            throw OAuthError("invalid_token", "the access token is not one this provider issued.", status: 401)
        }
        guard claims.iss == issuer, claims.exp > Self.seconds(clock.now()) else {
            throw OAuthError("invalid_token", "the access token has expired.", status: 401)
        }
        return claims
    }

    /// RFC 7009: revokes a refresh token's whole family. Access tokens are self-contained JWTs and expire on their
    /// own; the answer is the same either way, as the RFC asks.
    public func revoke(form: [String: String], credentials: ClientCredentials, address: String) async throws {
        _ = try await clients.authenticate(credentials, address: address)
        guard let token = form["token"] else { throw OAuthError("invalid_request", "token is required.") }
        // Holding the refresh token is the proof needed to end its login; the store does not say which client it
        // was issued to, so any registered client that presents it may revoke it.
        if let family = try await store.refreshToken(hash: Self.hash(token))?.familyID {
            try await store.revokeFamily(id: family)
        }
    }

    // MARK: Tokens and helpers

    func sign(_ claims: some TokenClaims, typ: String, kid: String, key: SigningKey) throws -> String {
        let payload = Array(claims.jsonText.utf8)
        let header =
            "{\"alg\":\"" + key.algorithm + "\",\"kid\":" + jsonString(kid) + ",\"typ\":" + jsonString(typ) + "}"
        return try JWS.sign(header: Array(header.utf8), payload: payload, key: key)
    }

    /// A random URL-safe token of `bytes` random bytes.
    public static func randomToken(bytes: Int = 32) -> String {
        // One call to the CSPRNG for all the bytes (UInt8.random makes one getrandom call per byte).
        SymmetricKey(size: SymmetricKeySize(bitCount: bytes * 8)).withUnsafeBytes { Base64URL.encode(Array($0)) }
    }

    /// SHA-256 (hex) of a secret, as stores keep it.
    public static func hash(_ secret: String) -> String {
        Hex.encode(SHA256.hash(data: Data(secret.utf8)))
    }

    static func userCode() -> String {
        // RFC 8628 §6.1: consonants only (no vowels to spell words, no look-alikes): 20^8 ≈ 2^34.6.
        let alphabet = Array("BCDFGHJKLMNPQRSTVWXZ")
        var rng = SystemRandomNumberGenerator()
        return String((0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &rng)] })
    }

    static func seconds(_ date: Date) -> Int { Int(date.timeIntervalSince1970) }

    static func appendQuery(_ base: String, _ items: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let query = items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(
            separator: "&")
        return base + (base.contains("?") ? "&" : "?") + query
    }
}

/// The user claims a grant's scopes release (OpenID Connect Core §5.4): `email` and `email_verified` for `email`,
/// `preferred_username` for `profile`, `groups` for `groups`. With `openid` alone a token names only its subject.
/// `email_verified` is true: the address is the one the provider's administrator wrote in idp.yaml.
struct ReleasedClaims {
    var email: String?
    var preferredUsername: String?
    var groups: [String]?

    init(user: IdPConfiguration.User?, scope: String) {
        let scopes = Set(scope.split(separator: " "))
        email = scopes.contains("email") ? user?.email : nil
        preferredUsername = scopes.contains("profile") ? user?.username : nil
        groups = scopes.contains("groups") ? (user?.groups ?? []) : nil
    }
}

/// Claims the provider signs, written as JSON directly: a JSONEncoder per token had cost more than the rest of the
/// token's assembly on the token endpoint. Each type's tests hold its text to its Codable encoding.
protocol TokenClaims {
    /// The claims as a JSON object (same members and values as the Codable encoding; absent optionals left out).
    var jsonText: String { get }
}

/// A JSON array of strings.
private func jsonList(_ values: [String]) -> String { "[" + values.map(jsonString).joined(separator: ",") + "]" }

/// ID-token claims.
struct IDClaims: Codable, TokenClaims {
    var iss: String, sub: String, aud: String, exp: Int, iat: Int, auth_time: Int
    var nonce: String?
    var amr: [String]
    var azp: String
    var email: String?
    var email_verified: Bool?
    var preferred_username: String?
    var groups: [String]?

    var jsonText: String {
        var text = "{\"iss\":" + jsonString(iss) + ",\"sub\":" + jsonString(sub) + ",\"aud\":" + jsonString(aud)
        text += ",\"exp\":" + String(exp) + ",\"iat\":" + String(iat) + ",\"auth_time\":" + String(auth_time)
        if let nonce { text += ",\"nonce\":" + jsonString(nonce) }
        text += ",\"amr\":" + jsonList(amr) + ",\"azp\":" + jsonString(azp)
        if let email { text += ",\"email\":" + jsonString(email) }
        if let email_verified { text += ",\"email_verified\":" + (email_verified ? "true" : "false") }
        if let preferred_username { text += ",\"preferred_username\":" + jsonString(preferred_username) }
        if let groups { text += ",\"groups\":" + jsonList(groups) }
        return text + "}"
    }
}

/// Access-token claims (RFC 9068).
public struct AccessClaims: Codable, Sendable, TokenClaims {
    /// Issuer.
    public var iss: String
    /// Subject: the user, or the client for client_credentials.
    public var sub: String
    /// AudienceList.
    public var aud: AudienceList
    /// Expiry (seconds since 1970).
    public var exp: Int
    /// Issued at.
    public var iat: Int
    /// Token id.
    public var jti: String
    /// The client it was issued to.
    public var client_id: String
    /// Granted scopes.
    public var scope: String
    /// When the user authenticated (user grants).
    public var auth_time: Int?
    /// How the user authenticated (user grants).
    public var amr: [String]?
    /// The user's groups (user grants).
    public var groups: [String]?

    var jsonText: String {
        var text = "{\"iss\":" + jsonString(iss) + ",\"sub\":" + jsonString(sub)
        text += ",\"aud\":" + (aud.values.count == 1 ? jsonString(aud.values[0]) : jsonList(aud.values))
        text += ",\"exp\":" + String(exp) + ",\"iat\":" + String(iat) + ",\"jti\":" + jsonString(jti)
        text += ",\"client_id\":" + jsonString(client_id) + ",\"scope\":" + jsonString(scope)
        if let auth_time { text += ",\"auth_time\":" + String(auth_time) }
        if let amr { text += ",\"amr\":" + jsonList(amr) }
        if let groups { text += ",\"groups\":" + jsonList(groups) }
        return text + "}"
    }
}
