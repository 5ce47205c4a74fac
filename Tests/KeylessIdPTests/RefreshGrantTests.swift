import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

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
        await expectOAuthError("invalid_grant") { try await f.refresh(randomToken()) }
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
