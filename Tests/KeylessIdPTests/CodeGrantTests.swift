import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

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
