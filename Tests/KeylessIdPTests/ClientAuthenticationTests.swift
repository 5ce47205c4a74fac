import Crypto
import _CryptoExtras
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessJOSE
import KeylessStorage
import KeylessTestFakes
import Testing

/// A client authenticator over the reference configuration, with the issuer and token endpoint as audiences.
func makeAuthenticator(
    _ clock: ManualClock = ManualClock(Fixture.reference), config: IdPConfiguration = Fixture.config(),
    store: any IdPStore = MemoryIdPStore(),
    limits: ThrottleLimits = ThrottleLimits(), pool: WorkPool = WorkPool(limit: 2, queue: 2)
) throws -> ClientAuthenticator {
    try ClientAuthenticator(
        config: config, audiences: [Fixture.issuer, Fixture.issuer + "/token"], clock: clock.wallClock,
        throttle: Throttle(store: store, limits: limits), pool: pool)
}

/// Authenticates with an Authorization header and form fields; returns the client id.
func authenticate(_ authenticator: ClientAuthenticator, authorization: String? = nil, form: [String: String])
    async throws -> String
{
    try await authenticator.authenticate(
        ClientCredentials(authorization: authorization, form: form), address: Fixture.address
    ).id
}

// MARK: - Basic credentials and secrets

@Suite("client authentication with secrets: Basic parsing, client_secret_basic/post, the verified-secret cache")
struct ClientSecretTests {
    @Test("Basic credentials are form-urlencoded inside the header and decoded (RFC 6749 §2.3.1)")
    func basicPercentDecoding() throws {
        let header = basicAuthorization(Fixture.reporterID, Fixture.reporterSecret)
        // The fixture really encodes: the raw header text carries escapes, not the characters.
        let raw = String(decoding: try #require(Data(base64Encoded: String(header.dropFirst(6)))), as: UTF8.self)
        #expect(raw == "reporter%40example:s3cr3t%3Awith%25odd%2Bchars%2F%3D+and+space")
        let basic = try #require(ClientCredentials(authorization: header, form: [:]).basic)
        #expect(basic.id == Fixture.reporterID)
        #expect(basic.secret == Fixture.reporterSecret)
    }

    @Test(
        "the Basic scheme name is case-insensitive; a header that is not base64 or has no colon gives no Basic credentials"
    )
    func basicParsing() throws {
        let lower = "basic " + Data("web:pw".utf8).base64EncodedString()
        #expect(ClientCredentials(authorization: lower, form: [:]).basic?.secret == "pw")
        #expect(ClientCredentials(authorization: "Basic !!!notbase64", form: [:]).basic == nil)
        #expect(
            ClientCredentials(authorization: "Basic " + Data("no-colon".utf8).base64EncodedString(), form: [:]).basic
                == nil)
        #expect(ClientCredentials(authorization: "Bearer abc", form: [:]).basic == nil)
    }

    @Test(
        "a client_credentials token via client_secret_basic has sub = client id, aud = the client's audience, its own lifetime, no ID or refresh token"
    )
    func clientCredentialsBasic() async throws {
        let f = try await EngineFixture()
        let tokens = try await f.token(
            ["grant_type": "client_credentials"], authorization: basicAuthorization("deployer", Fixture.deployerSecret))
        let claims = try jwtClaims(tokens.accessToken)
        #expect(claims["sub"] as? String == "deployer")
        #expect(claims["client_id"] as? String == "deployer")
        #expect(claims["aud"] as? String == "sts.amazonaws.com")
        #expect(claims["iss"] as? String == Fixture.issuer)
        #expect(claims["scope"] as? String == "deploy read")
        #expect(claims["exp"] as? Int == Fixture.referenceSeconds + 300)
        #expect(claims["iat"] as? Int == Fixture.referenceSeconds)
        #expect(claims["amr"] == nil && claims["auth_time"] == nil)
        #expect(try jwtHeader(tokens.accessToken)["typ"] as? String == "at+jwt")
        #expect(tokens.expiresIn == 300)
        #expect(tokens.idToken == nil && tokens.refreshToken == nil)
        #expect(tokens.scope == "deploy read")
        // The engine accepts its own token.
        #expect(try await f.engine.verifyAccessToken(tokens.accessToken).sub == "deployer")
    }

    @Test(
        "a client_credentials token via client_secret_post, with percent-encoded Basic too; aud defaults to the client id"
    )
    func clientCredentialsPost() async throws {
        let f = try await EngineFixture()
        let posted = try await f.token([
            "grant_type": "client_credentials", "client_id": Fixture.reporterID,
            "client_secret": Fixture.reporterSecret,
        ])
        #expect(try jwtClaims(posted.accessToken)["aud"] as? String == Fixture.reporterID)
        #expect(try jwtClaims(posted.accessToken)["sub"] as? String == Fixture.reporterID)
        #expect(posted.expiresIn == Fixture.lifetimes.accessToken)
        let basic = try await f.token(
            ["grant_type": "client_credentials", "scope": "read"],
            authorization: basicAuthorization(Fixture.reporterID, Fixture.reporterSecret))
        #expect(basic.scope == "read")
    }

    @Test("a wrong secret is invalid_client with status 401, by Basic and by post; so is an unknown client")
    func wrongSecret() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(
                ["grant_type": "client_credentials"],
                authorization: basicAuthorization("deployer", Fixture.deployerSecret + "x"))
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token([
                "grant_type": "client_credentials", "client_id": "deployer", "client_secret": Fixture.webSecret,
            ])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(
                ["grant_type": "client_credentials"],
                authorization: basicAuthorization("nobody", Fixture.deployerSecret))
        }
        // The secret of the client's form-encoded Basic header, sent without the encoding, is not the secret.
        let unencoded = "Basic " + Data((Fixture.reporterID + ":" + Fixture.reporterSecret).utf8).base64EncodedString()
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(["grant_type": "client_credentials"], authorization: unencoded)
        }
    }

    @Test("a confidential client that does not authenticate is invalid_client")
    func confidentialWithoutSecret() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(["grant_type": "client_credentials", "client_id": "deployer"])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(["grant_type": "client_credentials"])
        }
    }

    @Test(
        "a public client cannot use client_credentials: unauthorized_client without the grant, invalid_client with it")
    func publicClient() async throws {
        // idp.yaml refuses a public client with this grant; a configuration built in code can still hold one.
        let loose = IdPConfiguration.Client(id: "loose", grants: ["client_credentials"], scopes: ["read"])
        let f = try await EngineFixture(config: Fixture.config(extraClients: [loose]))
        await expectOAuthError("unauthorized_client") {
            try await f.token(["grant_type": "client_credentials", "client_id": "cli"])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await f.token(["grant_type": "client_credentials", "client_id": "loose"])
        }
    }

    @Test("a scope the client was not given is invalid_scope; a subset is granted as asked")
    func scopes() async throws {
        let f = try await EngineFixture()
        let basic = basicAuthorization("deployer", Fixture.deployerSecret)
        await expectOAuthError("invalid_scope") {
            try await f.token(["grant_type": "client_credentials", "scope": "deploy admin"], authorization: basic)
        }
        await expectOAuthError("invalid_scope") {
            try await f.token(["grant_type": "client_credentials", "scope": "openid"], authorization: basic)
        }
        #expect(
            try await f.token(["grant_type": "client_credentials", "scope": "read"], authorization: basic).scope
                == "read")
    }

    @Test(
        "a public client that sends an empty secret (Basic \"id:\" as oidc-agent does, or client_secret=\"\") is identified, not refused"
    )
    func publicClientEmptySecret() async throws {
        let authenticator = try makeAuthenticator()
        #expect(try await authenticate(authenticator, authorization: basicAuthorization("cli", ""), form: [:]) == "cli")
        #expect(
            try await authenticate(
                authenticator, authorization: basicAuthorization("cli", ""), form: ["client_id": "cli"]) == "cli")
        #expect(try await authenticate(authenticator, form: ["client_id": "cli", "client_secret": ""]) == "cli")
        // The whole grant works, not only the authenticator: a code exchange with the empty Basic secret.
        let f = try await EngineFixture()
        let tokens = try await f.redeem(try await f.code().code, authorization: basicAuthorization("cli", ""))
        #expect(tokens.idToken != nil)
        #expect(try await f.refresh(tokens.refreshToken, authorization: basicAuthorization("cli", "")).idToken != nil)
    }

    @Test(
        "a public client that sends a real secret, and a confidential client that sends an empty one, are invalid_client"
    )
    func emptySecretOnlyForPublicClients() async throws {
        let authenticator = try makeAuthenticator()
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, authorization: basicAuthorization("cli", "guess"), form: [:])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: ["client_id": "cli", "client_secret": "guess"])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, authorization: basicAuthorization("deployer", ""), form: [:])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: ["client_id": "deployer", "client_secret": ""])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, authorization: basicAuthorization("nobody", ""), form: [:])
        }
        // An empty Basic secret for one client with a form client_id naming another is still a contradiction.
        await expectOAuthError("invalid_request") {
            try await authenticate(
                authenticator, authorization: basicAuthorization("cli", ""), form: ["client_id": "deployer"])
        }
    }

    @Test("after a right secret, the same secret works again and a wrong one still fails")
    func cache() async throws {
        let authenticator = try makeAuthenticator()
        let right = basicAuthorization("deployer", Fixture.deployerSecret)
        let wrong = basicAuthorization("deployer", "not-the-secret")
        #expect(try await authenticate(authenticator, authorization: right, form: [:]) == "deployer")
        #expect(try await authenticate(authenticator, authorization: right, form: [:]) == "deployer")
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, authorization: wrong, form: [:])
        }
        // A cached secret of one client does not open another.
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(
                authenticator, authorization: basicAuthorization(Fixture.reporterID, Fixture.deployerSecret), form: [:])
        }
        #expect(
            try await authenticate(
                authenticator, form: ["client_id": "deployer", "client_secret": Fixture.deployerSecret]) == "deployer")
    }

    @Test("two authentication methods at once, or a form client_id that differs from Basic, are invalid_request")
    func severalMethods() async throws {
        let authenticator = try makeAuthenticator()
        let basic = basicAuthorization("deployer", Fixture.deployerSecret)
        await expectOAuthError("invalid_request") {
            try await authenticate(
                authenticator, authorization: basic,
                form: ["client_id": "deployer", "client_secret": Fixture.deployerSecret])
        }
        await expectOAuthError("invalid_request") {
            try await authenticate(
                authenticator, authorization: basic,
                form: [
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": "a.b.c",
                ])
        }
        await expectOAuthError("invalid_request") {
            try await authenticate(
                authenticator,
                form: [
                    "client_id": "deployer", "client_secret": Fixture.deployerSecret,
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": "a.b.c",
                ])
        }
        await expectOAuthError("invalid_request") {
            try await authenticate(authenticator, authorization: basic, form: ["client_id": "web"])
        }
        await expectOAuthError("invalid_request") {
            try await authenticate(authenticator, form: ["client_secret": Fixture.deployerSecret])
        }
    }
}

// MARK: - private_key_jwt

@Suite(
    "private_key_jwt client assertions (RFC 7523): iss = sub = client, aud, exp window, jti replay, alg pinned to the key"
)
struct PrivateKeyJWTTests {
    static let assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    /// The claims jwt-kit signs.
    struct AssertionPayload: JWTPayload {
        var iss: String, sub: String, aud: String, exp: Int, iat: Int, jti: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Valid assertion claims for `keyed` at the reference time, with `changes` applied (NSNull removes a claim).
    static func claims(_ changes: [String: Any] = [:]) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": "keyed", "sub": "keyed", "aud": Fixture.issuer + "/token",
            "exp": Fixture.referenceSeconds + 60, "iat": Fixture.referenceSeconds, "jti": UUID().uuidString,
        ]
        for (key, value) in changes { claims[key] = value is NSNull ? nil : value }
        return claims
    }

    /// An ES256 assertion signed by jwt-kit with the client's P-256 key.
    static func es256(
        kid: String = Fixture.clientECKid, jti: String = UUID().uuidString, aud: String = Fixture.issuer + "/token",
        exp: Int = Fixture.referenceSeconds + 60
    ) async throws -> String {
        let collection = JWTKeyCollection()
        let id = JWKIdentifier(string: kid)
        await collection.add(ecdsa: try ES256PrivateKey(backing: Fixture.clientECKey), kid: id)
        let payload = AssertionPayload(
            iss: "keyed", sub: "keyed", aud: aud, exp: exp, iat: Fixture.referenceSeconds, jti: jti)
        return try await collection.sign(payload, kid: id)
    }

    /// A token assembled by hand: the header and claims as given, signed by `sign` over the signing input.
    static func handMade(_ header: [String: Any], _ claims: [String: Any], sign: ([UInt8]) throws -> Data) throws
        -> String
    {
        let input =
            base64url(try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) + "."
            + base64url(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys]))
        return input + "." + base64url(try sign(Array(input.utf8)))
    }

    /// An RS256 signature by the client's RSA key (swift-crypto directly).
    static func rsaSign(_ input: [UInt8]) throws -> Data {
        try #require(Fixture.clientRSAKey).signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
    }

    /// An ES256 signature by the client's P-256 key (swift-crypto directly).
    static func ecSign(_ input: [UInt8]) throws -> Data {
        try Fixture.clientECKey.signature(for: input).rawRepresentation
    }

    static func form(_ assertion: String, clientID: String? = nil) -> [String: String] {
        var form = ["client_assertion_type": assertionType, "client_assertion": assertion]
        if let clientID { form["client_id"] = clientID }
        return form
    }

    @Test("an ES256 assertion signed by jwt-kit authenticates the client")
    func es256ByJWTKit() async throws {
        let authenticator = try makeAuthenticator()
        #expect(
            try await authenticate(authenticator, form: Self.form(try await Self.es256(), clientID: "keyed")) == "keyed"
        )
    }

    @Test(
        "an RS256 assertion made with SigningKey and JWS.sign authenticates the client, with aud = the issuer or a list naming it"
    )
    func rs256ByJWSHelpers() async throws {
        let authenticator = try makeAuthenticator()
        let key = SigningKey.rsa(try #require(Fixture.clientRSAKey))
        for aud in [Fixture.issuer, [Fixture.issuer + "/token", "https://elsewhere.example.com"]] as [Any] {
            let header = try JSONSerialization.data(
                withJSONObject: ["alg": "RS256", "kid": Fixture.clientRSAKid, "typ": "JWT"], options: [.sortedKeys])
            let payload = try JSONSerialization.data(withJSONObject: Self.claims(["aud": aud]), options: [.sortedKeys])
            let assertion = try JWS.sign(header: Array(header), payload: Array(payload), key: key)
            #expect(try await authenticate(authenticator, form: Self.form(assertion)) == "keyed")
        }
    }

    @Test("an assertion without a kid is checked against every registered key of its algorithm")
    func withoutKid() async throws {
        let authenticator = try makeAuthenticator()
        let assertion = try Self.handMade(["alg": "ES256"], Self.claims(), sign: Self.ecSign)
        #expect(try await authenticate(authenticator, form: Self.form(assertion)) == "keyed")
    }

    @Test("the token endpoint issues a client_credentials token to a client authenticated by private_key_jwt")
    func throughTokenEndpoint() async throws {
        let f = try await EngineFixture()
        var form = Self.form(try await Self.es256())
        form["grant_type"] = "client_credentials"
        let tokens = try await f.token(form)
        #expect(try jwtClaims(tokens.accessToken)["sub"] as? String == "keyed")
        #expect(tokens.scope == "read")
    }

    @Test("a tampered payload is invalid_client: a re-encoded claim, or one character of the payload segment changed")
    func tamperedPayload() async throws {
        let authenticator = try makeAuthenticator()
        let genuine = try await Self.es256()
        var claims = try jwtClaims(genuine)
        claims["jti"] = "another-jti"
        let reencoded = try replacingClaims(of: genuine, with: claims)
        let error = await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(reencoded))
        }
        #expect(error?.detail.contains("signature") == true, "refused for its signature, not its form")

        var segments = genuine.split(separator: ".").map(String.init)
        var payload = Array(segments[1])
        let middle = payload.count / 2
        payload[middle] = payload[middle] == "A" ? "B" : "A"
        segments[1] = String(payload)
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(segments.joined(separator: ".")))
        }
        // The untouched assertion still works: the refusals were for the changes.
        #expect(try await authenticate(authenticator, form: Self.form(genuine)) == "keyed")
    }

    @Test("an aud that names neither the issuer nor the token endpoint is invalid_client")
    func wrongAudience() async throws {
        let authenticator = try makeAuthenticator()
        for aud in ["https://other.example.com/token", Fixture.issuer + "/userinfo", Fixture.issuer + "/"] {
            await expectOAuthError("invalid_client", status: 401) {
                try await authenticate(authenticator, form: Self.form(try await Self.es256(aud: aud)))
            }
        }
    }

    @Test(
        "an expired assertion, or one living longer than an hour, is invalid_client; 30 s of clock skew are tolerated")
    func expiry() async throws {
        let clock = ManualClock(Fixture.reference)
        let authenticator = try makeAuthenticator(clock)
        let now = Fixture.referenceSeconds
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(try await Self.es256(exp: now - 31)))
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(try await Self.es256(exp: now + 3601)))
        }
        #expect(try await authenticate(authenticator, form: Self.form(try await Self.es256(exp: now - 29))) == "keyed")
        // One made valid, presented after it expired.
        let assertion = try await Self.es256(exp: now + 60)
        clock.advance(by: 91)
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(assertion))
        }
    }

    @Test("a replayed jti is invalid_client; another jti from the same client works")
    func replay() async throws {
        let authenticator = try makeAuthenticator()
        let assertion = try await Self.es256(jti: "jti-1")
        #expect(try await authenticate(authenticator, form: Self.form(assertion)) == "keyed")
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(assertion))
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(try await Self.es256(jti: "jti-1")))
        }
        #expect(try await authenticate(authenticator, form: Self.form(try await Self.es256(jti: "jti-2"))) == "keyed")
        let noJTI = try Self.handMade(
            ["alg": "ES256", "kid": Fixture.clientECKid], Self.claims(["jti": NSNull()]), sign: Self.ecSign)
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(noJTI))
        }
    }

    @Test(
        "alg HS256 (keyed with the public key), alg none, and an alg that does not match the kid's key type are invalid_client"
    )
    func algorithmPinned() async throws {
        let authenticator = try makeAuthenticator()
        let publicKeyBytes = Fixture.clientECKey.publicKey.x963Representation
        let hs256 = try Self.handMade(["alg": "HS256", "kid": Fixture.clientECKid], Self.claims()) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: publicKeyBytes)))
        }
        let hs256NoKid = try Self.handMade(["alg": "HS256"], Self.claims()) { input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(Fixture.clientJWKS.utf8))))
        }
        let none = try Self.handMade(["alg": "none"], Self.claims()) { _ in Data() }
        let noneWithKid = try Self.handMade(["alg": "none", "kid": Fixture.clientECKid], Self.claims()) { _ in Data() }
        // A valid RS256 signature, but under the EC key's kid; and an ES256 label on an RSA signature.
        let rsUnderECKid = try Self.handMade(
            ["alg": "RS256", "kid": Fixture.clientECKid], Self.claims(), sign: Self.rsaSign)
        let esLabelOnRSA = try Self.handMade(
            ["alg": "ES256", "kid": Fixture.clientRSAKid], Self.claims(), sign: Self.rsaSign)
        for assertion in [hs256, hs256NoKid, none, noneWithKid, rsUnderECKid, esLabelOnRSA] {
            await expectOAuthError("invalid_client", status: 401) {
                try await authenticate(authenticator, form: Self.form(assertion))
            }
        }
        // The same RSA signature under the right kid and alg is accepted.
        let genuine = try Self.handMade(
            ["alg": "RS256", "kid": Fixture.clientRSAKid], Self.claims(), sign: Self.rsaSign)
        #expect(try await authenticate(authenticator, form: Self.form(genuine)) == "keyed")
    }

    @Test("a kid that is not registered, or a key that is not the client's, is invalid_client")
    func unknownKey() async throws {
        let authenticator = try makeAuthenticator()
        let unregisteredKid = try Self.handMade(
            ["alg": "ES256", "kid": "client-es-2"], Self.claims(), sign: Self.ecSign)
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(unregisteredKid))
        }
        let stranger = P256.Signing.PrivateKey()
        let strangerSigned = try Self.handMade(["alg": "ES256", "kid": Fixture.clientECKid], Self.claims()) {
            try stranger.signature(for: $0).rawRepresentation
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(strangerSigned))
        }
    }

    @Test("iss must equal sub, name a client with a jwks, and match a form client_id")
    func issuerAndSubject() async throws {
        let authenticator = try makeAuthenticator()
        let cases: [(claims: [String: Any], clientID: String?)] = [
            (Self.claims(["iss": "someone-else"]), nil),
            (Self.claims(["iss": "deployer", "sub": "deployer"]), nil),
            (Self.claims(["iss": "nobody", "sub": "nobody"]), nil),
            (Self.claims(["sub": NSNull()]), nil),
            (Self.claims(), "deployer"),
        ]
        for (claims, clientID) in cases {
            let assertion = try Self.handMade(["alg": "ES256", "kid": Fixture.clientECKid], claims, sign: Self.ecSign)
            await expectOAuthError("invalid_client", status: 401) {
                try await authenticate(authenticator, form: Self.form(assertion, clientID: clientID))
            }
        }
    }

    @Test("an assertion not valid before a time more than 30 s ahead is invalid_client")
    func notBefore() async throws {
        let authenticator = try makeAuthenticator()
        let early = try Self.handMade(
            ["alg": "ES256"], Self.claims(["nbf": Fixture.referenceSeconds + 31]), sign: Self.ecSign)
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form(early))
        }
    }

    @Test(
        "a client_assertion_type other than jwt-bearer, or one without an assertion, is invalid_request; a malformed JWT invalid_client"
    )
    func assertionType() async throws {
        let authenticator = try makeAuthenticator()
        let assertion = try await Self.es256()
        await expectOAuthError("invalid_request") {
            try await authenticate(
                authenticator,
                form: [
                    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                    "client_assertion": assertion,
                ])
        }
        await expectOAuthError("invalid_request") {
            try await authenticate(authenticator, form: ["client_assertion_type": Self.assertionType])
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(authenticator, form: Self.form("not.a.jwt"))
        }
    }
}

// MARK: - Guards against made-up credentials

@Suite(
    "client authentication under attack: failures throttled per address, scrypt checks bounded, jti spent in the shared store"
)
struct ClientAuthenticationGuardTests {
    @Test(
        "after guessesPerAddress failed client authentications an address gets 429 with Retry-After, even with the right secret; other addresses do not"
    )
    func failuresThrottledPerAddress() async throws {
        let clock = ManualClock(Fixture.reference)
        let authenticator = try makeAuthenticator(clock, limits: ThrottleLimits(guessesPerAddress: 3, window: 120))
        func attempt(_ secret: String, from address: String) async throws -> String {
            try await authenticator.authenticate(
                ClientCredentials(authorization: basicAuthorization("deployer", secret), form: [:]), address: address
            ).id
        }
        for index in 0..<3 {
            await expectOAuthError("invalid_client", status: 401) {
                try await attempt("made-up-\(index)", from: "198.51.100.20")
            }
        }
        clock.advance(by: 20)
        let throttled = await #expect(throws: OAuthError.self) {
            try await attempt(Fixture.deployerSecret, from: "198.51.100.20")
        }
        #expect(
            throttled?.statusCode == 429 && throttled?.retryAfter == 100
                && throttled?.code == "temporarily_unavailable",
            "\(String(describing: throttled))")
        #expect(try await attempt(Fixture.deployerSecret, from: "198.51.100.21") == "deployer")
        clock.advance(by: 100)
        #expect(try await attempt(Fixture.deployerSecret, from: "198.51.100.20") == "deployer")
    }

    @Test("unknown client ids and bad assertions count as failures too")
    func everyFailureCounts() async throws {
        let authenticator = try makeAuthenticator(limits: ThrottleLimits(guessesPerAddress: 2))
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticator.authenticate(
                ClientCredentials(authorization: basicAuthorization("nobody", "x"), form: [:]), address: "198.51.100.30"
            )
        }
        let forged = try PrivateKeyJWTTests.handMade(
            ["alg": "ES256", "kid": Fixture.clientECKid], PrivateKeyJWTTests.claims(),
            sign: { _ in Data(repeating: 1, count: 64) })
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticator.authenticate(
                ClientCredentials(authorization: nil, form: PrivateKeyJWTTests.form(forged)), address: "198.51.100.30")
        }
        let valid = try await PrivateKeyJWTTests.es256()
        await expectOAuthError("temporarily_unavailable", status: 429) {
            try await authenticator.authenticate(
                ClientCredentials(authorization: nil, form: PrivateKeyJWTTests.form(valid)), address: "198.51.100.30")
        }
    }

    @Test(
        "with every secret-check slot taken an unverified secret is refused at once with 503 and Retry-After; a secret verified before still passes"
    )
    func boundedSecretChecks() async throws {
        let pool = WorkPool(limit: 1, queue: 0)
        let authenticator = try makeAuthenticator(pool: pool)
        #expect(
            try await authenticate(
                authenticator, authorization: basicAuthorization("deployer", Fixture.deployerSecret), form: [:])
                == "deployer")
        let gate = AsyncGate()
        let holder = Task { try await pool.run { await gate.wait() } }
        while await pool.busy == 0 { await Task.yield() }
        let busy = await #expect(throws: OAuthError.self) {
            try await authenticate(authenticator, authorization: basicAuthorization("nobody", "made-up"), form: [:])
        }
        #expect(busy?.statusCode == 503 && busy?.retryAfter == 1, "\(String(describing: busy))")
        #expect(
            try await authenticate(
                authenticator, authorization: basicAuthorization("deployer", Fixture.deployerSecret), form: [:])
                == "deployer")
        await gate.open()
        try await holder.value
    }

    @Test("a client assertion accepted by one replica is refused by another sharing the store")
    func assertionReplayAcrossReplicas() async throws {
        let store = MemoryIdPStore()
        let a = try makeAuthenticator(store: store), b = try makeAuthenticator(store: store)
        let assertion = try await PrivateKeyJWTTests.es256(jti: "shared-jti")
        #expect(try await authenticate(a, form: PrivateKeyJWTTests.form(assertion)) == "keyed")
        await expectOAuthError("invalid_client", status: 401) {
            try await authenticate(b, form: PrivateKeyJWTTests.form(assertion))
        }
    }
}
