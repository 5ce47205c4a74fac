import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessCore
import KeylessAccessServer
import KeylessTestSupport
import NIOCore
import Testing

/// What callers send the access server, mutated: bearer tokens, JSON bodies, web forms; and server.yaml.
@Suite("fuzz: the access server's endpoints and server.yaml")
struct AccessServerFuzzTests {
    static let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])

    @Test(
        "no mutated request makes the access server answer 500 or crash (STS unreachable here: a granted request is 502 upstream_error)"
    )
    func endpoints() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let token = try Self.alice.token()
        let json = ["Content-Type": "application/json", "Authorization": "Bearer " + token]
        func request(_ method: String, _ target: String, _ headers: [String: String], _ body: String = "") -> String {
            FuzzRequest(
                method, target, headers: headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, body: body
            ).text
        }
        let seeds = [
            request("POST", "/api/v1/credentials", json, #"{"role_arn":"prod/readonly","duration_seconds":900}"#),
            request("POST", "/api/v1/credentials", json, #"{"role_arn":"arn:aws:iam::123456789012:role/admin"}"#),
            request(
                "POST", "/api/v1/console", json,
                #"{"role_arn":"prod/readonly","destination":"https://console.aws.amazon.com/ec2"}"#),
            request("GET", "/api/v1/config", ["Authorization": "Bearer " + token]),
            request(
                "POST", "/web/credentials",
                ["Content-Type": "application/x-www-form-urlencoded", "Cookie": "keyless_web_session=" + token],
                "csrf=abc&role_arn=prod%2Freadonly"),
            request("GET", "/", ["Cookie": "keyless_web_session=" + token]),
            request("GET", "/callback?code=abc&state=def", ["Cookie": "keyless_web_login=abc"]),
        ]
        try await fixture.application().test(.router) { client in
            var statuses: [Int: Int] = [:]
            try await Fuzzer.run(
                "access server HTTP", seeds: seeds,
                tokens: [
                    "\"role_arn\":", "\"duration_seconds\":", "Bearer ", "eyJ", ".", "{\"a\":", "[", "\\u0000", "1e400",
                    "-1", "43200", "arn:aws:iam::", "role/", "prod/", "*",
                ]
            ) { bytes in
                guard let request = FuzzRequest(fuzzed: bytes), request.target.hasPrefix("/") else { return }
                var headers: HTTPFields = [:]
                for header in request.headers {
                    if let name = HTTPField.Name(header.name) {
                        headers.append(HTTPField(name: name, value: header.value))
                    }
                }
                guard
                    let response = try? await client.execute(
                        uri: request.target, method: HTTPRequest.Method(request.method) ?? .post,
                        headers: headers, body: ByteBuffer(bytes: request.body))
                else { return }
                statuses[response.status.code, default: 0] += 1
                let handled = response.status.code < 500 || response.status.code == 502 || response.status.code == 503
                #expect(
                    handled,
                    "HTTP \(response.status.code) for \(String(decoding: bytes.prefix(400), as: UTF8.self).debugDescription): \(text(response).prefix(200))"
                )
            }
            print("fuzz: access server HTTP answers by status: \(statuses.sorted { $0.key < $1.key })")
        }
    }

    @Test("a mutated server.yaml either parses or is refused with a KeylessError; it never crashes")
    func serverConfiguration() {
        let seed = """
            listen: 127.0.0.1:8080
            public_url: https://keyless.example.com
            policy: policy.yaml
            idle_timeout: 30s
            metrics: off
            trusted_proxies: [10.0.0.0/8]
            issuers:
              - issuer: https://idp.example.com
                audiences: [keyless-cli]
                algorithms: [RS256, ES256]
            aws:
              region: us-east-1
            console:
              destination_hosts: [console.aws.amazon.com]
            """
        Fuzzer.run(
            "server.yaml", seeds: [seed],
            tokens: ["&a ", "*a", "{", "[", ": ", "\n  - ", "0s", "-1s", "1e400s", "token-file:"]
        ) { bytes in
            do {
                _ = try ServerConfiguration.parse(
                    String(decoding: bytes, as: UTF8.self), file: "/nonexistent/server.yaml")
            } catch is KeylessError {
            } catch {
                Issue.record("not a KeylessError: \(error)")
            }
        }
    }
}
