import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import Testing

@Suite("IdP server: /authorize requests that must not be honoured")
struct AuthorizationRequestErrorTests {
    @Test(
        "an unknown client gets a 400 page and no redirect, even to a redirect_uri it names, and nothing it sent is reflected raw"
    )
    func unknownClientNeverRedirects() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let query = formEncode([
                ("response_type", "code"), ("client_id", "<script>alert(1)</script>"),
                ("redirect_uri", "https://evil.example/callback"), ("state", "<script>alert(2)</script>"),
            ])
            try await client.execute(uri: "/authorize?" + query, method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(response.headers[.location] == nil)
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                let page = text(response)
                #expect(page.contains("unknown client_id"))
                #expect(!page.contains("<script"))
                #expect(!page.contains("evil.example"))
            }
        }
    }

    @Test(
        "a redirect_uri the client did not register gets a 400 page and no Location header (no open redirect)",
        arguments: [
            "https://evil.example/callback", "http://127.0.0.1/callback/evil", "http://127.0.0.1@evil.example/callback",
            "http://127.0.0.1/callback?next=https://evil.example", "http://localhost/callback",
            "https://127.0.0.1/callback",
        ])
    func unregisteredRedirectNeverRedirects(_ redirect: String) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var query = cliAuthorizationQuery()
            query[2] = ("redirect_uri", redirect)
            try await client.execute(uri: "/authorize?" + formEncode(query), method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(response.headers[.location] == nil)
                #expect(text(response).contains("not registered"))
                #expect(response.headers[.setCookie] == nil)
            }
        }
    }

    @Test("a loopback redirect_uri may use any port (RFC 8252 §7.3) and gets the login page")
    func loopbackRedirectAnyPort() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var query = cliAuthorizationQuery()
            query[2] = ("redirect_uri", "http://127.0.0.1:53682/callback")
            try await client.execute(uri: "/authorize?" + formEncode(query), method: .get) { response in
                #expect(response.status == .ok)
                #expect(hiddenField("redirect_uri", in: text(response)) == "http://127.0.0.1:53682/callback")
            }
        }
    }

    @Test("markup in reflected parameters is escaped on the login and device pages")
    func reflectedParametersAreEscaped() async throws {
        let fixture = try await IdPServerFixture.make()
        let attack = "\"><script>alert(1)</script>"
        try await fixture.withRouter { client in
            try await client.execute(
                uri: "/authorize?" + formEncode(cliAuthorizationQuery(state: attack, nonce: "n'<b>")), method: .get
            ) { response in
                #expect(response.status == .ok)
                let page = text(response)
                #expect(!page.contains("<script>"))
                #expect(!page.contains("<b>"))
                #expect(page.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""))
                #expect(page.contains("value=\"n&#39;&lt;b&gt;\""))
                // The escaped value still carries the original text through the form.
                #expect(hiddenField("state", in: page) == attack)
            }
            try await client.execute(uri: "/device?" + formEncode([("user_code", attack)]), method: .get) { response in
                #expect(response.status == .ok)
                #expect(!text(response).contains("<script>"))
                #expect(text(response).contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""))
            }
        }
    }

    @Test(
        "a bad response_type goes back to the registered redirect URI with unsupported_response_type, the state and iss"
    )
    func unsupportedResponseTypeRedirects() async throws {
        let fixture = try await IdPServerFixture.make()
        let state = "s p&a=c/é"
        try await fixture.withRouter { client in
            var query = cliAuthorizationQuery(state: state)
            query[0] = ("response_type", "token")
            try await client.execute(uri: "/authorize?" + formEncode(query), method: .get) { response in
                #expect(response.status == .seeOther)
                let redirect = try #require(Redirect(response))
                #expect(redirect.base == Fixture.cliRedirect)
                #expect(
                    redirect.items == ["error": "unsupported_response_type", "state": state, "iss": Fixture.issuer])
                #expect(response.headers[.cacheControl] == "no-store")
                #expect(response.headers[.setCookie] == nil)
            }
        }
    }

    @Test("a state carrying CR LF is percent-encoded into the Location and cannot add a header")
    func stateCannotInjectHeaders() async throws {
        let fixture = try await IdPServerFixture.make()
        let state = "x\r\nSet-Cookie: keyless_session=attacker"
        try await fixture.withRouter { client in
            let query = cliAuthorizationQuery(state: state, extra: [("prompt", "none")])
            try await client.execute(uri: "/authorize?" + formEncode(query), method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(response.headers[.setCookie] == nil)
                let location = response.headers[.location] ?? ""
                #expect(location.contains("state=x%0D%0ASet-Cookie%3A%20keyless_session%3Dattacker&"), "\(location)")
                #expect(Redirect(response)?.items["state"] == state)
            }
        }
    }

    @Test(
        "a public client without a PKCE S256 challenge is sent back with invalid_request",
        arguments: [
            "", "&code_challenge=\(Fixture.pkceChallenge)&code_challenge_method=plain",
            "&code_challenge=\(Fixture.pkceChallenge)",
            "&code_challenge=short&code_challenge_method=S256",
        ])
    func publicClientNeedsS256(_ pkce: String) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let query =
                formEncode([
                    ("response_type", "code"), ("client_id", "cli"), ("redirect_uri", Fixture.cliRedirect),
                    ("state", "x"),
                ]) + pkce
            try await client.execute(uri: "/authorize?" + query, method: .get) { response in
                #expect(response.status == .seeOther)
                #expect(Redirect(response)?.items["error"] == "invalid_request")
                #expect(Redirect(response)?.items["state"] == "x")
            }
        }
    }
}

@Suite("IdP server: the browser code flow over HTTP")
struct CodeFlowTests {
    @Test("login page → form POST → code → tokens → userinfo, with the cookies and redirects a browser would see")
    func fullCodeFlow() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)

            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            #expect(page.status == .ok)
            #expect(page.headers[.contentType] == "text/html; charset=utf-8")
            let csrfHeader = try #require(setCookie(page, "keyless_csrf"))
            #expect(cookieAttributes(csrfHeader) == ["path=/", "httponly", "samesite=strict"])
            let binding = try #require(browser.cookies["keyless_csrf"])
            #expect(binding.utf8.count == 43)
            let csrf = try #require(hiddenField("csrf", in: text(page)))
            #expect(
                csrf.utf8.count == 43 && csrf != binding, "the form token is derived from the cookie, not a copy of it")
            #expect(hiddenField("code_challenge", in: text(page)) == Fixture.pkceChallenge)

            var form = hiddenFields(text(page))
            form += [("username", "alice"), ("password", Fixture.alicePassword), ("action", "login")]
            let login = try await browser.post("/authorize", form: form)
            #expect(login.status == .seeOther)
            let redirect = try #require(Redirect(login))
            #expect(redirect.base == Fixture.cliRedirect)
            #expect(redirect.names == ["code", "state", "iss"])
            #expect(redirect.items["state"] == "state-123")
            #expect(redirect.items["iss"] == Fixture.issuer)
            let sessionHeader = try #require(setCookie(login, "keyless_session"))
            #expect(cookieAttributes(sessionHeader) == ["path=/", "httponly", "samesite=lax"])
            #expect(setCookie(login, "keyless_csrf") == nil, "the CSRF cookie is set once, with the page")

            let code = try #require(redirect.items["code"])
            let token = try await redeemCLICode(client, code: code)
            #expect(token.status == .ok)
            #expect(token.headers[.contentType] == "application/json")
            #expect(token.headers[.cacheControl] == "no-store")
            #expect(token.headers[HTTPField.Name("Pragma")!] == "no-cache")
            let tokens = try json(token)
            #expect(tokens["token_type"] as? String == "Bearer")
            #expect(tokens["expires_in"] as? Int == 3600)
            #expect(tokens["scope"] as? String == "openid email")
            #expect(tokens["refresh_token"] is String)
            let idToken = try #require(tokens["id_token"] as? String)
            let accessToken = try #require(tokens["access_token"] as? String)

            let claims = try jwtClaims(idToken)
            #expect(claims["iss"] as? String == Fixture.issuer)
            #expect(claims["aud"] as? String == "cli")
            #expect(claims["sub"] as? String == "alice")
            #expect(claims["nonce"] as? String == "nonce-456")
            #expect(claims["amr"] as? [String] == ["pwd"])
            #expect(claims["auth_time"] as? Int == Int(referenceTime.timeIntervalSince1970))
            let jwks = try json(try await client.execute(uri: "/jwks.json", method: .get))
            #expect(try verifiesES256(idToken, jwks: jwks), "the ID token verifies with the published JWKS")
            #expect(try verifiesES256(accessToken, jwks: jwks))

            for method in [HTTPRequest.Method.get, .post] {
                let info = try await client.execute(
                    uri: "/userinfo", method: method, headers: [.authorization: "Bearer \(accessToken)"])
                #expect(info.status == .ok)
                let user = try json(info)
                #expect(user["sub"] as? String == "alice")
                #expect(user["email"] as? String == "alice@example.com")
                #expect(user["email_verified"] as? Bool == true)
                // The scopes were openid email: no profile claims, no groups.
                #expect(user["preferred_username"] == nil && user["groups"] == nil, "\(user)")
                expectSecurityHeaders(info)
            }
        }
    }

    @Test(
        "with a session cookie a second /authorize goes straight back to the client with a new, redeemable code (SSO)")
    func sessionGivesSingleSignOn() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let first = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(first.status == .seeOther)
            #expect(browser.cookies["keyless_session"] != nil)

            let second = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery(state: "second")))
            #expect(second.status == .seeOther)
            let redirect = try #require(Redirect(second))
            #expect(redirect.base == Fixture.cliRedirect)
            #expect(redirect.items["state"] == "second")
            #expect(redirect.items["code"] != Redirect(first)?.items["code"])
            let token = try await redeemCLICode(client, code: try #require(redirect.items["code"]))
            #expect(token.status == .ok)
        }
    }

    @Test("prompt=login shows the login page even with a live session")
    func promptLoginForcesLogin() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            _ = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(browser.cookies["keyless_session"] != nil)
            let page = try await browser.get(
                "/authorize?" + formEncode(cliAuthorizationQuery(extra: [("prompt", "login")])))
            #expect(page.status == .ok)
            #expect(page.headers[.location] == nil)
            #expect(text(page).contains("<h1>Sign in</h1>"))
        }
    }

    @Test(
        "prompt=none without a session goes back with error=login_required, the state and iss; with one it returns a code"
    )
    func promptNone() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let query = "/authorize?" + formEncode(cliAuthorizationQuery(state: "silent", extra: [("prompt", "none")]))
            let anonymous = try await browser.get(query)
            #expect(anonymous.status == .seeOther)
            let redirect = try #require(Redirect(anonymous))
            #expect(redirect.base == Fixture.cliRedirect)
            #expect(redirect.items == ["error": "login_required", "state": "silent", "iss": Fixture.issuer])

            _ = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let signedIn = try await browser.get(query)
            #expect(signedIn.status == .seeOther)
            #expect(Redirect(signedIn)?.items["code"] != nil)
            #expect(Redirect(signedIn)?.items["state"] == "silent")
        }
    }

    @Test("a session cookie that was never issued is ignored: the login page is shown")
    func forgedSessionIgnored() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            browser.cookies["keyless_session"] = "forged-session-id"
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            #expect(page.status == .ok)
            #expect(text(page).contains("<h1>Sign in</h1>"))
        }
    }

    @Test(
        "with secure cookies (an https issuer) both cookies carry Secure and the __Host- prefix, so no other site can set them"
    )
    func secureCookies() async throws {
        let fixture = try await IdPServerFixture.make(secureCookies: true)
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            #expect(setCookie(page, "keyless_csrf") == nil)
            #expect(
                cookieAttributes(try #require(setCookie(page, "__Host-keyless_csrf"))) == [
                    "path=/", "secure", "httponly", "samesite=strict",
                ])
            var form = hiddenFields(text(page))
            form += [("username", "alice"), ("password", Fixture.alicePassword)]
            let login = try await browser.post("/authorize", form: form)
            #expect(login.status == .seeOther)
            #expect(
                cookieAttributes(try #require(setCookie(login, "__Host-keyless_session"))) == [
                    "path=/", "secure", "httponly", "samesite=lax",
                ])
            // A session that would arrive under the unprefixed name (set by a sibling site) is not read.
            browser.cookies["keyless_session"] = browser.cookies["__Host-keyless_session"]
            browser.cookies["__Host-keyless_session"] = nil
            let again = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            #expect(again.status == .ok && text(again).contains("<h1>Sign in</h1>"))
        }
    }

    @Test("a user with a second factor is asked for the code, signs in with it (amr pwd otp mfa), and cannot reuse it")
    func secondFactor() async throws {
        let fixture = try await IdPServerFixture.make()
        let otp = TOTP.code(secret: try #require(TOTP.base32Decode(Fixture.bobTOTPSecret)), at: referenceTime)
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let missing = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "bob", password: Fixture.bobPassword)
            #expect(missing.status == .unauthorized)
            #expect(text(missing).contains("Your account needs a one-time code"))
            #expect(setCookie(missing, "keyless_session") == nil)

            let withCode = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "bob", password: Fixture.bobPassword, otp: otp)
            #expect(withCode.status == .seeOther)
            let token = try await redeemCLICode(client, code: try #require(Redirect(withCode)?.items["code"]))
            let idToken = try #require(try json(token)["id_token"] as? String)
            #expect(try jwtClaims(idToken)["amr"] as? [String] == ["pwd", "otp", "mfa"])

            var other = Browser(client)
            let replay = try await other.signIn(
                query: cliAuthorizationQuery(), username: "bob", password: Fixture.bobPassword, otp: otp)
            #expect(replay.status == .unauthorized)
            #expect(text(replay).contains("Wrong username, password or one-time code."))
        }
    }
}

@Suite("IdP server: CSRF protection of the login and device forms")
struct CSRFTests {
    enum Tamper: String, CaseIterable, Sendable {
        case noCookie, noField, mismatchedField, cookieCopiedIntoField, foreignOrigin, originWithOtherPort, nullOrigin,
            crossSiteFetch
    }

    @Test(
        "a login POST without the CSRF cookie, without or with a different csrf field, from a foreign or null Origin, or marked cross-site gets 403 and no session",
        arguments: Tamper.allCases)
    func loginCSRF(_ tamper: Tamper) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            var form = hiddenFields(text(page))
            form += [("username", "alice"), ("password", Fixture.alicePassword), ("action", "login")]
            var headers: HTTPFields = [:]
            switch tamper {
            case .noCookie: browser.cookies["keyless_csrf"] = nil
            case .noField: form.removeAll { $0.0 == "csrf" }
            case .mismatchedField: form = form.map { $0.0 == "csrf" ? ("csrf", String(repeating: "A", count: 43)) : $0 }
            case .cookieCopiedIntoField:
                // The old double-submit rule: a field equal to the cookie. An attacker who can set the cookie knows it.
                let cookie = try #require(browser.cookies["keyless_csrf"])
                form = form.map { $0.0 == "csrf" ? ("csrf", cookie) : $0 }
            case .foreignOrigin: headers[.origin] = "https://evil.example"
            case .originWithOtherPort: headers[.origin] = "https://idp.example.com:8443"
            case .nullOrigin: headers[.origin] = "null"  // sandboxed frames and data: documents send it
            case .crossSiteFetch: headers[HTTPField.Name("Sec-Fetch-Site")!] = "cross-site"
            }
            let response = try await browser.post("/authorize", form: form, headers: headers)
            #expect(response.status == .forbidden)
            #expect(response.headers[.location] == nil)
            #expect(setCookie(response, "keyless_session") == nil)
            #expect(text(response).contains("This form expired or came from another site."))
            expectSecurityHeaders(response)
        }
    }

    @Test(
        "a login POST with Origin equal to the issuer's origin, and Sec-Fetch-Site same-origin, is accepted; the pages ask browsers to send that Origin"
    )
    func sameOriginAccepted() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            // Under the header's no-referrer policy a browser would send Origin: null with the form, which is refused.
            #expect(text(page).contains("<meta name=\"referrer\" content=\"same-origin\">"))
            var form = hiddenFields(text(page))
            form += [("username", "alice"), ("password", Fixture.alicePassword)]
            let response = try await browser.post(
                "/authorize", form: form,
                headers: [
                    .origin: "https://idp.example.com",
                    HTTPField.Name("Sec-Fetch-Site")!: "same-origin",
                ])
            #expect(response.status == .seeOther)
            #expect(Redirect(response)?.items["code"] != nil)
        }
    }

    @Test(
        "a form cookie and token an attacker got from their own visit, planted in a signed-in victim's browser, cannot approve consent for the victim's session"
    )
    func plantedFormCookieCannotApproveConsent() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            // The attacker's own visit: a form cookie and the consent form's fields for a third-party client.
            var attacker = Browser(client)
            let attackerPage = try await attacker.get("/authorize?" + formEncode(webappAuthorizationQuery()))
            let attackerFields = hiddenFields(text(attackerPage))
            let plantedCookie = try #require(attacker.cookies["keyless_csrf"])
            // The victim signs in to a first-party client, so holds a live session.
            var victim = Browser(client)
            let victimPage = try await victim.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            let signIn = try await victim.post(
                "/authorize",
                form: hiddenFields(text(victimPage)) + [("username", "alice"), ("password", Fixture.alicePassword)])
            #expect(signIn.status == .seeOther)
            // The attacker sets their form cookie in the victim's browser and makes it post "allow".
            victim.cookies["keyless_csrf"] = plantedCookie
            let forged = try await victim.post("/authorize", form: attackerFields + [("action", "allow")])
            #expect(forged.status == .forbidden)
            #expect(Redirect(forged)?.items["code"] == nil)
        }
    }

    @Test("with an issuer written with its default port, a browser's Origin (which omits :443) is still accepted")
    func issuerWithDefaultPort() async throws {
        let fixture = try await IdPServerFixture.make(issuer: "https://idp.example.com:443")
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            var form = hiddenFields(text(page))
            form += [("username", "alice"), ("password", Fixture.alicePassword)]
            // RFC 6454 §6.2: a serialised origin omits the scheme's default port.
            let response = try await browser.post(
                "/authorize", form: form, headers: [.origin: "https://idp.example.com"])
            #expect(response.status == .seeOther)
        }
    }

    @Test("a device-page POST without the CSRF cookie gets 403 and approves nothing")
    func deviceCSRF() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let device = try json(
                try await client.execute(
                    uri: "/device_authorization", method: .post, headers: formHeaders(),
                    body: formBody([("client_id", "cli")])))
            let userCode = try #require(device["user_code"] as? String)
            var browser = Browser(client)
            let page = try await browser.get("/device")
            let csrf = try #require(hiddenField("csrf", in: text(page)))
            browser.cookies["keyless_csrf"] = nil
            let response = try await browser.post(
                "/device",
                form: [
                    ("csrf", csrf), ("user_code", userCode), ("username", "alice"),
                    ("password", Fixture.alicePassword), ("action", "approve"),
                ])
            #expect(response.status == .forbidden)
            #expect(setCookie(response, "keyless_session") == nil)
            #expect(try await fixture.engine.pendingDevice(userCode: userCode) != nil, "the request is still pending")
        }
    }
}

@Suite("IdP server: wrong passwords and throttling")
struct LoginFailureTests {
    @Test(
        "a wrong password gets a 401 login page that says so, keeps the request and the username, and sets no session")
    func wrongPassword() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let response = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: "wrong")
            #expect(response.status == .unauthorized)
            #expect(response.headers[.contentType] == "text/html; charset=utf-8")
            let page = text(response)
            #expect(page.contains("Wrong username, password or one-time code."))
            #expect(page.contains("name=\"username\" value=\"alice\""))
            #expect(hiddenField("state", in: page) == "state-123")
            #expect(hiddenField("csrf", in: page) != nil)
            #expect(setCookie(response, "keyless_session") == nil)
            expectSecurityHeaders(response)
        }
    }

    @Test("an unknown user gets exactly the same answer as a wrong password")
    func unknownUserLooksLikeWrongPassword() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let response = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "mallory", password: "whatever")
            #expect(response.status == .unauthorized)
            #expect(text(response).contains("Wrong username, password or one-time code."))
        }
    }

    @Test(
        "three wrong passwords, then the next attempt (even with the right password) gets 429 with Retry-After until the delay has passed"
    )
    func throttleWithoutPeerAddress() async throws {
        // With `.router` there is no socket: the peer is "unknown", and the limits must still apply.
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            for attempt in 1...3 {
                let response = try await browser.signIn(
                    query: cliAuthorizationQuery(), username: "alice", password: "wrong-\(attempt)")
                #expect(response.status == .unauthorized, "attempt \(attempt)")
                #expect(response.headers[.retryAfter] == nil)
            }
            let fourth = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: "wrong-4")
            #expect(fourth.status == .tooManyRequests)
            #expect(fourth.headers[.retryAfter] == "2")
            #expect(text(fourth).contains("Too many failed attempts. Try again in 2 seconds."))

            let right = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(right.status == .tooManyRequests)
            #expect(setCookie(right, "keyless_session") == nil)

            var carolsBrowser = Browser(client)
            let otherUser = try await carolsBrowser.signIn(
                query: cliAuthorizationQuery(), username: "carol", password: Fixture.otherPassword)
            #expect(otherUser.status == .seeOther, "the delay is per user and address")

            fixture.clock.advance(by: 2)
            let later = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(later.status == .seeOther)
        }
    }

    @Test(
        "without a peer address all clients share one address bucket: 30 failures over ten users lock out another user for the window"
    )
    func addressBucketWithoutPeer() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            for index in 0..<10 {
                for attempt in 1...3 {
                    let response = try await browser.signIn(
                        query: cliAuthorizationQuery(), username: "user-\(index)", password: "wrong-\(attempt)")
                    #expect(response.status == .unauthorized, "user-\(index) attempt \(attempt)")
                }
            }
            let alice = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(alice.status == .tooManyRequests)
            #expect(alice.headers[.retryAfter] == "900")
        }
    }
}

@Suite("IdP server: consent for third-party clients")
struct ConsentTests {
    @Test("after login a third-party client gets a 200 consent page with Allow and Deny, and the session cookie")
    func consentPageAfterLogin() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let response = try await browser.signIn(
                query: webappAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(response.status == .ok)
            #expect(response.headers[.location] == nil)
            let page = text(response)
            #expect(page.contains("<h1>Allow access?</h1>"))
            #expect(page.contains("<strong>webapp</strong>"))
            #expect(page.contains("<button type=\"submit\" name=\"action\" value=\"allow\">Allow</button>"))
            #expect(page.contains("<button type=\"submit\" name=\"action\" value=\"deny\">Deny</button>"))
            #expect(hiddenField("state", in: page) == "web-state")
            #expect(setCookie(response, "keyless_session") != nil)
        }
    }

    @Test("Deny sends the browser back with error=access_denied, the state and iss, and no code")
    func deny() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let consent = try await browser.signIn(
                query: webappAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let response = try await browser.post(
                "/authorize", form: hiddenFields(text(consent)) + [("action", "deny")])
            #expect(response.status == .seeOther)
            let redirect = try #require(Redirect(response))
            #expect(redirect.base == Fixture.webappRedirect)
            #expect(redirect.items["error"] == "access_denied")
            #expect(redirect.items["state"] == "web-state")
            #expect(redirect.items["iss"] == Fixture.issuer)
            #expect(redirect.items["code"] == nil)
        }
    }

    @Test("Allow sends the browser back with a code the client redeems with its secret")
    func allow() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let consent = try await browser.signIn(
                query: webappAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let response = try await browser.post(
                "/authorize", form: hiddenFields(text(consent)) + [("action", "allow")])
            #expect(response.status == .seeOther)
            let redirect = try #require(Redirect(response))
            #expect(redirect.base == Fixture.webappRedirect)
            #expect(redirect.items["state"] == "web-state")
            let code = try #require(redirect.items["code"])
            let token = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("webapp", Fixture.webappSecret)),
                body: formBody([
                    ("grant_type", "authorization_code"), ("code", code),
                    ("redirect_uri", Fixture.webappRedirect),
                ]))
            #expect(token.status == .ok)
            #expect(try jwtClaims(try #require(try json(token)["id_token"] as? String))["aud"] as? String == "webapp")
        }
    }

    @Test(
        "Allow after the session has expired shows the login page again instead of issuing a code; without the session cookie the form is refused"
    )
    func allowWithoutSession() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let consent = try await browser.signIn(
                query: webappAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            var cookieless = browser
            cookieless.cookies["keyless_session"] = nil
            let refused = try await cookieless.post(
                "/authorize", form: hiddenFields(text(consent)) + [("action", "allow")])
            #expect(refused.status == .forbidden, "the consent form's token is bound to the session it was shown to")
            fixture.clock.advance(by: 7 * 86_400)
            let response = try await browser.post(
                "/authorize", form: hiddenFields(text(consent)) + [("action", "allow")])
            #expect(response.status == .ok)
            #expect(response.headers[.location] == nil)
            #expect(text(response).contains("Your session ended; sign in again."))
        }
    }

    @Test("prompt=none for a third-party client with a session but no consent answers consent_required, never a page")
    func promptNoneNeedsConsent() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            _ = try await browser.signIn(
                query: webappAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(browser.cookies["keyless_session"] != nil)
            let response = try await browser.get(
                "/authorize?" + formEncode(webappAuthorizationQuery(state: "silent") + [("prompt", "none")]))
            // OpenID Connect Core §3.1.2.1: with prompt=none the provider MUST NOT display any consent page.
            #expect(response.status == .seeOther)
            #expect(Redirect(response)?.items["error"] == "consent_required")
            #expect(Redirect(response)?.items["state"] == "silent")
        }
    }
}
