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
        let a = ContainerCredentialsEndpoint.makeToken(), b = ContainerCredentialsEndpoint.makeToken()
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

/// `keyless exec --server` run as a person runs it, against `keyless idp` (device flow) and moto, with boto3 in the child.
@Suite("exec --server end to end", .serialized)
struct ExecServerEndToEndTests {
    /// The child: boto3 through the endpoint, then raw requests the endpoint must refuse, then (after the test has
    /// deleted keyless's cached credentials) the same boto3 session again, made to believe its credentials expire
    /// in five minutes so that botocore's own refresh asks the endpoint. Prints key ids only as SHA-256 prefixes.
    static let job = #"""
        import boto3, datetime, hashlib, json, os, sys, time, urllib.request, urllib.error
        from dateutil.tz import tzutc

        def digest(text):
            return hashlib.sha256(text.encode()).hexdigest()[:16]

        def status(headers, method="GET", path="/credentials"):
            url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].rsplit("/", 1)[0] + path
            request = urllib.request.Request(url, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    body = json.loads(answer.read())
                    return [answer.status, sorted(body.keys())]
            except urllib.error.HTTPError as error:
                return [error.code, json.loads(error.read()).get("code")]

        token = os.environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN", "")
        port = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].split(":")[2].split("/")[0]
        session = boto3.Session()
        sts = session.client("sts")
        first_arn = sts.get_caller_identity()["Arn"]
        credentials = session.get_credentials()
        first_key = credentials.get_frozen_credentials().access_key
        report = {
            "phase": 1,
            "method": credentials.method,
            "arn": first_arn,
            "key": digest(first_key),
            "leaked": sorted(name for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                                               "KEYLESS_FILE_PASSPHRASE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] if name in os.environ),
            "url_is_loopback": os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].startswith("http://127.0.0.1:"),
            "token_length": len(token),
            "with_token": status({"Authorization": token}),
            "no_token": status({}),
            "wrong_token": status({"Authorization": token[:-1] + ("A" if token[-1] != "A" else "B")}),
            "origin": status({"Authorization": token, "Origin": "https://evil.example"}),
            "sec_fetch": status({"Authorization": token, "Sec-Fetch-Site": "cross-site"}),
            "rebound_host": status({"Authorization": token, "Host": "evil.example:" + port}),
            "post": status({"Authorization": token}, method="POST"),
            "other_path": status({"Authorization": token}, path="/latest/meta-data/"),
        }
        print(json.dumps(report), flush=True)

        go = sys.argv[1]
        deadline = time.time() + 120
        while not os.path.exists(go):
            if time.time() > deadline:
                sys.exit("the test never said go")
            time.sleep(0.05)

        # The job has run for most of an hour: botocore's copy of the credentials now expires in five minutes.
        credentials._expiry_time = datetime.datetime.now(tzutc()) + datetime.timedelta(minutes=5)
        second_arn = sts.get_caller_identity()["Arn"]
        second_key = credentials.get_frozen_credentials().access_key
        print(json.dumps({"phase": 2, "arn": second_arn, "key": digest(second_key)}), flush=True)
        """#

    /// keyless idp, moto with a role, a harness logged in with the device flow, and profile `dev` for the role.
    struct Setup {
        let idp: EmbeddedIdP
        let moto: MotoServer
        let harness: KeylessHarness

        static func start() async throws -> Setup {
            let idp = try await EmbeddedIdP.start()
            let moto: MotoServer
            do { moto = try await MotoServer.start() } catch { idp.stopAndRemove(); throw error }
            do {
                let role = try await moto.createRole(name: "dev")
                let harness = try KeylessHarness(moto: moto)
                let login = try harness.start(
                    nil, ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--device"])
                let code = try login.waitForStderr("enter the code ([A-Z0-9-]+)")
                try await idp.approveDevice(userCode: code)
                let result = try login.wait(timeout: 60)
                guard result.status == 0 else { throw TestSupportError("login failed: \(result)") }
                let line = [
                    harness.binary, "creds-process", "--issuer-url", idp.issuer, "--client-id", idp.clientID,
                    "--aws-role-arn", role, "--no-browser",
                ]
                .joined(separator: " ")
                try "[profile dev]\nregion = us-east-1\ncredential_process = \(line)\n"
                    .write(toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
                return Setup(idp: idp, moto: moto, harness: harness)
            } catch {
                moto.stop()
                idp.stopAndRemove()
                throw error
            }
        }

        func stop() {
            moto.stop()
            idp.stopAndRemove()
        }
    }

    /// Waits (up to `timeout` seconds) for a stdout line of `started` that is JSON with `"phase": phase`.
    static func phase(_ phase: Int, of started: KeylessHarness.Started, timeout: TimeInterval = 90) throws -> [String:
        Any]
    {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let text = (try? String(contentsOfFile: started.out, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") where line.hasPrefix("{") {
                if let object = try? credentialJSON(String(line)), object["phase"] as? Int == phase { return object }
            }
            if !started.process.isRunning { break }
            usleep(50_000)
        }
        throw TestSupportError("no phase \(phase) line on stdout; stderr:\n\(started.stderrSoFar)")
    }

    /// SHA-256 prefixes of the access key ids moto issued through AssumeRoleWithWebIdentity, in order.
    static func issuedKeys(_ moto: MotoServer) async throws -> [String] {
        let (body, _) = try await URLSession.shared.data(
            from: try #require(URL(string: "\(moto.endpoint)/moto-api/data.json")))
        let data = try credentialJSON(String(decoding: body, as: UTF8.self))
        let roles = ((data["sts"] as? [String: Any])?["AssumedRole"] as? [[String: Any]]) ?? []
        return roles.compactMap { $0["access_key_id"] as? String }.map { key in
            SHA256.hash(data: Array(key.utf8)).map { String(format: "%02x", $0) }.joined().prefix(16).description
        }
    }

    @Test(
        "a boto3 job under exec --server keeps working across a forced credential expiry with new keys from moto, and the endpoint refuses requests without the token, with a wrong one, from a browser or through a rebound name"
    )
    func botoJobAcrossExpiry() async throws {
        let setup = try await Setup.start()
        defer { setup.stop() }
        let harness = setup.harness
        let script = harness.home + "/job.py"
        let go = harness.home + "/go"
        try Self.job.write(toFile: script, atomically: true, encoding: .utf8)
        let job = try harness.start(nil, ["exec", "--server", "--profile", "dev", "--", Tooling.python(), script, go])
        defer { job.process.stop() }

        let first = try Self.phase(1, of: job)
        #expect(first["method"] as? String == "container-role")
        #expect(first["arn"] as? String == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")
        #expect(first["leaked"] as? [String] == [])
        #expect(first["url_is_loopback"] as? Bool == true)
        #expect(first["token_length"] as? Int == 43)
        #expect((first["with_token"] as? [Any])?.first as? Int == 200)
        #expect(
            (first["with_token"] as? [Any])?.last as? [String] == [
                "AccessKeyId", "AccountId", "Expiration", "SecretAccessKey", "Token",
            ])
        for (name, status, code) in [
            ("no_token", 401, "unauthorized"), ("wrong_token", 401, "unauthorized"), ("origin", 403, "browser"),
            ("sec_fetch", 403, "browser"), ("rebound_host", 403, "host"), ("post", 405, "method"),
            ("other_path", 404, "not_found"),
        ] {
            let answer = first[name] as? [Any]
            #expect(answer?.first as? Int == status, "\(name)")
            #expect(answer?.last as? String == code, "\(name)")
        }
        let issuedBefore = try await Self.issuedKeys(setup.moto)
        #expect(
            issuedBefore == [first["key"] as? String].compactMap { $0 }, "one STS call so far, whose key the job used")

        // Expire keyless's cache: the next request to the endpoint must get new credentials from STS.
        let store = harness.storeDirectory
        let cached = try FileManager.default.contentsOfDirectory(atPath: store).filter { $0.hasPrefix("sts.") }
        #expect(!cached.isEmpty)
        for entry in cached { try FileManager.default.removeItem(atPath: store + "/" + entry) }
        FileManager.default.createFile(atPath: go, contents: Data())

        let result = try job.wait(timeout: 120)
        #expect(result.status == 0, "\(result)")
        let second = try Self.phase(2, of: job)
        #expect(second["arn"] as? String == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")
        #expect(second["key"] as? String != first["key"] as? String, "the refreshed session uses new keys")
        let issued = try await Self.issuedKeys(setup.moto)
        #expect(issued.count == 2)
        #expect(
            issued == [first["key"] as? String, second["key"] as? String].compactMap { $0 },
            "both keys are ones moto issued, in order")
        #expect(!result.stderr.contains(harness.environment["KEYLESS_FILE_PASSPHRASE"]!))
        // keyless's stderr: one line per refused request, naming the reason and never a header value.
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 7, "\(result.stderr)")
        #expect(lines.allSatisfy { $0.contains("refused a container-credentials request") }, "\(result.stderr)")
    }

    @Test("exec --server exits with the command's status, 128 + the signal that killed it, and passes SIGTERM on to it")
    func statusAndSignals() async throws {
        let setup = try await Setup.start()
        defer { setup.stop() }
        let harness = setup.harness
        let exited = try harness.run(["exec", "--server", "--profile", "dev", "--", "/bin/sh", "-c", "exit 7"])
        #expect(exited.status == 7, "\(exited)")
        let killed = try harness.run(["exec", "--server", "--profile", "dev", "--", "/bin/sh", "-c", "kill -KILL $$"])
        #expect(killed.status == 128 + 9, "\(killed)")
        let nested = try harness.run(
            ["exec", "--server", "--profile", "dev", "--", "/bin/sh", "-c", "exit 0"],
            extra: ["KEYLESS_EXEC_PROFILE": "outer"])
        #expect(nested.status == 7, "\(nested)")

        let waiter = """
            import signal, sys
            signal.signal(signal.SIGTERM, lambda *_: (print("got TERM", flush=True), sys.exit(42)))
            print("ready", flush=True)
            signal.pause()
            """
        let job = try harness.start(
            nil, ["exec", "--server", "--profile", "dev", "--", Tooling.python(), "-c", waiter])
        defer { job.process.stop() }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, job.process.isRunning,
            !((try? String(contentsOfFile: job.out, encoding: .utf8)) ?? "").contains("ready")
        {
            usleep(20_000)
        }
        kill(job.process.pid, SIGTERM)  // keyless's own PID, which this test started
        let result = try job.wait(timeout: 30)
        #expect(result.status == 42, "\(result)")
        #expect(result.stdout.contains("got TERM"), "\(result)")
    }
}
