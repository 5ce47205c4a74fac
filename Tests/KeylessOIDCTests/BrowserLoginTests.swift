import Crypto
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import KeylessCore
import KeylessHTTP
import KeylessOIDC
import Testing
import KeylessTestFakes

/// An HTTP answer seen by the test's "browser".
struct BrowserAnswer: Sendable {
    var status: Int
    var headers: [String: String]
    var body: String
}

/// A plain GET with URLSession: no proxy, no cache, no cookies.
func browserGet(_ url: String) async throws -> BrowserAnswer {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.connectionProxyDictionary = [:]
    configuration.urlCache = nil
    configuration.httpShouldSetCookies = false
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    guard let target = URL(string: url) else { throw URLError(.badURL) }
    let request = URLRequest(url: target, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: 10)
    let (data, response) = try await session.data(for: request)
    guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
    var headers: [String: String] = [:]
    for (name, value) in http.allHeaderFields {
        if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
    }
    return BrowserAnswer(status: http.statusCode, headers: headers, body: String(decoding: data, as: UTF8.self))
}

/// The query items of `url`, decoded with URLComponents.
func queryFields(_ url: String) -> [String: String] {
    var fields: [String: String] = [:]
    for item in URLComponents(string: url)?.queryItems ?? [] { fields[item.name] = item.value ?? "" }
    return fields
}

/// Runs `body` with a loopback server and stops the server afterwards, whatever happens.
func withLoopback<T>(expectedState: String, _ body: (LoopbackServer) async throws -> T) async throws -> T {
    let server = try await LoopbackServer.start(port: 0, expectedState: expectedState)
    do {
        let value = try await body(server)
        await server.stop()
        return value
    } catch {
        await server.stop()
        throw error
    }
}

@Suite("PKCE")
struct PKCETests {
    @Test("base64url of SHA-256 reproduces the RFC 7636 appendix B code challenge")
    func rfc7636Vector() {
        // RFC 7636 appendix B: verifier and its S256 challenge.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        #expect(
            Base64URL.encode(Data(SHA256.hash(data: Data(verifier.utf8))))
                == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test("a PKCE pair has a 43-character base64url verifier and challenge = base64url(SHA256(verifier))")
    func challengeMatchesVerifier() {
        let pkce = PKCE()
        let alphabet = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        #expect(pkce.verifier.count == 43)
        #expect(pkce.verifier.allSatisfy(alphabet.contains))
        #expect(pkce.challenge == base64url(Data(SHA256.hash(data: Data(pkce.verifier.utf8)))))
    }

    @Test("PKCE verifiers, states and nonces are fresh each time")
    func fresh() {
        #expect(PKCE().verifier != PKCE().verifier)
        let tokens = Set((0..<20).map { _ in randomToken() })
        #expect(tokens.count == 20)
        #expect(tokens.allSatisfy { $0.count == 43 })
    }
}

@Suite("Loopback redirect server")
struct LoopbackServerTests {
    @Test("it listens on 127.0.0.1 on a picked port and names /callback as redirect URI")
    func redirectURI() async throws {
        try await withLoopback(expectedState: "s1") { server in
            #expect(server.port > 0)
            #expect(server.redirectURI == "http://127.0.0.1:\(server.port)/callback")
        }
    }

    @Test(
        "a callback with the wrong state gets 400 and a page about the state, and is not delivered: the next right one is"
    )
    func wrongState() async throws {
        try await withLoopback(expectedState: "s1") { server in
            let answer = try await browserGet("http://127.0.0.1:\(server.port)/callback?code=c&state=WRONG")
            #expect(answer.status == 400)
            #expect(answer.body.contains("state"))
            #expect(!answer.body.contains("close this tab"))
            let noState = try await browserGet("http://127.0.0.1:\(server.port)/callback?error=access_denied")
            #expect(noState.status == 400)
            _ = try await browserGet("http://127.0.0.1:\(server.port)/callback?code=real&state=s1")
            let delivered = await server.nextCallback()
            #expect(delivered == ["code": "real", "state": "s1"])
        }
    }

    @Test("a callback with the expected state gets 200, a page saying to close the tab, and no-store")
    func rightState() async throws {
        try await withLoopback(expectedState: "s1") { server in
            let answer = try await browserGet("http://127.0.0.1:\(server.port)/callback?code=c%2F1&state=s1")
            #expect(answer.status == 200)
            #expect(answer.body.contains("close this tab"))
            #expect(answer.headers["cache-control"] == "no-store")
            #expect(answer.headers["content-type"]?.hasPrefix("text/html") == true)
            let delivered = await server.nextCallback()
            #expect(delivered == ["code": "c/1", "state": "s1"])
        }
    }

    @Test("other paths get 404 and are not delivered as callbacks")
    func otherPaths() async throws {
        try await withLoopback(expectedState: "s1") { server in
            let favicon = try await browserGet("http://127.0.0.1:\(server.port)/favicon.ico")
            #expect(favicon.status == 404)
            let prefixed = try await browserGet("http://127.0.0.1:\(server.port)/callbackx?code=evil&state=s1")
            #expect(prefixed.status == 404)
            // The first callback delivered is the real one, not the requests above.
            _ = try await browserGet("http://127.0.0.1:\(server.port)/callback?code=real&state=s1")
            #expect(await server.nextCallback() == ["code": "real", "state": "s1"])
        }
    }

    @Test("an error callback shows the provider's words HTML-escaped")
    func escapesErrorText() async throws {
        try await withLoopback(expectedState: "s1") { server in
            let answer = try await browserGet(
                "http://127.0.0.1:\(server.port)/callback?error=access_denied&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E&state=s1"
            )
            #expect(answer.status == 200)
            #expect(answer.body.contains("access_denied"))
            #expect(!answer.body.contains("<script>"))
            #expect(answer.body.contains("&lt;script&gt;"))
            #expect(await server.nextCallback()?["error"] == "access_denied")
        }
    }
}

/// A browser double: it checks nothing itself but remembers the authorization request and, like a person
/// logging in, sends the redirect to the loopback `redirect_uri` from a detached task.
final class RedirectingBrowser: LoginPresenter, @unchecked Sendable {
    // @unchecked: the mutable members are only read and written under `lock`.
    enum Reply: Sendable { case echoState, wrongState, forgedThenReal, providerError, none }

    let reply: Reply
    private let lock = NSLock()
    private var url: String?
    private var task: Task<BrowserAnswer, any Error>?

    init(reply: Reply) { self.reply = reply }

    /// The authorization URL the client opened.
    var authorizationURL: String? { lock.withLock { url } }
    /// Its query fields.
    var authorization: [String: String] { authorizationURL.map(queryFields) ?? [:] }
    /// The loopback server's answer to the redirect.
    var redirect: Task<BrowserAnswer, any Error>? { lock.withLock { task } }

    func openBrowser(_ url: String) -> Bool {
        lock.withLock { self.url = url }
        let query = queryFields(url)
        guard reply != .none, let redirectURI = query["redirect_uri"], var target = URLComponents(string: redirectURI)
        else { return true }
        let state = reply == .wrongState ? "WRONG" : (query["state"] ?? "")
        target.queryItems =
            reply == .providerError
            ? [URLQueryItem(name: "error", value: "access_denied"), URLQueryItem(name: "state", value: state)]
            : [URLQueryItem(name: "code", value: "code-1"), URLQueryItem(name: "state", value: state)]
        let location = target.string ?? redirectURI
        var forged = target
        forged.queryItems = [
            URLQueryItem(name: "code", value: "forged-code"), URLQueryItem(name: "state", value: "FORGED"),
        ]
        let forgedLocation = reply == .forgedThenReal ? forged.string : nil
        let redirect = Task.detached {
            // Another local process gets in first with a made-up callback; the person's browser follows.
            if let forgedLocation { _ = try await browserGet(forgedLocation) }
            return try await browserGet(location)
        }
        lock.withLock { task = redirect }
        return true
    }

    func showLoginURL(_ url: String, browserOpened: Bool) {}
    func showDeviceCode(userCode: String, verificationURI: String, verificationURIComplete: String?) {}
    func waiting(_ message: String) -> @Sendable () -> Void { {} }
}

@Suite("Browser login")
struct BrowserLoginTests {
    /// A provider whose token endpoint accepts `code-1` only with the PKCE verifier of the request `browser` saw,
    /// and answers with an ID token carrying that request's nonce (or `nonceOverride`).
    static func provider(for browser: RedirectingBrowser, key: RSATestKey, nonceOverride: String? = nil) throws
        -> StubIdP
    {
        StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { form, _ in
                let authorization = browser.authorization
                let verifier = form["code_verifier"] ?? ""
                guard form["grant_type"] == "authorization_code", form["code"] == "code-1",
                    form["client_id"] == testClientID,
                    form["redirect_uri"] == authorization["redirect_uri"],
                    base64url(Data(SHA256.hash(data: Data(verifier.utf8)))) == authorization["code_challenge"]
                else {
                    return jsonResponse(
                        400,
                        ["error": "invalid_grant", "error_description": "code, redirect_uri or code_verifier mismatch"])
                }
                let token = try await mint(claims { $0.nonce = nonceOverride ?? authorization["nonce"] }, with: key)
                return jsonResponse([
                    "id_token": token, "refresh_token": "rt-1", "access_token": "at-1", "token_type": "Bearer",
                    "expires_in": 3600,
                ])
            })
    }

    @Test(
        "a browser login sends a PKCE S256 request with state and nonce to a loopback redirect and verifies the ID token"
    )
    func endToEnd() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .echoState)
        let idp = try Self.provider(for: browser, key: key)

        let tokens = try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 30)

        let url = try #require(browser.authorizationURL)
        #expect(url.hasPrefix(testIssuer + "/authorize?"))
        let request = browser.authorization
        #expect(request["response_type"] == "code")
        #expect(request["client_id"] == testClientID)
        #expect(request["code_challenge_method"] == "S256")
        #expect(request["code_challenge"]?.count == 43)
        #expect(request["state"]?.count == 43)
        #expect(request["nonce"]?.count == 43)
        #expect(request["state"] != request["nonce"])
        #expect(request["scope"]?.split(separator: " ").contains("openid") == true)
        let redirectURI = try #require(request["redirect_uri"])
        let port = try #require(URLComponents(string: redirectURI)?.port)
        #expect(port > 0)
        #expect(redirectURI == "http://127.0.0.1:\(port)/callback")

        let answer = try await #require(browser.redirect).value
        #expect(answer.status == 200)
        #expect(answer.body.contains("close this tab"))

        #expect(tokens.refreshToken == "rt-1")
        #expect(tokens.accessToken == "at-1")
        #expect(tokens.accessTokenExpiresAt == referenceTime.addingTimeInterval(3600))
        let idTokenClaims = try #require(UnverifiedJWT.claims(tokens.idToken))
        #expect(idTokenClaims.nonce == request["nonce"])
        let exchange = try #require(await idp.requests(to: idp.tokenURL).first).form
        #expect(exchange["code_verifier"]?.count == 43)
    }

    @Test(
        "a redirect that returns another state is ignored: its code is never exchanged and the login keeps waiting until its timeout"
    )
    func wrongState() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .wrongState)
        let idp = try Self.provider(for: browser, key: key)

        let error = await keylessError {
            try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 1)
        }

        #expect(error?.code == .loginFailed)
        #expect(error?.reason.contains("within 1 s") == true)
        #expect(await idp.tokenCalls == 0)
        let answer = try await #require(browser.redirect).value
        #expect(answer.status == 400)
    }

    @Test("a forged callback that arrives first is ignored and the real one completes the login")
    func forgedCallbackFirst() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .forgedThenReal)
        let idp = try Self.provider(for: browser, key: key)

        let tokens = try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 30)

        #expect(tokens.refreshToken == "rt-1")
        let exchanges = await idp.requests(to: idp.tokenURL)
        #expect(exchanges.count == 1)
        #expect(exchanges.first?.form["code"] == "code-1")
        #expect(try await #require(browser.redirect).value.status == 200)
    }

    @Test("a provider error on the redirect ends the login with loginFailed")
    func providerError() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .providerError)
        let idp = try Self.provider(for: browser, key: key)

        let error = await keylessError {
            try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 30)
        }

        #expect(error?.code == .loginFailed)
        #expect(await idp.tokenCalls == 0)
        _ = try await #require(browser.redirect).value
    }

    @Test("an ID token carrying another nonce than the login's is rejected")
    func nonceMismatch() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .echoState)
        let idp = try Self.provider(for: browser, key: key, nonceOverride: "replayed-nonce")

        let error = await keylessError {
            try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 30)
        }

        #expect(error?.code == .tokenInvalid)
        #expect(await idp.tokenCalls == 1)
    }

    @Test("no redirect within the timeout ends the login with loginFailed")
    func timeout() async throws {
        let browser = RedirectingBrowser(reply: .none)
        let idp = try Self.provider(for: browser, key: try RSATestKey(kid: "rsa-1"))

        let error = await keylessError {
            try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 0.2)
        }

        #expect(error?.code == .loginFailed)
        #expect(browser.authorizationURL != nil)
    }
}
