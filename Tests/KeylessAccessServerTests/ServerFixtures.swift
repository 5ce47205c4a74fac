import Crypto
import _CryptoExtras
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessAWS
import KeylessCore
import KeylessHTTP
import KeylessHTTPServer
import KeylessOIDC
import KeylessPolicy
@testable import KeylessAccessServer
import KeylessSigV4
import KeylessStorage
import KeylessTestFakes
import KeylessTestSupport
import Logging
import NIOCore
import Synchronization
import Testing

// Fixtures for the access server's API tests, built in code around one fixed reference time. Issuers are keys this
// file generates, served as JWKS by a closure transport; tokens are signed by hand; STS is a real moto when a test
// needs credentials issued.

// MARK: Time

/// The reference time every server test runs at: 2026-01-01T00:00:00Z.
let referenceTime = ManualClock.reference

/// Seconds since 1970 of `referenceTime + offset`.
func at(_ offset: Int) -> Int { Int(referenceTime.timeIntervalSince1970) + offset }

// MARK: Issuers and keys

/// The two trusted issuers of the fixture configuration.
enum Issuers {
    /// The company's provider: RS256 and ES256, audiences keyless-cli and keyless-web.
    static let main = "https://idp.example.test"
    static let mainJWKS = "https://idp.example.test/keys"
    /// A partner's provider: ES256 only, audience partner-cli.
    static let partner = "https://partner.example.test"
    static let partnerJWKS = "https://partner.example.test/jwks"
}

/// A signing key generated for the tests: RSA-2048 (RS256) or P-256 (ES256), with its public JWK.
struct SigningKey: Sendable {
    enum Material: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ec(P256.Signing.PrivateKey)
    }

    let kid: String
    let material: Material

    var alg: String {
        switch material {
        case .rsa: "RS256"
        case .ec: "ES256"
        }
    }

    static func rsa(kid: String) -> SigningKey {
        do { return SigningKey(kid: kid, material: .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048))) } catch {
            fatalError("RSA key generation failed: \(error)")
        }
    }

    static func ec(kid: String) -> SigningKey { SigningKey(kid: kid, material: .ec(P256.Signing.PrivateKey())) }

    /// The public JWK.
    var jwk: [String: String] {
        switch material {
        case .rsa(let key):
            let primitives = try! key.publicKey.getKeyPrimitives()
            return [
                "kty": "RSA", "use": "sig", "alg": alg, "kid": kid, "n": base64url(primitives.modulus),
                "e": base64url(primitives.publicExponent),
            ]
        case .ec(let key):
            let point = key.publicKey.x963Representation  // 0x04 || x || y
            return [
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": alg, "kid": kid,
                "x": base64url(point.dropFirst().prefix(32)), "y": base64url(point.suffix(32)),
            ]
        }
    }

    /// The JWS signature of `input`.
    func sign(_ input: Data) throws -> Data {
        switch material {
        case .rsa(let key): return try key.signature(for: input, padding: .insecurePKCS1v1_5).rawRepresentation
        case .ec(let key): return try key.signature(for: input).rawRepresentation
        }
    }

    /// The public key as DER (SubjectPublicKeyInfo): another HMAC secret an attacker may try.
    var publicKeyDER: Data {
        switch material {
        case .rsa(let key): key.publicKey.derRepresentation
        case .ec(let key): key.publicKey.derRepresentation
        }
    }

    /// The public key as PEM: what an algorithm-confusion attacker uses as an HMAC secret.
    var publicKeyPEM: String {
        switch material {
        case .rsa(let key): key.publicKey.pemRepresentation
        case .ec(let key): key.publicKey.pemRepresentation
        }
    }
}

/// Keys generated once per test process (RSA generation is the slow part).
enum Keys {
    static let mainRSA = SigningKey.rsa(kid: "main-rsa-1")
    static let mainEC = SigningKey.ec(kid: "main-ec-1")
    static let partnerEC = SigningKey.ec(kid: "partner-ec-1")
    /// The main issuer's next key, published only when a test rotates.
    static let mainRotated = SigningKey.rsa(kid: "main-rsa-2")
    /// A key nobody publishes.
    static let rogueRSA = SigningKey.rsa(kid: "rogue-1")
}

/// A JWT assembled by hand: `header` and `claims` as JSON, and `signature(signingInput)`.
func makeJWT(header: [String: Any], claims: [String: Any], signature: (Data) throws -> Data) rethrows -> String {
    let headerJSON = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
    let claimsJSON = try! JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys])
    let signingInput = base64url(headerJSON) + "." + base64url(claimsJSON)
    return signingInput + "." + base64url(try signature(Data(signingInput.utf8)))
}

/// A token signed by `key`, naming it by kid.
func signedToken(_ claims: [String: Any], key: SigningKey) throws -> String {
    try makeJWT(header: ["alg": key.alg, "typ": "JWT", "kid": key.kid], claims: claims, signature: key.sign)
}

// MARK: Users

/// A person the tests act as: who issued their token and what it says.
struct TestUser: Sendable, CustomStringConvertible {
    let name: String
    let issuer: String
    let subject: String
    let audience: String
    let email: String?
    let groups: [String]
    let amr: [String]
    /// More claims, as JSON text of an object (so the type stays Sendable).
    let extraJSON: String

    init(
        _ name: String, issuer: String = Issuers.main, subject: String? = nil, audience: String? = nil,
        email: String? = nil,
        groups: [String] = [], amr: [String] = ["pwd"], extraJSON: String = "{}"
    ) {
        self.name = name; self.issuer = issuer; self.subject = subject ?? "sub-\(name)"
        self.audience = audience ?? (issuer == Issuers.partner ? "partner-cli" : "keyless-cli")
        self.email = email; self.groups = groups; self.amr = amr; self.extraJSON = extraJSON
    }

    var description: String { name }

    /// The claims of a token valid at the reference time for an hour; `edit` changes them.
    func claims(_ edit: (inout [String: Any]) -> Void = { _ in }) -> [String: Any] {
        var claims: [String: Any] = [
            "iss": issuer, "sub": subject, "aud": audience, "iat": at(0), "exp": at(3600), "amr": amr,
        ]
        if let email { claims["email"] = email }
        if !groups.isEmpty { claims["groups"] = groups }
        if let extra = try? JSONSerialization.jsonObject(with: Data(extraJSON.utf8)) as? [String: Any] {
            claims.merge(extra) { _, new in new }
        }
        edit(&claims)
        return claims
    }

    /// The key this user's issuer signs with.
    var key: SigningKey { issuer == Issuers.partner ? Keys.partnerEC : Keys.mainRSA }

    /// A valid token for this user.
    func token(_ edit: (inout [String: Any]) -> Void = { _ in }) throws -> String {
        try signedToken(claims(edit), key: key)
    }
}

// MARK: Transports

/// A JWKS endpoint per issuer behind the `HTTPTransport` protocol: the published keys can change between fetches,
/// and every fetch is counted.
final class JWKSStub: HTTPTransport, Sendable {
    private struct State {
        var published: [String: [SigningKey]] = [:]
        var fetches: [String: Int] = [:]
    }

    private let state = Mutex(State())

    init() {
        publish([Keys.mainRSA, Keys.mainEC], at: Issuers.mainJWKS)
        publish([Keys.partnerEC], at: Issuers.partnerJWKS)
    }

    /// Serves `keys` at `url` from the next fetch on.
    func publish(_ keys: [SigningKey], at url: String) { state.withLock { $0.published[url] = keys } }

    /// Stops serving `url` (it answers 404), as an issuer that is down or misconfigured.
    func unpublish(_ url: String) { _ = state.withLock { $0.published.removeValue(forKey: url) } }

    /// How many times `url` was fetched.
    func fetches(_ url: String = Issuers.mainJWKS) -> Int { state.withLock { $0.fetches[url, default: 0] } }

    func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPResponseData {
        let keys: [SigningKey]? = state.withLock { state in
            state.fetches[url, default: 0] += 1
            return state.published[url]
        }
        guard method == "GET", let keys else { return HTTPResponseData(status: 404, body: Array("not found".utf8)) }
        let data = try JSONSerialization.data(withJSONObject: ["keys": keys.map(\.jwk)], options: [.sortedKeys])
        return HTTPResponseData(status: 200, headers: ["content-type": "application/json"], body: Array(data))
    }
}

/// The transport the server's STS and federation clients use: AsyncHTTPClient, except that while `redirect` is set,
/// requests for `from` go to `to` instead (STS "comes back" at another address without restarting the server).
final class SwitchableTransport: HTTPTransport, Sendable {
    private let base = AsyncHTTPTransport()
    private let route = Mutex<(from: String, to: String)?>(nil)

    /// Sends requests whose URL starts with `from` to `to` instead.
    func redirect(_ from: String, to: String) { route.withLock { $0 = (from, to) } }

    func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPResponseData {
        var target = url
        if let (from, to) = route.withLock({ $0 }), url.hasPrefix(from) { target = to + url.dropFirst(from.count) }
        return try await base.send(method: method, url: target, headers: headers, body: body)
    }
}

/// The server's own AWS credentials: dummy static keys (moto accepts any), or a failure while `failing` is set.
final class StaticAWSCredentials: AWSCredentialProvider, Sendable {
    static let accessKeyID = "AKIDKEYLESSSERVER01"
    private let failure = Mutex<(any Error)?>(nil)

    /// An error that is not a `KeylessError`, as a provider written elsewhere might throw.
    struct UnexpectedError: Error, CustomStringConvertible {
        var description: String { "credential helper crashed (signal 11)" }
    }

    /// Makes `resolve` throw `error` (nil: succeed again).
    func fail(with error: KeylessError?) { failure.withLock { $0 = error } }

    /// Makes `resolve` throw an error of a type the server does not know.
    func failWithUnexpectedError() { failure.withLock { $0 = UnexpectedError() } }

    func resolve(logger: Logger) async throws -> ResolvedCredentials {
        if let error = failure.withLock({ $0 }) { throw error }
        return ResolvedCredentials(
            credentials: SigV4Credentials(accessKeyID: Self.accessKeyID, secretAccessKey: "server-secret-key"),
            expiration: nil, source: "static test keys")
    }
}

/// A URL on 127.0.0.1 whose port refuses connections for the whole test run (`closedPort()`): an STS that is down.
func closedPortURL() throws -> String { "http://127.0.0.1:\(try closedPort())" }

// MARK: Logs

extension LogCapture.Record {
    /// The record as the JSON line `keyless server` prints.
    var jsonLine: String {
        JSONLogHandler.line(
            timestamp: "2026-01-01T00:00:00.000Z", level: level, label: "keyless.server", message: message,
            metadata: rawMetadata)
    }
}

// MARK: Policies

enum Policies {
    /// Two accounts, seven roles: one needs MFA, one is reached through "dev/*", one through a claim glob, one only
    /// from the partner issuer, one with a short maximum session.
    static let matrix = """
        defaults:
          region: us-east-1
          max_session: 1h
          credentials: server
        accounts:
          - id: "123456789012"
            alias: prod
            region: eu-west-1
          - id: "210987654321"
            alias: dev
        roles:
          - arn: arn:aws:iam::123456789012:role/admin
            description: Full access to production
            max_session: 2h
            mfa_required: true
          - arn: arn:aws:iam::123456789012:role/readonly
            max_session: 12h
          - arn: arn:aws:iam::123456789012:role/auditor
            max_session: 30m
          - arn: arn:aws:iam::123456789012:role/partner-readonly
          - arn: arn:aws:iam::210987654321:role/developer
            max_session: 4h
          - arn: arn:aws:iam::210987654321:role/tester
        grants:
          - groups: [platform-admins]
            roles: [arn:aws:iam::123456789012:role/admin, prod/readonly]
          - groups: [developers]
            roles: ["dev/*"]
          - claims:
              email: "*@audit.example.com"
            roles: [prod/auditor]
          - claims:
              sub: "*"
            issuer: https://partner.example.test
            roles: [prod/partner-readonly]
        session_tags:
          - tag: email
          - tag: team
            claim: https://example.com/team
          - tag: groups
        """ + "\n"

    static let adminArn = "arn:aws:iam::123456789012:role/admin"
    static let readonlyArn = "arn:aws:iam::123456789012:role/readonly"
    static let auditorArn = "arn:aws:iam::123456789012:role/auditor"
    static let partnerArn = "arn:aws:iam::123456789012:role/partner-readonly"
    static let developerArn = "arn:aws:iam::210987654321:role/developer"
    static let testerArn = "arn:aws:iam::210987654321:role/tester"
}

// MARK: The server under test

/// One access server: configuration parsed from server.yaml in its own directory, the service with injected clock,
/// JWKS, STS transport and AWS keys, its metrics and captured logs.
struct ServerFixture: Sendable {
    let directory: String
    let configuration: ServerConfiguration
    /// The clock tokens, audit records and SigV4 see.
    let clock: ManualClock
    /// The clock the policy store uses to decide that a rewritten file has settled.
    let policyClock: ManualClock
    let jwks: JWKSStub
    let transport: SwitchableTransport
    let awsCredentials: StaticAWSCredentials
    let service: AccessService
    let metrics: HTTPMetrics
    let logs: LogCapture

    /// A server with `policy`, STS at `stsEndpoint` (a closed port by default) and console federation at `federationEndpoint`.
    static func make(
        policy: String = Policies.matrix, stsEndpoint: String? = nil,
        federationEndpoint: String = "http://127.0.0.1:9/federation", fastReload: Bool = false,
        auditPath: String? = nil, idleTimeout: String = "30s", metrics: String = "open",
        requests: any AccessRequestStore = MemoryAccessRequestStore(), events: (any RequestEventSink)? = nil
    ) throws -> ServerFixture {
        let directory = try makeTemporaryDirectory(prefix: "keyless-server-test")
        try policy.write(toFile: directory + "/policy.yaml", atomically: true, encoding: .utf8)
        let sts = try stsEndpoint ?? closedPortURL()
        let yaml = """
            listen: 127.0.0.1:0
            public_url: https://keyless.example.test/
            policy: policy.yaml
            audit_log: audit.log
            jwks_refetch_interval: 10s
            policy_reload_interval: \(fastReload ? "0.01" : "1h")
            idle_timeout: \(idleTimeout)
            metrics: \(metrics)
            issuers:
              - issuer: \(Issuers.main)
                audiences: [keyless-cli, keyless-web]
                algorithms: [RS256, ES256]
                jwks_uri: \(Issuers.mainJWKS)
              - issuer: \(Issuers.partner)
                audiences: [partner-cli]
                algorithms: [ES256]
                jwks_uri: \(Issuers.partnerJWKS)
            aws:
              region: us-east-1
              sts_endpoint: \(sts)
            console:
              federation_endpoint: \(federationEndpoint)
              destination: https://console.aws.amazon.com/
              issuer_name: keyless-tests
              destination_hosts: [console.aws.amazon.com]
            """
        let configuration = try ServerConfiguration.parse(yaml, file: directory + "/server.yaml")
        let clock = ManualClock()
        let policyClock = ManualClock(Date())
        let logs = LogCapture(label: "keyless.server.test")
        let jwks = JWKSStub()
        let transport = SwitchableTransport()
        let awsCredentials = StaticAWSCredentials()
        let verifier = BearerVerifier(
            issuers: configuration.issuers.map(\.trusted), http: jwks, clock: clock.wallClock, logger: logs.logger,
            minimumRefetchInterval: configuration.jwksRefetchInterval)
        let service = AccessService(
            configuration: configuration,
            policy: try PolicyStore(path: configuration.policyPath, clock: policyClock.wallClock), verifier: verifier,
            awsCredentials: awsCredentials,
            sts: STSClient(endpoint: configuration.stsEndpoint!, http: transport, logger: logs.logger),
            federation: ConsoleFederation(
                endpoint: configuration.federationEndpoint, issuerName: configuration.consoleIssuerName, http: transport
            ),
            audit: try AuditLog(path: auditPath ?? configuration.auditLogPath), clock: clock.wallClock,
            logger: logs.logger, requests: requests, events: events)
        return ServerFixture(
            directory: directory, configuration: configuration, clock: clock, policyClock: policyClock, jwks: jwks,
            transport: transport, awsCredentials: awsCredentials, service: service, metrics: .accessServer(), logs: logs
        )
    }

    /// The Hummingbird application, logging into `logs`.
    func application() -> some ApplicationProtocol {
        buildServerApplication(service: service, metrics: metrics, logger: logs.logger)
    }

    var policyPath: String { configuration.policyPath }

    /// The audit log's records, in order.
    func auditRecords() throws -> [[String: Any]] {
        let text = try String(contentsOfFile: configuration.auditLogPath, encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            try #require(
                try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                "audit line is not a JSON object: \(line)")
        }
    }

    /// Replaces the policy file (atomically, as the docs ask) and lets the policy clock pass the settle time.
    func rewritePolicy(_ text: String) throws {
        try text.write(toFile: policyPath, atomically: true, encoding: .utf8)
        policyClock.advance(by: PolicyStore.settleSeconds + 60)
    }

    func remove() { try? FileManager.default.removeItem(atPath: directory) }
}

// MARK: Requests

extension TestClientProtocol {
    /// POST /api/v1/credentials for `role` (and `duration`) with `token`.
    func credentials(_ role: String, token: String, duration: Int? = nil) async throws -> TestResponse {
        var body = "{\"role_arn\":" + jsonText(role)
        if let duration { body += ",\"duration_seconds\":\(duration)" }
        return try await post("/api/v1/credentials", token: token, json: body + "}")
    }

    /// POST `path` with a JSON body and a bearer token.
    func post(_ path: String, token: String?, json: String) async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let token { headers[.authorization] = "Bearer " + token }
        return try await execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: json))
    }

    /// GET `path`, with an optional Authorization header value.
    func get(_ path: String, authorization: String? = nil) async throws -> TestResponse {
        var headers: HTTPFields = [:]
        if let authorization { headers[.authorization] = authorization }
        return try await execute(uri: path, method: .get, headers: headers)
    }
}

/// A string as JSON text.
func jsonText(_ value: String) -> String {
    String(
        decoding: try! JSONSerialization.data(withJSONObject: [value], options: [.withoutEscapingSlashes]),
        as: UTF8.self
    ).dropFirst().dropLast().description
}

/// The response body as text.
func text(_ response: TestResponse) -> String { String(buffer: response.body) }

/// The response body as a JSON object.
func json(_ response: TestResponse) throws -> [String: Any] {
    try #require(
        try JSONSerialization.jsonObject(with: Data(text(response).utf8)) as? [String: Any],
        "not a JSON object: \(text(response))")
}

/// The X-Request-Id header.
func requestID(_ response: TestResponse) -> String? { response.headers[HTTPField.Name("X-Request-Id")!] }

// MARK: moto with its request recorder

/// A private moto server (`python3 -m moto.server`) on a free 127.0.0.1 port with moto's request recorder on, writing
/// into this server's own directory, so a test can read back exactly what STS received. Stopped by its PID.
final class RecordingMoto: Sendable {
    let endpoint: String
    let directory: String
    let process: PartnerProcess
    var recordingPath: String { directory + "/recording.jsonl" }

    private init(endpoint: String, directory: String, process: PartnerProcess) {
        self.endpoint = endpoint; self.directory = directory; self.process = process
    }

    static func start() async throws -> RecordingMoto {
        let directory = try makeTemporaryDirectory(prefix: "keyless-moto")
        return try await startOnFreePort { port in
            let process = try PartnerProcess(
                executable: Tooling.python(), arguments: ["-m", "moto.server", "-H", "127.0.0.1", "-p", String(port)],
                environment: [
                    "PYTHONUNBUFFERED": "1", "MOTO_ENABLE_RECORDING": "True",
                    "MOTO_RECORDER_FILEPATH": directory + "/recording.jsonl",
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1",
                ],
                currentDirectory: directory, logPath: directory + "/moto-\(port).log")
            let moto = RecordingMoto(endpoint: "http://127.0.0.1:\(port)", directory: directory, process: process)
            if try await process.waitUntilHealthy(moto.endpoint + "/moto-api/", timeout: 30) { return .started(moto) }
            let log = process.logTail()
            process.stop()
            return .failed(
                "moto did not start (install with python3 -m pip install 'moto[server]'):\n\(log)",
                portTaken: log.contains("Address already in use"))
        }
    }

    /// One request moto received: headers and form fields.
    struct Recorded {
        var headers: [String: String]
        var form: [String: String]
    }

    /// Every STS AssumeRole request moto received, in order.
    func assumeRoleCalls() throws -> [Recorded] {
        guard let text = try? String(contentsOfFile: recordingPath, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").compactMap { line -> Recorded? in
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var body = entry["body"] as? String ?? ""
            if entry["body_encoded"] as? Bool == true, let data = Data(base64Encoded: body) {
                body = String(decoding: data, as: UTF8.self)
            }
            var components = URLComponents()
            components.percentEncodedQuery = body.replacingOccurrences(of: "+", with: "%20")
            var form: [String: String] = [:]
            for item in components.queryItems ?? [] { form[item.name] = item.value ?? "" }
            guard form["Action"] == "AssumeRole" else { return nil }
            return Recorded(headers: entry["headers"] as? [String: String] ?? [:], form: form)
        }
    }

    /// Stops moto by its PID and deletes its directory.
    func stop() {
        process.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
