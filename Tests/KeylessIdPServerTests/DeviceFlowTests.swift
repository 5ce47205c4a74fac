import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import Testing

/// Starts a device authorization for the CLI client and returns its JSON answer.
func startDevice(_ client: any TestClientProtocol) async throws -> [String: Any] {
    let response = try await client.execute(
        uri: "/device_authorization", method: .post, headers: formHeaders(),
        body: formBody([("client_id", "cli"), ("scope", "openid email")]))
    guard response.status == .ok else {
        throw FixtureError("device_authorization answered \(response.status): \(text(response))")
    }
    return try json(response)
}

/// One poll of the token endpoint with a device code.
func pollDevice(_ client: any TestClientProtocol, _ deviceCode: String, clientID: String = "cli") async throws
    -> TestResponse
{
    try await client.execute(
        uri: "/token", method: .post, headers: formHeaders(),
        body: formBody([
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", deviceCode),
            ("client_id", clientID),
        ]))
}

@Suite("IdP server: the device flow over HTTP")
struct DeviceFlowTests {
    @Test(
        "device_authorization answers a device code, an XXXX-XXXX user code, both verification URIs, the lifetime and interval"
    )
    func deviceAuthorization() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(
                uri: "/device_authorization", method: .post, headers: formHeaders(),
                body: formBody([("client_id", "cli")]))
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            expectSecurityHeaders(response)
            let device = try json(response)
            #expect((device["device_code"] as? String)?.utf8.count == 43)
            let userCode = try #require(device["user_code"] as? String)
            #expect(
                userCode.wholeMatch(of: /[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}/) != nil, "\(userCode)")
            #expect(device["verification_uri"] as? String == "https://idp.example.com/device")
            #expect(
                device["verification_uri_complete"] as? String == "https://idp.example.com/device?user_code=\(userCode)"
            )
            #expect(device["expires_in"] as? Int == 600)
            #expect(device["interval"] as? Int == 5)
        }
    }

    @Test("pending → user approves on the device page with credentials → the device's next poll gets tokens, once")
    func approveOnDevicePage() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let device = try await startDevice(client)
            let deviceCode = try #require(device["device_code"] as? String)
            let userCode = try #require(device["user_code"] as? String)

            let pending = try await pollDevice(client, deviceCode)
            #expect(pending.status == .badRequest)
            #expect(try oauthError(pending) == "authorization_pending")

            var browser = Browser(client)
            let completeURI = try #require(device["verification_uri_complete"] as? String)
            let complete = try #require(URLComponents(string: completeURI))
            let page = try await browser.get(complete.path + "?" + (complete.percentEncodedQuery ?? ""))
            #expect(page.status == .ok)
            #expect(text(page).contains("<h1>Connect a device</h1>"))
            #expect(text(page).contains("name=\"user_code\" value=\"\(userCode)\""))
            let csrf = try #require(hiddenField("csrf", in: text(page)))
            #expect(browser.cookies["keyless_csrf"] != nil)
            // RFC 8628 §5.4: the page names the client and the scopes of the code in the link.
            #expect(text(page).contains("This code is for <strong>cli</strong>, asking for the scopes <code>"))

            let done = try await browser.post(
                "/device",
                form: [
                    ("csrf", csrf), ("user_code", userCode.lowercased()), ("username", "alice"),
                    ("password", Fixture.alicePassword), ("action", "approve"),
                ])
            #expect(done.status == .ok)
            #expect(text(done).contains("<h1>Device connected</h1>"))
            #expect(
                cookieAttributes(try #require(setCookie(done, "keyless_session"))) == [
                    "path=/", "httponly", "samesite=lax",
                ])
            expectSecurityHeaders(done)

            let granted = try await pollDevice(client, deviceCode)
            #expect(granted.status == .ok)
            #expect(granted.headers[HTTPField.Name("Pragma")!] == "no-cache")
            let tokens = try json(granted)
            #expect(tokens["access_token"] is String)
            #expect(tokens["refresh_token"] is String)
            #expect(tokens["scope"] as? String == "openid email")
            #expect(try jwtClaims(try #require(tokens["id_token"] as? String))["sub"] as? String == "alice")

            let again = try await pollDevice(client, deviceCode)
            #expect(again.status == .badRequest)
            #expect(try oauthError(again) == "invalid_grant")
        }
    }

    @Test("with a browser session the device page approves without asking for the password again")
    func approveWithSession() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            _ = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let device = try await startDevice(client)
            let page = try await browser.get("/device")
            #expect(text(page).contains("Signed in as <strong>alice</strong>."))
            #expect(!text(page).contains("name=\"password\""))
            let done = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(page)))),
                    ("user_code", try #require(device["user_code"] as? String)),
                    ("action", "approve"),
                ])
            #expect(done.status == .ok)
            #expect(text(done).contains("Device connected"))
            #expect(setCookie(done, "keyless_session") == nil)
            #expect(try await pollDevice(client, try #require(device["device_code"] as? String)).status == .ok)
        }
    }

    @Test(
        "a third-party client's code, opened from its link by a signed-in user, names the client and asks consent before anything is approved (RFC 8628 §5.4)"
    )
    func thirdPartyDeviceConsent() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            _ = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            func start() async throws -> [String: Any] {
                try json(
                    try await client.execute(
                        uri: "/device_authorization", method: .post, headers: formHeaders(),
                        body: formBody([("client_id", "gadget"), ("scope", "openid email")])))
            }
            let device = try await start()
            let userCode = try #require(device["user_code"] as? String),
                deviceCode = try #require(device["device_code"] as? String)
            let page = try await browser.get("/device?user_code=" + userCode)
            #expect(
                text(page).contains(
                    "This code is for <strong>gadget</strong>, asking for the scopes <code>openid email</code>."))
            let first = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(page)))), ("user_code", userCode),
                    ("action", "approve"),
                ])
            #expect(first.status == .ok)
            #expect(text(first).contains("<h1>Allow access?</h1>") && text(first).contains("<strong>gadget</strong>"))
            #expect(
                try oauthError(try await pollDevice(client, deviceCode, clientID: "gadget")) == "authorization_pending",
                "nothing approved yet")
            let allowed = try await browser.post("/device", form: hiddenFields(text(first)) + [("action", "allow")])
            #expect(text(allowed).contains("Device connected"))
            #expect(try await pollDevice(client, deviceCode, clientID: "gadget").status == .ok)

            // Deny on the consent page denies the request.
            let second = try await start()
            let secondPage = try await browser.get(
                "/device?user_code=" + (try #require(second["user_code"] as? String)))
            let consent = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(secondPage)))),
                    ("user_code", try #require(second["user_code"] as? String)),
                    ("action", "approve"),
                ])
            let denied = try await browser.post("/device", form: hiddenFields(text(consent)) + [("action", "deny")])
            #expect(text(denied).contains("Request denied"))
            #expect(
                try oauthError(
                    try await pollDevice(client, try #require(second["device_code"] as? String), clientID: "gadget"))
                    == "access_denied")
        }
    }

    @Test("Deny on the device page answers Request denied and the device gets access_denied")
    func deny() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let device = try await startDevice(client)
            var browser = Browser(client)
            let page = try await browser.get("/device")
            let done = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(page)))),
                    ("user_code", try #require(device["user_code"] as? String)),
                    ("username", "alice"), ("password", Fixture.alicePassword), ("action", "deny"),
                ])
            #expect(done.status == .ok)
            #expect(text(done).contains("<h1>Request denied</h1>"))
            let poll = try await pollDevice(client, try #require(device["device_code"] as? String))
            #expect(poll.status == .badRequest)
            #expect(try oauthError(poll) == "access_denied")
        }
    }

    @Test("an unknown user code gets a 400 device page that says so, before any credentials are checked")
    func unknownUserCode() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            _ = try await startDevice(client)
            var browser = Browser(client)
            let page = try await browser.get("/device")
            let response = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(page)))), ("user_code", "BCDF-GHJK"),
                    ("username", "alice"), ("password", Fixture.alicePassword), ("action", "approve"),
                ])
            #expect(response.status == .badRequest)
            #expect(
                text(response).contains(
                    "That code is unknown, expired or already used. Check the code your device shows."))
            #expect(text(response).contains("name=\"user_code\" value=\"BCDF-GHJK\""))
            #expect(setCookie(response, "keyless_session") == nil)
        }
    }

    @Test("a wrong password on the device page gets 401 and leaves the request pending")
    func wrongPassword() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let device = try await startDevice(client)
            let userCode = try #require(device["user_code"] as? String)
            var browser = Browser(client)
            let page = try await browser.get("/device")
            let response = try await browser.post(
                "/device",
                form: [
                    ("csrf", try #require(hiddenField("csrf", in: text(page)))), ("user_code", userCode),
                    ("username", "alice"), ("password", "wrong"), ("action", "approve"),
                ])
            #expect(response.status == .unauthorized)
            #expect(text(response).contains("Wrong username, password or one-time code."))
            #expect(try await fixture.engine.pendingDevice(userCode: userCode) != nil)
        }
    }

    @Test("a device code polled after its 600 s lifetime gets expired_token")
    func expiredDeviceCode() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let device = try await startDevice(client)
            fixture.clock.advance(by: 600)
            let poll = try await pollDevice(client, try #require(device["device_code"] as? String))
            #expect(poll.status == .badRequest)
            #expect(try oauthError(poll) == "expired_token")
        }
    }
}
