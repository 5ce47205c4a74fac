import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

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
                // As /userinfo sends it: absent claims are left out of the JSON, not null.
                try #require(
                    try JSONSerialization.jsonObject(
                        with: JSONEncoder().encode(try await f.engine.userinfo(bearer: response.accessToken)))
                        as? [String: Any])
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
        #expect(info.sub == "alice")
        #expect(info.email == "alice@example.com" && info.emailVerified == true)
        #expect(info.preferredUsername == "alice")
        #expect(info.groups == ["engineers", "admins"])
        let carol = try await f.engine.userinfo(bearer: try await f.userTokens("u-carol-7").accessToken)
        #expect(
            carol.sub == "u-carol-7" && carol.preferredUsername == "carol" && carol.email == nil
                && carol.emailVerified == nil)
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
        #expect(try await f.engine.userinfo(bearer: user.accessToken).sub == "alice")
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
            try await f.engine.userinfo(bearer: try f.engine.sign(claims, typ: "at+jwt", kid: kid, key: key)).sub
                == "alice")
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
