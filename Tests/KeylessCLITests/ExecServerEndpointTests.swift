import Crypto
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import KeylessCore
@testable import KeylessCLI
@testable import KeylessClient
import KeylessTestFakes
import KeylessTestSupport
import Logging
import Testing
#if canImport(Glibc)
    import Glibc
#endif

/// Counts calls to a credential source and answers from a script of results.
actor ScriptedSource {
    private var answers: [Result<ContainerCredentials, KeylessError>]
    private(set) var calls = 0

    init(_ answers: [Result<ContainerCredentials, KeylessError>]) { self.answers = answers }

    func next() throws -> ContainerCredentials {
        calls += 1
        let answer = answers.count > 1 ? answers.removeFirst() : answers[0]
        return try answer.get()
    }
}

/// `keyless exec --server`'s endpoint, judged in process with a fixed clock and an injected source.
@Suite("exec --server: the container-credentials endpoint")
struct ExecServerEndpointTests {
    static let now = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T11:06:40Z
    static let token = "dGhpcy1pcy1hLXRlc3QtdG9rZW4tb2YtMzItYnl0ZXMh"
    static let port = 41_234
    static let secret = "SECRETwJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLE"
    static func credentials(remaining: TimeInterval, key: String = "ASIAFIRSTKEY0000001") -> ContainerCredentials {
        ContainerCredentials(
            accessKeyId: key, secretAccessKey: secret, sessionToken: "session-token-value",
            expiration: now.addingTimeInterval(remaining), accountId: "123456789012")
    }

    static func endpoint(_ source: ScriptedSource, lines: LogCapture = LogCapture()) -> ContainerCredentialsEndpoint {
        let logger = lines.logger
        return ContainerCredentialsEndpoint(token: token, clock: .fixed(now), logger: logger) {
            try await source.next()
        }
    }

    static func request(
        _ method: String = "GET", path: String = "/credentials", host: String? = "127.0.0.1:\(port)",
        headers: [(String, String)] = [("Authorization", token)]
    ) -> ContainerCredentialsRequest {
        ContainerCredentialsRequest(
            method: method, path: path, authority: host, headers: headers.map { (name: $0.0, value: $0.1) })
    }

    static func json(_ body: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
    }

    @Test(
        "GET /credentials with the token answers botocore's container format: AccessKeyId, SecretAccessKey, Token, RFC 3339 Expiration"
    )
    func format() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let answer = await Self.endpoint(source).respond(to: Self.request(), port: Self.port)
        #expect(answer.status == 200)
        let body = try Self.json(answer.body)
        #expect(Set(body.keys) == ["AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"])
        #expect(body["AccessKeyId"] as? String == "ASIAFIRSTKEY0000001")
        #expect(body["SecretAccessKey"] as? String == Self.secret)
        #expect(body["Token"] as? String == "session-token-value")
        #expect(body["Expiration"] as? String == "2026-11-18T12:06:40Z")
        #expect(body["AccountId"] as? String == "123456789012")
        #expect(await source.calls == 1)
    }

    @Test("localhost:PORT is as good as 127.0.0.1:PORT, in any letter case")
    func localhostHost() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let endpoint = Self.endpoint(source)
        for host in ["localhost:\(Self.port)", "LocalHost:\(Self.port)"] {
            #expect(await endpoint.respond(to: Self.request(host: host), port: Self.port).status == 200, "\(host)")
        }
    }

    @Test(
        "no Authorization, a wrong token, a token with a prefix, or two Authorization fields: 401, and the source is never asked"
    )
    func unauthorized() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let lines = LogCapture()
        let endpoint = Self.endpoint(source, lines: lines)
        let wrong = String(Self.token.dropLast()) + "X"
        let cases: [[(String, String)]] = [
            [], [("Authorization", wrong)], [("Authorization", "Bearer " + Self.token)], [("Authorization", "")],
            [("Authorization", Self.token + " ")], [("Authorization", Self.token), ("Authorization", Self.token)],
            [("X-Authorization", Self.token)],
        ]
        for headers in cases {
            let answer = await endpoint.respond(to: Self.request(headers: headers), port: Self.port)
            #expect(answer.status == 401, "\(headers.map(\.0))")
            #expect(try Self.json(answer.body)["code"] as? String == "unauthorized")
            #expect(!answer.body.contains(Self.secret))
        }
        #expect(await source.calls == 0)
        #expect(!lines.allText.contains(Self.token.prefix(20)), "no token, right or wrong, is logged")
        #expect(lines.allText.contains("refused"), "refusals are logged")
    }

    @Test("an Origin header or any Sec-Fetch-* header means a browser: 403 even with the right token")
    func browsers() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let endpoint = Self.endpoint(source)
        for header in [
            ("Origin", "https://evil.example"), ("origin", "null"), ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Mode", "no-cors"),
            ("sec-fetch-dest", "empty"),
        ] {
            let answer = await endpoint.respond(
                to: Self.request(headers: [("Authorization", Self.token), header]), port: Self.port)
            #expect(answer.status == 403, "\(header.0)")
            #expect(try Self.json(answer.body)["code"] as? String == "browser")
        }
        #expect(await source.calls == 0)
    }

    @Test(
        "a Host other than 127.0.0.1:PORT or localhost:PORT (DNS rebinding, another port, none, a second Host field) is refused with 403"
    )
    func rebinding() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let endpoint = Self.endpoint(source)
        for host in [
            "evil.example:\(Self.port)", "127.0.0.1:\(Self.port + 1)", "127.0.0.1", "localhost", "169.254.170.2",
            "127.0.0.1:\(Self.port).evil.example", "[::1]:\(Self.port)", nil,
        ] as [String?] {
            let answer = await endpoint.respond(to: Self.request(host: host), port: Self.port)
            #expect(answer.status == 403, "\(host ?? "no Host")")
            #expect(try Self.json(answer.body)["code"] as? String == "host")
        }
        let doubled = Self.request(headers: [("Authorization", Self.token), ("Host", "evil.example")])
        #expect(await endpoint.respond(to: doubled, port: Self.port).status == 403)
        #expect(await source.calls == 0)
    }

    @Test("with the token, other methods get 405 with Allow: GET and other paths 404; without it, both get 401")
    func methodsAndPaths() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let endpoint = Self.endpoint(source)
        for method in ["POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get"] {
            let answer = await endpoint.respond(to: Self.request(method), port: Self.port)
            #expect(answer.status == 405, "\(method)")
            #expect(answer.headers["Allow"] == "GET")
        }
        for path in [
            "/", "/credentials/", "/Credentials", "/credentials/../credentials",
            "/latest/meta-data/iam/security-credentials", "",
        ] {
            #expect(await endpoint.respond(to: Self.request(path: path), port: Self.port).status == 404, "\(path)")
        }
        #expect(await endpoint.respond(to: Self.request("POST", headers: []), port: Self.port).status == 401)
        #expect(await endpoint.respond(to: Self.request(path: "/admin", headers: []), port: Self.port).status == 401)
        #expect(await source.calls == 0)
    }

    @Test("credentials with less than five minutes left are fetched again and the fresh ones are served")
    func nearExpiryRefetched() async throws {
        let source = ScriptedSource([
            .success(Self.credentials(remaining: 240, key: "ASIAOLDKEY000000001")),
            .success(Self.credentials(remaining: 3600, key: "ASIANEWKEY000000002")),
        ])
        let answer = await Self.endpoint(source).respond(to: Self.request(), port: Self.port)
        #expect(answer.status == 200)
        #expect(try Self.json(answer.body)["AccessKeyId"] as? String == "ASIANEWKEY000000002")
        #expect(await source.calls == 2)
    }

    @Test("credentials with more than five minutes left are served as they are, with one call to the source")
    func enoughLeftServed() async throws {
        let source = ScriptedSource([
            .success(Self.credentials(remaining: 301, key: "ASIAOLDKEY000000001")),
            .success(Self.credentials(remaining: 3600, key: "ASIANEWKEY000000002")),
        ])
        let answer = await Self.endpoint(source).respond(to: Self.request(), port: Self.port)
        #expect(try Self.json(answer.body)["AccessKeyId"] as? String == "ASIAOLDKEY000000001")
        #expect(await source.calls == 1)
    }

    @Test("when the source has nothing but expired credentials the endpoint answers 503 instead of handing them out")
    func expiredNeverServed() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: -10))])
        let answer = await Self.endpoint(source).respond(to: Self.request(), port: Self.port)
        #expect(answer.status == 503)
        #expect(!answer.body.contains(Self.secret))
        #expect(!answer.body.contains("ASIAFIRSTKEY"))
    }

    @Test("a source failure (login needed) answers 503 with the error's code, and the next request asks again")
    func sourceFailure() async throws {
        let source = ScriptedSource([
            .failure(KeylessError(.loginRequired, "A login is needed.")), .success(Self.credentials(remaining: 3600)),
        ])
        let endpoint = Self.endpoint(source)
        let failed = await endpoint.respond(to: Self.request(), port: Self.port)
        #expect(failed.status == 503)
        #expect(try Self.json(failed.body)["code"] as? String == "login_required")
        #expect(await endpoint.respond(to: Self.request(), port: Self.port).status == 200)
        #expect(await source.calls == 2)
    }

    @Test("the log of a served request names the expiry but neither the secret key nor the session token")
    func servedLogIsClean() async throws {
        let lines = LogCapture()
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        _ = await Self.endpoint(source, lines: lines).respond(to: Self.request(), port: Self.port)
        #expect(lines.allText.contains("2026-11-18T12:06:40Z"))
        for secret in [Self.secret, "session-token-value", Self.token] { #expect(!lines.allText.contains(secret)) }
    }

    @Test("each run's token is 32 random bytes in base64url, different every time")
    func tokens() throws {
        let a = randomToken(), b = randomToken()
        #expect(a != b)
        #expect(Base64URL.decode(a)?.count == 32)
        #expect(a.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
    }

    @Test(
        "the child's environment has the endpoint, the token and the region, and no other credentials, profile or passphrase"
    )
    func childEnvironment() {
        let base = [
            "PATH": "/bin", "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
            "AWS_PROFILE": "dev",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/tmp/t",
            "KEYLESS_FILE_PASSPHRASE": "p", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000",
        ]
        let child = Keyless.Exec.serverEnvironment(
            base, port: 40_000, token: "tok", profile: "dev", region: "eu-west-1")
        #expect(child["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == "http://127.0.0.1:40000/credentials")
        #expect(child["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == "tok")
        #expect(child["AWS_REGION"] == "eu-west-1")
        #expect(child["KEYLESS_EXEC_PROFILE"] == "dev")
        #expect(child["PATH"] == "/bin")
        #expect(child["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000")
        for gone in [
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "KEYLESS_FILE_PASSPHRASE",
        ] {
            #expect(child[gone] == nil, "\(gone)")
        }
        #expect(
            Keyless.Exec.serverEnvironment(base, port: 1, token: "t", profile: "p", region: nil)["AWS_REGION"] == nil)
    }

    /// Sends `request` (raw HTTP/1.1 text) to 127.0.0.1:`port` and returns the status code and body.
    static func raw(_ request: String, port: Int) throws -> (status: Int, body: String) {
        try RawConnection.exchange(request, port: port)
    }

    @Test(
        "over a real socket on 127.0.0.1: the token gets JSON credentials, a rebound Host and a missing token are refused"
    )
    func realSocket() async throws {
        let source = ScriptedSource([.success(Self.credentials(remaining: 3600))])
        let server = ContainerCredentialsServer(
            endpoint: Self.endpoint(source), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let running = try await server.start()
        let port = running.port
        let good = try Self.raw(
            "GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAuthorization: \(Self.token)\r\nConnection: close\r\n\r\n",
            port: port)
        #expect(good.status == 200)
        #expect(try Self.json(good.body)["AccessKeyId"] as? String == "ASIAFIRSTKEY0000001")
        let rebound = try Self.raw(
            "GET /credentials HTTP/1.1\r\nHost: evil.example:\(port)\r\nAuthorization: \(Self.token)\r\nConnection: close\r\n\r\n",
            port: port)
        #expect(rebound.status == 403)
        let anonymous = try Self.raw(
            "GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n", port: port)
        #expect(anonymous.status == 401)
        let twoHosts = try Self.raw(
            "GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nHost: evil.example\r\nAuthorization: \(Self.token)\r\nConnection: close\r\n\r\n",
            port: port)
        #expect(twoHosts.status == 403 || twoHosts.status == 400, "\(twoHosts.status)")
        #expect(await source.calls == 1)
        await running.stop()
        #expect(throws: (any Error).self) {
            try Self.raw("GET /credentials HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n", port: port)
        }
    }
}
