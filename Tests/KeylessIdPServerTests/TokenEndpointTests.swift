import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import NIOCore
import Testing

/// Signs alice in through the CLI client and returns the token response.
func cliTokens(_ client: any TestClientProtocol) async throws -> [String: Any] {
    var browser = Browser(client)
    let login = try await browser.signIn(
        query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
    guard let code = Redirect(login)?.items["code"] else {
        throw FixtureError("no code: \(login.status) \(text(login))")
    }
    let response = try await redeemCLICode(client, code: code)
    guard response.status == .ok else {
        throw FixtureError("token endpoint answered \(response.status): \(text(response))")
    }
    return try json(response)
}

func refresh(_ client: any TestClientProtocol, _ token: String) async throws -> TestResponse {
    try await client.execute(
        uri: "/token", method: .post, headers: formHeaders(),
        body: formBody([("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", "cli")]))
}

@Suite("IdP server: the token endpoint over HTTP")
struct TokenEndpointTests {
    @Test("a request without grant_type gets 400 invalid_request, not cached")
    func missingGrantType() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(), body: formBody([("client_id", "cli")]))
            #expect(response.status == .badRequest)
            #expect(response.headers[.contentType] == "application/json")
            #expect(try oauthError(response) == "invalid_request")
            #expect(try json(response)["error_description"] as? String == "grant_type is missing.")
            #expect(response.headers[.wwwAuthenticate] == nil)
            expectSecurityHeaders(response)
        }
    }

    @Test("a wrong client secret in Basic gets 401 invalid_client with a Basic challenge")
    func wrongSecretBasic() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", "not-the-secret")),
                body: formBody([("grant_type", "client_credentials")]))
            #expect(response.status == .unauthorized)
            #expect(try oauthError(response) == "invalid_client")
            #expect(response.headers[.wwwAuthenticate] == "Basic realm=\"keyless\"")
        }
    }

    @Test(
        "made-up client credentials at /token, /revoke and /device_authorization count together; the 21st attempt gets 429 with Retry-After, even with the right secret"
    )
    func madeUpClientsThrottled() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            for index in 0..<20 {
                let uri = ["/token", "/revoke", "/device_authorization"][index % 3]
                let response = try await client.execute(
                    uri: uri, method: .post, headers: formHeaders(basic: ("made-up-\(index)", "secret")),
                    body: formBody([("grant_type", "client_credentials"), ("token", "x")]))
                #expect(response.status == .unauthorized, "\(uri) attempt \(index)")
            }
            let throttled = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", "client_credentials")]))
            #expect(throttled.status == .tooManyRequests)
            #expect(try oauthError(throttled) == "temporarily_unavailable")
            #expect(throttled.headers[.retryAfter] == "900")
        }
    }

    @Test("a wrong client secret in the form (client_secret_post) gets 401 invalid_client too")
    func wrongSecretPost() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(),
                body: formBody([
                    ("grant_type", "client_credentials"), ("client_id", "service"), ("client_secret", "not-the-secret"),
                ]))
            #expect(response.status == .unauthorized)
            #expect(try oauthError(response) == "invalid_client")
            #expect(response.headers[.wwwAuthenticate] == "Basic realm=\"keyless\"")
        }
    }

    @Test(
        "the right secret via Basic gets a client_credentials access token, no-store and Pragma no-cache, no refresh or ID token"
    )
    func clientCredentials() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", "client_credentials")]))
            #expect(response.status == .ok)
            #expect(response.headers[.cacheControl] == "no-store")
            #expect(response.headers[HTTPField.Name("Pragma")!] == "no-cache")
            let tokens = try json(response)
            #expect(tokens["scope"] as? String == "api.read")
            #expect(tokens["refresh_token"] == nil)
            #expect(tokens["id_token"] == nil)
            let claims = try jwtClaims(try #require(tokens["access_token"] as? String))
            #expect(claims["sub"] as? String == "service")
            #expect(claims["client_id"] as? String == "service")
        }
    }

    @Test("a repeated parameter (grant_type twice) gets 400 invalid_request")
    func repeatedParameter() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: ByteBuffer(string: "grant_type=client_credentials&grant_type=client_credentials"))
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "invalid_request")
            #expect(
                try json(response)["error_description"] as? String == "parameter grant_type appears more than once.")
        }
    }

    @Test("a repeated parameter whose first copy is empty is still refused (RFC 6749 §3.1)")
    func repeatedParameterFirstEmpty() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: ByteBuffer(string: "grant_type=&grant_type=client_credentials"))
            let error = try? oauthError(response)
            #expect(response.status == .badRequest)
            #expect(error == "invalid_request")
        }
    }

    @Test(
        "JSON instead of a form gets 400 invalid_request saying to send a form",
        arguments: ["application/json", "text/plain", nil])
    func notFormEncoded(_ contentType: String?) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var headers: HTTPFields = [.authorization: basicAuthorization("service", Fixture.serviceSecret)]
            if let contentType { headers[.contentType] = contentType }
            let response = try await client.execute(
                uri: "/token", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"grant_type":"client_credentials"}"#))
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "invalid_request")
            #expect(
                try json(response)["error_description"] as? String
                    == "send the parameters as application/x-www-form-urlencoded.")
        }
    }

    @Test("a form content type with a charset parameter is accepted")
    func formWithCharset() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post,
                headers: [
                    .contentType: "application/x-www-form-urlencoded; charset=UTF-8",
                    .authorization: basicAuthorization("service", Fixture.serviceSecret),
                ], body: formBody([("grant_type", "client_credentials")]))
            #expect(response.status == .ok)
        }
    }

    @Test(
        "an unknown grant type gets 400 unsupported_grant_type",
        arguments: ["password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer"])
    func unsupportedGrant(_ grant: String) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", grant), ("username", "alice"), ("password", Fixture.alicePassword)]))
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "unsupported_grant_type")
        }
    }

    @Test("an authenticated client may not use a grant it is not registered for: 400 unauthorized_client")
    func unauthorizedClient() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("webapp", Fixture.webappSecret)),
                body: formBody([("grant_type", "client_credentials")]))
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "unauthorized_client")
        }
    }

    @Test(
        "a code redeemed twice gets invalid_grant the second time, and the refresh token of the first redemption dies with it"
    )
    func codeReplay() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            let first = try await redeemCLICode(client, code: code)
            #expect(first.status == .ok)
            let refreshToken = try #require(try json(first)["refresh_token"] as? String)

            let second = try await redeemCLICode(client, code: code)
            #expect(second.status == .badRequest)
            #expect(try oauthError(second) == "invalid_grant")

            let refreshed = try await refresh(client, refreshToken)
            #expect(refreshed.status == .badRequest)
            #expect(try oauthError(refreshed) == "invalid_grant")
        }
    }

    @Test("a code with the wrong PKCE verifier gets invalid_grant")
    func wrongVerifier() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(),
                body: formBody([
                    ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Fixture.cliRedirect),
                    ("client_id", "cli"),
                    ("code_verifier", String(repeating: "x", count: 43)),
                ]))
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "invalid_grant")
        }
    }

    @Test("a code older than its 60 s lifetime gets invalid_grant")
    func expiredCode() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            fixture.clock.advance(by: 60)
            let response = try await redeemCLICode(client, code: code)
            #expect(response.status == .badRequest)
            #expect(try oauthError(response) == "invalid_grant")
        }
    }

    @Test("a refresh over HTTP rotates the refresh token; reusing the old one gets invalid_grant")
    func refreshRotation() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let tokens = try await cliTokens(client)
            let original = try #require(tokens["refresh_token"] as? String)
            let rotated = try await refresh(client, original)
            #expect(rotated.status == .ok)
            let next = try #require(try json(rotated)["refresh_token"] as? String)
            #expect(next != original)
            let reused = try await refresh(client, original)
            #expect(reused.status == .badRequest)
            #expect(try oauthError(reused) == "invalid_grant")
        }
    }

    @Test("an oversized token request is refused as a client error, not reported as server_error")
    func oversizedBody() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let padding = String(repeating: "a", count: 70 * 1024)
            let response = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", "client_credentials"), ("padding", padding)]))
            #expect(response.status != .ok)
            let error = try? oauthError(response)
            #expect(response.status == .contentTooLarge || response.status == .badRequest)
            #expect(error != "server_error")
        }
    }
}

@Suite("IdP server: revocation and userinfo")
struct RevocationAndUserinfoTests {
    @Test("revoking a refresh token answers 200 and the token then fails with invalid_grant")
    func revokeRefreshToken() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let tokens = try await cliTokens(client)
            let refreshToken = try #require(tokens["refresh_token"] as? String)
            let revoke = try await client.execute(
                uri: "/revoke", method: .post, headers: formHeaders(),
                body: formBody([("token", refreshToken), ("token_type_hint", "refresh_token"), ("client_id", "cli")]))
            #expect(revoke.status == .ok)
            #expect(revoke.body.readableBytes == 0)
            expectSecurityHeaders(revoke)
            let refreshed = try await refresh(client, refreshToken)
            #expect(refreshed.status == .badRequest)
            #expect(try oauthError(refreshed) == "invalid_grant")
        }
    }

    @Test("revoking an unknown token also answers 200 (RFC 7009 §2.2)")
    func revokeUnknown() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let revoke = try await client.execute(
                uri: "/revoke", method: .post, headers: formHeaders(),
                body: formBody([("token", "never-issued"), ("client_id", "cli")]))
            #expect(revoke.status == .ok)
        }
    }

    @Test("revocation needs client authentication: a wrong secret gets 401 invalid_client and revokes nothing")
    func revokeNeedsClientAuthentication() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let tokens = try await cliTokens(client)
            let refreshToken = try #require(tokens["refresh_token"] as? String)
            let revoke = try await client.execute(
                uri: "/revoke", method: .post, headers: formHeaders(basic: ("webapp", "wrong")),
                body: formBody([("token", refreshToken)]))
            #expect(revoke.status == .unauthorized)
            #expect(try oauthError(revoke) == "invalid_client")
            #expect(revoke.headers[.wwwAuthenticate] == "Basic realm=\"keyless\"")
            #expect(try await refresh(client, refreshToken).status == .ok)
        }
    }

    @Test("userinfo without a token gets 401 with a bare Bearer challenge and no error code (RFC 6750 §3.1)")
    func userinfoWithoutToken() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(uri: "/userinfo", method: .get)
            #expect(response.status == .unauthorized)
            #expect(try json(response)["error"] == nil)
            #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"keyless\"")
        }
    }

    @Test(
        "userinfo refuses tokens that are not this provider's user access tokens",
        arguments: ["id_token", "client_credentials", "garbage"])
    func userinfoRefusesOtherTokens(_ kind: String) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let token: String
            switch kind {
            case "id_token": token = try #require(try await cliTokens(client)["id_token"] as? String)
            case "client_credentials":
                let response = try await client.execute(
                    uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                    body: formBody([("grant_type", "client_credentials")]))
                token = try #require(try json(response)["access_token"] as? String)
            default: token = "not.a.jwt"
            }
            let response = try await client.execute(
                uri: "/userinfo", method: .get, headers: [.authorization: "Bearer \(token)"])
            #expect(response.status == .unauthorized)
            #expect(try oauthError(response) == "invalid_token")
            #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"keyless\", error=\"invalid_token\"")
        }
    }

    @Test("userinfo refuses an access token once it has expired")
    func userinfoExpiredToken() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let access = try #require(try await cliTokens(client)["access_token"] as? String)
            fixture.clock.advance(by: 3600)
            let response = try await client.execute(
                uri: "/userinfo", method: .get, headers: [.authorization: "Bearer \(access)"])
            #expect(response.status == .unauthorized)
            #expect(try oauthError(response) == "invalid_token")
        }
    }
}
