import Foundation
import KeylessAWS
import KeylessCore
import KeylessHTTP
import KeylessSigV4
import KeylessTestFakes
import KeylessTestSupport
import Logging
import Synchronization
import Testing

// MARK: - Fixtures

/// The fixed "now" of the unit tests: 2026-09-21T10:13:20Z.
private let chainNow = Date(timeIntervalSince1970: 1_790_000_000)

private func iso(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

private let chainLogger = Logger(label: "keyless.tests.aws.chain", factory: { _ in SwiftLogNoOpLogHandler() })

/// One request a stub transport received.

/// The failure a stub throws to play an address nobody answers at.
private struct NobodyListens: Error, CustomStringConvertible {
    var url: String
    var description: String { "connection refused by \(url) (stub)" }
}

private func json(_ object: [String: String], status: Int = 200) -> HTTPResponseData {
    HTTPResponseData(
        status: status, headers: ["content-type": "application/json"],
        body: Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])))
}

private func text(_ status: Int, _ body: String = "") -> HTTPResponseData {
    HTTPResponseData(status: status, body: Array(body.utf8))
}

private func metadataCredentials(_ accessKey: String, expiration: String = "2026-09-21T18:00:00Z") -> HTTPResponseData {
    json([
        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": accessKey, "SecretAccessKey": "\(accessKey)-SECRET",
        "Token": "\(accessKey)-TOKEN", "Expiration": expiration,
    ])
}

private let stsXML = """
    <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
      <AssumeRoleWithWebIdentityResult>
        <Credentials>
          <SessionToken>WEBIDENTITY-TOKEN</SessionToken>
          <SecretAccessKey>WEBIDENTITY-SECRET</SecretAccessKey>
          <Expiration>2026-09-21T13:26:40Z</Expiration>
          <AccessKeyId>ASIAWEBIDENTITY</AccessKeyId>
        </Credentials>
      </AssumeRoleWithWebIdentityResult>
    </AssumeRoleWithWebIdentityResponse>
    """

/// Every AWS endpoint the chain may ask, played in memory: STS, the container agents, and IMDSv2 (which, with
/// `imdsV1Only`, plays an IMDSv1-only service that refuses the token request but answers plain GETs).
private func fakeAWS(containerAuthorization: String? = nil, imdsV1Only: Bool = false) -> StubTransport {
    StubTransport { request in
        let url = request.url
        if url.hasPrefix("https://sts.") && request.method == "POST" {
            return text(200, stsXML)
        }
        if url.hasPrefix("http://169.254.170.2/") || url.hasPrefix("http://169.254.170.23/")
            || url.hasPrefix("http://127.0.0.1:9911/")
            || url.hasPrefix("http://[::1]:9911/") || url.hasPrefix("http://localhost:9911/")
            || url.hasPrefix("https://creds.example.test/")
        {
            if let containerAuthorization, request.headers["authorization"] != containerAuthorization {
                return text(403)
            }
            return metadataCredentials("ASIACONTAINER")
        }
        if url.hasPrefix("http://169.254.169.254/") {
            let path = String(url.dropFirst("http://169.254.169.254".count))
            if path == "/latest/api/token" {
                guard request.method == "PUT", !imdsV1Only else { return text(403) }
                return request.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
                    ? text(200, "IMDS-SESSION") : text(400)
            }
            guard imdsV1Only || request.headers["x-aws-ec2-metadata-token"] == "IMDS-SESSION" else { return text(401) }
            if path == "/latest/meta-data/iam/security-credentials/" { return text(200, "server-role\n") }
            if path == "/latest/meta-data/iam/security-credentials/server-role" {
                return metadataCredentials("ASIAIMDS")
            }
            return text(404)
        }
        throw NobodyListens(url: url)
    }
}

/// A temporary HOME with `.aws` files written by the test.
private struct Home {
    let path: String

    init() throws {
        path = try makeTemporaryDirectory(prefix: "keyless-chain")
    }

    func write(_ relative: String, _ contents: String) throws {
        let full = relative.hasPrefix("/") ? relative : path + "/" + relative
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(contents.utf8).write(to: URL(fileURLWithPath: full))
    }

    func credentials(_ text: String) throws { try write(".aws/credentials", text) }
    func config(_ text: String) throws { try write(".aws/config", text) }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

private func chain(
    _ environment: [String: String], home: Home, http: any HTTPTransport, profile: String? = nil,
    clock: WallClock = .fixed(chainNow)
) -> DefaultCredentialChain {
    DefaultCredentialChain(
        environment: Environment(environment), home: home.path, http: http, clock: clock, profile: profile)
}

/// The `KeylessError` `body` throws; records an issue when it throws something else or nothing.
private func chainError(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> ResolvedCredentials
) async -> KeylessError? {
    do {
        let value = try await body()
        Issue.record("expected a KeylessError, got \(value)", sourceLocation: sourceLocation)
    } catch let error as KeylessError {
        return error
    } catch {
        Issue.record("expected a KeylessError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

private let noIMDS = ["AWS_EC2_METADATA_DISABLED": "true"]

// MARK: - Sources

@Suite("The credential chain reads each source the way botocore does")
struct CredentialChainSourceTests {
    @Test("environment keys come with their session token and expiration, and nothing is fetched")
    func environmentKeys() async throws {
        let home = try Home()
        defer { home.remove() }
        let http = fakeAWS()
        let found = try await chain(
            [
                "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "ENV-SECRET", "AWS_SESSION_TOKEN": "ENV-TOKEN",
                "AWS_CREDENTIAL_EXPIRATION": "2026-09-21T13:00:00Z",
            ], home: home, http: http
        ).resolve(logger: chainLogger)
        #expect(
            found
                == ResolvedCredentials(
                    credentials: SigV4Credentials(
                        accessKeyID: "AKIDENV", secretAccessKey: "ENV-SECRET", sessionToken: "ENV-TOKEN"),
                    expiration: iso("2026-09-21T13:00:00Z"), source: "environment"))
        #expect(http.requests.isEmpty)
    }

    @Test(
        "one environment key without the other is a configInvalid error naming the missing variable, with no secret in it"
    )
    func partialEnvironment() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials("[default]\naws_access_key_id = AKIDFILE\naws_secret_access_key = FILE-SECRET\n")
        let keyOnly = await chainError {
            try await chain(["AWS_ACCESS_KEY_ID": "AKIDENV"], home: home, http: fakeAWS()).resolve(logger: chainLogger)
        }
        #expect(keyOnly?.code == .configInvalid)
        #expect(keyOnly?.reason.contains("AWS_SECRET_ACCESS_KEY is not") == true)
        let secretOnly = await chainError {
            try await chain(["AWS_SECRET_ACCESS_KEY": "VERY-SECRET-VALUE"], home: home, http: fakeAWS()).resolve(
                logger: chainLogger)
        }
        #expect(secretOnly?.code == .configInvalid)
        #expect(secretOnly?.reason.contains("AWS_ACCESS_KEY_ID is not") == true)
        #expect(secretOnly.map { "\($0)" }?.contains("VERY-SECRET-VALUE") == false)
        let badExpiry = await chainError {
            try await chain(
                [
                    "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S",
                    "AWS_CREDENTIAL_EXPIRATION": "tomorrow",
                ], home: home,
                http: fakeAWS()
            ).resolve(logger: chainLogger)
        }
        #expect(badExpiry?.code == .configInvalid)
    }

    @Test("static keys come from the credentials file's [default] before the config file's [default]")
    func sharedFiles() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.config(
            "[default]\nregion = eu-west-1\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = CONFIG-SECRET\n")
        let fromConfig = try await chain(noIMDS, home: home, http: fakeAWS()).resolve(logger: chainLogger)
        #expect(fromConfig.credentials == SigV4Credentials(accessKeyID: "AKIDCONFIG", secretAccessKey: "CONFIG-SECRET"))
        #expect(fromConfig.source == "profile default")
        #expect(fromConfig.expiration == nil)

        try home.credentials(
            "[default]\naws_access_key_id = AKIDCREDS\naws_secret_access_key = CREDS-SECRET\naws_session_token = CREDS-TOKEN\n"
        )
        let fromCredentials = try await chain(noIMDS, home: home, http: fakeAWS()).resolve(logger: chainLogger)
        #expect(
            fromCredentials.credentials
                == SigV4Credentials(
                    accessKeyID: "AKIDCREDS", secretAccessKey: "CREDS-SECRET", sessionToken: "CREDS-TOKEN"))
        #expect(fromCredentials.source == "profile default")
    }

    @Test(
        "AWS_PROFILE and an explicit profile name the profile: [x] in the credentials file, [profile x] in the config file"
    )
    func namedProfiles() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials(
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = S\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = S\n"
        )
        try home.config(
            "[profile ops]\naws_access_key_id = AKIDOPS\naws_secret_access_key = S\n[ops]\naws_access_key_id = AKIDNOTAPROFILE\naws_secret_access_key = S\n"
        )
        let dev = try await chain(noIMDS.merging(["AWS_PROFILE": "dev"]) { $1 }, home: home, http: fakeAWS()).resolve(
            logger: chainLogger)
        #expect(dev.credentials.accessKeyID == "AKIDDEV")
        #expect(dev.source == "profile dev")
        let ops = try await chain(
            noIMDS.merging(["AWS_PROFILE": "dev"]) { $1 }, home: home, http: fakeAWS(), profile: "ops"
        ).resolve(logger: chainLogger)
        #expect(ops.credentials.accessKeyID == "AKIDOPS")
        #expect(ops.source == "profile ops")
    }

    @Test("an explicit profile ignores keys in the environment, as botocore's Session(profile=) does")
    func explicitProfileIgnoresEnvironment() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials("[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = S\n")
        let environment = ["AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S"]
        #expect(
            try await chain(environment, home: home, http: fakeAWS()).resolve(logger: chainLogger).source
                == "environment")
        let explicit = try await chain(environment, home: home, http: fakeAWS(), profile: "default").resolve(
            logger: chainLogger)
        #expect(explicit.credentials.accessKeyID == "AKIDDEFAULT")
    }

    @Test("a named profile in neither file is a configInvalid error; a missing default profile moves on down the chain")
    func missingProfiles() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials("[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = S\n")
        let viaVariable = await chainError {
            try await chain(
                ["AWS_PROFILE": "ghost", "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S"], home: home,
                http: fakeAWS()
            )
            .resolve(logger: chainLogger)
        }
        #expect(viaVariable?.code == .configInvalid)
        #expect(viaVariable?.reason.contains("AWS_PROFILE names the AWS profile 'ghost'") == true)
        let explicit = await chainError {
            try await chain([:], home: home, http: fakeAWS(), profile: "ghost").resolve(logger: chainLogger)
        }
        #expect(explicit?.reason.contains("'ghost'") == true)
        let namedDefault = await chainError {
            try await chain(["AWS_PROFILE": "default"], home: home, http: fakeAWS()).resolve(logger: chainLogger)
        }
        #expect(namedDefault?.reason.contains("'default'") == true)
        // No [default] anywhere and none named: instance metadata answers.
        let fallback = try await chain([:], home: home, http: fakeAWS()).resolve(logger: chainLogger)
        #expect(fallback.source == "instance-metadata")
    }

    @Test("AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE (with ~) replace the default paths")
    func filePathsFromEnvironment() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials("[default]\naws_access_key_id = AKIDIGNORED\naws_secret_access_key = S\n")
        try home.write("elsewhere/creds", "[default]\naws_access_key_id = AKIDELSEWHERE\naws_secret_access_key = S\n")
        try home.write("elsewhere/conf", "[profile cfg]\naws_access_key_id = AKIDCONF\naws_secret_access_key = S\n")
        let environment = noIMDS.merging([
            "AWS_SHARED_CREDENTIALS_FILE": "~/elsewhere/creds", "AWS_CONFIG_FILE": home.path + "/elsewhere/conf",
        ]) { $1 }
        #expect(
            try await chain(environment, home: home, http: fakeAWS()).resolve(logger: chainLogger).credentials
                .accessKeyID == "AKIDELSEWHERE")
        #expect(
            try await chain(environment, home: home, http: fakeAWS(), profile: "cfg").resolve(logger: chainLogger)
                .credentials.accessKeyID == "AKIDCONF")
    }

    @Test("a file botocore refuses, and a profile with a key id but no secret, are configInvalid errors")
    func brokenFiles() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.credentials("[default]\naws_access_key_id = AKIDONLY\n")
        let partial = await chainError {
            try await chain(noIMDS, home: home, http: fakeAWS()).resolve(logger: chainLogger)
        }
        #expect(partial?.code == .configInvalid)
        #expect(partial?.reason.contains("aws_secret_access_key") == true)
        try home.credentials("[default]\naws_access_key_id = A\naws_access_key_id = B\n")
        let duplicate = await chainError {
            try await chain(noIMDS, home: home, http: fakeAWS()).resolve(logger: chainLogger)
        }
        #expect(duplicate?.code == .configInvalid)
        #expect(duplicate?.reason.contains("line 3") == true)
    }

    @Test("role chaining, SSO, credential_process and login_session profiles are refused as unsupported, not skipped")
    func unsupportedProfiles() async throws {
        let home = try Home()
        defer { home.remove() }
        let cases = [
            ("role_arn = arn:aws:iam::123456789012:role/r\nsource_profile = base", "role chaining"),
            ("role_arn = arn:aws:iam::123456789012:role/r\ncredential_source = Ec2InstanceMetadata", "role chaining"),
            ("sso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Admin", "SSO"),
            ("credential_process = /usr/bin/get-creds", "credential_process"),
            ("login_session = arn:aws:iam::123456789012:user/me", "login_session"),
        ]
        for (settings, phrase) in cases {
            try home.config(
                "[profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = S\n[profile x]\n\(settings)\n")
            let error = await chainError {
                try await chain([:], home: home, http: fakeAWS(), profile: "x").resolve(logger: chainLogger)
            }
            #expect(error?.code == .configInvalid, "\(settings)")
            #expect(error?.reason.contains(phrase) == true, "\(settings): \(String(describing: error))")
            #expect(error?.reason.contains("not support") == true)
        }
        // credential_process comes after static keys in the credentials file, as in botocore.
        try home.credentials("[x]\naws_access_key_id = AKIDX\naws_secret_access_key = S\n")
        #expect(
            try await chain([:], home: home, http: fakeAWS(), profile: "x").resolve(logger: chainLogger).credentials
                .accessKeyID == "AKIDX")
    }

    @Test("web identity from the environment re-reads the token file on every resolve and asks the regional STS")
    func webIdentityFromEnvironment() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.write("token", "first.jwt.token\n")
        let http = fakeAWS()
        let environment = [
            "AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/server",
            "AWS_REGION": "eu-central-1",
        ]
        let provider = chain(environment, home: home, http: http)
        let found = try await provider.resolve(logger: chainLogger)
        #expect(
            found
                == ResolvedCredentials(
                    credentials: SigV4Credentials(
                        accessKeyID: "ASIAWEBIDENTITY", secretAccessKey: "WEBIDENTITY-SECRET",
                        sessionToken: "WEBIDENTITY-TOKEN"),
                    expiration: iso("2026-09-21T13:26:40Z"), source: "web-identity"))
        try home.write("token", "second.jwt.token")
        _ = try await provider.resolve(logger: chainLogger)

        let requests = http.requests
        try #require(requests.count == 2)
        #expect(requests.allSatisfy { $0.url == "https://sts.eu-central-1.amazonaws.com" && $0.method == "POST" })
        let first = FormEncoding.decode(requests[0].body)
        #expect(first["Action"] == "AssumeRoleWithWebIdentity")
        #expect(first["RoleArn"] == "arn:aws:iam::123456789012:role/server")
        #expect(first["WebIdentityToken"] == "first.jwt.token")
        #expect(first["RoleSessionName"] == "keyless-server-1790000000")
        #expect(FormEncoding.decode(requests[1].body)["WebIdentityToken"] == "second.jwt.token")

        let named = fakeAWS()
        _ = try await chain(
            environment.merging(["AWS_ROLE_SESSION_NAME": "access-server"]) { $1 }, home: home, http: named
        ).resolve(logger: chainLogger)
        #expect(named.requests.first.map { FormEncoding.decode($0.body)["RoleSessionName"] } == "access-server")
    }

    @Test("web identity from a profile's role_arn and web_identity_token_file; a token file without a role is an error")
    func webIdentityFromProfile() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.write("token", "profile.jwt.token")
        try home.config(
            "[default]\nregion = ap-southeast-2\nrole_arn = arn:aws:iam::123456789012:role/p\nweb_identity_token_file = ~/token\n"
        )
        let http = fakeAWS()
        let found = try await chain([:], home: home, http: http).resolve(logger: chainLogger)
        #expect(found.source == "web-identity")
        #expect(http.requests.first?.url == "https://sts.ap-southeast-2.amazonaws.com")
        #expect(
            http.requests.first.map { FormEncoding.decode($0.body)["RoleArn"] } == "arn:aws:iam::123456789012:role/p")

        let emptyHome = try Home()
        defer { emptyHome.remove() }
        let noRole = await chainError {
            try await chain(["AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token"], home: emptyHome, http: fakeAWS())
                .resolve(logger: chainLogger)
        }
        #expect(noRole?.code == .configInvalid)
        #expect(noRole?.reason.contains("no role") == true)
        let missingFile = await chainError {
            try await chain(
                [
                    "AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/absent",
                    "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/p",
                ], home: home,
                http: fakeAWS()
            ).resolve(logger: chainLogger)
        }
        #expect(missingFile?.code == .configInvalid)
        let badArn = await chainError {
            try await chain(
                ["AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token", "AWS_ROLE_ARN": "server-role"], home: home,
                http: fakeAWS()
            )
            .resolve(logger: chainLogger)
        }
        #expect(badArn?.code == .configInvalid)
    }

    @Test("the container endpoint is asked at 169.254.170.2 + the relative URI with AWS_CONTAINER_AUTHORIZATION_TOKEN")
    func containerWithToken() async throws {
        let home = try Home()
        defer { home.remove() }
        let http = fakeAWS(containerAuthorization: "Basic c2VjcmV0")
        let found = try await chain(
            [
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/8f1e",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "Basic c2VjcmV0",
            ],
            home: home, http: http
        ).resolve(logger: chainLogger)
        #expect(
            found
                == ResolvedCredentials(
                    credentials: SigV4Credentials(
                        accessKeyID: "ASIACONTAINER", secretAccessKey: "ASIACONTAINER-SECRET",
                        sessionToken: "ASIACONTAINER-TOKEN"),
                    expiration: iso("2026-09-21T18:00:00Z"), source: "container"))
        #expect(http.requests.map(\.url) == ["http://169.254.170.2/v2/credentials/8f1e"])
        #expect(http.requests.first?.headers["authorization"] == "Basic c2VjcmV0")

        let refused = await chainError {
            try await chain(
                [
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/8f1e",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "wrong",
                ], home: home,
                http: http
            ).resolve(logger: chainLogger)
        }
        #expect(refused?.code == .stsError)
        #expect(refused?.reason.contains("HTTP 403") == true)
        #expect(refused.map { "\($0)" }?.contains("wrong") == false)
    }

    @Test(
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE is re-read on every resolve and wins over AWS_CONTAINER_AUTHORIZATION_TOKEN"
    )
    func containerWithTokenFile() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.write("pod-identity-token", "first-token\n")
        let http = fakeAWS()
        let provider = chain(
            [
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": home.path + "/pod-identity-token",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": "variable-token",
            ], home: home, http: http)
        #expect(try await provider.resolve(logger: chainLogger).source == "container")
        try home.write("pod-identity-token", "second-token")
        _ = try await provider.resolve(logger: chainLogger)
        #expect(http.requests.map { $0.headers["authorization"] } == ["first-token", "second-token"])

        try home.write("pod-identity-token", "two\nlines")
        let broken = await chainError { try await provider.resolve(logger: chainLogger) }
        #expect(broken?.code == .configInvalid)
    }

    @Test(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI over plain HTTP is refused for a non-loopback host before any request; loopback, agents and https pass"
    )
    func fullURIHosts() async throws {
        let home = try Home()
        defer { home.remove() }
        for refusedURI in [
            "http://192.0.2.10/creds", "http://example.com/creds", "http://169.254.169.254/creds",
            "http://128.0.0.1/creds", "ftp://127.0.0.1/x",
        ] {
            let http = fakeAWS()
            let error = await chainError {
                try await chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": refusedURI], home: home, http: http).resolve(
                    logger: chainLogger)
            }
            #expect(error?.code == .configInvalid, "\(refusedURI)")
            #expect(http.requests.isEmpty, "\(refusedURI)")
        }
        for allowedURI in [
            "http://127.0.0.1:9911/creds", "http://[::1]:9911/creds", "http://localhost:9911/creds",
            "http://169.254.170.23/v1/credentials",
            "https://creds.example.test/creds",
        ] {
            let found = try await chain(["AWS_CONTAINER_CREDENTIALS_FULL_URI": allowedURI], home: home, http: fakeAWS())
                .resolve(logger: chainLogger)
            #expect(found.source == "container", "\(allowedURI)")
        }
    }

    @Test("IMDSv2: a PUT for a session token, then the role name and its credentials, both GETs carrying the token")
    func instanceMetadataTokenFlow() async throws {
        let home = try Home()
        defer { home.remove() }
        let http = fakeAWS()
        let found = try await chain([:], home: home, http: http).resolve(logger: chainLogger)
        #expect(
            found
                == ResolvedCredentials(
                    credentials: SigV4Credentials(
                        accessKeyID: "ASIAIMDS", secretAccessKey: "ASIAIMDS-SECRET", sessionToken: "ASIAIMDS-TOKEN"),
                    expiration: iso("2026-09-21T18:00:00Z"), source: "instance-metadata"))
        let requests = http.requests
        #expect(
            requests.map { "\($0.method) \($0.url)" } == [
                "PUT http://169.254.169.254/latest/api/token",
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                "GET http://169.254.169.254/latest/meta-data/iam/security-credentials/server-role",
            ])
        #expect(requests.first?.headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600")
        #expect(requests.first?.headers["x-aws-ec2-metadata-token"] == nil)
        #expect(requests.dropFirst().allSatisfy { $0.headers["x-aws-ec2-metadata-token"] == "IMDS-SESSION" })

        let custom = StubTransport { request in
            switch (request.method, request.url) {
            case ("PUT", "http://[fd00:ec2::254]/latest/api/token"): return text(200, "T")
            case ("GET", "http://[fd00:ec2::254]/latest/meta-data/iam/security-credentials/"): return text(200, "r")
            case ("GET", "http://[fd00:ec2::254]/latest/meta-data/iam/security-credentials/r"):
                return metadataCredentials("ASIAIPV6")
            default: return text(404)
            }
        }
        let viaEndpoint = try await chain(
            ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://[fd00:ec2::254]/"], home: home, http: custom
        ).resolve(logger: chainLogger)
        #expect(viaEndpoint.credentials.accessKeyID == "ASIAIPV6")
    }

    @Test(
        "AWS_EC2_METADATA_DISABLED=true skips instance metadata, and the final error lists what was tried and what to do"
    )
    func instanceMetadataDisabled() async throws {
        let home = try Home()
        defer { home.remove() }
        let http = fakeAWS()
        let error = await chainError {
            try await chain(["AWS_EC2_METADATA_DISABLED": "TRUE"], home: home, http: http).resolve(logger: chainLogger)
        }
        #expect(http.requests.isEmpty)
        #expect(error?.code == .configInvalid)
        #expect(error?.reason.hasPrefix("No AWS credentials for the server:") == true)
        #expect(error?.reason.contains("AWS_EC2_METADATA_DISABLED") == true)
        #expect(error?.reason.contains(home.path + "/.aws/credentials") == true)
        for advice in ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "ECS/EKS/EC2"] {
            #expect(error?.hint?.contains(advice) == true, "\(advice)")
        }
    }

    @Test("no IMDSv1 fallback: when the token PUT is refused, no GET is sent and the chain fails closed")
    func noIMDSv1Fallback() async throws {
        let home = try Home()
        defer { home.remove() }
        let http = fakeAWS(imdsV1Only: true)
        let error = await chainError { try await chain([:], home: home, http: http).resolve(logger: chainLogger) }
        #expect(error?.code == .configInvalid)
        #expect(error?.reason.contains("does not fall back to IMDSv1") == true)
        #expect(http.requests.map(\.method) == ["PUT"])
    }

    // Not a time ceiling (a loaded machine once took 60 s for this, its thread pool busy elsewhere): the endpoint never
    // answers unless cancelled, so the chain's answer proves the timeout cut it off, and the limit only stops a hang.
    @Test(
        "an instance metadata endpoint that never answers is given up on after its timeout (1 s), the request cancelled",
        .timeLimit(.minutes(2)))
    func instanceMetadataTimeout() async throws {
        let home = try Home()
        defer { home.remove() }
        let cancelled = Mutex(0)
        let silent = StubTransport { _ in
            do {
                try await Task.sleep(for: .seconds(86400))
            } catch is CancellationError {
                cancelled.withLock { $0 += 1 }
                throw CancellationError()
            }
            return text(200)
        }
        let error = await chainError { try await chain([:], home: home, http: silent).resolve(logger: chainLogger) }
        #expect(error?.code == .configInvalid)
        #expect(error?.reason.contains("no answer within 1 s") == true)
        #expect(cancelled.withLock { $0 } >= 1, "the silent request was cancelled, not left running")
    }

    @Test("logs name the source but never a secret, a session token or a web identity token")
    func logsCarryNoSecrets() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.write("token", "WEB.IDENTITY.JWT")
        let logs = LogCapture()
        let logger = logs.logger
        let environment = [
            "AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/server",
        ]
        _ = try await chain(environment, home: home, http: fakeAWS()).resolve(logger: logger)
        _ = try await chain(
            ["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/c", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "AUTH-VALUE"],
            home: home,
            http: fakeAWS()
        ).resolve(logger: logger)
        _ = try await chain([:], home: home, http: fakeAWS()).resolve(logger: logger)
        let logged = logs.allText
        #expect(logged.contains("web-identity") && logged.contains("container") && logged.contains("instance-metadata"))
        for secret in [
            "WEB.IDENTITY.JWT", "WEBIDENTITY-SECRET", "WEBIDENTITY-TOKEN", "AUTH-VALUE", "ASIACONTAINER-SECRET",
            "ASIAIMDS-TOKEN", "IMDS-SESSION",
        ] {
            #expect(!logged.contains(secret), "\(secret) was logged")
        }
        let described = "\(try await chain([:], home: home, http: fakeAWS()).resolve(logger: chainLogger))"
        #expect(
            described.contains("ASIAIMDS") && !described.contains("ASIAIMDS-SECRET")
                && !described.contains("ASIAIMDS-TOKEN"))
    }
}

// MARK: - Precedence

@Suite(
    "The credential chain's order is botocore's: environment, web identity, profile keys, container, instance metadata")
struct CredentialChainPrecedenceTests {
    @Test("with every source configured, removing the winner each time hands over to the next one in botocore's order")
    func precedence() async throws {
        let home = try Home()
        defer { home.remove() }
        try home.write("token", "jwt.for.sts")
        try home.credentials("[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = S\n")
        var environment = [
            "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "S",
            "AWS_WEB_IDENTITY_TOKEN_FILE": home.path + "/token",
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/server",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/1",
        ]
        var order: [String] = []
        let removals: [() throws -> Void] = [
            {
                environment["AWS_ACCESS_KEY_ID"] = nil; environment["AWS_SECRET_ACCESS_KEY"] = nil
            },
            {
                environment["AWS_WEB_IDENTITY_TOKEN_FILE"] = nil; environment["AWS_ROLE_ARN"] = nil
            },
            { try FileManager.default.removeItem(atPath: home.path + "/.aws/credentials") },
            { environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = nil },
        ]
        for removal in removals + [{}] {
            let found = try await chain(environment, home: home, http: fakeAWS()).resolve(logger: chainLogger)
            order.append("\(found.source) \(found.credentials.accessKeyID)")
            try removal()
        }
        #expect(
            order == [
                "environment AKIDENV", "web-identity ASIAWEBIDENTITY", "profile default AKIDPROFILE",
                "container ASIACONTAINER",
                "instance-metadata ASIAIMDS",
            ])
    }
}

// MARK: - Refreshing

/// A base provider that counts its calls and answers "AKID<n>" valid for `lifetime` seconds from its clock's now.
private final class CountingProvider: AWSCredentialProvider {
    let clock: WallClock
    let lifetime: TimeInterval?
    private let calls = Mutex(0)
    private let failing = Mutex(false)
    let gate: Gate?

    init(clock: WallClock, lifetime: TimeInterval? = 3600, gate: Gate? = nil) {
        self.clock = clock
        self.lifetime = lifetime
        self.gate = gate
    }

    var count: Int { calls.withLock { $0 } }
    func fail(_ on: Bool) { failing.withLock { $0 = on } }

    func resolve(logger: Logger) async throws -> ResolvedCredentials {
        let call = calls.withLock {
            $0 += 1; return $0
        }
        if let gate { await gate.wait() }
        if failing.withLock({ $0 }) { throw KeylessError(.stsUnreachable, "base failed (stub)") }
        return ResolvedCredentials(
            credentials: SigV4Credentials(accessKeyID: "AKID\(call)", secretAccessKey: "S"),
            expiration: lifetime.map { clock.now().addingTimeInterval($0) }, source: "stub")
    }
}

/// Holds callers until released.
private actor Gate {
    private var open = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if open { return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func release() {
        open = true
        for continuation in waiting { continuation.resume() }
        waiting = []
    }
}

@Suite("RefreshingCredentialProvider caches until near expiry and runs one refresh at a time")
struct CredentialChainRefreshingTests {
    @Test(
        "the cached answer is served until refreshBefore seconds before expiry; inside that window the old one is served while one refresh runs"
    )
    func refreshesOnlyNearExpiry() async throws {
        let clock = ManualClock(chainNow)
        let base = CountingProvider(clock: clock.wallClock)
        let provider = RefreshingCredentialProvider(base, clock: clock.wallClock, refreshBefore: 300)
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID1")
        clock.advance(by: 3299)  // one second before the refresh window
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID1")
        #expect(base.count == 1)

        clock.advance(by: 2)  // inside the window, still valid
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID1")
        var latest = "AKID1"
        for _ in 0..<10_000 where latest == "AKID1" {
            await Task.yield()
            latest = try await provider.resolve(logger: chainLogger).credentials.accessKeyID
        }
        #expect(latest == "AKID2")
        #expect(base.count == 2)
        clock.advance(by: 1000)
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID2")
        #expect(base.count == 2)
    }

    @Test("an expired answer is never served: the caller waits for the refresh")
    func expiredWaits() async throws {
        let clock = ManualClock(chainNow)
        let base = CountingProvider(clock: clock.wallClock)
        let provider = RefreshingCredentialProvider(base, clock: clock.wallClock)
        _ = try await provider.resolve(logger: chainLogger)
        clock.advance(by: 3600)
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID2")
        #expect(base.count == 2)
    }

    @Test("static keys without an expiration are resolved once")
    func staticKeysOnce() async throws {
        let clock = ManualClock(chainNow)
        let base = CountingProvider(clock: clock.wallClock, lifetime: nil)
        let provider = RefreshingCredentialProvider(base, clock: clock.wallClock)
        for _ in 0..<5 {
            _ = try await provider.resolve(logger: chainLogger)
            clock.advance(by: 86_400)
        }
        #expect(base.count == 1)
    }

    @Test("a failed refresh reaches the caller when nothing valid remains, and the next call asks again")
    func failureRetries() async throws {
        let clock = ManualClock(chainNow)
        let base = CountingProvider(clock: clock.wallClock)
        let provider = RefreshingCredentialProvider(base, clock: clock.wallClock)
        base.fail(true)
        let error = await chainError { try await provider.resolve(logger: chainLogger) }
        #expect(error?.code == .stsUnreachable)
        base.fail(false)
        #expect(try await provider.resolve(logger: chainLogger).credentials.accessKeyID == "AKID2")
    }

    @Test("20 concurrent callers with nothing cached trigger exactly one base resolve and all get its answer")
    func oneRefreshInFlight() async throws {
        let clock = ManualClock(chainNow)
        let gate = Gate()
        let base = CountingProvider(clock: clock.wallClock, gate: gate)
        let provider = RefreshingCredentialProvider(base, clock: clock.wallClock)
        let keys = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 {
                group.addTask { try await provider.resolve(logger: chainLogger).credentials.accessKeyID }
            }
            // Time for all 20 to reach the provider while the base is held; a correct provider passes whatever the timing.
            try await Task.sleep(for: .milliseconds(200))
            await gate.release()
            return try await group.reduce(into: [String]()) { $0.append($1) }
        }
        #expect(keys == Array(repeating: "AKID1", count: 20))
        #expect(base.count == 1)
    }
}

// MARK: - Region

@Suite("AWSRegionResolver reads AWS_REGION, AWS_DEFAULT_REGION, then the profile's region")
struct CredentialChainRegionTests {
    @Test("the first that is set wins; an unknown profile or no setting gives nil")
    func order() throws {
        let home = try Home()
        defer { home.remove() }
        try home.config("[default]\nregion = eu-west-1\n[profile dev]\nregion = ap-south-1\n")
        #expect(
            AWSRegionResolver.resolve(
                environment: Environment(["AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-east-2"]),
                home: home.path, profile: nil) == "us-west-2")
        #expect(
            AWSRegionResolver.resolve(
                environment: Environment(["AWS_DEFAULT_REGION": "us-east-2"]), home: home.path, profile: "dev")
                == "us-east-2")
        #expect(AWSRegionResolver.resolve(environment: Environment(), home: home.path, profile: nil) == "eu-west-1")
        #expect(
            AWSRegionResolver.resolve(environment: Environment(["AWS_PROFILE": "dev"]), home: home.path, profile: nil)
                == "ap-south-1")
        #expect(
            AWSRegionResolver.resolve(
                environment: Environment(["AWS_PROFILE": "dev"]), home: home.path, profile: "default") == "eu-west-1")
        #expect(AWSRegionResolver.resolve(environment: Environment(), home: home.path, profile: "ghost") == nil)
        #expect(
            AWSRegionResolver.resolve(environment: Environment(), home: home.path + "/nowhere", profile: nil) == nil)
    }
}

// MARK: - Against botocore

/// scripts/partners/aws_metadata_stub.py on a free loopback port: a container credentials endpoint and IMDSv2.
private final class MetadataStub: Sendable {
    static let containerKey = "AKIDSTUBCONTAINER"
    static let imdsKey = "AKIDSTUBIMDS"
    static let authorization = "Bearer stub-container-token"

    let process: PartnerProcess
    let endpoint: String

    private init(process: PartnerProcess, endpoint: String) {
        self.process = process
        self.endpoint = endpoint
    }

    static func start() async throws -> MetadataStub {
        let script = repositoryRoot() + "/scripts/partners/aws_metadata_stub.py"
        var failure = ""
        for _ in 1...3 {  // a port found free can be taken before the stub binds it: retry on a new one
            let port = try freePort()
            let process = try PartnerProcess(
                executable: Tooling.python(),
                arguments: [script, String(port), containerKey, imdsKey, authorization],
                environment: ["PYTHONUNBUFFERED": "1"])
            let stub = MetadataStub(process: process, endpoint: "http://127.0.0.1:\(port)")
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline && process.isRunning {
                if let answer = try? await AsyncHTTPTransport().send(
                    method: "GET", url: stub.endpoint + "/health", headers: [:], body: nil),
                    answer.status == 200
                {
                    return stub
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            failure = "the metadata stub did not answer on \(stub.endpoint); log:\n\(process.logTail())"
            process.stop()
            if !process.log().contains("Address already in use") { break }
        }
        throw TestSupportError(failure)
    }

    func stop() { process.stop() }

    deinit { process.stop() }
}

/// One row of the comparison: files under a fresh HOME, an environment and an optional explicit profile. In every
/// text, $HOME, $STUB (the metadata stub), $STS (moto) and $ROLE (a role in moto) are replaced before use.
private struct BotoCase: Sendable {
    var name: String
    var files: [String: String] = [:]
    var environment: [String: String] = [:]
    var profile: String? = nil
    /// Point instance metadata at the stub; otherwise AWS_EC2_METADATA_DISABLED=true.
    var imds = false
    /// The source both must pick ("error" when both must find nothing or refuse).
    var expected: String
    /// The access key id both must pick; nil for web identity, whose keys moto mints at random.
    var expectedKey: String? = nil
}

/// What scripts/partners/botocore_credentials.py reports for one case.
private struct BotoAnswer: Decodable, Sendable {
    var method: String?
    var access_key: String?
    var error: String?
}

private let credsDefault =
    "[default]\naws_access_key_id = AKIDCREDSDEFAULT\naws_secret_access_key = creds-default-secret\n"
private let credsDev = "[dev]\naws_access_key_id = AKIDCREDSDEV\naws_secret_access_key = creds-dev-secret\n"
private let configDefault =
    "[default]\nregion = us-east-1\naws_access_key_id = AKIDCONFIGDEFAULT\naws_secret_access_key = config-secret\n"
private let configCfg = "[profile cfg]\naws_access_key_id = AKIDCONFIGCFG\naws_secret_access_key = cfg-secret\n"
private let environmentKeys = [
    "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_SESSION_TOKEN": "env-token",
]
private let webIdentity = ["AWS_WEB_IDENTITY_TOKEN_FILE": "$HOME/token", "AWS_ROLE_ARN": "$ROLE"]
private let containerWithToken = [
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "$STUB/container/credentials",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN": MetadataStub.authorization,
]

private let botoCases: [BotoCase] = [
    BotoCase(name: "environment keys", environment: environmentKeys, expected: "environment", expectedKey: "AKIDENV"),
    BotoCase(
        name: "environment keys beat the credentials file", files: [".aws/credentials": credsDefault],
        environment: environmentKeys,
        expected: "environment", expectedKey: "AKIDENV"),
    BotoCase(
        name: "the credentials file's [default]", files: [".aws/credentials": credsDefault],
        expected: "profile default", expectedKey: "AKIDCREDSDEFAULT"),
    BotoCase(
        name: "the config file's [default]", files: [".aws/config": configDefault], expected: "profile default",
        expectedKey: "AKIDCONFIGDEFAULT"),
    BotoCase(
        name: "the credentials file beats the config file",
        files: [".aws/credentials": credsDefault, ".aws/config": configDefault],
        expected: "profile default", expectedKey: "AKIDCREDSDEFAULT"),
    BotoCase(
        name: "AWS_PROFILE=dev reads [dev] in the credentials file",
        files: [".aws/credentials": credsDefault + credsDev],
        environment: ["AWS_PROFILE": "dev"], expected: "profile dev", expectedKey: "AKIDCREDSDEV"),
    BotoCase(
        name: "AWS_PROFILE=cfg reads [profile cfg] in the config file",
        files: [".aws/config": configDefault + configCfg],
        environment: ["AWS_PROFILE": "cfg"], expected: "profile cfg", expectedKey: "AKIDCONFIGCFG"),
    BotoCase(
        name: "an explicit profile ignores environment keys", files: [".aws/credentials": credsDefault + credsDev],
        environment: environmentKeys,
        profile: "dev", expected: "profile dev", expectedKey: "AKIDCREDSDEV"),
    BotoCase(
        name: "[profile dev] in the credentials file is not profile dev",
        files: [
            ".aws/credentials": "[profile dev]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = s\n",
            ".aws/config": "[profile dev]\nregion = us-east-1\n",
        ],
        environment: ["AWS_PROFILE": "dev"], expected: "error"),
    BotoCase(
        name: "AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE elsewhere",
        files: [
            ".aws/credentials": credsDefault,
            "alt/credentials": "[default]\naws_access_key_id = AKIDALTCREDS\naws_secret_access_key = s\n",
            "alt/config": configCfg,
        ],
        environment: ["AWS_SHARED_CREDENTIALS_FILE": "$HOME/alt/credentials", "AWS_CONFIG_FILE": "$HOME/alt/config"],
        expected: "profile default", expectedKey: "AKIDALTCREDS"),
    BotoCase(
        name: "a named profile in neither file, even with environment keys", files: [".aws/credentials": credsDefault],
        environment: environmentKeys.merging(["AWS_PROFILE": "ghost"]) { $1 }, expected: "error"),
    BotoCase(
        name: "AWS_PROFILE=default with no [default] anywhere",
        environment: environmentKeys.merging(["AWS_PROFILE": "default"]) { $1 },
        expected: "error"),
    BotoCase(
        name: "AWS_ACCESS_KEY_ID without a secret", files: [".aws/credentials": credsDefault],
        environment: ["AWS_ACCESS_KEY_ID": "AKIDENV"],
        expected: "error"),
    BotoCase(name: "web identity from the environment", environment: webIdentity, expected: "web-identity"),
    BotoCase(
        name: "web identity from the environment beats the credentials file", files: [".aws/credentials": credsDefault],
        environment: webIdentity,
        expected: "web-identity"),
    BotoCase(
        name: "web identity from the profile",
        files: [".aws/config": "[default]\nrole_arn = $ROLE\nweb_identity_token_file = $HOME/token\n"],
        expected: "web-identity"),
    BotoCase(
        name: "environment keys beat web identity", environment: environmentKeys.merging(webIdentity) { $1 },
        expected: "environment",
        expectedKey: "AKIDENV"),
    BotoCase(
        name: "web identity beats the container", environment: webIdentity.merging(containerWithToken) { $1 },
        expected: "web-identity"),
    BotoCase(
        name: "the container with AWS_CONTAINER_AUTHORIZATION_TOKEN", environment: containerWithToken,
        expected: "container",
        expectedKey: MetadataStub.containerKey),
    BotoCase(
        name: "the container with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        files: ["container-token": MetadataStub.authorization],
        environment: [
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": "$STUB/container/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "$HOME/container-token",
        ],
        expected: "container", expectedKey: MetadataStub.containerKey),
    BotoCase(
        name: "the credentials file beats the container", files: [".aws/credentials": credsDefault],
        environment: containerWithToken,
        expected: "profile default", expectedKey: "AKIDCREDSDEFAULT"),
    BotoCase(
        name: "the container beats instance metadata", environment: containerWithToken, imds: true,
        expected: "container",
        expectedKey: MetadataStub.containerKey),
    BotoCase(
        name: "instance metadata (IMDSv2) when nothing else is configured",
        files: [".aws/config": "[default]\nregion = us-east-1\n"], imds: true,
        expected: "instance-metadata", expectedKey: MetadataStub.imdsKey),
    BotoCase(
        name: "AWS_CONTAINER_CREDENTIALS_FULL_URI to a non-loopback http host",
        environment: ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://192.0.2.1/creds"],
        imds: true, expected: "error"),
    BotoCase(
        name: "instance metadata without an IMDSv2 token endpoint",
        environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "$STUB/none"], expected: "error"),
    BotoCase(name: "nothing configured and instance metadata disabled", expected: "error"),
]

@Suite("DefaultCredentialChain picks the credentials botocore's default chain picks", .serialized)
struct CredentialChainBotocoreTests {
    @Test(
        "for each environment and set of shared files, keyless and botocore pick the same source and access key id (container and IMDS on a local stub, STS on moto)"
    )
    func sameChoiceAsBotocore() async throws {
        async let startedStub = MetadataStub.start()
        async let startedMoto = MotoServer.start()
        let stub = try await startedStub
        defer { stub.stop() }
        let moto = try await startedMoto
        defer { moto.stop() }
        let role = try await moto.createRole(name: "keyless-server-chain")
        let root = try makeTemporaryDirectory(prefix: "keyless-chain-boto")
        defer { try? FileManager.default.removeItem(atPath: root) }

        var prepared: [(home: String, environment: [String: String])] = []
        for (index, row) in botoCases.enumerated() {
            let home = root + "/case\(index)"
            func fill(_ text: String) -> String {
                text.replacingOccurrences(of: "$HOME", with: home).replacingOccurrences(
                    of: "$STUB", with: stub.endpoint
                )
                .replacingOccurrences(of: "$STS", with: moto.endpoint).replacingOccurrences(of: "$ROLE", with: role)
            }
            var files = row.files
            if files["token"] == nil { files["token"] = MotoSTSTests.dummyToken }
            for (relative, contents) in files {
                let path = home + "/" + relative
                try FileManager.default.createDirectory(
                    atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
                try Data(fill(contents).utf8).write(to: URL(fileURLWithPath: path))
            }
            var environment = ["AWS_ENDPOINT_URL_STS": moto.endpoint, "AWS_DEFAULT_REGION": "us-east-1"]
            if row.imds { environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = stub.endpoint }
            for (name, value) in row.environment { environment[name] = fill(value) }
            if environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == nil {
                environment["AWS_EC2_METADATA_DISABLED"] = "true"
            }
            prepared.append((home, environment))
        }

        // botocore sees only the case's environment (the script clears its own) with HOME pointing at the case's directory.
        let input = prepared.enumerated().map { index, entry -> [String: Any] in
            var object: [String: Any] = ["env": entry.environment.merging(["HOME": entry.home]) { $1 }]
            if let profile = botoCases[index].profile { object["profile"] = profile }
            return object
        }
        let casesPath = root + "/cases.json"
        try JSONSerialization.data(withJSONObject: input).write(to: URL(fileURLWithPath: casesPath))
        let (status, output) = try PartnerProcess.run(
            Tooling.python(), [repositoryRoot() + "/scripts/partners/botocore_credentials.py", casesPath], timeout: 180)
        try #require(status == 0, "botocore_credentials.py failed:\n\(output)")
        let answers = try JSONDecoder().decode([BotoAnswer].self, from: Data(output.utf8))
        try #require(answers.count == botoCases.count)

        for (index, row) in botoCases.enumerated() {
            let (home, environment) = prepared[index]
            let profileName = row.profile ?? environment["AWS_PROFILE"] ?? "default"
            let boto = answers[index]
            let botoSource: String
            switch boto.method {
            case "env": botoSource = "environment"
            case "shared-credentials-file", "config-file": botoSource = "profile \(profileName)"
            case "assume-role-with-web-identity": botoSource = "web-identity"
            case "container-role": botoSource = "container"
            case "iam-role": botoSource = "instance-metadata"
            case nil: botoSource = "error"
            case let other?: botoSource = "botocore method \(other)"
            }
            let ours: String
            var ourKey: String?
            do {
                let found = try await DefaultCredentialChain(
                    environment: Environment(environment), home: home, http: AsyncHTTPTransport(), clock: .system,
                    profile: row.profile
                ).resolve(logger: chainLogger)
                ours = found.source
                ourKey = found.credentials.accessKeyID
            } catch let error as KeylessError {
                ours = "error"
                if row.expected != "error" { Issue.record("\(row.name): keyless failed with \(error)") }
            }
            #expect(
                ours == botoSource,
                "\(row.name): botocore picked \(boto.method ?? "nothing") \(boto.error ?? ""), keyless \(ours)")
            #expect(ours == row.expected, "\(row.name)")
            if let expectedKey = row.expectedKey {
                #expect(ourKey == expectedKey, "\(row.name)")
                #expect(boto.access_key == expectedKey, "\(row.name)")
            } else if row.expected == "web-identity" {
                // Minted by moto for this call: an ASIA key id of AWS's shape from each side.
                #expect(ourKey?.hasPrefix("ASIA") == true && ourKey?.count == 20, "\(row.name)")
                #expect(boto.access_key?.hasPrefix("ASIA") == true && boto.access_key?.count == 20, "\(row.name)")
            }
        }
        #expect(stub.process.log().contains("PUT /latest/api/token 200"))
    }
}
