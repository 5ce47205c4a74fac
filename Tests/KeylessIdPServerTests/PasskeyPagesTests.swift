import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import KeylessTestFakes
import KeylessTestSupport
import Testing

/// The passkey pages over HTTP, with a software authenticator standing in for the browser's WebAuthn call: what the
/// page's script would read (the form's data-options) and post (its hidden fields and the credential).
@Suite("IdP server: the passkeys page, passkey sign-in on /authorize, and enrolment links")
struct PasskeyPagesTests {
    static func location(_ response: TestResponse) -> String { response.headers[.location] ?? "" }

    @Test(
        "a person signs in on /passkeys, adds a passkey, signs in with it alone and after the password at /authorize (codes issued), and removes it"
    )
    func wholeLife() async throws {
        let fixture = try await IdPServerFixture.make()
        let authenticator = SoftwareAuthenticator(origin: Fixture.issuer)
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let signInPage = try await browser.get("/passkeys")
            #expect(signInPage.status == .ok && text(signInPage).contains("Sign in to see and change your passkeys"))
            let signedIn = try await browser.post(
                "/passkeys",
                form: hiddenFields(text(signInPage)) + [("username", "alice"), ("password", Fixture.alicePassword)])
            #expect(signedIn.status == .seeOther && Self.location(signedIn) == "/passkeys")
            let page = text(try await browser.get("/passkeys"))
            #expect(page.contains("You have no passkeys yet"))
            let create = try PasskeyForm("create", in: page)
            let added = try await browser.post(
                create.action,
                form: create.fields + [
                    ("credential", try authenticator.register(options: create.options)), ("name", "Desk YubiKey"),
                ])
            #expect(Self.location(added) == "/passkeys?added=1")
            let listed = text(try await browser.get("/passkeys?added=1"))
            #expect(listed.contains("Passkey added.") && listed.contains("Desk YubiKey"))
            #expect(listed.contains("device-bound key") && listed.contains("never"))

            // Without a password, from another browser.
            var other = Browser(client)
            let login = text(try await other.get("/authorize?" + formEncode(cliAuthorizationQuery())))
            #expect(login.contains("autocomplete=\"username webauthn\""))
            let get = try PasskeyForm("get", in: login)
            let passwordless = try await other.post(
                get.action,
                form: get.fields + [
                    ("credential", try authenticator.signIn(options: get.options))
                ])
            #expect(passwordless.status == .seeOther)
            #expect(Self.location(passwordless).hasPrefix(Fixture.cliRedirect + "?code="))

            // After the password: the passkey step, then a code.
            var third = Browser(client)
            let step = try await third.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            #expect(step.status == .ok && text(step).contains("Confirm with your passkey"))
            #expect(setCookie(step, "keyless_session") == nil, "no session before the passkey")
            let second = try PasskeyForm("get", in: text(step))
            #expect(text(step).contains("data-autostart"))
            let finished = try await third.post(
                second.action,
                form: second.fields + [
                    ("credential", try authenticator.signIn(options: second.options))
                ])
            #expect(Self.location(finished).hasPrefix(Fixture.cliRedirect + "?code="))

            // Last used is shown now; removing it leaves none.
            let used = text(try await browser.get("/passkeys"))
            #expect(!used.contains(">never<"))
            let remove = used.components(separatedBy: "<form").first { $0.contains("value=\"remove\"") } ?? ""
            let removed = try await browser.post("/passkeys", form: hiddenFields("<form" + remove))
            #expect(Self.location(removed) == "/passkeys?removed=1")
            #expect(text(try await browser.get("/passkeys")).contains("You have no passkeys yet"))
        }
    }

    @Test("a session older than 15 minutes is asked to sign in again before it can add or remove passkeys")
    func staleSession() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let signInPage = try await browser.get("/passkeys")
            _ = try await browser.post(
                "/passkeys",
                form: hiddenFields(text(signInPage)) + [("username", "alice"), ("password", Fixture.alicePassword)])
            let page = text(try await browser.get("/passkeys"))
            let create = try PasskeyForm("create", in: page)
            fixture.clock.advance(by: 16 * 60)
            #expect(text(try await browser.get("/passkeys")).contains("Confirm it is you"))
            let late = try await browser.post(
                "/passkeys",
                form: create.fields + [("credential", "{}"), ("name", "x")])
            #expect(late.status == .unauthorized)
            #expect(try await fixture.engine.passkeys(of: "alice").isEmpty)
        }
    }

    @Test(
        "pages that run the passkey script allow only the provider's own script; /passkeys.js is JavaScript; other pages still allow no script"
    )
    func contentSecurityPolicy() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            try await client.execute(uri: "/passkeys", method: .get) { response in
                #expect(
                    response.headers[.contentSecurityPolicy]
                        == "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
                )
                #expect(!text(response).contains("<script>"), "no inline script")
            }
            try await client.execute(uri: "/passkeys.js", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "text/javascript; charset=utf-8")
                #expect(text(response).contains("navigator.credentials.get"))
            }
            try await client.execute(uri: "/device", method: .get) { response in
                #expect(!(response.headers[.contentSecurityPolicy] ?? "").contains("script-src"))
            }
        }
    }

    @Test(
        "an enrolment link shows its page, registers one passkey, and is then used up; a forged or expired token gets 404"
    )
    func enrolmentLink() async throws {
        let fixture = try await IdPServerFixture.make()
        let authenticator = SoftwareAuthenticator(origin: Fixture.issuer)
        let link = try fixture.engine.enrolmentLink(username: "alice", validFor: 600)
        let path = String(link.url.dropFirst(Fixture.issuer.count))
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let page = try await browser.get(path)
            #expect(page.status == .ok && text(page).contains("add a passkey for <strong>alice</strong>"))
            let create = try PasskeyForm("create", in: text(page))
            let done = try await browser.post(
                create.action,
                form: create.fields + [
                    ("credential", try authenticator.register(options: create.options)), ("name", "Recovered key"),
                ])
            #expect(done.status == .ok && text(done).contains("Passkey added"))
            #expect(try await fixture.engine.passkeys(of: "alice").map(\.name) == ["Recovered key"])
            let again = try PasskeyForm("create", in: text(try await browser.get(path)))
            let reused = try await browser.post(
                again.action,
                form: again.fields + [
                    ("credential", try authenticator.register(options: again.options)), ("name", "Another"),
                ])
            #expect(reused.status == .badRequest && text(reused).contains("already used"))
            #expect(try await browser.get(path + "x").status == .notFound)
            fixture.clock.advance(by: 601)
            #expect(try await browser.get(path).status == .notFound)
        }
        #expect(fixture.logs.records.contains { $0.message == "passkey registered through an enrolment link" })
    }
}
