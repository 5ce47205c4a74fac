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
