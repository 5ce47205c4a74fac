import Crypto
import _CryptoExtras
import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessJOSE
import KeylessStorage
import KeylessTestFakes
import Testing

// Fixtures for the provider's protocol tests, all built in code around one fixed reference time. Nothing here
// shares code with what it tests: PKCE, form encoding, Basic headers and JWT decoding are written out again.

/// The reference configuration: users, clients and secrets.
enum Fixture {
    /// Every test starts at 2025-01-01T00:00:00Z (a whole 30 s TOTP step).
    static let reference = Date(timeIntervalSince1970: 1_735_689_600)
    /// Seconds since 1970 of the reference time.
    static let referenceSeconds = 1_735_689_600
    /// The provider's issuer.
    static let issuer = "https://idp.example.com"
    /// The source address of requests that do not name their own.
    static let address = "192.0.2.200"

    static let alicePassword = "alice correct horse battery"
    static let bobPassword = "bob staple paperclip"
    static let carolPassword = "carol tulip lantern"
    /// Base32 of the RFC 6238 secret "12345678901234567890".
    static let bobTOTPBase32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    static let bobTOTPSecret = Array("12345678901234567890".utf8)

    static let webSecret = "web-secret-0123456789abcdef"
    static let portalSecret = "portal-secret-0123456789"
    static let deployerSecret = "deployer-secret-9876543210"
    /// Needs form-urlencoding inside a Basic header (RFC 6749 §2.3.1): `:`, `%`, `+`, `/`, `=` and a space.
    static let reporterSecret = "s3cr3t:with%odd+chars/= and space"
    /// A client id that needs form-urlencoding too.
    static let reporterID = "reporter@example"

    /// RFC 7636 Appendix B: the code verifier and its S256 challenge.
    static let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    static let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    /// The CLI's loopback redirect with the port the CLI happened to get.
    static let cliRedirect = "http://127.0.0.1:53682/callback"

    // Cheap scrypt cost (ln=10, the minimum accepted) keeps the tests fast; the check is the same at any cost.
    static let aliceHash = hash(alicePassword)
    static let bobHash = hash(bobPassword)
    static let carolHash = hash(carolPassword)
    static let webHash = hash(webSecret)
    static let portalHash = hash(portalSecret)
    static let deployerHash = hash(deployerSecret)
    static let reporterHash = hash(reporterSecret)

    static func hash(_ secret: String) -> String {
        (try? PasswordHash.make(secret, logN: 10, r: 8, p: 1).description) ?? "hashing failed"
    }

    /// The `private_key_jwt` client's keys: one P-256 and one RSA key, registered under these kids.
    static let clientECKey = P256.Signing.PrivateKey()
    static let clientRSAKey: _RSA.Signing.PrivateKey? = try? _RSA.Signing.PrivateKey(keySize: .bits2048)
    static let clientECKid = "client-es-1"
    static let clientRSAKid = "client-rs-1"

    /// The public JWKS of the `keyed` client, written out by hand (not with the library's JWK code).
    static var clientJWKS: String {
        let raw = clientECKey.publicKey.x963Representation  // 0x04 || x || y
        var keys: [[String: String]] = [
            [
                "kty": "EC", "crv": "P-256", "kid": clientECKid, "use": "sig",
                "x": base64url(raw.dropFirst().prefix(32)), "y": base64url(raw.suffix(32)),
            ]
        ]
        if let rsa = clientRSAKey, let primitives = try? rsa.publicKey.getKeyPrimitives() {
            keys.append([
                "kty": "RSA", "kid": clientRSAKid, "use": "sig", "n": base64url(primitives.modulus),
                "e": base64url(primitives.publicExponent),
            ])
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static let lifetimes: IdPConfiguration.Lifetimes = {
        var l = IdPConfiguration.Lifetimes()
        l.idToken = 1800
        l.accessToken = 900
        l.refreshToken = 86400
        l.code = 60
        l.deviceCode = 600
        l.deviceInterval = 5
        l.session = 3600
        return l
    }()

    /// Users alice (email, groups), bob (TOTP) and carol (a subject that differs from her username); clients:
    /// - `cli`: public, loopback and https redirects, code + refresh + device;
    /// - `web`: confidential (secret), code + refresh;
    /// - `portal`: confidential (secret), code only (no refresh tokens);
    /// - `deployer`: client_credentials with an audience and its own access-token lifetime;
    /// - `reporter@example`: client_credentials with a secret that needs form-urlencoding;
    /// - `keyed`: client_credentials authenticated by `private_key_jwt`.
    static func config(
        signingAlgorithm: String = "ES256", extraClients: [IdPConfiguration.Client] = [],
        extraUsers: [IdPConfiguration.User] = []
    ) -> IdPConfiguration {
        IdPConfiguration(
            issuer: issuer, signingAlgorithm: signingAlgorithm,
            users: [
                .init(
                    username: "alice", passwordHash: aliceHash, email: "alice@example.com",
                    groups: ["engineers", "admins"]),
                .init(username: "bob", passwordHash: bobHash, totpSecret: bobTOTPBase32),
                .init(username: "carol", passwordHash: carolHash, subject: "u-carol-7"),
            ] + extraUsers,
            groups: ["engineers", "admins"],
            clients: [
                .init(
                    id: "cli",
                    redirectURIs: [
                        "http://127.0.0.1/callback", "http://[::1]/callback", "https://app.example.com/callback",
                    ],
                    grants: ["authorization_code", "refresh_token", "device_code"]),
                .init(
                    id: "web", secretHash: webHash, redirectURIs: ["https://web.example.com/cb"],
                    grants: ["authorization_code", "refresh_token"]),
                .init(
                    id: "portal", secretHash: portalHash, redirectURIs: ["https://portal.example.com/cb"],
                    grants: ["authorization_code"]),
                .init(
                    id: "deployer", secretHash: deployerHash, grants: ["client_credentials"],
                    scopes: ["deploy", "read"],
                    accessTokenTTL: 300, audience: "sts.amazonaws.com"),
                .init(id: reporterID, secretHash: reporterHash, grants: ["client_credentials"], scopes: ["read"]),
                .init(id: "keyed", jwks: clientJWKS, grants: ["client_credentials"], scopes: ["read"]),
            ] + extraClients,
            lifetimes: lifetimes)
    }
}

/// An engine over a memory store and a started key ring, with a clock the test moves.
struct EngineFixture {
    let clock: ManualClock
    let store: MemoryIdPStore
    let keys: KeyRing
    let engine: OAuthEngine

    init(
        config: IdPConfiguration = Fixture.config(), limits: ThrottleLimits = ThrottleLimits(),
        store: MemoryIdPStore = MemoryIdPStore(),
        loginPool: WorkPool = WorkPool(limit: 4, queue: 16), kek: SymmetricKey = SymmetricKey(size: .bits256),
        connectors: Connectors = .none, issuer: String = Fixture.issuer
    ) async throws {
        clock = ManualClock(Fixture.reference)
        self.store = store
        keys = KeyRing(
            store: store, kek: kek, algorithm: config.signingAlgorithm, clock: clock.wallClock,
            maxTokenLifetime: OAuthEngine.maxTokenLifetime(config))
        try await keys.start()
        engine = try OAuthEngine(
            config: config, issuer: issuer, store: store, keys: keys, clock: clock.wallClock, limits: limits,
            loginPool: loginPool, connectors: connectors)
    }

    /// How a user logged in, at the clock's time.
    func authentication(_ subject: String = "alice", amr: [String] = ["pwd"]) -> Authentication {
        Authentication(subject: subject, authTime: clock.now, amr: amr)
    }

    /// An authorization request's query for `client`, with PKCE (RFC 7636 Appendix B) unless `challenge` is nil.
    func query(
        client: String = "cli", redirect: String = Fixture.cliRedirect,
        scope: String? = "openid email profile groups offline_access",
        state: String? = "af0ifjsldkj", nonce: String? = "n-0S6_WzA2Mj", challenge: String? = Fixture.challenge
    ) -> [String: String] {
        var q = ["response_type": "code", "client_id": client, "redirect_uri": redirect]
        if let scope { q["scope"] = scope }
        if let state { q["state"] = state }
        if let nonce { q["nonce"] = nonce }
        if let challenge { q["code_challenge"] = challenge; q["code_challenge_method"] = "S256" }
        return q
    }

    /// Validates `query`, issues a code for `authentication`, and returns the code and the browser's redirect.
    func code(_ query: [String: String]? = nil, authentication: Authentication? = nil) async throws -> (
        code: String, redirect: String
    ) {
        let request = try engine.validateAuthorization(query ?? self.query()).get()
        let redirect = try await engine.issueCode(request, authentication: authentication ?? self.authentication())
        let code = try #require(queryItems(redirect)["code"])
        return (code, redirect)
    }

    /// The token endpoint with `form` (credentials from the form and an optional Authorization header).
    func token(_ form: [String: String], authorization: String? = nil) async throws -> TokenResponse {
        try await engine.token(
            form: form, credentials: ClientCredentials(authorization: authorization, form: form),
            address: Fixture.address)
    }

    /// Redeems a code as the public `cli` client would.
    func redeem(
        _ code: String, client: String = "cli", redirect: String = Fixture.cliRedirect,
        verifier: String? = Fixture.verifier,
        authorization: String? = nil
    ) async throws -> TokenResponse {
        var form = ["grant_type": "authorization_code", "code": code, "redirect_uri": redirect]
        if authorization == nil { form["client_id"] = client }
        if let verifier { form["code_verifier"] = verifier }
        return try await token(form, authorization: authorization)
    }

    /// A full code flow for `cli`: tokens with a refresh token.
    func userTokens(_ subject: String = "alice") async throws -> TokenResponse {
        try await redeem(try await code(authentication: authentication(subject)).code)
    }

    /// One refresh as `cli`.
    func refresh(_ token: String?, client: String = "cli", scope: String? = nil, authorization: String? = nil)
        async throws -> TokenResponse
    {
        var form = ["grant_type": "refresh_token", "refresh_token": token ?? ""]
        if authorization == nil { form["client_id"] = client }
        if let scope { form["scope"] = scope }
        return try await self.token(form, authorization: authorization)
    }
}

// MARK: - Independent helpers

/// The bytes of base64url text, or nil.
func unbase64url(_ text: some StringProtocol) -> Data? {
    var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while s.count % 4 != 0 { s += "=" }
    return Data(base64Encoded: s)
}

/// application/x-www-form-urlencoded encoding of one value (unreserved characters kept, space as `+`).
func formEncode(_ text: String) -> String {
    var out = ""
    for byte in text.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(Character(UnicodeScalar(byte)))
        case UInt8(ascii: " "):
            out.append("+")
        default:
            out += String(format: "%%%02X", byte)
        }
    }
    return out
}

/// An `Authorization: Basic` value for a client id and secret, form-urlencoded first as RFC 6749 §2.3.1 asks.
func basicAuthorization(_ id: String, _ secret: String) -> String {
    "Basic " + Data((formEncode(id) + ":" + formEncode(secret)).utf8).base64EncodedString()
}

/// The query items of a URL as a dictionary.
func queryItems(_ url: String) -> [String: String] {
    var result: [String: String] = [:]
    for item in URLComponents(string: url)?.queryItems ?? [] { result[item.name] = item.value ?? "" }
    return result
}

/// The JSON object in segment `index` of a compact JWT (0: header, 1: payload).
func jwtSegment(_ token: String, _ index: Int) throws -> [String: Any] {
    let segments = token.split(separator: ".", omittingEmptySubsequences: false)
    try #require(segments.count == 3, "not a compact JWS: \(token.prefix(40))")
    let data = try #require(unbase64url(segments[index]))
    return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
}

/// The claims of a JWT, decoded without any check.
func jwtClaims(_ token: String) throws -> [String: Any] { try jwtSegment(token, 1) }

/// The header of a JWT.
func jwtHeader(_ token: String) throws -> [String: Any] { try jwtSegment(token, 0) }

/// `token` with its payload replaced by `claims` (header and signature kept).
func replacingClaims(of token: String, with claims: [String: Any]) throws -> String {
    let segments = token.split(separator: ".", omittingEmptySubsequences: false)
    let payload = try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
    return String(segments[0]) + "." + base64url(payload) + "." + String(segments[2])
}

/// The kids in a JWKS document.
func jwksKids(_ bytes: [UInt8]) throws -> Set<String> {
    let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    let keys = try #require(object["keys"] as? [[String: Any]])
    return Set(keys.compactMap { $0["kid"] as? String })
}

/// Runs `body`, which must fail with the OAuth error `code` (and `status`), and returns the error.
@discardableResult
func expectOAuthError<T>(
    _ code: String, status: Int = 400, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> T
) async -> OAuthError? {
    do {
        _ = try await body()
        Issue.record("expected the OAuth error \(code), but the call succeeded", sourceLocation: sourceLocation)
        return nil
    } catch let error as OAuthError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        #expect(error.statusCode == status, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected the OAuth error \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The failure of an authorization request, or nil (recording an issue) when it was accepted.
func authorizationFailure(
    _ result: Result<AuthorizationRequest, AuthorizationFailure>,
    sourceLocation: SourceLocation = #_sourceLocation
) -> AuthorizationFailure? {
    switch result {
    case .success(let request):
        Issue.record("the request was accepted: \(request.fields)", sourceLocation: sourceLocation)
        return nil
    case .failure(let failure):
        return failure
    }
}

/// A gate tasks wait at until it is opened.
actor AsyncGate {
    private var opened = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Waits until `open()`.
    func wait() async {
        if opened { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Lets every waiter (and later ones) through.
    func open() {
        opened = true
        waiters.forEach { $0.resume() }
        waiters = []
    }
}
