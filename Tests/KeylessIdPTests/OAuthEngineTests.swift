import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

extension AuthorizationFailure {
    /// Whether the failure is shown on a page (never redirected).
    var isPage: Bool { if case .page = self { true } else { false } }
}

// MARK: - Authorization requests

@Suite("authorization requests: client and redirect first, then errors sent back to the client")
struct AuthorizationRequestTests {
    @Test("an unknown or missing client_id is shown on a page, never redirected")
    func unknownClient() async throws {
        let f = try await EngineFixture()
        #expect(authorizationFailure(f.engine.validateAuthorization(f.query(client: "nobody")))?.isPage == true)
        var q = f.query()
        q["client_id"] = nil
        #expect(authorizationFailure(f.engine.validateAuthorization(q))?.isPage == true)
    }

    @Test("an unregistered or missing redirect_uri is shown on a page, even when the rest of the request is also wrong")
    func unregisteredRedirect() async throws {
        let f = try await EngineFixture()
        var q = f.query(redirect: "https://evil.example.com/callback")
        #expect(authorizationFailure(f.engine.validateAuthorization(q))?.isPage == true)
        // Errors that would otherwise be redirected must not be sent to an unchecked address.
        q["request"] = "eyJhbGciOiJub25lIn0.e30."
        q["response_type"] = "token"
        q["scope"] = "email"
        #expect(authorizationFailure(f.engine.validateAuthorization(q))?.isPage == true)
        q["redirect_uri"] = nil
        #expect(authorizationFailure(f.engine.validateAuthorization(q))?.isPage == true)
    }

    static let registered = ["http://127.0.0.1/callback", "http://[::1]/callback", "https://app.example.com/callback"]

    @Test(
        "a loopback IP-literal redirect may use any port (RFC 8252 §7.3)",
        arguments: [
            "http://127.0.0.1:53682/callback", "http://127.0.0.1:1/callback", "http://127.0.0.1/callback",
            "http://[::1]:8400/callback", "http://[::1]/callback", "https://app.example.com/callback",
        ])
    func loopbackAnyPort(_ uri: String) {
        #expect(OAuthEngine.redirectMatches(uri, registered: Self.registered))
    }

    @Test(
        "anything but the port of an http loopback redirect must match exactly",
        arguments: [
            "https://app.example.com:8443/callback", "http://app.example.com/callback",
            "https://app.example.com/callback/",
            "http://127.0.0.1:53682/other", "http://127.0.0.1:53682/callback/",
            "http://127.0.0.1:53682/callback?next=x",
            "http://127.0.0.1:53682/callback#fragment", "https://127.0.0.1:53682/callback",
            "http://127.0.0.2:53682/callback",
            "http://localhost:53682/callback", "http://evil@127.0.0.1:53682/callback", "http://[::1]:8400/other",
            "http://[::2]:8400/callback",
        ])
    func otherDifferencesRefused(_ uri: String) {
        #expect(!OAuthEngine.redirectMatches(uri, registered: Self.registered))
    }

    @Test("an IPv6 loopback registration does not admit the IPv4 loopback, nor the reverse")
    func loopbackFamiliesAreDistinct() {
        #expect(!OAuthEngine.redirectMatches("http://127.0.0.1:5000/callback", registered: ["http://[::1]/callback"]))
        #expect(!OAuthEngine.redirectMatches("http://[::1]:5000/callback", registered: ["http://127.0.0.1/callback"]))
    }

    @Test("a loopback redirect with another port passes validation and is kept as sent")
    func loopbackValidated() async throws {
        let f = try await EngineFixture()
        for redirect in ["http://127.0.0.1:49152/callback", "http://[::1]:49153/callback"] {
            let request = try f.engine.validateAuthorization(f.query(redirect: redirect)).get()
            #expect(request.redirectURI == redirect)
            #expect(request.codeChallenge == Fixture.challenge)
        }
    }

    @Test("a public client without code_challenge is sent back invalid_request")
    func publicClientNeedsPKCE() async throws {
        let f = try await EngineFixture()
        #expect(
            authorizationFailure(f.engine.validateAuthorization(f.query(challenge: nil)))
                == .redirect("invalid_request"))
    }

    @Test("a confidential client may omit PKCE")
    func confidentialClientWithoutPKCE() async throws {
        let f = try await EngineFixture()
        let request = try f.engine.validateAuthorization(
            f.query(client: "web", redirect: "https://web.example.com/cb", challenge: nil)
        ).get()
        #expect(request.codeChallenge == nil)
    }

    @Test("code_challenge_method plain, a missing method (plain by default) and a malformed challenge are refused")
    func plainPKCERefused() async throws {
        let f = try await EngineFixture()
        var q = f.query()
        q["code_challenge_method"] = "plain"
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("invalid_request"))
        q["code_challenge_method"] = nil
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("invalid_request"))
        q["code_challenge_method"] = "S256"
        q["code_challenge"] = String(Fixture.challenge.dropLast())
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("invalid_request"))
    }

    @Test("a scope without openid, or with a scope the client may not ask for, is invalid_scope; no scope means openid")
    func scopes() async throws {
        let f = try await EngineFixture()
        #expect(
            authorizationFailure(f.engine.validateAuthorization(f.query(scope: "email profile")))
                == .redirect("invalid_scope"))
        #expect(
            authorizationFailure(f.engine.validateAuthorization(f.query(scope: "openid deploy")))
                == .redirect("invalid_scope"))
        #expect(try f.engine.validateAuthorization(f.query(scope: nil)).get().scope == "openid")
    }

    @Test("a request object is refused with request_not_supported")
    func requestObject() async throws {
        let f = try await EngineFixture()
        var q = f.query()
        q["request"] = "eyJhbGciOiJub25lIn0.e30."
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("request_not_supported"))
    }

    @Test("a request_uri is refused with request_uri_not_supported (OIDC Core §3.1.2.6), not request_not_supported")
    func requestURIErrorCode() async throws {
        let f = try await EngineFixture()
        var q = f.query()
        q["request_uri"] = "https://app.example.com/request.jwt"
        let failure = authorizationFailure(f.engine.validateAuthorization(q))
        #expect(failure.map { !$0.isPage } == true)
        #expect(failure == .redirect("request_uri_not_supported"))
    }

    @Test("response types other than code, and unknown prompt values, are refused")
    func responseTypeAndPrompt() async throws {
        let f = try await EngineFixture()
        var q = f.query()
        q["response_type"] = "token"
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("unsupported_response_type"))
        q = f.query()
        q["prompt"] = "sometimes"
        #expect(authorizationFailure(f.engine.validateAuthorization(q)) == .redirect("invalid_request"))
        q["prompt"] = "login"
        #expect(try f.engine.validateAuthorization(q).get().prompt == "login")
    }

    @Test("an error redirect carries error, description, state and iss, each percent-encoded")
    func errorRedirectEncoding() async throws {
        let f = try await EngineFixture()
        let state = "a b&c=d/é+?#"
        let url = f.engine.errorRedirect(
            "access_denied", request: ["redirect_uri": "https://app.example.com/callback", "state": state],
            description: "The user said no.")
        #expect(
            url == "https://app.example.com/callback?error=access_denied&error_description=The%20user%20said%20no."
                + "&state=a%20b%26c%3Dd%2F%C3%A9%2B%3F%23&iss=https%3A%2F%2Fidp.example.com")
        let items = queryItems(url)
        #expect(
            items == [
                "error": "access_denied", "error_description": "The user said no.", "state": state,
                "iss": Fixture.issuer,
            ])
    }

    @Test("an error redirect without state leaves it out, and appends to a redirect that already has a query")
    func errorRedirectWithoutState() async throws {
        let f = try await EngineFixture()
        let url = f.engine.errorRedirect(
            "invalid_scope", request: ["redirect_uri": "https://app.example.com/callback?tenant=7"])
        #expect(
            url == "https://app.example.com/callback?tenant=7&error=invalid_scope&iss=https%3A%2F%2Fidp.example.com")
    }
}

// MARK: - Authorization code grant

@Suite("authorization code grant with PKCE: codes, ID tokens and access tokens")
struct CodeGrantTests {
    @Test("issueCode redirects to the registered URI with code, state and iss")
    func issueCodeRedirect() async throws {
        let f = try await EngineFixture()
        let (code, redirect) = try await f.code()
        #expect(redirect.hasPrefix(Fixture.cliRedirect + "?code="))
        let items = queryItems(redirect)
        #expect(Set(items.keys) == ["code", "state", "iss"])
        #expect(items["state"] == "af0ifjsldkj")
        #expect(items["iss"] == Fixture.issuer)
        // 32 random bytes, base64url: 43 characters that need no escaping.
        #expect(code.utf8.count == 43)
        #expect(code.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
        #expect(try await f.code().code != code)
    }

    @Test("the RFC 7636 Appendix B verifier hashes to its published challenge (the fixture's PKCE pair)")
    func pkceFixture() {
        #expect(base64url(Array(SHA256.hash(data: Data(Fixture.verifier.utf8)))) == Fixture.challenge)
    }

    /// The ID-token claims jwt-kit decodes after checking the signature.
    struct IDTokenPayload: JWTPayload {
        var iss: String, sub: String, aud: String, exp: Int, iat: Int, nonce: String?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// The access-token claims jwt-kit decodes after checking the signature.
    struct AccessTokenPayload: JWTPayload {
        var iss: String, sub: String, aud: String, exp: Int, iat: Int, jti: String, client_id: String, scope: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    @Test(
        "redeeming a code gives an ID token and an access token with every claim, signed by a key in the JWKS (checked by jwt-kit)",
        arguments: ["ES256", "RS256"])
    func redeemedTokens(algorithm: String) async throws {
        let f = try await EngineFixture(config: Fixture.config(signingAlgorithm: algorithm))
        let login = try await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.10"
        ).get()
        f.clock.advance(by: 30)
        let (code, _) = try await f.code(authentication: login)
        f.clock.advance(by: 5)
        let tokens = try await f.redeem(code)
        let now = Fixture.referenceSeconds + 35
        let signingKid = try await f.keys.signingKey().kid

        let idToken = try #require(tokens.idToken)
        let idHeader = try jwtHeader(idToken)
        #expect(idHeader["alg"] as? String == algorithm)
        #expect(idHeader["kid"] as? String == signingKid)
        let id = try jwtClaims(idToken)
        #expect(id["iss"] as? String == Fixture.issuer)
        #expect(id["sub"] as? String == "alice")
        #expect(id["aud"] as? String == "cli")
        #expect(id["azp"] as? String == "cli")
        #expect(id["iat"] as? Int == now)
        #expect(id["exp"] as? Int == now + Fixture.lifetimes.idToken)
        #expect(id["auth_time"] as? Int == Fixture.referenceSeconds)
        #expect(id["nonce"] as? String == "n-0S6_WzA2Mj")
        #expect(id["amr"] as? [String] == ["pwd"])
        #expect(id["email"] as? String == "alice@example.com")
        #expect(id["preferred_username"] as? String == "alice")
        #expect(id["groups"] as? [String] == ["engineers", "admins"])

        let accessHeader = try jwtHeader(tokens.accessToken)
        #expect(accessHeader["typ"] as? String == "at+jwt")
        #expect(accessHeader["alg"] as? String == algorithm)
        #expect(accessHeader["kid"] as? String == signingKid)
        let access = try jwtClaims(tokens.accessToken)
        #expect(access["iss"] as? String == Fixture.issuer)
        #expect(access["sub"] as? String == "alice")
        #expect(access["aud"] as? String == "cli")
        #expect(access["client_id"] as? String == "cli")
        #expect(access["scope"] as? String == "openid email profile groups offline_access")
        #expect((access["jti"] as? String)?.isEmpty == false)
        #expect(access["iat"] as? Int == now)
        #expect(access["exp"] as? Int == now + Fixture.lifetimes.accessToken)
        #expect(access["auth_time"] as? Int == Fixture.referenceSeconds)
        #expect(tokens.expiresIn == Fixture.lifetimes.accessToken)
        #expect(tokens.scope == "openid email profile groups offline_access")
        #expect(tokens.refreshToken != nil)

        // An outside implementation checks the signatures with the published JWKS.
        let jwks = try await f.keys.jwks()
        #expect(try jwksKids(jwks).contains(signingKid))
        let collection = JWTKeyCollection()
        try await collection.add(jwksJSON: String(decoding: jwks, as: UTF8.self))
        let verifiedID = try await collection.verify(idToken, as: IDTokenPayload.self)
        #expect(verifiedID.sub == "alice" && verifiedID.aud == "cli" && verifiedID.nonce == "n-0S6_WzA2Mj")
        let verifiedAccess = try await collection.verify(tokens.accessToken, as: AccessTokenPayload.self)
        #expect(verifiedAccess.client_id == "cli" && verifiedAccess.jti == access["jti"] as? String)
        // ...and would notice a changed claim.
        var forged = id
        forged["sub"] = "bob"
        let tampered = try replacingClaims(of: idToken, with: forged)
        await #expect(throws: (any Error).self) { try await collection.verify(tampered, as: IDTokenPayload.self) }
    }

    @Test("each access token has its own jti")
    func distinctJTI() async throws {
        let f = try await EngineFixture()
        let first = try jwtClaims(try await f.userTokens().accessToken)["jti"] as? String
        let second = try jwtClaims(try await f.userTokens().accessToken)["jti"] as? String
        #expect(first != nil && first != second)
    }

    @Test("a confidential client redeems a code without PKCE using client_secret_basic")
    func confidentialCodeFlow() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code(f.query(client: "web", redirect: "https://web.example.com/cb", challenge: nil))
        let tokens = try await f.redeem(
            code, redirect: "https://web.example.com/cb", verifier: nil,
            authorization: basicAuthorization("web", Fixture.webSecret))
        #expect(try jwtClaims(#require(tokens.idToken))["aud"] as? String == "web")
    }

    @Test(
        "a replayed code is invalid_grant and revokes the refresh token the first redemption issued; other logins keep theirs"
    )
    func codeReplayRevokesFamily() async throws {
        let f = try await EngineFixture()
        let other = try await f.userTokens("u-carol-7")
        let (code, _) = try await f.code()
        let first = try await f.redeem(code)
        await expectOAuthError("invalid_grant") { try await f.redeem(code) }
        await expectOAuthError("invalid_grant") { try await f.refresh(first.refreshToken) }
        #expect(try await f.refresh(other.refreshToken).refreshToken != nil)
    }

    @Test("a wrong or missing PKCE verifier is invalid_grant")
    func pkceMismatch() async throws {
        let f = try await EngineFixture()
        let wrong = try await f.code().code
        await expectOAuthError("invalid_grant") {
            try await f.redeem(wrong, verifier: String(repeating: "a", count: 43))
        }
        let missing = try await f.code().code
        await expectOAuthError("invalid_grant") { try await f.redeem(missing, verifier: nil) }
        let good = try await f.code().code
        #expect(try await f.redeem(good).idToken != nil)
    }

    @Test("a verifier sent for a code issued without a challenge is invalid_grant (no PKCE downgrade)")
    func verifierWithoutChallenge() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code(f.query(client: "web", redirect: "https://web.example.com/cb", challenge: nil))
        await expectOAuthError("invalid_grant") {
            try await f.redeem(
                code, redirect: "https://web.example.com/cb",
                authorization: basicAuthorization("web", Fixture.webSecret))
        }
    }

    @Test("a redirect_uri at the token endpoint that differs from the authorization request's is invalid_grant")
    func wrongRedirectAtTokenEndpoint() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code()
        await expectOAuthError("invalid_grant") { try await f.redeem(code, redirect: "http://127.0.0.1/callback") }
        await expectOAuthError("invalid_request") {
            try await f.token(["grant_type": "authorization_code", "code": try await f.code().code, "client_id": "cli"])
        }
    }

    @Test("a code issued to one client and redeemed by another is invalid_grant")
    func codeForAnotherClient() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code()
        await expectOAuthError("invalid_grant") {
            try await f.redeem(code, authorization: basicAuthorization("web", Fixture.webSecret))
        }
    }

    @Test("a code redeemed after lifetimes.code is invalid_grant; one second before, it works")
    func expiredCode() async throws {
        let f = try await EngineFixture()
        let (late, _) = try await f.code()
        let (inTime, _) = try await f.code()
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.code - 1))
        #expect(try await f.redeem(inTime).idToken != nil)
        f.clock.advance(by: 2)
        await expectOAuthError("invalid_grant") { try await f.redeem(late) }
    }

    @Test("an unknown grant_type is unsupported_grant_type, a missing one invalid_request")
    func unknownGrant() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("unsupported_grant_type") {
            try await f.token(["grant_type": "password", "client_id": "cli"])
        }
        await expectOAuthError("invalid_request") { try await f.token(["client_id": "cli"]) }
    }
}

// MARK: - Refresh tokens

@Suite("refresh tokens: rotation, reuse detection and scope")
struct RefreshGrantTests {
    @Test("a refresh returns a new refresh token; reusing the old one is invalid_grant and kills the new one too")
    func rotationAndReuse() async throws {
        let f = try await EngineFixture()
        let first = try await f.userTokens()
        let old = try #require(first.refreshToken)
        f.clock.advance(by: 60)
        let second = try await f.refresh(old)
        let new = try #require(second.refreshToken)
        #expect(new != old)
        #expect(try jwtClaims(second.accessToken)["iat"] as? Int == Fixture.referenceSeconds + 60)
        #expect(try jwtClaims(#require(second.idToken))["sub"] as? String == "alice")
        await expectOAuthError("invalid_grant") { try await f.refresh(old) }
        await expectOAuthError("invalid_grant") { try await f.refresh(new) }
    }

    @Test("a refresh may narrow the scopes")
    func narrowing() async throws {
        let f = try await EngineFixture()
        let first = try await f.userTokens()
        let narrowed = try await f.refresh(first.refreshToken, scope: "openid email")
        #expect(narrowed.scope == "openid email")
        #expect(try jwtClaims(narrowed.accessToken)["scope"] as? String == "openid email")
    }

    @Test("after a narrowed refresh, the new refresh token keeps the original scope (RFC 6749 §6)")
    func narrowedRefreshKeepsOriginalScope() async throws {
        let f = try await EngineFixture()
        let first = try await f.userTokens()
        let narrowed = try await f.refresh(first.refreshToken, scope: "openid email")
        #expect(narrowed.scope == "openid email")
        let next = try await f.refresh(narrowed.refreshToken)
        #expect(next.scope == "openid email profile groups offline_access")
    }

    @Test("a refresh that widens the scopes is invalid_scope")
    func widening() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code(f.query(scope: "openid email"))
        let first = try await f.redeem(code)
        await expectOAuthError("invalid_scope") {
            try await f.refresh(first.refreshToken, scope: "openid email profile")
        }
    }

    @Test("a refresh refused with invalid_scope leaves the refresh token usable")
    func refusedRefreshKeepsToken() async throws {
        let f = try await EngineFixture()
        let (code, _) = try await f.code(f.query(scope: "openid email"))
        let first = try await f.redeem(code)
        await expectOAuthError("invalid_scope") {
            try await f.refresh(first.refreshToken, scope: "openid email profile")
        }
        // The token was spent by rotateRefreshToken before the scope check, so the retry counts as reuse and
        // revokes the whole login.
        let retried = try await f.refresh(first.refreshToken)
        #expect(retried.refreshToken != nil)
    }

    @Test("a client without the refresh_token grant is unauthorized_client, and gets no refresh token from a code")
    func clientWithoutRefreshGrant() async throws {
        let f = try await EngineFixture()
        let cliTokens = try await f.userTokens()
        let portal = basicAuthorization("portal", Fixture.portalSecret)
        await expectOAuthError("unauthorized_client") {
            try await f.refresh(cliTokens.refreshToken, authorization: portal)
        }
        let (code, _) = try await f.code(
            f.query(client: "portal", redirect: "https://portal.example.com/cb", challenge: nil))
        let portalTokens = try await f.redeem(
            code, redirect: "https://portal.example.com/cb", verifier: nil, authorization: portal)
        #expect(portalTokens.idToken != nil)
        #expect(portalTokens.refreshToken == nil)
    }

    @Test("a refresh token presented by another client is invalid_grant and ends its login")
    func refreshByAnotherClient() async throws {
        let f = try await EngineFixture()
        let tokens = try await f.userTokens()
        await expectOAuthError("invalid_grant") {
            try await f.refresh(tokens.refreshToken, authorization: basicAuthorization("web", Fixture.webSecret))
        }
        await expectOAuthError("invalid_grant") { try await f.refresh(tokens.refreshToken) }
    }

    @Test("an unknown or missing refresh token is refused")
    func unknownRefreshToken() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("invalid_grant") { try await f.refresh(OAuthEngine.randomToken()) }
        await expectOAuthError("invalid_request") {
            try await f.token(["grant_type": "refresh_token", "client_id": "cli"])
        }
    }

    @Test("a refresh token stops working after lifetimes.refresh_token")
    func refreshTokenExpires() async throws {
        let f = try await EngineFixture()
        let tokens = try await f.userTokens()
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.refreshToken + 1))
        await expectOAuthError("invalid_grant") { try await f.refresh(tokens.refreshToken) }
    }
}

// MARK: - Device flow

@Suite("device authorization (RFC 8628)")
struct DeviceFlowTests {
    static let consonants = Set("BCDFGHJKLMNPQRSTVWXZ")

    func start(_ f: EngineFixture) async throws -> DeviceAuthorization {
        try await f.engine.authorizeDevice(
            form: ["client_id": "cli", "scope": "openid email offline_access"],
            credentials: ClientCredentials(authorization: nil, form: ["client_id": "cli"]), address: Fixture.address)
    }

    func poll(_ f: EngineFixture, _ device: DeviceAuthorization) async throws -> TokenResponse {
        try await f.token(["grant_type": OAuthEngine.deviceGrant, "device_code": device.deviceCode, "client_id": "cli"])
    }

    @Test("authorizeDevice returns an XXXX-XXXX consonant user code and verification URIs under the issuer")
    func authorization() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        let code = Array(device.userCode)
        #expect(code.count == 9 && code[4] == "-")
        #expect((code[0..<4] + code[5...]).allSatisfy { Self.consonants.contains($0) })
        #expect(device.verificationURI == Fixture.issuer + "/device")
        #expect(device.verificationURIComplete == Fixture.issuer + "/device?user_code=" + device.userCode)
        #expect(device.expiresIn == Fixture.lifetimes.deviceCode)
        #expect(device.interval == Fixture.lifetimes.deviceInterval)
        #expect(device.deviceCode.utf8.count >= 43)
        #expect(try await start(f).userCode != device.userCode)
    }

    @Test("polling before approval is authorization_pending; polling again sooner than the interval is slow_down")
    func pendingAndSlowDown() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        f.clock.advance(by: 1)
        await expectOAuthError("slow_down") { try await poll(f, device) }
        // slow_down raised the interval from 5 s to 10 s: a poll 10 s later is fine, one 6 s after that is too soon.
        f.clock.advance(by: 10)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        f.clock.advance(by: 6)
        await expectOAuthError("slow_down") { try await poll(f, device) }
    }

    @Test("after approval the device gets tokens for the approving user once; the next poll is invalid_grant")
    func approved() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        let pending = try #require(try await f.engine.pendingDevice(userCode: device.userCode))
        #expect(pending.clientID == "cli" && pending.scope == "openid email offline_access")
        #expect(
            try await f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication("u-carol-7")))
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceInterval))
        let tokens = try await poll(f, device)
        #expect(try jwtClaims(#require(tokens.idToken))["sub"] as? String == "u-carol-7")
        #expect(tokens.scope == "openid email offline_access")
        #expect(try await f.refresh(tokens.refreshToken).refreshToken != nil)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceInterval))
        await expectOAuthError("invalid_grant") { try await poll(f, device) }
        // A decided code is no longer pending.
        #expect(try await f.engine.pendingDevice(userCode: device.userCode) == nil)
        #expect(
            try await !f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication()))
    }

    @Test("a denied request is access_denied")
    func denied() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        #expect(
            try await f.engine.decideDevice(
                userCode: device.userCode, approve: false, authentication: f.authentication()))
        await expectOAuthError("access_denied") { try await poll(f, device) }
    }

    @Test("a request polled after lifetimes.device_code is expired_token, and can no longer be approved")
    func expired() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceCode + 1))
        await expectOAuthError("expired_token") { try await poll(f, device) }
        #expect(try await f.engine.pendingDevice(userCode: device.userCode) == nil)
        #expect(
            try await !f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication()))
    }

    @Test("pendingDevice accepts the user code in lower case, without the dash, or with spaces")
    func typedUserCodes() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        let bare = device.userCode.replacingOccurrences(of: "-", with: "")
        let spaced = " " + String(bare.prefix(4)) + " " + String(bare.suffix(4)) + " "
        for typed in [device.userCode.lowercased(), bare, bare.lowercased(), spaced] {
            #expect(try await f.engine.pendingDevice(userCode: typed)?.userCode == bare, "\(typed)")
        }
        // Vowels never occur in a user code, so this one cannot exist.
        #expect(try await f.engine.pendingDevice(userCode: "AEIO-UAEI") == nil)
    }

    @Test(
        "a client without the device_code grant is unauthorized_client; a scope the client may not ask for is invalid_scope"
    )
    func deviceGrantRequired() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("unauthorized_client") {
            try await f.engine.authorizeDevice(
                form: [:],
                credentials: ClientCredentials(authorization: basicAuthorization("web", Fixture.webSecret), form: [:]),
                address: Fixture.address)
        }
        await expectOAuthError("invalid_scope") {
            try await f.engine.authorizeDevice(
                form: ["scope": "openid deploy"],
                credentials: ClientCredentials(authorization: nil, form: ["client_id": "cli"]), address: Fixture.address
            )
        }
    }
}

// MARK: - Login

@Suite("login: passwords, one-time codes and throttling")
struct LoginTests {
    @Test("the right password logs in with amr [pwd] at the clock's time; a wrong one or an unknown user is .invalid")
    func password() async throws {
        let f = try await EngineFixture()
        let auth = try await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.1"
        ).get()
        #expect(auth == Authentication(subject: "alice", authTime: Fixture.reference, amr: ["pwd"]))
        #expect(
            await f.engine.login(username: "alice", password: "wrong", otp: nil, address: "192.0.2.1")
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "mallory", password: Fixture.alicePassword, otp: nil, address: "192.0.2.1")
                == .failure(.invalid))
        let carol = try await f.engine.login(
            username: "carol", password: Fixture.carolPassword, otp: nil, address: "192.0.2.1"
        ).get()
        #expect(carol.subject == "u-carol-7")
    }

    @Test(
        "a user with a TOTP secret needs the code: none is .otpRequired, the right one adds otp and mfa, the same code again is .invalid"
    )
    func totp() async throws {
        let f = try await EngineFixture()
        let address = "192.0.2.2"
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: nil, address: address)
                == .failure(.otpRequired))
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: "", address: address)
                == .failure(.otpRequired))
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        let auth = try await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: address)
            .get()
        #expect(auth.amr == ["pwd", "otp", "mfa"])
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: address)
                == .failure(.invalid))
        // The next step's code works.
        f.clock.advance(by: 30)
        let next = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        #expect(next != code)
        #expect(
            try await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: next, address: address).get()
                .amr == ["pwd", "otp", "mfa"])
    }

    @Test("a wrong one-time code is .invalid, and so is a right code with a wrong password")
    func wrongOTP() async throws {
        let f = try await EngineFixture()
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        let wrong = String(format: "%06d", (try #require(Int(code)) + 1) % 1_000_000)
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: wrong, address: "192.0.2.3")
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "bob", password: "wrong", otp: code, address: "192.0.2.3")
                == .failure(.invalid))
    }

    @Test(
        "wrong passwords from one address delay that address's next attempts for the user, doubling each time; the user signs in from elsewhere meanwhile"
    )
    func delaysPerUserAndAddress() async throws {
        let f = try await EngineFixture()
        let attacker = "198.51.100.7", office = "203.0.113.9"
        for _ in 0..<3 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.invalid))
        }
        // Even the right password waits out the delay from the attacker's address.
        #expect(
            await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: attacker)
                == .failure(.throttled(retryAfter: 2)))
        for delay in [2, 4, 8, 16] {
            f.clock.advance(by: TimeInterval(delay))
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.invalid))
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.throttled(retryAfter: delay * 2)))
        }
        // The user is not locked out: from another address the right password works at once.
        #expect(
            try await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: office)
                .get().amr == ["pwd"])
        // After the delay, the right password from the attacker's address works too, and clears that address's count.
        f.clock.advance(by: 32)
        #expect(
            try await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: attacker)
                .get().amr == ["pwd"])
        #expect(
            await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                == .failure(.invalid))
    }

    @Test("one guess a minute from one address, for an hour, never keeps the user from signing in elsewhere")
    func slowGuessingLocksNoOneOut() async throws {
        let f = try await EngineFixture()
        for minute in 0..<60 {
            _ = await f.engine.login(username: "alice", password: "guess-\(minute)", otp: nil, address: "198.51.100.7")
            if minute % 10 == 9 {
                let result = await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "203.0.113.\(minute)")
                #expect((try? result.get().amr) == ["pwd"], "minute \(minute): \(result)")
            }
            f.clock.advance(by: 60)
        }
    }

    @Test(
        "twelve parallel guesses for one user from one address: only the free three reach the password check, the rest are throttled"
    )
    func parallelGuessesCannotOutrunTheLimit() async throws {
        let f = try await EngineFixture()
        let results = await withTaskGroup(of: LoginFailure?.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    if case .failure(let failure) = await f.engine.login(
                        username: "alice", password: "guess", otp: nil, address: "198.51.100.8")
                    {
                        return failure
                    }
                    return nil
                }
            }
            return await group.reduce(into: [LoginFailure?]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == .invalid }.count == 3, "\(results)")
        #expect(results.filter { if case .throttled? = $0 { return true } else { return false } }.count == 9)
    }

    @Test("successful logins from one address do not count against it")
    func successesDoNotThrottleTheAddress() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(failuresPerAddress: 3))
        for _ in 0..<6 {
            #expect(
                try await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.9"
                ).get().amr == ["pwd"])
        }
    }

    @Test(
        "failures from one address over many users throttle every user from it for the window, and no one from elsewhere"
    )
    func throttlingPerAddress() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(failuresPerAddress: 3, window: 300))
        for user in ["alice", "bob", "mallory"] {
            #expect(
                await f.engine.login(username: user, password: "guess", otp: nil, address: "198.51.100.66")
                    == .failure(.invalid))
        }
        #expect(
            await f.engine.login(username: "carol", password: Fixture.carolPassword, otp: nil, address: "198.51.100.66")
                == .failure(.throttled(retryAfter: 300)))
        #expect(
            try await f.engine.login(
                username: "carol", password: Fixture.carolPassword, otp: nil, address: "198.51.100.67"
            ).get().amr == ["pwd"])
        #expect(
            try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.67"
            ).get().amr == ["pwd"])
    }

    @Test("failures for one user from many addresses reach the per-user limit, which then holds for every address")
    func throttlingPerUser() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(freeFailures: 10, failuresPerUser: 4, window: 600))
        for index in 0..<4 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: "198.51.100.\(index)")
                    == .failure(.invalid))
        }
        f.clock.advance(by: 100)
        #expect(
            await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: "203.0.113.1")
                == .failure(.throttled(retryAfter: 500)))
        #expect(
            try await f.engine.login(
                username: "carol", password: Fixture.carolPassword, otp: nil, address: "203.0.113.1"
            ).get().amr == ["pwd"])
    }

    @Test(
        "replicas sharing a store share the throttle and the one-time-code guard: a code used on one is refused on the other"
    )
    func replicasShareGuards() async throws {
        let store = MemoryIdPStore(), kek = SymmetricKey(size: .bits256)
        let a = try await EngineFixture(store: store, kek: kek), b = try await EngineFixture(store: store, kek: kek)
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: a.clock.now)
        #expect(
            try await a.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: "192.0.2.10")
                .get().amr.contains("otp"))
        #expect(
            await b.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: "192.0.2.11")
                == .failure(.invalid))
        // The code of the step before is spent with it: an older code cannot be used after a newer one.
        let earlier = TOTP.code(secret: Fixture.bobTOTPSecret, at: a.clock.now.addingTimeInterval(-30))
        #expect(
            await b.engine.login(username: "bob", password: Fixture.bobPassword, otp: earlier, address: "192.0.2.11")
                == .failure(.invalid))
        for _ in 0..<3 {
            _ = await a.engine.login(username: "alice", password: "guess", otp: nil, address: "198.51.100.5")
        }
        #expect(
            await b.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.5")
                == .failure(.throttled(retryAfter: 2)))
    }

    @Test(
        "when every password-check slot and its queue are taken, a login is .unavailable at once and is not counted as a failure"
    )
    func busyPasswordChecks() async throws {
        let f = try await EngineFixture(loginPool: WorkPool(limit: 1, queue: 0))
        let gate = AsyncGate()
        let holder = Task { try await f.engine.loginPool.run { await gate.wait() } }
        while await f.engine.loginPool.busy == 0 { await Task.yield() }
        for _ in 0..<5 {
            #expect(
                await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.12")
                    == .failure(.unavailable(retryAfter: 1)))
        }
        await gate.open()
        try await holder.value
        #expect(
            try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.12"
            ).get().amr == ["pwd"])
        for _ in 0..<3 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: "192.0.2.12")
                    == .failure(.invalid))
        }
    }

    @Test("a TOTP secret that is not base32 refuses the login instead of dropping the second factor")
    func brokenTOTPSecretFailsClosed() async throws {
        // idp.yaml's checks refuse such a secret; a configuration built in code (IdPConfiguration.init) does not.
        let dave = IdPConfiguration.User(username: "dave", passwordHash: Fixture.bobHash, totpSecret: "not base32!")
        let f = try await EngineFixture(config: Fixture.config(extraUsers: [dave]))
        let result = await f.engine.login(
            username: "dave", password: Fixture.bobPassword, otp: nil, address: "192.0.2.4")
        if case .success(let auth) = result { Issue.record("logged in with the password alone: amr \(auth.amr)") }
    }

    @Test("a browser session lasts lifetimes.session and ends on logout")
    func sessions() async throws {
        let f = try await EngineFixture()
        let auth = f.authentication()
        let cookie = try await f.engine.startSession(auth)
        #expect(try await f.engine.session(cookie: cookie) == auth)
        #expect(try await f.engine.session(cookie: cookie + "x") == nil)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.session - 1))
        #expect(try await f.engine.session(cookie: cookie) == auth)
        f.clock.advance(by: 1)
        #expect(try await f.engine.session(cookie: cookie) == nil)
        let second = try await f.engine.startSession(auth)
        try await f.engine.endSession(cookie: second)
        #expect(try await f.engine.session(cookie: second) == nil)
    }
}

// MARK: - Userinfo and revocation

@Suite("userinfo and revocation")
struct UserinfoAndRevocationTests {
    @Test(
        "claims follow the scopes: openid alone names only the subject in the ID token, the access token and userinfo; email, profile and groups each add theirs"
    )
    func claimsByScope() async throws {
        let f = try await EngineFixture()
        func tokens(_ scope: String) async throws -> (id: [String: Any], access: [String: Any], info: [String: Any]) {
            let code = try await f.code(f.query(scope: scope)).code
            let response = try await f.redeem(code)
            return (
                try jwtClaims(try #require(response.idToken)), try jwtClaims(response.accessToken),
                try await f.engine.userinfo(bearer: response.accessToken)
            )
        }
        let bare = try await tokens("openid")
        for (name, claims) in [("ID token", bare.id), ("access token", bare.access), ("userinfo", bare.info)] {
            for claim in ["email", "email_verified", "preferred_username", "groups"] {
                #expect(claims[claim] == nil, "\(name) carries \(claim) with scope openid alone")
            }
        }
        let email = try await tokens("openid email")
        #expect(email.id["email"] as? String == "alice@example.com" && email.id["email_verified"] as? Bool == true)
        #expect(email.id["groups"] == nil && email.access["groups"] == nil && email.info["groups"] == nil)
        let all = try await tokens("openid email profile groups")
        #expect(
            all.id["preferred_username"] as? String == "alice" && all.info["preferred_username"] as? String == "alice")
        #expect(
            all.id["groups"] as? [String] == ["engineers", "admins"]
                && all.access["groups"] as? [String] == ["engineers", "admins"])
        #expect(all.info["groups"] as? [String] == ["engineers", "admins"])
    }

    @Test("a user's access token gives sub, email, preferred_username and groups")
    func userinfo() async throws {
        let f = try await EngineFixture()
        let info = try await f.engine.userinfo(bearer: try await f.userTokens().accessToken)
        #expect(info["sub"] as? String == "alice")
        #expect(info["email"] as? String == "alice@example.com")
        #expect(info["preferred_username"] as? String == "alice")
        #expect(info["groups"] as? [String] == ["engineers", "admins"])
        let carol = try await f.engine.userinfo(bearer: try await f.userTokens("u-carol-7").accessToken)
        #expect(
            carol["sub"] as? String == "u-carol-7" && carol["preferred_username"] as? String == "carol"
                && carol["email"] == nil)
    }

    @Test(
        "a client_credentials token, an ID token, a tampered token and an expired token are invalid_token (401); no token is missing_token"
    )
    func invalidTokens() async throws {
        let f = try await EngineFixture()
        let service = try await f.token(
            ["grant_type": "client_credentials"], authorization: basicAuthorization("deployer", Fixture.deployerSecret))
        await expectOAuthError("invalid_token", status: 401) {
            try await f.engine.userinfo(bearer: service.accessToken)
        }
        let user = try await f.userTokens()
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.userinfo(bearer: user.idToken) }
        var claims = try jwtClaims(user.accessToken)
        claims["sub"] = "bob"
        await expectOAuthError("invalid_token", status: 401) {
            try await f.engine.userinfo(bearer: try replacingClaims(of: user.accessToken, with: claims))
        }
        // No token at all is told apart, so the server can answer with a bare challenge (RFC 6750 §3.1).
        await expectOAuthError("missing_token", status: 401) { try await f.engine.userinfo(bearer: nil) }
        await expectOAuthError("missing_token", status: 401) { try await f.engine.userinfo(bearer: "") }
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.verifyAccessToken(nil) }
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.userinfo(bearer: "not a token") }
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.accessToken - 1))
        #expect(try await f.engine.userinfo(bearer: user.accessToken)["sub"] as? String == "alice")
        f.clock.advance(by: 1)
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.userinfo(bearer: user.accessToken) }
    }

    @Test("a token signed by another provider's key with this provider's kid is invalid_token")
    func foreignKey() async throws {
        let f = try await EngineFixture()
        let other = try await EngineFixture()
        let (kid, key) = try await f.keys.signingKey()
        let foreignKey = try await other.keys.signingKey().key
        let now = Fixture.referenceSeconds
        let claims = AccessClaims(
            iss: Fixture.issuer, sub: "alice", aud: AudienceList(["cli"]), exp: now + 600, iat: now, jti: "j-1",
            client_id: "cli", scope: "openid", auth_time: now)
        // The same claims and header verify when this provider's key signs them, and not when another key does.
        #expect(
            try await f.engine.userinfo(bearer: try f.engine.sign(claims, typ: "at+jwt", kid: kid, key: key))["sub"]
                as? String == "alice")
        let forged = try f.engine.sign(claims, typ: "at+jwt", kid: kid, key: foreignKey)
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.userinfo(bearer: forged) }
    }

    @Test(
        "a token signed by this provider with every access-token claim but typ JWT (RFC 9068 wants at+jwt), or another iss, is invalid_token"
    )
    func accessTokenType() async throws {
        let f = try await EngineFixture()
        let (kid, key) = try await f.keys.signingKey()
        let now = Fixture.referenceSeconds
        let claims = AccessClaims(
            iss: Fixture.issuer, sub: "alice", aud: AudienceList(["cli"]), exp: now + 600, iat: now, jti: "j-2",
            client_id: "cli", scope: "openid", auth_time: now)
        #expect(
            try await f.engine.verifyAccessToken(try f.engine.sign(claims, typ: "at+jwt", kid: kid, key: key)).sub
                == "alice")
        let plainJWT = try f.engine.sign(claims, typ: "JWT", kid: kid, key: key)
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.verifyAccessToken(plainJWT) }
        var foreignIssuer = claims
        foreignIssuer.iss = "https://other.example.com"
        let otherIssuer = try f.engine.sign(foreignIssuer, typ: "at+jwt", kid: kid, key: key)
        await expectOAuthError("invalid_token", status: 401) { try await f.engine.verifyAccessToken(otherIssuer) }
    }

    @Test("a client_credentials token of a client whose id equals a username is not accepted as that user's token")
    func clientNamedLikeUser() async throws {
        let impostor = IdPConfiguration.Client(
            id: "alice", secretHash: Fixture.deployerHash, grants: ["client_credentials"], scopes: ["read"])
        let f = try await EngineFixture(config: Fixture.config(extraClients: [impostor]))
        let service = try await f.token(
            ["grant_type": "client_credentials"], authorization: basicAuthorization("alice", Fixture.deployerSecret))
        #expect(try jwtClaims(service.accessToken)["amr"] == nil)
        await expectOAuthError("invalid_token", status: 401) {
            try await f.engine.userinfo(bearer: service.accessToken)
        }
    }

    @Test("revoking a refresh token ends it and every token of its login, and leaves other logins alone")
    func revoke() async throws {
        let f = try await EngineFixture()
        let first = try await f.userTokens()
        let rotated = try await f.refresh(first.refreshToken)
        let other = try await f.userTokens()
        let credentials = ClientCredentials(authorization: nil, form: ["client_id": "cli"])
        // Revoking the spent, older token of the family ends the current one too.
        try await f.engine.revoke(
            form: ["token": try #require(first.refreshToken), "client_id": "cli"], credentials: credentials,
            address: Fixture.address)
        await expectOAuthError("invalid_grant") { try await f.refresh(rotated.refreshToken) }
        #expect(try await f.refresh(other.refreshToken).refreshToken != nil)
        // Unknown tokens and access tokens are accepted silently (RFC 7009 §2.2).
        try await f.engine.revoke(
            form: ["token": "unknown", "client_id": "cli"], credentials: credentials, address: Fixture.address)
        try await f.engine.revoke(
            form: ["token": other.accessToken, "client_id": "cli"], credentials: credentials, address: Fixture.address)
        await expectOAuthError("invalid_request") {
            try await f.engine.revoke(form: ["client_id": "cli"], credentials: credentials, address: Fixture.address)
        }
        await expectOAuthError("invalid_client", status: 401) {
            try await f.engine.revoke(
                form: ["token": "x"],
                credentials: ClientCredentials(authorization: basicAuthorization("web", "wrong"), form: ["token": "x"]),
                address: Fixture.address)
        }
    }
}
