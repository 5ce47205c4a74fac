import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import KeylessTestSupport
import NIOCore
import Testing

/// What anyone on the network can send the provider, mutated: forms, queries, cookies, bearer tokens.
@Suite("fuzz: the provider's endpoints")
struct ProviderFuzzTests {
    static func seeds(code: String, csrf: String) -> [String] {
        let form = ["Content-Type": "application/x-www-form-urlencoded"]
        func request(_ method: String, _ target: String, _ headers: [String: String] = [:], _ body: String = "")
            -> String
        {
            FuzzRequest(
                method, target, headers: headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, body: body
            ).text
        }
        let query = formEncode(cliAuthorizationQuery())
        return [
            request(
                "POST", "/token", form,
                "grant_type=authorization_code&code=\(code)&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback&client_id=cli&code_verifier=\(Fixture.pkceVerifier)"
            ),
            request(
                "POST", "/token",
                form.merging(["Authorization": basicAuthorization("service", Fixture.serviceSecret)]) { $1 },
                "grant_type=client_credentials&scope=api.read"),
            request("POST", "/token", form, "grant_type=refresh_token&refresh_token=abc&client_id=cli&scope=openid"),
            request(
                "POST", "/token", form,
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=x&client_id=cli"),
            request(
                "POST", "/token", form,
                "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"
            ),
            request("GET", "/authorize?" + query),
            request(
                "POST", "/authorize", form.merging(["Cookie": "keyless_csrf=\(csrf); keyless_session=abc"]) { $1 },
                query + "&csrf=\(csrf)&username=alice&password=x&action=login"),
            request("POST", "/device_authorization", form, "client_id=cli&scope=openid%20email"),
            request("GET", "/device?user_code=BCDF-GHJK"),
            request(
                "POST", "/device", form.merging(["Cookie": "keyless_csrf=\(csrf)"]) { $1 },
                "csrf=\(csrf)&user_code=BCDF-GHJK&username=alice&password=x&action=approve&step=consent"),
            request(
                "GET", "/userinfo",
                [
                    "Authorization":
                        "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ.eyJzdWIiOiJhbGljZSJ9.c2ln"
                ]),
            request("POST", "/revoke", form, "token=abc&client_id=cli"),
            request("GET", "/.well-known/openid-configuration"),
        ]
    }

    @Test("no mutated request makes the provider answer 500 or crash; every answer is a handled status")
    func endpoints() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            // A real code and form cookie in the seeds, so mutations start from requests that go deep.
            var browser = Browser(client)
            let page = try await browser.get("/authorize?" + formEncode(cliAuthorizationQuery()))
            let csrf = browser.cookies["keyless_csrf"] ?? "x"
            let login = try await browser.post(
                "/authorize",
                form: hiddenFields(text(page)) + [("username", "alice"), ("password", Fixture.alicePassword)])
            let code = Redirect(login)?.items["code"] ?? "x"
            var statuses: [Int: Int] = [:]
            try await Fuzzer.run(
                "provider HTTP", seeds: Self.seeds(code: code, csrf: csrf),
                tokens: [
                    "&", "=", "%", "grant_type=", "client_id=", "code=", "scope=", "openid", "offline_access",
                    "Bearer ", "Basic ",
                    "keyless_session=", "__Host-", "Origin: null", "\nCookie: ", "\nAuthorization: ", "..%2F", "/../",
                ]
            ) { bytes in
                guard let request = FuzzRequest(fuzzed: bytes), request.target.hasPrefix("/") else { return }
                var headers: HTTPFields = [:]
                for header in request.headers {
                    if let name = HTTPField.Name(header.name) {
                        headers.append(HTTPField(name: name, value: header.value))
                    }
                }
                let method = HTTPRequest.Method(request.method) ?? .post
                guard
                    let response = try? await client.execute(
                        uri: request.target, method: method, headers: headers,
                        body: ByteBuffer(bytes: request.body))
                else { return }
                statuses[response.status.code, default: 0] += 1
                #expect(
                    response.status.code < 500 || response.status.code == 503,
                    "HTTP \(response.status.code) for \(String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription): \(text(response).prefix(200))"
                )
            }
            print("fuzz: provider HTTP answers by status: \(statuses.sorted { $0.key < $1.key })")
        }
    }
}
