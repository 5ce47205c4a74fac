import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessCore
import KeylessIdP
import KeylessHTTPServer
import KeylessIdPServer
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
            let login = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            await store.setFailing(true)
            let response = try await redeemCLICode(client, code: code)
            #expect(response.status == .internalServerError)
            #expect(try oauthError(response) == "server_error")
            #expect(!text(response).contains("switched the store off"))
            #expect(
                fixture.logs.records.contains {
                    $0.level == .error && $0.metadata["error"]?.contains("switched the store off") == true
                })
        }
    }

    @Test(
        "/metrics renders Prometheus text with requests by route and status, tokens by grant, token errors and logins")
    func metrics() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/no-such-page?secret=1", method: .get)
            _ = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", "client_credentials")]))
            _ = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", "wrong")),
                body: formBody([("grant_type", "client_credentials")]))
            var browser = Browser(client)
            _ = try await browser.signIn(query: cliAuthorizationQuery(), username: "alice", password: "wrong")
            _ = try await browser.signIn(
                query: cliAuthorizationQuery(), username: "alice", password: Fixture.alicePassword)

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

    @Test(
        "the request log has one line per request with method, route, status and peer, and no query, cookie or credential"
    )
    func requestLog() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            var browser = Browser(client)
            let login = try await browser.signIn(
                query: cliAuthorizationQuery(state: "STATE-SECRET-1"), username: "alice",
                password: Fixture.alicePassword)
            let code = try #require(Redirect(login)?.items["code"])
            _ = try await redeemCLICode(client, code: code)
            _ = try await client.execute(
                uri: "/token", method: .post, headers: formHeaders(basic: ("service", Fixture.serviceSecret)),
                body: formBody([("grant_type", "client_credentials")]))
            _ = try await client.execute(uri: "/healthz", method: .get)
            _ = try await client.execute(uri: "/metrics", method: .get)

            let requests = fixture.logs.records.filter { $0.message == "request" }
            #expect(
                requests.map {
                    "\($0.metadata["method"] ?? "") \($0.metadata["path"] ?? "") \($0.metadata["status"] ?? "")"
                } == [
                    "GET /authorize 200", "POST /authorize 303", "POST /token 200", "POST /token 200",
                ])
            #expect(requests.allSatisfy { $0.metadata["peer"] == "unknown" && $0.metadata["duration_us"] != nil })
            let everything = fixture.logs.allText
            for secret in [
                "STATE-SECRET-1", code, Fixture.alicePassword, Fixture.serviceSecret, Fixture.pkceVerifier,
                browser.cookies["keyless_csrf"] ?? "-", browser.cookies["keyless_session"] ?? "-",
            ] {
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

@Suite("IdP server: /metrics is off unless opened or protected by a token")
struct MetricsAccessTests {
    static func tokenFile(_ token: String, mode: Int16 = 0o600) throws -> String {
        let directory = NSTemporaryDirectory() + "keyless-metrics-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/metrics-token"
        FileManager.default.createFile(
            atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: mode])
        return path
    }

    @Test("by default /metrics answers 404 and renders nothing")
    func offByDefault() async throws {
        let fixture = try await IdPServerFixture.make(metrics: try MetricsAccess.parse("off", what: "--metrics"))
        try await fixture.withRouter { client in
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .notFound)
            #expect(!text(response).contains("keyless_"))
        }
    }

    @Test("with token-file:PATH only the token as a Bearer reads /metrics; none or another gets 401 with a challenge")
    func tokenProtected() async throws {
        let token = "metrics-token-" + UUID().uuidString
        let path = try Self.tokenFile(token)
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let fixture = try await IdPServerFixture.make(
            metrics: try MetricsAccess.parse("token-file:" + path, what: "--metrics"))
        try await fixture.withRouter { client in
            for header in [nil, "Bearer wrong-token-of-some-length", "Basic " + token] as [String?] {
                var headers: HTTPFields = [:]
                if let header { headers[.authorization] = header }
                let response = try await client.execute(uri: "/metrics", method: .get, headers: headers)
                #expect(response.status == .unauthorized, "\(header ?? "no header")")
                #expect(response.headers[.wwwAuthenticate] == "Bearer realm=\"keyless metrics\"")
            }
            let allowed = try await client.execute(
                uri: "/metrics", method: .get, headers: [.authorization: "Bearer " + token])
            #expect(allowed.status == .ok)
            #expect(text(allowed).contains("keyless_idp_"))
        }
    }

    @Test("a token file others can read, a short token, a missing file and an unknown mode are refused with what to do")
    func badSettings() throws {
        let readable = try Self.tokenFile("a-token-long-enough-to-pass", mode: 0o644)
        let short = try Self.tokenFile("short")
        defer {
            for path in [readable, short] {
                try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent)
            }
        }
        for (text, expected) in [
            ("token-file:" + readable, readable), ("token-file:" + short, "shorter than 16"),
            ("token-file:/nonexistent/metrics-token", "does not exist"),
            ("public", "must be off, open or token-file:PATH"),
        ] {
            let error = #expect(throws: KeylessError.self) { try MetricsAccess.parse(text, what: "--metrics") }
            #expect(error?.reason.contains(expected) == true, "\(text): \(String(describing: error))")
            #expect(error?.hint != nil)
        }
    }
}
