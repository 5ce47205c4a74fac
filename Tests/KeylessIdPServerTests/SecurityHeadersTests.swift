import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

@Suite("IdP server: security headers on every response")
struct SecurityHeadersTests {
    /// A GET that needs no earlier state, the status it answers and its content type.
    struct Case: Sendable, CustomTestStringConvertible {
        var uri: String
        var status: HTTPResponse.Status
        var contentType: String?
        var testDescription: String { "GET \(uri) → \(status.code)" }
    }

    static let cases: [Case] = [
        Case(
            uri: "/authorize?" + formEncode(cliAuthorizationQuery()), status: .ok,
            contentType: "text/html; charset=utf-8"),
        Case(uri: "/authorize?client_id=unknown", status: .badRequest, contentType: "text/html; charset=utf-8"),
        Case(
            uri: "/authorize?client_id=cli&client_id=cli", status: .badRequest, contentType: "text/html; charset=utf-8"),
        Case(
            uri: "/authorize?" + formEncode(cliAuthorizationQuery(extra: [("prompt", "none")])), status: .seeOther,
            contentType: nil),
        Case(uri: "/device", status: .ok, contentType: "text/html; charset=utf-8"),
        Case(uri: "/userinfo", status: .unauthorized, contentType: "application/json"),
        Case(uri: "/healthz", status: .ok, contentType: "application/json"),
        Case(uri: "/metrics", status: .ok, contentType: "text/plain; version=0.0.4"),
    ]

    @Test(
        "HTML pages, redirects and JSON answers carry nosniff, no-referrer, DENY framing, the CSP and Cache-Control no-store",
        arguments: cases)
    func everyResponseHasSecurityHeaders(_ testCase: Case) async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            try await client.execute(uri: testCase.uri, method: .get) { response in
                #expect(response.status == testCase.status)
                #expect(response.headers[.contentType] == testCase.contentType)
                expectSecurityHeaders(response)
            }
        }
    }

    @Test("POST answers (token success and error, device authorization, revocation) carry the security headers")
    func postAnswersHaveSecurityHeaders() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let posts: [(String, [(String, String)], HTTPFields, HTTPResponse.Status)] = [
                (
                    "/token", [("grant_type", "client_credentials")],
                    formHeaders(basic: ("service", Fixture.serviceSecret)), .ok
                ),
                (
                    "/token", [("grant_type", "client_credentials")], formHeaders(basic: ("service", "wrong")),
                    .unauthorized
                ),
                ("/token", [("client_id", "cli")], formHeaders(), .badRequest),
                ("/device_authorization", [("client_id", "cli")], formHeaders(), .ok),
                ("/revoke", [("client_id", "cli"), ("token", "unknown")], formHeaders(), .ok),
            ]
            for (uri, form, headers, status) in posts {
                let response = try await client.execute(uri: uri, method: .post, headers: headers, body: formBody(form))
                #expect(response.status == status, "\(uri) \(form)")
                expectSecurityHeaders(response)
            }
        }
    }

    @Test("an unknown path answers 404 with the security headers too")
    func notFoundHasSecurityHeaders() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            let response = try await client.execute(uri: "/no-such-page", method: .get)
            #expect(response.status == .notFound)
            // Hummingbird turns the thrown HTTPError(.notFound) into a response outside the middleware chain, so
            // SecurityHeadersMiddleware never sees it (and neither does any handler that throws).
            expectSecurityHeaders(response)
        }
    }
}
