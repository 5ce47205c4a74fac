import Foundation
import KeylessAWS
@testable import KeylessCLI
@testable import KeylessClient
import KeylessCore
import KeylessFastPath
import KeylessHTTP
import KeylessIdP
import KeylessJOSE
import KeylessSecrets
import KeylessTestFakes
import KeylessTestSupport
import Logging
import Testing

/// Services and CI get AWS credentials with no person in the loop: the client_credentials grant (secret or
/// private_key_jwt), a token file, or a token command — run as the built binary with its own HOME against
/// `keyless idp`, glewlwyd and moto, and consumed by the AWS CLI and boto3.
@Suite("workload credentials", .serialized)
struct WorkloadCredentialsTests {
    static let account = "arn:aws:sts::123456789012:assumed-role"

    // MARK: - helpers

    /// Writes `text` to `path` with `mode`.
    static func write(_ text: String, to path: String, mode: Int) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// Writes `~/.aws/config` with one profile whose credential_process is `keyless ARGUMENTS`.
    static func writeProfile(_ harness: KeylessHarness, _ name: String, _ arguments: [String]) throws {
        let line = ([harness.binary] + arguments.map(quoted)).joined(separator: " ")
        try "[profile \(name)]\nregion = us-east-1\ncredential_process = \(line)\n"
            .write(toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
    }

    /// Quotes a word for the credential_process line when it needs it.
    static func quoted(_ word: String) -> String {
        word.contains(where: { $0 == " " || $0 == "'" || $0 == "\"" })
            ? "\"" + word.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : word
    }

    /// The caller's ARN as the AWS CLI sees it through the profile.
    static func cliArn(_ harness: KeylessHarness, profile: String) throws -> KeylessHarness.Run {
        try harness.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", profile, "--query", "Arn", "--output", "text"])
    }

    /// The caller's ARN as boto3 sees it through the profile.
    static func botoArn(_ harness: KeylessHarness, profile: String) throws -> KeylessHarness.Run {
        try harness.runProgram(
            Tooling.python(),
            [
                "-c",
                """
                import boto3, os
                s = boto3.Session(profile_name="\(profile)")
                print(s.client("sts", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).get_caller_identity()["Arn"])
                """,
            ])
    }

    static func trimmed(_ run: KeylessHarness.Run) -> String {
        run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A client_credentials access token for keyless idp's `deployer`, fetched directly (as a CI system would mint one).
    static func deployerToken(_ idp: EmbeddedIdP) async throws -> String {
        let basic = Data("\(idp.serviceClientID):\(idp.serviceClientSecret)".utf8).base64EncodedString()
        let answer = try await idp.send(
            "POST", "/token", headers: ["Authorization": "Basic \(basic)"], form: [("grant_type", "client_credentials")]
        )
        guard answer.status == 200 else {
            throw TestSupportError("token endpoint answered \(answer.status): \(answer.text)")
        }
        return try #require(try credentialJSON(answer.text)["access_token"] as? String)
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A private key made by openssl (PEM, 0600) and its public JWK, computed from openssl's own output.
    static func opensslKey(_ algorithm: String, directory: String, name: String) throws -> (pem: String, jwk: String) {
        let pem = directory + "/\(name).pem"
        let generate =
            algorithm == "RS256"
            ? ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem]
            : ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pem]
        let made = try PartnerProcess.run("openssl", generate, timeout: 60)
        guard made.status == 0 else { throw TestSupportError("openssl genpkey failed: \(made.output)") }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: pem)
        if algorithm == "RS256" {
            let modulus = try PartnerProcess.run("openssl", ["rsa", "-in", pem, "-noout", "-modulus"], timeout: 30)
            let hex = try #require(modulus.output.split(separator: "=").last).trimmingCharacters(
                in: .whitespacesAndNewlines)
            var bytes = Data()
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                bytes.append(try #require(UInt8(hex[index..<next], radix: 16)))
                index = next
            }
            return (pem, #"{"kty":"RSA","alg":"RS256","n":"\#(base64URL(bytes))","e":"AQAB"}"#)
        }
        let der = directory + "/\(name).pub.der"
        let exported = try PartnerProcess.run(
            "openssl", ["pkey", "-in", pem, "-pubout", "-outform", "DER", "-out", der], timeout: 30)
        guard exported.status == 0 else { throw TestSupportError("openssl pkey failed: \(exported.output)") }
        // SubjectPublicKeyInfo ends with 04 || X || Y.
        let point = try Data(contentsOf: URL(fileURLWithPath: der)).suffix(64)
        return (
            pem,
            #"{"kty":"EC","crv":"P-256","alg":"ES256","x":"\#(base64URL(point.prefix(32)))","y":"\#(base64URL(point.suffix(32)))"}"#
        )
    }

    /// Every output of `runs` is free of `secret`.
    static func expectNoSecret(
        _ secret: String, in runs: [KeylessHarness.Run], _ location: SourceLocation = #_sourceLocation
    ) {
        for run in runs {
            #expect(
                !run.stdout.contains(secret) && !run.stderr.contains(secret), "a secret appeared in output:\n\(run)",
                sourceLocation: location)
        }
    }

    // MARK: - client credentials

    @Test(
        "a service with a 0600 client secret file gets credentials from keyless idp that the AWS CLI, boto3, env and exec use; repeats come from the cache"
    )
    func clientSecretFile() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "deploy")
        let harness = try KeylessHarness(moto: moto)
        let secretFile = harness.home + "/deployer.secret"
        try Self.write(idp.serviceClientSecret + "\n", to: secretFile, mode: 0o600)
        let arguments = [
            "creds-process", "--client-credentials", "--issuer-url", idp.issuer, "--client-id", idp.serviceClientID,
            "--client-secret-file", secretFile, "--aws-role-arn", role,
        ]
        try Self.writeProfile(harness, "svc", arguments)
        let expected = "\(Self.account)/deploy/deployer"

        let cli = try Self.cliArn(harness, profile: "svc")
        #expect(cli.status == 0, "\(cli)")
        #expect(Self.trimmed(cli) == expected, "the session is named after the token's sub")
        let stsCalls = try moto.stsPostCount()
        #expect(stsCalls >= 2, "one AssumeRoleWithWebIdentity and the CLI's GetCallerIdentity")

        let boto = try Self.botoArn(harness, profile: "svc")
        #expect(boto.status == 0, "\(boto)")
        #expect(Self.trimmed(boto) == expected)
        #expect(
            try moto.stsPostCount() == stsCalls + 1,
            "boto3's GetCallerIdentity only: the credentials came from the cache")

        // The launcher alone (no keyless-cli to fall back to) answers: the fast path knows the workload's cache key.
        let cached = try harness.run(arguments, extra: ["KEYLESS_CLI": harness.home + "/no-such-keyless-cli"])
        #expect(cached.status == 0, "\(cached)")
        let cachedJSON = try credentialJSON(cached.stdout)
        #expect(try moto.stsPostCount() == stsCalls + 1, "no STS call for a cached answer")

        let env = try harness.run(["env", "--profile", "svc", "--format", "json"])
        #expect(env.status == 0, "\(env)")
        #expect(try credentialJSON(env.stdout)["AWS_ACCESS_KEY_ID"] as? String == cachedJSON["AccessKeyId"] as? String)

        let exec = try harness.run([
            "exec", "--profile", "svc", "--", "aws", "sts", "get-caller-identity", "--query", "Arn", "--output", "text",
        ])
        #expect(exec.status == 0, "\(exec)")
        #expect(Self.trimmed(exec) == expected)
        #expect(try moto.stsPostCount() == stsCalls + 2, "env and exec used the cache; only exec's child called STS")

        Self.expectNoSecret(idp.serviceClientSecret, in: [cli, boto, cached, env, exec])
    }

    @Test(
        "a wrong client secret fails with the provider's invalid_client and a hint, never starts a person's login, and is not logged even at -vvv"
    )
    func wrongSecretNeverLogsIn() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let harness = try KeylessHarness(moto: nil)
        let secretFile = harness.home + "/wrong.secret"
        try Self.write("not-the-secret-456", to: secretFile, mode: 0o600)
        let run = try harness.run(
            [
                "creds-process", "--client-credentials", "--issuer-url", idp.issuer, "--client-id", idp.serviceClientID,
                "--client-secret-file", secretFile, "--aws-role-arn", "arn:aws:iam::123456789012:role/deploy", "-vvv",
            ],
            extra: ["BROWSER": "/bin/false"])
        #expect(run.status == 5, "\(run)")
        #expect(run.stderr.contains("refused the client_credentials grant for deployer: invalid_client"), "\(run)")
        #expect(!run.stderr.contains("logging in"), "\(run)")
        #expect(run.stdout.isEmpty)
        #expect(
            run.stderr.contains("client_credentials request"), "-vvv logs the request (without its credentials): \(run)"
        )
        Self.expectNoSecret("not-the-secret-456", in: [run])
        Self.expectNoSecret(Data("deployer:not-the-secret-456".utf8).base64EncodedString(), in: [run])
    }

    @Test("a client secret file others can read is refused, before any network call, with the chmod that fixes it")
    func looseSecretFileRefused() throws {
        let harness = try KeylessHarness(moto: nil)
        let secretFile = harness.home + "/loose.secret"
        try Self.write("loose-secret-789", to: secretFile, mode: 0o644)
        // Port 1 on loopback: nothing listens, so any network attempt would fail with "Cannot reach".
        let run = try harness.run([
            "creds-process", "--client-credentials", "--issuer-url", "http://127.0.0.1:1", "--client-id", "svc",
            "--client-secret-file", secretFile, "--aws-role-arn", "arn:aws:iam::123456789012:role/deploy",
        ])
        #expect(run.status == 2, "\(run)")
        #expect(run.stderr.contains("has mode 644"), "\(run)")
        #expect(run.stderr.contains("Run: chmod 600 '\(secretFile)'"), "\(run)")
        #expect(!run.stderr.contains("Cannot reach"), "\(run)")
        #expect(run.stdout.isEmpty)
        Self.expectNoSecret("loose-secret-789", in: [run])

        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: secretFile)
        let fixed = try harness.run([
            "creds-process", "--client-credentials", "--issuer-url", "http://127.0.0.1:1", "--client-id", "svc",
            "--client-secret-file", secretFile, "--aws-role-arn", "arn:aws:iam::123456789012:role/deploy",
        ])
        #expect(
            fixed.status == 5 && fixed.stderr.contains("Cannot reach"), "after the chmod the file is used: \(fixed)")
    }

    @Test(
        "private_key_jwt with RS256 and ES256 keys registered as public JWKs in idp.yaml gives credentials the AWS CLI and boto3 use; an unregistered key is refused"
    )
    func privateKeyJWT() async throws {
        let keys = try makeTemporaryDirectory(prefix: "keyless-workload-keys")
        defer { try? FileManager.default.removeItem(atPath: keys) }
        let rsa = try Self.opensslKey("RS256", directory: keys, name: "rsa")
        let ec = try Self.opensslKey("ES256", directory: keys, name: "ec")
        let stranger = try Self.opensslKey("ES256", directory: keys, name: "stranger")
        let clients = """
              - id: svc-rsa
                jwks: '{"keys":[\(rsa.jwk)]}'
                grants: [client_credentials]
                audience: sts.amazonaws.com
              - id: svc-ec
                jwks: '{"keys":[\(ec.jwk)]}'
                grants: [client_credentials]
                audience: sts.amazonaws.com
            """
        let idp = try await EmbeddedIdP.start(extraClients: clients)
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "deploy")
        let harness = try KeylessHarness(moto: moto)

        for (client, key) in [("svc-rsa", rsa.pem), ("svc-ec", ec.pem)] {
            try Self.writeProfile(
                harness, client,
                [
                    "creds-process", "--client-credentials", "--issuer-url", idp.issuer, "--client-id", client,
                    "--client-key-file", key, "--aws-role-arn", role,
                ])
            let cli = try Self.cliArn(harness, profile: client)
            #expect(cli.status == 0, "\(client): \(cli)")
            #expect(Self.trimmed(cli) == "\(Self.account)/deploy/\(client)")
            let boto = try Self.botoArn(harness, profile: client)
            #expect(boto.status == 0, "\(client): \(boto)")
            #expect(Self.trimmed(boto) == "\(Self.account)/deploy/\(client)")
        }

        let refused = try harness.run([
            "creds-process", "--client-credentials", "--issuer-url", idp.issuer, "--client-id", "svc-ec",
            "--client-key-file", stranger.pem, "--aws-role-arn", role, "--duration", "900",
        ])
        #expect(refused.status == 5, "\(refused)")
        #expect(refused.stderr.contains("invalid_client"), "\(refused)")
        #expect(refused.stderr.contains("signature does not verify"), "\(refused)")
    }

    @Test(
        "a client assertion names the client as iss and sub, the token endpoint as aud, a fresh jti each time, and lives one minute"
    )
    func clientAssertionClaims() throws {
        let key = try SigningKey.generate(algorithm: "ES256")
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let first = try ClientAssertion.make(
            clientID: "svc", audience: "https://idp.example.com/token", key: key, now: now)
        let second = try ClientAssertion.make(
            clientID: "svc", audience: "https://idp.example.com/token", key: key, now: now)
        let parts = try #require(JWS.parse(first))
        #expect(parts.header.alg == "ES256")
        let claims = try #require(try JSONSerialization.jsonObject(with: parts.payload) as? [String: Any])
        #expect(claims["iss"] as? String == "svc")
        #expect(claims["sub"] as? String == "svc")
        #expect(claims["aud"] as? String == "https://idp.example.com/token")
        #expect((claims["iat"] as? Int) == 1_800_000_000)
        #expect((claims["exp"] as? Int) == 1_800_000_060)
        let secondParts = try #require(JWS.parse(second))
        let secondClaims = try #require(try JSONSerialization.jsonObject(with: secondParts.payload) as? [String: Any])
        #expect(claims["jti"] as? String != nil && claims["jti"] as? String != secondClaims["jti"] as? String)
        let jwk = try key.publicJWKMembers()
        let verifier = try #require(VerificationKey(jwk: jwk))
        #expect(verifier.verify(parts.signature, for: parts.signingInput))
    }

    // MARK: - token file and token command

    @Test(
        "a web identity token file works like client credentials, and a rotated file is re-read once the cache is cleared"
    )
    func tokenFileRotation() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "ci")
        let harness = try KeylessHarness(moto: moto)
        let tokenFile = harness.home + "/token"
        let firstToken = try await Self.deployerToken(idp)
        try Self.write(firstToken, to: tokenFile, mode: 0o644)
        let arguments = ["creds-process", "--web-identity-token-file", tokenFile, "--aws-role-arn", role]
        try Self.writeProfile(harness, "ci", arguments)

        let cli = try Self.cliArn(harness, profile: "ci")
        #expect(cli.status == 0, "\(cli)")
        #expect(Self.trimmed(cli) == "\(Self.account)/ci/deployer")
        let boto = try Self.botoArn(harness, profile: "ci")
        #expect(boto.status == 0, "\(boto)")
        #expect(Self.trimmed(boto) == "\(Self.account)/ci/deployer")
        let first = try harness.run(arguments)
        #expect(first.status == 0, "\(first)")
        let stsCalls = try moto.stsPostCount()

        // The file rotates; the cached credentials still answer until the cache is cleared.
        try Self.write("not-a-jwt", to: tokenFile, mode: 0o644)
        let stillCached = try harness.run(arguments)
        #expect(stillCached.stdout == first.stdout, "\(stillCached)")
        try FileManager.default.removeItem(atPath: harness.storeDirectory)
        let broken = try harness.run(arguments)
        #expect(broken.status == 3, "the rotated content was read: \(broken)")
        #expect(
            broken.stderr.contains("The token from the web identity token file \(tokenFile) is not a JWT"), "\(broken)")

        let secondToken = try await Self.deployerToken(idp)
        #expect(secondToken != firstToken)
        try Self.write(secondToken + "\n", to: tokenFile, mode: 0o644)
        let second = try harness.run(arguments)
        #expect(second.status == 0, "\(second)")
        #expect(try moto.stsPostCount() == stsCalls + 1, "one new AssumeRoleWithWebIdentity with the new token")
        #expect(
            try credentialJSON(second.stdout)["AccessKeyId"] as? String != credentialJSON(first.stdout)["AccessKeyId"]
                as? String)
        Self.expectNoSecret(secondToken, in: [cli, boto, first, broken, second])
    }

    @Test(
        "--token-command's trimmed stdout is the token; a failing command's exit status and stderr are reported, a hanging one is stopped"
    )
    func tokenCommand() async throws {
        let idp = try await EmbeddedIdP.start()
        defer { idp.stopAndRemove() }
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "job")
        let harness = try KeylessHarness(moto: moto)
        let tokenFile = harness.home + "/minted"
        try Self.write("  " + (try await Self.deployerToken(idp)) + "\n\n", to: tokenFile, mode: 0o600)
        try Self.writeProfile(
            harness, "job",
            [
                "creds-process", "--token-command", "cat '\(tokenFile)'", "--issuer-url", idp.issuer, "--aws-role-arn",
                role,
            ])

        let cli = try Self.cliArn(harness, profile: "job")
        #expect(cli.status == 0, "\(cli)")
        #expect(Self.trimmed(cli) == "\(Self.account)/job/deployer")

        let failing = try harness.run([
            "creds-process", "--token-command", "echo 'vault: permission denied' >&2; exit 3", "--aws-role-arn", role,
        ])
        #expect(failing.status == 3, "\(failing)")
        #expect(
            failing.stderr.contains("The --token-command exited with status 3: vault: permission denied"), "\(failing)")
        #expect(failing.stdout.isEmpty)

        let hanging = try harness.run([
            "creds-process", "--token-command", "sleep 600", "--token-command-timeout", "1", "--aws-role-arn", role,
        ])
        #expect(hanging.status == 3, "\(hanging)")
        #expect(hanging.stderr.contains("did not finish within 1 s and was stopped"), "\(hanging)")

        let wrongIssuer = try harness.run([
            "creds-process", "--token-command", "cat '\(tokenFile)'", "--issuer-url", "https://other.example.com",
            "--aws-role-arn", role,
        ])
        #expect(wrongIssuer.status == 3, "\(wrongIssuer)")
        #expect(
            wrongIssuer.stderr.contains("was issued by \(idp.issuer), not by --issuer-url https://other.example.com"),
            "\(wrongIssuer)")
    }

    @Test(
        "workload flags that contradict each other are refused by validate() with ArgumentParser's usage exit (64) and the reason"
    )
    func flagChecks() throws {
        let harness = try KeylessHarness(moto: nil)
        let role = ["--aws-role-arn", "arn:aws:iam::123456789012:role/deploy"]
        let cases: [([String], String)] = [
            (
                ["--client-credentials", "--issuer-url", "https://idp.example.com", "--client-id", "svc"],
                "exactly one of --client-secret-file"
            ),
            (
                ["--client-credentials", "--client-id", "svc", "--client-secret-file", "/x"],
                "needs --issuer-url and --client-id"
            ),
            (
                ["--web-identity-token-file", "/t", "--token-command", "true"],
                "Use one of --web-identity-token-file, --token-command"
            ),
            (
                ["--client-key-file", "/k", "--issuer-url", "https://idp.example.com", "--client-id", "svc"],
                "use them with --client-credentials"
            ),
            (["--web-identity-token-file", "/t", "--device"], "never log in interactively"),
        ]
        for (flags, message) in cases {
            let run = try harness.run(["creds-process"] + flags + role)
            #expect(run.status == 64, "\(flags): \(run)")
            #expect(run.stderr.contains(message), "\(flags): \(run)")
            #expect(run.stdout.isEmpty)
        }
    }

    // MARK: - cache keys

    @Test("a workload's cache entries and lock never share a name with a person's, and a person's names are unchanged")
    func cacheKeys() {
        let role = "arn:aws:iam::123456789012:role/dev"
        let person = CacheKey(issuer: "https://idp.example.com", clientID: "cli", roleArn: role)
        // Digests as they were before workloads existed: people keep their cached credentials across the upgrade.
        #expect(person.credentialsEntry == "sts/bf6094f81b1f31a065643a4fab0365da")
        #expect(
            CacheKey(
                issuer: "https://idp.example.com", clientID: "cli", roleArn: role, durationSeconds: 3600,
                server: "https://keyless.example.com"
            )
            .credentialsEntry == "sts/bf503b3f43ec2c661d591f4c52a4951f")
        #expect(person.tokenEntry == "oidc/2397d118f6ec10adef4db0583a6bda9e")
        #expect(person.lockName == "2397d118f6ec10adef4db0583a6bda9e.lock")

        let service = CacheKey(
            issuer: "https://idp.example.com", clientID: "cli", roleArn: role,
            workload: CacheKey.workloadSource(clientCredentials: true, tokenFile: nil, tokenCommand: nil))
        let file = CacheKey(
            issuer: "", clientID: "", roleArn: role,
            workload: CacheKey.workloadSource(clientCredentials: false, tokenFile: "/var/run/token", tokenCommand: nil))
        let command = CacheKey(
            issuer: "", clientID: "", roleArn: role,
            workload: CacheKey.workloadSource(clientCredentials: false, tokenFile: nil, tokenCommand: "mint"))
        let entries = [person, service, file, command].map(\.credentialsEntry)
        #expect(Set(entries).count == 4, "\(entries)")
        #expect(Set([person, service, file, command].map(\.lockName)).count == 4)
        #expect(
            CacheKey.workloadSource(clientCredentials: false, tokenFile: "token", tokenCommand: nil) == "token-file:"
                + CacheKey.absolutePath("token"))
        #expect(CacheKey.absolutePath("token").hasPrefix("/"))
    }

    @Test("the session is named after sub, else client_id, else azp, sanitised for STS")
    func sessionSubject() throws {
        func claims(_ json: String) throws -> WorkloadClaims {
            try JSONDecoder().decode(WorkloadClaims.self, from: Data(json.utf8))
        }
        #expect(
            try claims(#"{"sub":"system:serviceaccount:ci:runner","client_id":"c","azp":"a"}"#).sessionSubject
                == "system:serviceaccount:ci:runner")
        #expect(try claims(#"{"client_id":"c","azp":"a"}"#).sessionSubject == "c")
        #expect(try claims(#"{"azp":"a"}"#).sessionSubject == "a")
        #expect(SessionName.sanitize("system:serviceaccount:ci:runner") == "system-serviceaccount-ci-runner")
    }

    // MARK: - the broker in process

    /// An unsigned JWT with these claims (STS is a stub here; keyless itself never trusts a workload token's claims).
    static func unsignedJWT(_ claims: String) -> String {
        base64URL(Data(#"{"alg":"RS256","typ":"JWT"}"#.utf8)) + "." + base64URL(Data(claims.utf8)) + ".c2ln"
    }

    /// A workload broker over a memory store and the stub STS; its lock directory is under `directory`.
    static func broker(
        http: StubTransport, store: MemorySecretStore, directory: String, tokens: @escaping @Sendable () -> String
    ) throws -> CredentialBroker {
        let environment = KeylessCore.Environment(["KEYLESS_NO_TTY": "1"])
        let context = ClientContext(
            environment: environment, paths: KeylessPaths(config: directory, state: directory, home: directory),
            terminal: Terminal(environment: environment), clock: .fixed(Date(timeIntervalSince1970: 1_800_000_000)),
            http: http, logger: Logger(label: "test"))
        let login = LoginSettings(oidc: .init(issuer: "", clientID: ""), workload: .tokenFile("/not/read/in/this/test"))
        return CredentialBroker(
            login: login, store: store, context: context, tokenSource: ClosureTokenSource { tokens() })
    }

    final class Counter: @unchecked Sendable {
        // @unchecked: `value` is only touched under `lock`.
        private let lock = NSLock()
        private var count = 0
        func next() -> Int {
            lock.withLock {
                count += 1; return count
            }
        }
        var value: Int { lock.withLock { count } }
    }

    @Test(
        "the broker asks the token source once, names the session after client_id when there is no sub, and answers the repeat from the cache"
    )
    func brokerCachesWorkloadCredentials() async throws {
        let sts = StubTransport(
            status: 200,
            body: """
                <AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWORKLOAD</AccessKeyId>\
                <SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2027-01-15T12:00:00Z</Expiration></Credentials>\
                <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/ci/robot</Arn></AssumedRoleUser></AssumeRoleWithWebIdentityResult>\
                </AssumeRoleWithWebIdentityResponse>
                """)
        let calls = Counter()
        let token = Self.unsignedJWT(
            #"{"iss":"https://idp.example.com","aud":"sts.amazonaws.com","client_id":"robot","exp":1800003600}"#)
        let directory = try makeTemporaryDirectory(prefix: "keyless-broker")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Self.broker(http: sts, store: MemorySecretStore(), directory: directory) {
            _ = calls.next(); return token
        }
        let role = RoleSettings(roleArn: "arn:aws:iam::123456789012:role/ci", stsEndpoint: "http://127.0.0.1:9")
        let first = try await broker.credentials(for: role)
        let second = try await broker.credentials(for: role)
        #expect(first.accessKeyId == "ASIAWORKLOAD")
        #expect(second == first)
        #expect(calls.value == 1)
        #expect(sts.requests.count == 1)
        #expect(sts.requests.first?.body.contains("RoleSessionName=robot&") == true, "\(sts.requests)")
    }

    @Test(
        "when STS rejects a workload token, the error names the token's aud and says the IAM OIDC provider must list it"
    )
    func brokerExplainsAudience() async throws {
        let sts = StubTransport(
            status: 400,
            body: """
                <ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Incorrect token audience</Message></Error></ErrorResponse>
                """)
        let token = Self.unsignedJWT(
            #"{"iss":"https://idp.example.com","aud":"my-service","sub":"svc","exp":1800003600}"#)
        let directory = try makeTemporaryDirectory(prefix: "keyless-broker")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broker = try Self.broker(http: sts, store: MemorySecretStore(), directory: directory) { token }
        do {
            _ = try await broker.credentials(
                for: RoleSettings(roleArn: "arn:aws:iam::123456789012:role/ci", stsEndpoint: "http://127.0.0.1:9"))
            Issue.record("STS refused, yet credentials came back")
        } catch let error as KeylessError {
            #expect(error.code == .stsInvalidIdentityToken)
            #expect(error.reason.contains("Incorrect token audience"), "\(error)")
            #expect(error.reason.contains("The token's aud is my-service"), "\(error)")
            #expect(
                error.hint?.contains(
                    "The IAM OIDC provider for https://idp.example.com must list that aud as a client id") == true,
                "\(error)")
        }
    }

    // MARK: - glewlwyd

    @Test("a service with client credentials against glewlwyd gets credentials the AWS CLI and boto3 use")
    func glewlwydClientCredentials() async throws {
        guard Tooling.have("glewlwyd") else {
            print("SKIPPED: glewlwyd client_credentials test: glewlwyd is not installed (scripts/test installs it)")
            return
        }
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        let secretFile = harness.home + "/svc.secret"
        try Self.write(partners.idp.serviceClientSecret, to: secretFile, mode: 0o600)
        // glewlwyd's svc client may ask for scope aws; its JWT access token has aud "aws" and sub "svc" (no id_token).
        try Self.writeProfile(
            harness, "svc",
            [
                "creds-process", "--client-credentials", "--issuer-url", partners.idp.issuer,
                "--client-id", partners.idp.serviceClientID, "--client-secret-file", secretFile,
                "--scopes", "aws", "--aws-role-arn", partners.roleArn,
            ])
        let cli = try Self.cliArn(harness, profile: "svc")
        #expect(cli.status == 0, "\(cli)")
        #expect(Self.trimmed(cli) == "\(Self.account)/dev/svc")
        let boto = try Self.botoArn(harness, profile: "svc")
        #expect(boto.status == 0, "\(boto)")
        #expect(Self.trimmed(boto) == "\(Self.account)/dev/svc")
        Self.expectNoSecret(partners.idp.serviceClientSecret, in: [cli, boto])
    }
}
