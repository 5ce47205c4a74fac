import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import Testing

@Suite("IdP server: health, metrics and the request log")
struct OperationsTests {
    @Test("/healthz answers 200 {\"status\":\"ok\"} while the store answers")
    func healthy() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/json")
            #expect(text(response) == #"{"status":"ok"}"#)
        }
    }

    @Test("/healthz answers 503 store unavailable when the store fails")
    func unhealthy() async throws {
        let store = SwitchableStore()
        let fixture = try await IdPServerFixture.make(store: store)
        try await fixture.withRouter { client in
            await store.setFailing(true)
            let response = try await client.execute(uri: "/healthz", method: .get)
            #expect(response.status == .serviceUnavailable)
            #expect(text(response) == #"{"status":"store unavailable"}"#)
            await store.setFailing(false)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }

    @Test("a store failure at the token endpoint is a 500 server_error that tells nothing of the cause")
    func storeFailureAtToken() async throws {
        let store = SwitchableStore()
        let fixture = try await IdPServerFixture.make(store: store)
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            await store.setFailing(true)
            let response = try await redeemCLICode(client, code: code)
            #expect(response.status == .internalServerError)
            #expect(try oauthError(response) == "server_error")
            #expect(!text(response).contains("switched the store off"))
            #expect(fixture.logs.records.contains { $0.level == .error && $0.metadata["error"]?.contains("switched the store off") == true })
        }
    }

    @Test("/metrics renders Prometheus text with requests by route and status, tokens by grant, token errors and logins")
    func metrics() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/no-such-page?secret=1", method: .get)
            _ = try await client.execute(uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                                         body: formBody([("grant_type", "client_credentials")]))
            _ = try await client.execute(uri: "/token", method: .post, headers: formHeaders(basic: ("service", "wrong")),
                                         body: formBody([("grant_type", "client_credentials")]))
            var browser = Browser(client)
            _ = try await browser.signIn(query: cliAuthorizationQuery(), username: "alice", password: "wrong")
            _ = try await browser.signIn(query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)

            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/plain; version=0.0.4")
            let lines = Set(text(response).split(separator: "\n").map(String.init))
            for expected in [
                #"keyless_idp_http_requests_total{route="/healthz",status="200"} 2"#,
                #"keyless_idp_http_requests_total{route="other",status="404"} 1"#,
                #"keyless_idp_http_requests_total{route="/token",status="200"} 1"#,
                #"keyless_idp_http_requests_total{route="/token",status="401"} 1"#,
                #"keyless_idp_http_requests_total{route="/authorize",status="200"} 2"#,
                #"keyless_idp_http_requests_total{route="/authorize",status="401"} 1"#,
                #"keyless_idp_http_requests_total{route="/authorize",status="303"} 1"#,
                #"keyless_idp_tokens_issued_total{grant="client_credentials"} 1"#,
                #"keyless_idp_token_errors_total{error="invalid_client"} 1"#,
                #"keyless_idp_logins_total{outcome="invalid"} 1"#,
                #"keyless_idp_logins_total{outcome="success"} 1"#,
                "# TYPE keyless_idp_http_requests_total counter",
                "# TYPE keyless_idp_http_request_duration_seconds histogram",
            ] {
                #expect(lines.contains(expected), "missing: \(expected)\n\(text(response))")
            }
            #expect(!text(response).contains("no-such-page"), "unknown paths must not become label values")
        }
    }

    @Test("the request log has one line per request with method, route, status and peer, and no query, cookie or credential")
    func requestLog() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(query: cliAuthorizationQuery(state: "STATE-SECRET-1"), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            _ = try await redeemCLICode(client, code: code)
            _ = try await client.execute(uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                                         body: formBody([("grant_type", "client_credentials")]))
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/metrics", method: .get)

            let requests = fixture.logs.records.filter { $0.message == "request" }
            #expect(requests.map { "\($0.metadata["method"] ?? "") \($0.metadata["path"] ?? "") \($0.metadata["status"] ?? "")" } == [
                "GET /authorize 200", "POST /authorize 303", "POST /token 200", "POST /token 200",
            ])
            #expect(requests.allSatisfy { $0.metadata["peer"] == "unknown" && $0.metadata["duration_us"] != nil })
            let everything = fixture.logs.allText
            for secret in ["STATE-SECRET-1", code, Fixture.alicePassword, Fixture.serviceSecret, Fixture.pkceVerifier,
                           browser.cookies["keyless_csrf"] ?? "-", browser.cookies["keyless_session"] ?? "-"] {
                #expect(!everything.contains(secret), "the log leaks \(secret)")
            }
        }
    }

    @Test("a failed login is logged as a notice with the reason and peer, never the password")
    func failedLoginLogged() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            _ = try await browser.signIn(query: cliAuthorizationQuery(), username: "alice", password: "hunter2-wrong")
            let notice = try #require(fixture.logs.records.first { $0.message == "login failed" })
            #expect(notice.level == .notice)
            #expect(notice.metadata["reason"] == "invalid")
            #expect(notice.metadata["peer"] == "unknown")
            #expect(!fixture.logs.allText.contains("hunter2-wrong"))
        }
    }
}
