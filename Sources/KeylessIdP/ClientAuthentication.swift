import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import Synchronization

/// An OAuth error response (RFC 6749 §5.2): the code, a description for people, and the HTTP status.
public struct OAuthError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, ...
    public var code: String
    /// What went wrong, for the person reading the client's log.
    public var detail: String
    /// The HTTP status: 400, or 401 for client authentication failures.
    public var statusCode: Int
    /// Seconds to wait (throttling), sent as Retry-After.
    public var retryAfter: Int?

    /// An error.
    public init(_ code: String, _ detail: String, status: Int = 400, retryAfter: Int? = nil) {
        self.code = code; self.detail = detail; self.statusCode = status; self.retryAfter = retryAfter
    }

    /// The response body.
    public var json: [String: String] { ["error": code, "error_description": detail] }

    public var description: String { "\(code): \(detail)" }

    static func invalidClient(_ detail: String) -> OAuthError { OAuthError("invalid_client", detail, status: 401) }

    /// Too many failures from this address: 429 with Retry-After.
    static func throttled(_ wait: Int, _ what: String) -> OAuthError {
        OAuthError(
            "temporarily_unavailable", "too many \(what) from this address; retry after \(wait) seconds.", status: 429,
            retryAfter: wait)
    }

    /// Every slot for expensive checks is taken: 503 with Retry-After.
    static let busy = OAuthError(
        "temporarily_unavailable", "the provider is busy checking other requests; retry in a second.",
        status: 503, retryAfter: 1)
}

/// The credentials a request to the token, device or revocation endpoint presented.
public struct ClientCredentials: Sendable {
    /// From `Authorization: Basic`.
    public var basic: (id: String, secret: String)?
    /// The form fields (client_id, client_secret, client_assertion_type, client_assertion).
    public var form: [String: String]

    /// Credentials from an Authorization header value and the form.
    public init(authorization: String?, form: [String: String]) {
        self.form = form
        if let authorization, authorization.lowercased().hasPrefix("basic "),
            let decoded = Data(base64Encoded: String(authorization.dropFirst(6)).trimmingCharacters(in: .whitespaces)),
            let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
        {
            // RFC 6749 §2.3.1: both parts are form-urlencoded inside the Basic credentials.
            basic = (
                FormText.decode(text[..<colon]) ?? "", FormText.decode(text[text.index(after: colon)...]) ?? ""
            )
        }
    }
}

/// Authenticates clients: `client_secret_basic`, `client_secret_post`, `private_key_jwt`, or none for public clients.
///
/// Secrets are stored as scrypt hashes, which take ~0.1 s to check. After one successful check the secret's HMAC
/// under a per-process random key is remembered, so later requests cost one HMAC (compared in constant time) and the
/// process never holds the secret itself. Anything else is guarded, so that made-up credentials cannot wear the
/// provider down: failures are counted per source address in the shared store (`ThrottleLimits.guessesPerAddress`,
/// then 429), and scrypt checks run in a pool of their own (`pool`; 503 when it and its queue are full), apart from
/// the logins' pool. A client assertion's `jti` is spent in the shared store, so no replica accepts it twice.
public final class ClientAuthenticator: Sendable {
    let config: IdPConfiguration
    let audiences: Set<String>
    let clock: WallClock
    let throttle: Throttle
    /// Where secrets are checked: by default half the cores, with as many waiting.
    public let pool: WorkPool
    private let cacheKey = SymmetricKey(size: .bits256)
    private let clientKeys: [String: ClientKeys]
    // A mutex rather than an actor: every token request passes here, and a lock held for a dictionary lookup is
    // cheaper than hopping to an actor and back.
    private let verifiedSecrets = Mutex<[String: [UInt8]]>([:])

    /// An authenticator; `audiences` are the values a client assertion's `aud` may hold (issuer, token endpoint).
    public init(
        config: IdPConfiguration, audiences: Set<String>, clock: WallClock, throttle: Throttle,
        pool: WorkPool = WorkPool(
            limit: ProcessInfo.processInfo.activeProcessorCount / 2,
            queue: ProcessInfo.processInfo.activeProcessorCount)
    ) throws {
        self.config = config; self.audiences = audiences; self.clock = clock; self.throttle = throttle; self.pool = pool
        var keys: [String: ClientKeys] = [:]
        for client in config.clients { if let jwks = client.jwks { keys[client.id] = try ClientKeys(jwks: jwks) } }
        clientKeys = keys
    }

    /// The authenticated (or, for public clients, identified) client; `address` is the request's source, for throttling.
    public func authenticate(_ credentials: ClientCredentials, address: String) async throws -> IdPConfiguration.Client
    {
        do {
            return try await identify(credentials, address: address)
        } catch let error as OAuthError where error.code == "invalid_client" {
            try await throttle.recordFailure(.clientAuthentication, address: address, now: clock.now())
            throw error
        }
    }

    private func identify(_ credentials: ClientCredentials, address: String) async throws -> IdPConfiguration.Client {
        let credentials = withoutEmptyPublicSecret(credentials)
        let form = credentials.form
        let assertionType = form["client_assertion_type"]
        let methods = [credentials.basic != nil, form["client_secret"] != nil, assertionType != nil].filter { $0 }.count
        guard methods <= 1 else {
            throw OAuthError("invalid_request", "use one client authentication method, not several.")
        }

        if let basic = credentials.basic {
            if let id = form["client_id"], id != basic.id {
                throw OAuthError("invalid_request", "client_id differs from the Basic credentials.")
            }
            return try await checkSecret(id: basic.id, secret: basic.secret, address: address)
        }
        if let secret = form["client_secret"] {
            guard let id = form["client_id"] else {
                throw OAuthError("invalid_request", "client_secret without client_id.")
            }
            return try await checkSecret(id: id, secret: secret, address: address)
        }
        if let assertionType {
            guard assertionType == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                let assertion = form["client_assertion"]
            else {
                throw OAuthError(
                    "invalid_request",
                    "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer with a client_assertion."
                )
            }
            try await refuseThrottled(address)
            return try await checkAssertion(assertion, claimedID: form["client_id"])
        }
        guard let id = form["client_id"], let client = config.client(id) else {
            throw OAuthError.invalidClient("unknown client or no client authentication.")
        }
        guard client.isPublic else {
            throw OAuthError.invalidClient("client \(id) is confidential and must authenticate.")
        }
        return client
    }

    /// Many clients send an empty secret for a public client (oidc-agent sends `Authorization: Basic
    /// base64("client_id:")`; others `client_secret=`). For a public client that is no client authentication at all
    /// (RFC 6749 §2.3.1 treats the secret as absent for public clients), so it is read as a bare `client_id`. A
    /// confidential client's empty secret, and any non-empty secret, still go through the secret check and fail there.
    private func withoutEmptyPublicSecret(_ credentials: ClientCredentials) -> ClientCredentials {
        var credentials = credentials
        // A form client_id naming another client is left to the contradiction check below.
        if let basic = credentials.basic, basic.secret.isEmpty, config.client(basic.id)?.isPublic == true,
            credentials.form["client_id"] == nil || credentials.form["client_id"] == basic.id
        {
            credentials.basic = nil
            credentials.form["client_id"] = basic.id
        }
        if credentials.form["client_secret"] == "", let id = credentials.form["client_id"],
            config.client(id)?.isPublic == true
        {
            credentials.form["client_secret"] = nil
        }
        return credentials
    }

    private func checkSecret(id: String, secret: String, address: String) async throws -> IdPConfiguration.Client {
        let client = config.client(id)
        let stored = client?.secretHash.flatMap(PasswordHash.init)
        let mac = Array(HMAC<SHA256>.authenticationCode(for: Array(secret.utf8), using: cacheKey))
        if let client, stored != nil, let known = verifiedSecrets.withLock({ $0[id] }), constantTimeEqual(known, mac) {
            return client
        }
        try await refuseThrottled(address)
        // The same cost whether or not the client exists.
        let hash = stored ?? Self.dummyHash
        let valid: Bool
        do { valid = try await pool.run { await hash.verifyOffloaded(secret) } } catch is WorkPoolFull {
            throw OAuthError.busy
        }
        guard valid, let client, stored != nil else { throw OAuthError.invalidClient("client authentication failed.") }
        verifiedSecrets.withLock { $0[id] = mac }
        return client
    }

    private func refuseThrottled(_ address: String) async throws {
        if let wait = try await throttle.retryAfter(.clientAuthentication, address: address, now: clock.now()) {
            throw OAuthError.throttled(wait, "failed client authentications")
        }
    }

    private func checkAssertion(_ assertion: String, claimedID: String?) async throws -> IdPConfiguration.Client {
        struct Claims: Decodable {
            var iss: String?; var sub: String?; var aud: AudienceList?; var exp: Double?; var jti: String?;
            var nbf: Double?
        }
        guard let parts = JWS.parse(assertion), let claims = try? JSONDecoder().decode(Claims.self, from: parts.payload)
        else {
            throw OAuthError.invalidClient("client_assertion is not a well-formed JWT.")
        }
        guard let id = claims.sub, claims.iss == id, claimedID == nil || claimedID == id,
            let client = config.client(id), let keys = clientKeys[id]
        else {
            throw OAuthError.invalidClient(
                "client_assertion iss and sub must both be a client id registered with a jwks.")
        }
        let candidates = keys.candidates(kid: parts.header.kid).filter { $0.algorithm == parts.header.alg }
        guard candidates.contains(where: { $0.verify(parts.signature, for: parts.signingInput) }) else {
            throw OAuthError.invalidClient(
                "client_assertion signature does not verify with the client's registered keys (alg \(parts.header.alg))."
            )
        }
        let now = clock.now().timeIntervalSince1970
        guard let aud = claims.aud, !audiences.isDisjoint(with: aud.values) else {
            throw OAuthError.invalidClient("client_assertion aud must name this provider's issuer or token endpoint.")
        }
        guard let exp = claims.exp, exp > now - 30, exp < now + 3600 else {
            throw OAuthError.invalidClient("client_assertion has expired or lives longer than an hour.")
        }
        if let nbf = claims.nbf, nbf > now + 30 { throw OAuthError.invalidClient("client_assertion is not valid yet.") }
        guard let jti = claims.jti, !jti.isEmpty else {
            throw OAuthError.invalidClient("client_assertion needs a jti.")
        }
        // Remembered until the assertion has expired (with the 30 s of leeway above), in the store every replica shares.
        let replayKey = Throttle.key("jti", id + "\u{0}" + jti)
        guard
            try await throttle.store.spendOnce(
                key: replayKey, expiresAt: Date(timeIntervalSince1970: exp + 30), now: clock.now())
        else {
            throw OAuthError.invalidClient("client_assertion was already used (jti replay).")
        }
        return client
    }

    static let dummyHash = PasswordHash(
        "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")!
}
