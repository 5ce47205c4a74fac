import Crypto
import _CryptoExtras
import Foundation
import JWTKit
import KeylessCore
import KeylessHTTP
import KeylessOIDC
import KeylessTestFakes
import Logging
import Testing

// Fixtures for the OIDC tests, all built in code around one fixed reference time.

/// The reference time every OIDC test runs at: 2026-01-01T00:00:00Z.
let referenceTime = ManualClock.reference
/// The issuer the stub identity provider serves.
let testIssuer = "https://idp.example.test"
/// The client the tokens are issued to.
let testClientID = "keyless-cli"
/// A logger that drops everything.
let quietLogger = Logger(label: "keyless.tests.oidc", factory: { _ in SwiftLogNoOpLogHandler() })

/// Seconds since 1970 of `referenceTime + offset`.
func at(_ offset: Int) -> Int { Int(referenceTime.timeIntervalSince1970) + offset }

// MARK: - claims

/// The claims a test token carries; independent of the library's `IDTokenClaims` so the fixture
/// does not share the code under test. Absent optionals are left out of the JSON.
struct TestClaims: JWTPayload, Equatable {
    var iss: String = testIssuer
    var sub: String = "user-123"
    var aud: [String] = [testClientID]
    var exp: Int = at(3600)
    var iat: Int? = at(0)
    var nbf: Int?
    var nonce: String?
    var azp: String?
    var email: String? = "alice@example.com"
    var preferredUsername: String?
    /// Filler to make a token large.
    var padding: String?
    /// Written as `exp` instead of `exp` when set: numbers an Int cannot hold (1e19, 1e300).
    var expOverride: Double?
    /// Entra's tenant id.
    var tid: String?
    /// Entra's user principal name.
    var upn: String?
    /// Whether the email is verified.
    var emailVerified: Bool?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, nbf, nonce, azp, email, padding, tid, upn
        case preferredUsername = "preferred_username"
        case emailVerified = "email_verified"
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        iss = try container.decode(String.self, forKey: .iss)
        sub = try container.decode(String.self, forKey: .sub)
        if let one = try? container.decode(String.self, forKey: .aud) {
            aud = [one]
        } else {
            aud = try container.decode([String].self, forKey: .aud)
        }
        exp = try container.decode(Int.self, forKey: .exp)
        iat = try container.decodeIfPresent(Int.self, forKey: .iat)
        nbf = try container.decodeIfPresent(Int.self, forKey: .nbf)
        nonce = try container.decodeIfPresent(String.self, forKey: .nonce)
        azp = try container.decodeIfPresent(String.self, forKey: .azp)
        email = try container.decodeIfPresent(String.self, forKey: .email)
        preferredUsername = try container.decodeIfPresent(String.self, forKey: .preferredUsername)
        padding = try container.decodeIfPresent(String.self, forKey: .padding)
        tid = try container.decodeIfPresent(String.self, forKey: .tid)
        upn = try container.decodeIfPresent(String.self, forKey: .upn)
        emailVerified = try container.decodeIfPresent(Bool.self, forKey: .emailVerified)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(iss, forKey: .iss)
        try container.encode(sub, forKey: .sub)
        if aud.count == 1 {
            try container.encode(aud[0], forKey: .aud)
        } else {
            try container.encode(aud, forKey: .aud)
        }
        if let expOverride {
            try container.encode(expOverride, forKey: .exp)
        } else {
            try container.encode(exp, forKey: .exp)
        }
        try container.encodeIfPresent(iat, forKey: .iat)
        try container.encodeIfPresent(nbf, forKey: .nbf)
        try container.encodeIfPresent(nonce, forKey: .nonce)
        try container.encodeIfPresent(azp, forKey: .azp)
        try container.encodeIfPresent(email, forKey: .email)
        try container.encodeIfPresent(preferredUsername, forKey: .preferredUsername)
        try container.encodeIfPresent(padding, forKey: .padding)
        try container.encodeIfPresent(tid, forKey: .tid)
        try container.encodeIfPresent(upn, forKey: .upn)
        try container.encodeIfPresent(emailVerified, forKey: .emailVerified)
    }

    /// The claims are checked by the code under test, not by jwt-kit.
    func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// The JSON of these claims (sorted keys), for hand-built tokens.
    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(self)
    }
}

/// Claims valid at the reference time, changed by `edit`.
func claims(_ edit: (inout TestClaims) -> Void = { _ in }) -> TestClaims {
    var value = TestClaims()
    edit(&value)
    return value
}

// MARK: - keys

/// A signing key generated for one test, with its public JWK and a way to sign tokens with jwt-kit.
protocol TestSigningKey: Sendable {
    /// The key id published in the JWKS.
    var kid: String { get }
    /// The JWS algorithm name.
    var alg: String { get }
    /// The public JWK as JSON members (`kid` included unless `withoutKid`).
    func jwk(withoutKid: Bool) throws -> [String: String]
    /// Adds the private key to `collection` under `kid` (nil: as the default key).
    func add(to collection: JWTKeyCollection, kid: JWKIdentifier?) async throws
}

/// An RSA-2048 key that signs RS256.
struct RSATestKey: TestSigningKey {
    let kid: String
    let alg = "RS256"
    let privateKey: _RSA.Signing.PrivateKey

    init(kid: String) throws {
        self.kid = kid
        privateKey = try _RSA.Signing.PrivateKey(keySize: .bits2048)
    }

    func jwk(withoutKid: Bool = false) throws -> [String: String] {
        let primitives = try privateKey.publicKey.getKeyPrimitives()
        var members = [
            "kty": "RSA", "use": "sig", "alg": alg,
            "n": base64url(primitives.modulus), "e": base64url(primitives.publicExponent),
        ]
        if !withoutKid { members["kid"] = kid }
        return members
    }

    func add(to collection: JWTKeyCollection, kid: JWKIdentifier?) async throws {
        await collection.add(rsa: try Insecure.RSA.PrivateKey(backing: privateKey), digestAlgorithm: .sha256, kid: kid)
    }

    /// The public key's PEM bytes (what an algorithm-confusion attacker uses as an HMAC secret).
    var publicKeyPEM: String { privateKey.publicKey.pemRepresentation }
}

/// A P-256 key that signs ES256.
struct ECTestKey: TestSigningKey {
    let kid: String
    let alg = "ES256"
    let privateKey = P256.Signing.PrivateKey()

    init(kid: String) { self.kid = kid }

    func jwk(withoutKid: Bool = false) throws -> [String: String] {
        // x963 is 0x04 || x (32 bytes) || y (32 bytes).
        let point = privateKey.publicKey.x963Representation
        var members = [
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": alg,
            "x": base64url(point.dropFirst().prefix(32)), "y": base64url(point.suffix(32)),
        ]
        if !withoutKid { members["kid"] = kid }
        return members
    }

    func add(to collection: JWTKeyCollection, kid: JWKIdentifier?) async throws {
        await collection.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: kid)
    }
}

/// A JWKS document with `keys` (each a JWK's members).
func jwksJSON(_ keys: [[String: String]]) throws -> String {
    let data = try JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// A JWKS document with the public parts of `keys`.
func jwksJSON(_ keys: [any TestSigningKey]) throws -> String {
    try jwksJSON(keys.map { try $0.jwk(withoutKid: false) })
}

// MARK: - tokens

/// Signs `claims` with `key` using jwt-kit; the header names `key.kid` unless `withKid` is false.
func mint(_ claims: TestClaims, with key: some TestSigningKey, withKid: Bool = true) async throws -> String {
    let collection = JWTKeyCollection()
    if withKid {
        let kid = JWKIdentifier(string: key.kid)
        try await key.add(to: collection, kid: kid)
        return try await collection.sign(claims, kid: kid)
    }
    try await key.add(to: collection, kid: nil)
    return try await collection.sign(claims)
}

/// A JWT assembled by hand: `header` and `claims` as given, and `signature(signingInput)`.
func handMadeToken(header: [String: String], claims: TestClaims, signature: (Data) throws -> Data = { _ in Data() })
    throws -> String
{
    let headerJSON = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    let signingInput = base64url(headerJSON) + "." + base64url(try claims.json())
    return signingInput + "." + base64url(try signature(Data(signingInput.utf8)))
}

/// `token` with its payload replaced by `claims`, keeping the original header and signature.
func replacingPayload(of token: String, with claims: TestClaims) throws -> String {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    return [String(parts[0]), base64url(try claims.json()), String(parts[2])].joined(separator: ".")
}

// MARK: - the stub identity provider

/// One request the stub received.
struct RecordedRequest: Sendable {
    var method: String
    var url: String
    var headers: [String: String]
    var body: String
    /// The form fields of the body (decoded with URLComponents, not with the library under test).
    var form: [String: String] {
        var components = URLComponents()
        components.percentEncodedQuery = body
        var fields: [String: String] = [:]
        for item in components.queryItems ?? [] { fields[item.name] = item.value ?? "" }
        return fields
    }
}

/// A 200 JSON response.
func jsonResponse(_ object: [String: Any]) -> HTTPResponseData { jsonResponse(200, object) }

/// A JSON response with `status`.
func jsonResponse(_ status: Int, _ object: [String: Any]) -> HTTPResponseData {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
    return HTTPResponseData(status: status, headers: ["content-type": "application/json"], body: Array(data))
}

/// An in-memory OpenID Provider behind the `HTTPTransport` protocol: discovery, a JWKS that can change
/// between fetches, and token and device endpoints answered by closures. It counts what it serves.
actor StubIdP: HTTPTransport {
    /// Answers a token-endpoint (or device-endpoint) request, given its form fields and the request number (from 1).
    typealias Endpoint = @Sendable (_ form: [String: String], _ call: Int) async throws -> HTTPResponseData

    let issuer: String
    /// The issuer the discovery document names (normally `issuer`).
    let advertisedIssuer: String
    /// The JWKS documents served: fetch n gets `jwks[min(n, count) - 1]`.
    let jwks: [String]
    let tokenEndpoint: Endpoint?
    let deviceEndpoint: Endpoint?
    /// When true every request fails as if the host were down.
    let unreachable: Bool
    /// List members added to the discovery document (scopes_supported, token_endpoint_auth_methods_supported, ...).
    let discoveryLists: [String: [String]]

    private(set) var requests: [RecordedRequest] = []
    private(set) var jwksFetches = 0
    private(set) var discoveryFetches = 0
    private(set) var tokenCalls = 0
    private(set) var deviceCalls = 0

    init(
        issuer: String = testIssuer, advertisedIssuer: String? = nil, jwks: [String] = [], unreachable: Bool = false,
        discoveryLists: [String: [String]] = [:], tokenEndpoint: Endpoint? = nil, deviceEndpoint: Endpoint? = nil
    ) {
        self.discoveryLists = discoveryLists
        self.issuer = issuer
        self.advertisedIssuer = advertisedIssuer ?? issuer
        self.jwks = jwks
        self.unreachable = unreachable
        self.tokenEndpoint = tokenEndpoint
        self.deviceEndpoint = deviceEndpoint
    }

    nonisolated var jwksURI: String { issuer + "/jwks" }
    nonisolated var tokenURL: String { issuer + "/token" }
    nonisolated var deviceURL: String { issuer + "/device" }
    nonisolated var authorizationURL: String { issuer + "/authorize" }

    func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPResponseData {
        requests.append(
            RecordedRequest(
                method: method, url: url, headers: headers, body: String(decoding: body ?? [], as: UTF8.self)))
        if unreachable { throw ConnectionRefused() }
        switch (method, url) {
        case ("GET", issuer + "/.well-known/openid-configuration"):
            discoveryFetches += 1
            var document: [String: Any] = [
                "issuer": advertisedIssuer, "authorization_endpoint": authorizationURL, "token_endpoint": tokenURL,
                "jwks_uri": jwksURI, "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            ]
            if deviceEndpoint != nil { document["device_authorization_endpoint"] = deviceURL }
            for (name, values) in discoveryLists { document[name] = values }
            return jsonResponse(document)
        case ("GET", jwksURI):
            jwksFetches += 1
            guard !jwks.isEmpty else { return jsonResponse(404, ["error": "no jwks configured"]) }
            return HTTPResponseData(
                status: 200, headers: ["content-type": "application/json"],
                body: Array(jwks[min(jwksFetches, jwks.count) - 1].utf8))
        case ("POST", tokenURL):
            tokenCalls += 1
            guard let tokenEndpoint else { return jsonResponse(404, ["error": "not_found"]) }
            return try await tokenEndpoint(requests.last!.form, tokenCalls)
        case ("POST", deviceURL):
            deviceCalls += 1
            guard let deviceEndpoint else { return jsonResponse(404, ["error": "not_found"]) }
            return try await deviceEndpoint(requests.last!.form, deviceCalls)
        default:
            return jsonResponse(404, ["error": "not_found"])
        }
    }

    /// The requests made to `url`.
    func requests(to url: String) -> [RecordedRequest] { requests.filter { $0.url == url } }
}

// MARK: - clocks

// MARK: - helpers

/// A verifier for the stub's issuer and the test client.
func makeVerifier(_ idp: StubIdP, clock: WallClock = .fixed(referenceTime)) -> IDTokenVerifier {
    IDTokenVerifier(
        issuer: testIssuer, clientID: testClientID, jwksURI: idp.jwksURI, http: idp, clock: clock, logger: quietLogger)
}

/// A client for the stub's issuer and the test client.
func makeClient(
    _ idp: StubIdP, clock: WallClock = .fixed(referenceTime),
    configuration: OIDCClientConfiguration = OIDCClientConfiguration(issuer: testIssuer, clientID: testClientID)
) -> OIDCClient {
    OIDCClient(configuration: configuration, http: idp, clock: clock, logger: quietLogger)
}
