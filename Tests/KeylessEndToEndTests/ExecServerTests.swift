import Crypto
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import KeylessTestSupport
import Testing
#if canImport(Glibc)
    import Glibc
#endif

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
                let result = try await harness.deviceLogin(idp)
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
