import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessCore
import KeylessHTTPServer
import KeylessIdP
import KeylessIdPServer
import KeylessStorage
import KeylessTestFakes
import Logging
import NIOCore
import Testing

// MARK: Time

/// The reference time every fixture clock starts at: 2026-01-01T00:00:00Z.
let referenceTime = ManualClock.reference

// MARK: Configuration

/// Users, clients and secrets of the test provider.
enum Fixture {
    static let issuer = "https://idp.example.com"

    static let alicePassword = "correct horse battery staple"
    static let bobPassword = "bob-password-7"
    /// Base32 of "Hello!" and DE AD BE EF, twice (20 bytes): the usual authenticator example secret.
    static let bobTOTPSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    static let otherPassword = "someone-else-1"
    static let webappSecret = "webapp-secret-value"
    static let serviceSecret = "service-secret-value"

    static let cliRedirect = "http://127.0.0.1/callback"
    static let webappRedirect = "https://app.example.com/callback"

    /// RFC 7636 Appendix B: the verifier and its S256 challenge.
    static let pkceVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    static let pkceChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

    // Cheap scrypt cost (logN 10) so a login costs about a millisecond.
    static let aliceHash = hash(alicePassword)
    static let bobHash = hash(bobPassword)
    static let otherHash = hash(otherPassword)
    static let webappHash = hash(webappSecret)
    static let serviceHash = hash(serviceSecret)

    static func hash(_ secret: String) -> String {
        do { return try PasswordHash.make(secret, logN: 10).description } catch {
            fatalError("scrypt failed: \(error)")
        }
    }

    /// The idp.yaml of the test provider: alice (password), bob (password and TOTP), four more users for the
    /// per-address throttle, a public CLI client, a confidential third-party web app, a service client and a third-party device
    /// client.
    static var yaml: String {
        """
        issuer: \(issuer)
        signing_algorithm: ES256
        groups: [admins, engineers]
        users:
          - username: alice
            password_hash: "\(aliceHash)"
            email: alice@example.com
            groups: [admins]
          - username: bob
            password_hash: "\(bobHash)"
            totp_secret: \(bobTOTPSecret)
            groups: [engineers]
          - username: carol
            password_hash: "\(otherHash)"
          - username: dave
            password_hash: "\(otherHash)"
          - username: erin
            password_hash: "\(otherHash)"
          - username: frank
            password_hash: "\(otherHash)"
        clients:
          - id: cli
            redirect_uris: ["\(cliRedirect)"]
            grants: [authorization_code, refresh_token, device_code]
          - id: webapp
            secret_hash: "\(webappHash)"
            redirect_uris: ["\(webappRedirect)"]
            grants: [authorization_code, refresh_token]
            first_party: false
          - id: service
            secret_hash: "\(serviceHash)"
            grants: [client_credentials]
            scopes: [api.read]
          - id: gadget
            grants: [device_code]
            first_party: false
        """
    }

    static func configuration() throws -> IdPConfiguration { try IdPConfiguration.parse(yaml, path: "idp.yaml") }
}

// MARK: The provider under test

/// One provider: an engine over its own store, its metrics, captured logs and the Hummingbird application.
struct IdPServerFixture: Sendable {
    let clock: ManualClock
    let engine: OAuthEngine
    let metrics: HTTPMetrics
    let logs: LogCapture
    let serverConfiguration: IdPServerConfiguration

    /// A provider with the fixture configuration over `store` (a fresh memory store by default).
    static func make(
        issuer: String = Fixture.issuer, store: any IdPStore = MemoryIdPStore(), clock: ManualClock = ManualClock(),
        secureCookies: Bool = false, host: String = "127.0.0.1", port: Int = 0, idleTimeout: TimeInterval = 30,
        metrics: MetricsAccess = .open, trustedProxies: TrustedProxies = .none
    ) async throws -> IdPServerFixture {
        let config = try Fixture.configuration()
        let keys = KeyRing(
            store: store, kek: SymmetricKey(size: .bits256), algorithm: config.signingAlgorithm, clock: clock.wallClock,
            maxTokenLifetime: OAuthEngine.maxTokenLifetime(config))
        try await keys.start()
        let engine = try OAuthEngine(config: config, issuer: issuer, store: store, keys: keys, clock: clock.wallClock)
        return IdPServerFixture(
            clock: clock, engine: engine, metrics: .provider(), logs: LogCapture(),
            serverConfiguration: IdPServerConfiguration(
                host: host, port: port, secureCookies: secureCookies, idleTimeout: idleTimeout,
                metrics: metrics, trustedProxies: trustedProxies))
    }

    /// The application, logging into `logs`.
    func application(onRunning: @escaping @Sendable (SocketAddress?) async -> Void = { _ in })
        -> some ApplicationProtocol
    {
        buildIdPApplication(
            engine: engine, configuration: serverConfiguration, logger: logs.logger, metrics: metrics,
            onRunning: onRunning)
    }

    /// Runs `body` against the router, without a socket (so there is no peer address).
    func withRouter<Value: Sendable>(_ body: @Sendable (any TestClientProtocol) async throws -> Value) async throws
        -> Value
    {
        try await application().test(.router, body)
    }
}

// MARK: Logs

// MARK: A browser without a browser

/// Carries cookies between requests the way a browser does for one site.
struct Browser {
    let client: any TestClientProtocol
    var cookies: [String: String] = [:]

    init(_ client: any TestClientProtocol) { self.client = client }

    /// GET `uri`, sending and then storing cookies.
    mutating func get(_ uri: String, headers: HTTPFields = [:]) async throws -> TestResponse {
        var headers = headers
        if !cookies.isEmpty { headers[.cookie] = cookieHeader }
        let response = try await client.execute(uri: uri, method: .get, headers: headers)
        remember(response)
        return response
    }

    /// POST a form to `uri`, sending and then storing cookies.
    mutating func post(_ uri: String, form fields: [(String, String)], headers: HTTPFields = [:]) async throws
        -> TestResponse
    {
        var headers = headers
        headers[.contentType] = "application/x-www-form-urlencoded"
        if !cookies.isEmpty { headers[.cookie] = cookieHeader }
        let response = try await client.execute(uri: uri, method: .post, headers: headers, body: formBody(fields))
        remember(response)
        return response
    }

    var cookieHeader: String {
        cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
    }

    mutating func remember(_ response: TestResponse) {
        for header in response.headers[values: .setCookie] {
            guard let (name, value) = parseSetCookie(header) else { continue }
            cookies[name] = value
        }
    }

    /// GET /authorize, then POST the login form with the hidden fields and the CSRF token it carries.
    mutating func signIn(query: [(String, String)], username: String, password: String, otp: String? = nil) async throws
        -> TestResponse
    {
        let page = try await get("/authorize?" + formEncode(query))
        guard page.status == .ok else { throw FixtureError("the login page answered \(page.status)") }
        var fields = hiddenFields(text(page))
        fields.append(("username", username))
        fields.append(("password", password))
        if let otp { fields.append(("otp", otp)) }
        fields.append(("action", "login"))
        return try await post("/authorize", form: fields)
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: Requests

/// Query and form encoding: RFC 3986 unreserved characters stay, everything else is percent-encoded.
func formEncode(_ fields: [(String, String)]) -> String {
    fields.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
}

func percentEncode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
}

func formBody(_ fields: [(String, String)]) -> ByteBuffer { ByteBuffer(string: formEncode(fields)) }

/// Headers of a form POST, with optional Basic client credentials.
func formHeaders(basic: (String, String)? = nil) -> HTTPFields {
    var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded"]
    if let (id, secret) = basic { headers[.authorization] = basicAuthorization(id, secret) }
    return headers
}

func basicAuthorization(_ id: String, _ secret: String) -> String {
    // RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
    "Basic " + Data("\(percentEncode(id)):\(percentEncode(secret))".utf8).base64EncodedString()
}

/// The query of a PKCE authorization request from the CLI client.
func cliAuthorizationQuery(state: String = "state-123", nonce: String = "nonce-456", extra: [(String, String)] = [])
    -> [(String, String)]
{
    [
        ("response_type", "code"), ("client_id", "cli"), ("redirect_uri", Fixture.cliRedirect),
        ("scope", "openid email"),
        ("state", state), ("nonce", nonce), ("code_challenge", Fixture.pkceChallenge),
        ("code_challenge_method", "S256"),
    ] + extra
}

/// The query of an authorization request from the third-party web app (confidential, no PKCE).
func webappAuthorizationQuery(state: String = "web-state") -> [(String, String)] {
    [
        ("response_type", "code"), ("client_id", "webapp"), ("redirect_uri", Fixture.webappRedirect),
        ("scope", "openid"), ("state", state),
    ]
}

/// Redeems a CLI code at the token endpoint.
func redeemCLICode(_ client: any TestClientProtocol, code: String) async throws -> TestResponse {
    try await client.execute(
        uri: "/token", method: .post, headers: formHeaders(),
        body: formBody([
            ("grant_type", "authorization_code"), ("code", code), ("redirect_uri", Fixture.cliRedirect),
            ("client_id", "cli"),
            ("code_verifier", Fixture.pkceVerifier),
        ]))
}

// MARK: Responses

func text(_ response: TestResponse) -> String { String(buffer: response.body) }

func json(_ response: TestResponse) throws -> [String: Any] {
    guard let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any] else {
        throw FixtureError("not a JSON object: \(text(response))")
    }
    return object
}

/// The OAuth `error` member of a JSON error response.
func oauthError(_ response: TestResponse) throws -> String? { try json(response)["error"] as? String }

/// The `Location` of a redirect split into the address before `?` and its query items.
struct Redirect {
    var base: String
    var items: [String: String]
    var names: [String]

    init?(_ response: TestResponse) {
        guard let location = response.headers[.location], let components = URLComponents(string: location) else {
            return nil
        }
        var stripped = components
        stripped.query = nil
        base = stripped.string ?? ""
        let queryItems = components.queryItems ?? []
        names = queryItems.map(\.name)
        items = Dictionary(queryItems.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
    }
}

/// Name and value of a Set-Cookie header.
func parseSetCookie(_ header: String) -> (String, String)? {
    let pair = header.split(separator: ";", maxSplits: 1)[0]
    guard let equals = pair.firstIndex(of: "=") else { return nil }
    return (String(pair[..<equals]).trimmingCharacters(in: .whitespaces), String(pair[pair.index(after: equals)...]))
}

/// The Set-Cookie header that sets `name`, if any.
func setCookie(_ response: TestResponse, _ name: String) -> String? {
    response.headers[values: .setCookie].first { parseSetCookie($0)?.0 == name }
}

/// The attributes of a Set-Cookie header, lower-cased, without the name=value pair.
func cookieAttributes(_ header: String) -> Set<String> {
    Set(header.split(separator: ";").dropFirst().map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
}

/// The hidden inputs of a page's form, in order, with HTML entities decoded.
/// The hidden fields of the page's first form (what a browser submits with it; a later form, such as the passkey
/// sign-in, has its own).
func hiddenFields(_ html: String) -> [(String, String)] {
    let first = html.range(of: "</form>").map { String(html[..<$0.upperBound]) } ?? html
    return first.matches(of: /<input type="hidden" name="([^"]*)" value="([^"]*)">/).map {
        (unescapeHTML(String($0.1)), unescapeHTML(String($0.2)))
    }
}

func hiddenField(_ name: String, in html: String) -> String? { hiddenFields(html).first { $0.0 == name }?.1 }

func unescapeHTML(_ text: String) -> String {
    text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
        .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
        .replacingOccurrences(of: "&amp;", with: "&")
}

/// The claims of a compact JWS, unverified.
func jwtClaims(_ token: String) throws -> [String: Any] {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let payload = Base64URL.decode(parts[1]),
        let claims = try JSONSerialization.jsonObject(with: payload) as? [String: Any]
    else { throw FixtureError("not a JWS: \(token)") }
    return claims
}

/// Whether an ES256 compact JWS verifies with one of the P-256 keys of a JWKS document.
func verifiesES256(_ token: String, jwks: [String: Any]) throws -> Bool {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, let headerData = Base64URL.decode(parts[0]), let signature = Base64URL.decode(parts[2]),
        let header = try JSONSerialization.jsonObject(with: headerData) as? [String: Any],
        header["alg"] as? String == "ES256"
    else { return false }
    let keys = (jwks["keys"] as? [[String: Any]] ?? []).filter { $0["kid"] as? String == header["kid"] as? String }
    for jwk in keys {
        guard let x = (jwk["x"] as? String).flatMap(Base64URL.decode),
            let y = (jwk["y"] as? String).flatMap(Base64URL.decode)
        else { continue }
        let key = try P256.Signing.PublicKey(rawRepresentation: x + y)
        let ecdsa = try P256.Signing.ECDSASignature(rawRepresentation: signature)
        if key.isValidSignature(ecdsa, for: Data("\(parts[0]).\(parts[1])".utf8)) { return true }
    }
    return false
}

// MARK: Assertions

/// The headers SecurityHeadersMiddleware promises on every response.
func expectSecurityHeaders(
    _ response: TestResponse, cacheControl: String = "no-store", sourceLocation: SourceLocation = #_sourceLocation
) {
    let headers = response.headers
    #expect(headers[.xContentTypeOptions] == "nosniff", sourceLocation: sourceLocation)
    #expect(headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer", sourceLocation: sourceLocation)
    #expect(headers[HTTPField.Name("X-Frame-Options")!] == "DENY", sourceLocation: sourceLocation)
    // A page that loads the provider's passkey script may run it (and only it, from the provider's own origin).
    let runsScript = text(response).contains("<script src=\"/passkeys.js\" defer></script>")
    #expect(
        headers[.contentSecurityPolicy]
            == (runsScript
                ? "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
                : "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"),
        sourceLocation: sourceLocation)
    #expect(headers[.cacheControl] == cacheControl, sourceLocation: sourceLocation)
}

// MARK: A store that can be made to fail

/// A memory store that throws from every method while `failing` is set, to show how the server answers when its
/// database is down.
actor SwitchableStore: IdPStore {
    private let base = MemoryIdPStore()
    private var failing = false

    func setFailing(_ value: Bool) { failing = value }

    private func check() throws { if failing { throw IdPStoreError("the test switched the store off") } }

    func migrate() async throws { try check(); try await base.migrate() }
    func close() async throws { try check(); try await base.close() }
    func signingKeys() async throws -> [SigningKeyRecord] { try check(); return try await base.signingKeys() }
    func insertSigningKey(_ key: SigningKeyRecord, onlyIfEmpty: Bool) async throws -> Bool {
        try check(); return try await base.insertSigningKey(key, onlyIfEmpty: onlyIfEmpty)
    }
    func retireSigningKey(kid: String, retiresAt: Date, expiresAt: Date) async throws {
        try check(); try await base.retireSigningKey(kid: kid, retiresAt: retiresAt, expiresAt: expiresAt)
    }
    func deleteExpiredSigningKeys(now: Date) async throws {
        try check(); try await base.deleteExpiredSigningKeys(now: now)
    }
    func insertSession(_ session: SessionRecord) async throws { try check(); try await base.insertSession(session) }
    func session(idHash: String, now: Date) async throws -> SessionRecord? {
        try check(); return try await base.session(idHash: idHash, now: now)
    }
    func deleteSession(idHash: String) async throws { try check(); try await base.deleteSession(idHash: idHash) }
    func insertPasskey(_ passkey: PasskeyRecord) async throws -> Bool {
        try check(); return try await base.insertPasskey(passkey)
    }
    func passkeys(subject: String) async throws -> [PasskeyRecord] {
        try check(); return try await base.passkeys(subject: subject)
    }
    func passkey(credentialID: String) async throws -> PasskeyRecord? {
        try check(); return try await base.passkey(credentialID: credentialID)
    }
    func recordPasskeyUse(
        credentialID: String, previousSignCount: Int64, signCount: Int64, backedUp: Bool, at: Date
    ) async throws -> Bool {
        try check()
        return try await base.recordPasskeyUse(
            credentialID: credentialID, previousSignCount: previousSignCount, signCount: signCount, backedUp: backedUp,
            at: at)
    }
    func deletePasskey(credentialID: String, subject: String) async throws -> Bool {
        try check(); return try await base.deletePasskey(credentialID: credentialID, subject: subject)
    }
    func insertCode(_ code: AuthorizationCodeRecord) async throws { try check(); try await base.insertCode(code) }
    func consumeCode(hash: String, now: Date) async throws -> CodeRedemption {
        try check(); return try await base.consumeCode(hash: hash, now: now)
    }
    func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        try check(); try await base.insertRefreshToken(token)
    }
    func rotateRefreshToken(hash: String, now: Date, successor: RefreshSuccessor) async throws -> RefreshRedemption {
        try check(); return try await base.rotateRefreshToken(hash: hash, now: now, successor: successor)
    }
    func revokeFamily(id: String) async throws { try check(); try await base.revokeFamily(id: id) }
    func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        try check(); return try await base.refreshToken(hash: hash)
    }
    func familyOfRefreshToken(hash: String) async throws -> String? {
        try check(); return try await base.familyOfRefreshToken(hash: hash)
    }
    func insertDeviceCode(_ device: DeviceCodeRecord) async throws {
        try check(); try await base.insertDeviceCode(device)
    }
    func deviceCode(userCode: String, now: Date) async throws -> DeviceCodeRecord? {
        try check(); return try await base.deviceCode(userCode: userCode, now: now)
    }
    func approveDevice(userCode: String, approval: DeviceApproval, now: Date) async throws -> Bool {
        try check(); return try await base.approveDevice(userCode: userCode, approval: approval, now: now)
    }
    func denyDevice(userCode: String, now: Date) async throws -> Bool {
        try check(); return try await base.denyDevice(userCode: userCode, now: now)
    }
    func pollDevice(deviceCodeHash: String, now: Date) async throws -> DevicePoll {
        try check(); return try await base.pollDevice(deviceCodeHash: deviceCodeHash, now: now)
    }
    func spendOnce(key: String, expiresAt: Date, now: Date) async throws -> Bool {
        try check(); return try await base.spendOnce(key: key, expiresAt: expiresAt, now: now)
    }
    func addToCounters(_ keys: [String], delta: Int, window: TimeInterval, now: Date) async throws -> [ThrottleCounter]
    {
        try check(); return try await base.addToCounters(keys, delta: delta, window: window, now: now)
    }
    func counters(_ keys: [String], now: Date) async throws -> [ThrottleCounter] {
        try check(); return try await base.counters(keys, now: now)
    }
    func deleteCounter(_ key: String) async throws { try check(); try await base.deleteCounter(key) }
    func purgeExpired(now: Date) async throws { try check(); try await base.purgeExpired(now: now) }
}
