import Foundation
import KeylessTestFakes
import KeylessTestSupport
import Testing

/// Two `keyless idp serve` processes sharing one PostgreSQL, as replicas behind one issuer name.
@Suite("keyless idp replicas on PostgreSQL", .serialized)
struct IdPReplicaTests {
    /// Logs alice in on `idp`'s login page with PKCE and returns the code and its verifier.
    static func code(from idp: EmbeddedIdP) async throws -> (code: String, verifier: String) {
        let verifier = String(repeating: "v", count: 20) + UUID().uuidString.replacingOccurrences(of: "-", with: "")
        let challenge = try challengeFor(verifier)
        let query =
            "response_type=code&client_id=keyless-cli&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback&scope=openid&state=s1"
            + "&code_challenge=\(challenge)&code_challenge_method=S256"
        let page = try await idp.send("GET", "/authorize?" + query)
        let binding = try #require(
            EmbeddedIdP.cookie("keyless_csrf", in: page.headers["set-cookie"] ?? ""), "login page: HTTP \(page.status)")
        let csrf = try #require(EmbeddedIdP.formField("csrf", in: page.text))
        var fields = [
            ("csrf", csrf), ("username", "alice"), ("password", EmbeddedIdPUser.alice.password), ("action", "login"),
        ]
        fields += query.split(separator: "&").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1)
            return (String(kv[0]), String(kv[1]).removingPercentEncoding!)
        }
        let answer = try await idp.send(
            "POST", "/authorize", headers: ["Cookie": "keyless_csrf=\(binding)"], form: fields)
        let location = try #require(
            answer.headers["location"], "login: HTTP \(answer.status) \(answer.text.prefix(300))")
        let code = try #require(URLComponents(string: location)?.queryItems?.first { $0.name == "code" }?.value)
        return (code, verifier)
    }

    static func challengeFor(_ verifier: String) throws -> String {
        let result = try PartnerProcess.run(
            Tooling.python(),
            [
                "-c",
                """
                import base64, hashlib, sys
                print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())
                """, verifier,
            ])
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func redeem(_ code: (code: String, verifier: String), at idp: EmbeddedIdP) async throws
        -> PartnerHTTPResponse
    {
        try await idp.send(
            "POST", "/token",
            form: [
                ("grant_type", "authorization_code"), ("code", code.code), ("code_verifier", code.verifier),
                ("redirect_uri", "http://127.0.0.1:5000/callback"), ("client_id", "keyless-cli"),
            ])
    }

    static func kids(_ idp: EmbeddedIdP) async throws -> Set<String> {
        let jwks = try credentialJSON(try await idp.send("GET", "/jwks.json").text)
        return Set(((jwks["keys"] as? [[String: Any]]) ?? []).compactMap { $0["kid"] as? String })
    }

    @Test(
        "a passkey registered through one replica signs in through the other: a challenge one replica put in its page is accepted by the other once, and the same answer again is refused by either"
    )
    func passkeysAcrossReplicas() async throws {
        // A host name: browsers (and keyless) refuse an IP address as a passkey's RP ID.
        try await Self.withReplicas(issuerHost: "localhost") { a, b, issuer in
            try await Self.passkeysAcrossReplicas(a, b, issuer: issuer)
        }
    }

    static func passkeysAcrossReplicas(_ a: EmbeddedIdP, _ b: EmbeddedIdP, issuer: String) async throws {
        let authenticator = SoftwareAuthenticator(origin: issuer)

        // Sign in on A's passkeys page; the page's registration is finished through B.
        let signInPage = try await a.send("GET", "/passkeys")
        let binding = try #require(EmbeddedIdP.cookie("keyless_csrf", in: signInPage.headers["set-cookie"] ?? ""))
        let csrf = try #require(EmbeddedIdP.formField("csrf", in: signInPage.text))
        let signedIn = try await a.send(
            "POST", "/passkeys", headers: ["Cookie": "keyless_csrf=\(binding)"],
            form: [
                ("csrf", csrf), ("action", "login"), ("username", "alice"),
                ("password", EmbeddedIdPUser.alice.password),
            ])
        let session = try #require(
            EmbeddedIdP.cookie("keyless_session", in: signedIn.headers["set-cookie"] ?? ""),
            "HTTP \(signedIn.status) \(signedIn.text.prefix(300))")
        let cookies = "keyless_csrf=\(binding); keyless_session=\(session)"
        let page = try await a.send("GET", "/passkeys", headers: ["Cookie": cookies])
        let create = try PasskeyForm("create", in: page.text)
        let added = try await b.send(
            "POST", "/passkeys", headers: ["Cookie": cookies],
            form: create.fields + [
                ("credential", try authenticator.register(options: create.options)), ("name", "replica key"),
            ])
        #expect(added.headers["location"] == "/passkeys?added=1", "HTTP \(added.status) \(added.text.prefix(300))")

        // Sign in without a password: the page (and its challenge) from B, the answer to A.
        let query =
            "response_type=code&client_id=keyless-cli&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback&scope=openid&state=s1"
            + "&code_challenge=\(try Self.challengeFor("v" + UUID().uuidString))&code_challenge_method=S256"
        let login = try await b.send("GET", "/authorize?" + query)
        let loginBinding = try #require(EmbeddedIdP.cookie("keyless_csrf", in: login.headers["set-cookie"] ?? ""))
        let get = try PasskeyForm("get", in: login.text)
        let answer = get.fields + [("credential", try authenticator.signIn(options: get.options))]
        let signedInWithPasskey = try await a.send(
            "POST", "/authorize", headers: ["Cookie": "keyless_csrf=\(loginBinding)"], form: answer)
        let location = try #require(
            signedInWithPasskey.headers["location"],
            "HTTP \(signedInWithPasskey.status) \(signedInWithPasskey.text.prefix(300))")
        #expect(location.hasPrefix("http://127.0.0.1:5000/callback?code="))
        for replica in [a, b] {
            let replayed = try await replica.send(
                "POST", "/authorize", headers: ["Cookie": "keyless_csrf=\(loginBinding)"], form: answer)
            #expect(replayed.status == 401 && replayed.headers["location"] == nil, "\(replayed.status)")
            #expect(replayed.text.contains("The passkey was not accepted"))
        }
    }

    @Test(
        "a code issued by one replica is redeemed by the other once and only once, also when both race for it; a key rotated on one is served by both"
    )
    func replicasShareOneDatabase() async throws {
        try await Self.withReplicas(issuerHost: "127.0.0.1") { a, b, _ in try await Self.shareOneDatabase(a, b) }
    }

    /// Two replicas of one issuer (`http://HOST:<A's port>`) on one PostgreSQL and one configuration directory, for
    /// `body`; everything stopped by PID afterwards.
    static func withReplicas(
        issuerHost: String, _ body: (EmbeddedIdP, EmbeddedIdP, String) async throws -> Void
    ) async throws {
        let postgres = try await PostgresServer.start()
        defer { postgres.stop() }
        try postgres.createDatabase("idp")
        let database = postgres.url(database: "idp")
        let portA = try freePort()
        let issuer = "http://\(issuerHost):\(portA)"
        let directory = try EmbeddedIdP.writeConfiguration(issuerPort: portA)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let a = try await EmbeddedIdP.start(directory: directory, port: portA, database: database, issuer: issuer)
        defer { a.stop() }
        let b = try await EmbeddedIdP.start(
            directory: directory, port: try freePort(), database: database, issuer: issuer)
        defer { b.stop() }
        try await body(a, b, issuer)
    }

    static func shareOneDatabase(_ a: EmbeddedIdP, _ b: EmbeddedIdP) async throws {
        #expect(try await Self.kids(a) == Self.kids(b), "both replicas start with the one key made on first start")

        let first = try await Self.code(from: a)
        let redeemed = try await Self.redeem(first, at: b)
        #expect(redeemed.status == 200, "\(redeemed.text)")
        let replay = try await Self.redeem(first, at: a)
        #expect(replay.status == 400)
        #expect(try credentialJSON(replay.text)["error"] as? String == "invalid_grant")

        let raced = try await Self.code(from: b)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<16 { group.addTask { try await Self.redeem(raced, at: index % 2 == 0 ? a : b).status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 200 }.count == 1, "statuses: \(statuses.sorted())")
        #expect(statuses.filter { $0 == 400 }.count == 15, "statuses: \(statuses.sorted())")

        let before = try await Self.kids(a)
        let harness = try KeylessHarness(moto: nil)
        let rotate = try harness.runProgram(
            try EmbeddedIdP.keylessCLI(), ["idp", "rotate-keys", "--publish-for", "0"] + a.storeArguments,
            extra: a.storeEnvironment)
        #expect(rotate.status == 0, "\(rotate)")
        let newKid = try #require(rotate.stdout.split(separator: " ").dropFirst(2).first.map(String.init), "\(rotate)")
        #expect(!before.contains(newKid))
        var servedByBoth = false
        for _ in 0..<50 where !servedByBoth {
            let (kidsA, kidsB) = (try await Self.kids(a), try await Self.kids(b))
            servedByBoth =
                kidsA.contains(newKid) && kidsB.contains(newKid) && kidsA.isSuperset(of: before)
                && kidsB.isSuperset(of: before)
            if !servedByBoth { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(servedByBoth, "within 10 s both replicas publish the new key and still the old one")
        let basic = Data("\(a.serviceClientID):\(a.serviceClientSecret)".utf8).base64EncodedString()
        let token = try await b.send(
            "POST", "/token", headers: ["Authorization": "Basic \(basic)"], form: [("grant_type", "client_credentials")]
        )
        let accessToken = try #require(try credentialJSON(token.text)["access_token"] as? String)
        #expect(
            try EmbeddedIdPEndToEndTests.segment(accessToken, 0)["kid"] as? String == newKid,
            "the other replica signs with the rotated key")
    }
}
