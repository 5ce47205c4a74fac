import Foundation
import KeylessCore
import KeylessFastPath
import KeylessHTTP
import KeylessJOSE
import KeylessOIDC
import Logging
#if canImport(Glibc)
    import Glibc
#endif

/// How a service or a pipeline gets its OIDC token, with no person in the loop.
public enum WorkloadSource: Sendable, Equatable {
    /// How a confidential client authenticates at the token endpoint.
    public enum ClientAuthentication: Sendable, Equatable {
        /// `client_secret_basic`, the secret read from this file (which must be 0600).
        case secretFile(String)
        /// `private_key_jwt`, signed with the PEM private key in this file (RSA → RS256, P-256 → ES256; 0600).
        case privateKeyFile(String)
    }

    /// The `client_credentials` grant at the provider's token endpoint (found by discovery), asking for `scopes`
    /// (none: the provider's default for the client).
    case clientCredentials(ClientAuthentication, scopes: [String])
    /// A token file something else keeps fresh (Kubernetes projected tokens, CI), read on every refresh.
    case tokenFile(String)
    /// A command whose trimmed stdout is the token, killed after `timeout` seconds.
    case tokenCommand(String, timeout: Double)

    /// This source's part of the cache key (no secrets in it).
    public var cacheIdentity: String {
        switch self {
        case .clientCredentials:
            return CacheKey.workloadSource(clientCredentials: true, tokenFile: nil, tokenCommand: nil)!
        case .tokenFile(let path):
            return CacheKey.workloadSource(clientCredentials: false, tokenFile: path, tokenCommand: nil)!
        case .tokenCommand(let command, _):
            return CacheKey.workloadSource(clientCredentials: false, tokenFile: nil, tokenCommand: command)!
        }
    }

    /// A short name for messages and cache labels.
    public var kind: String {
        switch self {
        case .clientCredentials: return "client-credentials"
        case .tokenFile: return "web-identity-token-file"
        case .tokenCommand: return "token-command"
        }
    }
}

/// Where a workload's token comes from. Asked afresh on every refresh: files and commands rotate their tokens,
/// and the AWS credentials made from a token are what keyless caches.
public protocol WorkloadTokenSource: Sendable {
    /// The raw token (a JWT), obtained now.
    func token(logger: Logger) async throws -> String
}

/// A token source backed by a closure, for tests.
public struct ClosureTokenSource: WorkloadTokenSource {
    let body: @Sendable () async throws -> String
    /// Creates a source that calls `body`.
    public init(_ body: @escaping @Sendable () async throws -> String) { self.body = body }
    public func token(logger: Logger) async throws -> String { try await body() }
}

/// The claims keyless reads from a workload token, unverified: STS verifies the signature; keyless only names the
/// session and explains failures with them.
public struct WorkloadClaims: Decodable, Sendable, Equatable {
    /// Issuer.
    public var iss: String?
    /// Subject.
    public var sub: String?
    /// Audiences: one of them must be a client id the IAM OIDC provider lists.
    public var aud: AudienceList?
    /// Expiry, seconds since 1970.
    public var exp: Double?
    /// The OAuth client (RFC 9068).
    public var clientID: String?
    /// Authorized party.
    public var azp: String?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, azp
        case clientID = "client_id"
    }

    /// Who the session is for: `sub`, else `client_id`, else `azp`.
    public var sessionSubject: String? { sub ?? clientID ?? azp }

    /// The audiences as text for messages.
    public var audienceText: String { aud.map { $0.values.joined(separator: ", ") } ?? "(none)" }

    /// Reads and checks a token from `origin` (for messages): a JWT, not expired at `now`, issued by `issuer` when one is given.
    public static func check(_ token: String, origin: String, now: Date, issuer: String?) throws -> WorkloadClaims {
        guard let claims = UnverifiedJWT.claims(token, as: WorkloadClaims.self) else {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) is not a JWT.",
                hint:
                    "AssumeRoleWithWebIdentity needs a JWT whose aud is a client id the IAM OIDC provider lists; check what \(origin) produces."
            )
        }
        if let exp = claims.exp, exp <= now.timeIntervalSince1970 {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) expired at \(rfc3339(exp)).",
                hint: "Whatever writes it (kubelet, the CI runner, the command) has stopped refreshing it.")
        }
        if let issuer, !issuer.isEmpty, let iss = claims.iss, Discovery.normalize(iss) != Discovery.normalize(issuer) {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) was issued by \(iss), not by --issuer-url \(issuer).",
                hint: "Pass the token's issuer as --issuer-url, or leave --issuer-url out.")
        }
        return claims
    }
}

/// Secrets and keys for workloads must be readable by their owner only.
public enum PrivateFile {
    /// The file's bytes; refuses (with the chmod that fixes it) a file others can read or write, or that is not ours.
    public static func read(_ path: String, what: String) throws -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw KeylessError(
                .configInvalid, "Cannot read the \(what) \(path): \(Files.errnoString()).",
                hint: "Check the path given to keyless.")
        }
        if info.st_uid != geteuid() {
            throw KeylessError(
                .configInvalid, "The \(what) \(path) is not owned by you; keyless will not use it.",
                hint: "Run: chown $(id -u) '\(path)' && chmod 600 '\(path)'")
        }
        if info.st_mode & 0o077 != 0 {
            throw KeylessError(
                .configInvalid,
                "The \(what) \(path) has mode \(String(info.st_mode & 0o777, radix: 8)); others could read it, so keyless refuses it.",
                hint: "Run: chmod 600 '\(path)'")
        }
        guard let bytes = try Files.read(path) else {
            throw KeylessError(
                .configInvalid, "The \(what) \(path) does not exist.", hint: "Check the path given to keyless.")
        }
        return bytes
    }
}

/// A token file, read afresh each time (Kubernetes and CI runners rotate it in place).
public struct TokenFileSource: WorkloadTokenSource {
    /// The file.
    public let path: String
    /// Creates a source.
    public init(path: String) { self.path = path }

    public func token(logger: Logger) async throws -> String {
        guard let bytes = try Files.read(path) else {
            throw KeylessError(
                .tokenInvalid, "The web identity token file \(path) does not exist.",
                hint:
                    "Check --web-identity-token-file; whatever provides it (kubelet, the CI runner) must have written it."
            )
        }
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KeylessError(
                .tokenInvalid, "The web identity token file \(path) is empty.",
                hint: "Check that its provider has written a token.")
        }
        logger.debug("read workload token", metadata: ["workload.file": "\(path)"])
        return token
    }
}

/// A command whose trimmed stdout is the token. Run as `/bin/sh -c COMMAND`: the command comes from the user's own
/// configuration, never from data keyless received. Its stdin is /dev/null and its stderr is kept for the error message.
public struct TokenCommandSource: WorkloadTokenSource {
    /// The shell command.
    public let command: String
    /// Seconds before the command (and everything it started) is killed.
    public let timeout: Double
    /// Its environment.
    public let environment: [String: String]

    /// Creates a source.
    public init(command: String, timeout: Double, environment: [String: String]) {
        self.command = command
        self.timeout = timeout
        self.environment = environment
    }

    public func token(logger: Logger) async throws -> String {
        let result = try await run()
        guard let status = result.status else {
            throw KeylessError(
                .tokenInvalid, "The --token-command did not finish within \(Self.seconds(timeout)) s and was stopped.",
                hint: "Run it by hand to see why it hangs, or raise --token-command-timeout.")
        }
        let stderr = Self.tail(result.stderr)
        guard status == 0 else {
            throw KeylessError(
                .tokenInvalid,
                "The --token-command exited with status \(status)\(stderr.isEmpty ? "" : ": \(stderr)").",
                hint: "Run it by hand to see why it fails; its stdout must be the token and its exit status 0.")
        }
        let token = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else {
            throw KeylessError(
                .tokenInvalid, "The --token-command printed nothing on stdout.", hint: "Its stdout must be the token.")
        }
        logger.debug("ran the token command", metadata: ["workload.exit": "\(status)"])
        return token
    }

    static func seconds(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }

    static func tail(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count > 400 ? "…" + String(text.suffix(400)) : text
    }

    /// Runs the command in its own process group (so a timeout stops everything it started); output goes to unlinked
    /// temporary files, so a child left holding them cannot block us.
    func run() async throws -> (status: Int32?, stdout: [UInt8], stderr: [UInt8]) {
        let out = try Self.scratchFile()
        defer { close(out) }
        let err = try Self.scratchFile()
        defer { close(err) }
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, null, 0)
        posix_spawn_file_actions_adddup2(&actions, out, 1)
        posix_spawn_file_actions_adddup2(&actions, err, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let words: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp)
        guard spawned == 0 else {
            throw KeylessError(
                .io, "Cannot start /bin/sh for the --token-command: \(String(cString: strerror(spawned))).",
                hint: "Check that /bin/sh exists.")
        }

        let deadline = monotonicSeconds() + timeout
        var status: Int32?
        while status == nil {
            var raw: Int32 = 0
            let result = waitpid(pid, &raw, WNOHANG)
            if result == pid {
                status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            } else if result == -1 && errno != EINTR {
                status = -1
            } else if monotonicSeconds() >= deadline || Task.isCancelled {
                // The command's own process group, which we created; its leader is not reaped yet, so the id is still ours.
                kill(-pid, SIGKILL)
                var ignored: Int32 = 0
                while waitpid(pid, &ignored, 0) == -1 && errno == EINTR {}
                return (nil, [], Self.readAll(err))
            } else {
                try? await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        return (status, Self.readAll(out), Self.readAll(err))
    }

    /// An unlinked 0600 temporary file.
    static func scratchFile() throws -> Int32 {
        var template = Array((NSTemporaryDirectory() + "/keyless-token-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw KeylessError(
                .io, "Cannot create a temporary file for the --token-command: \(Files.errnoString()).",
                hint: "Check TMPDIR.")
        }
        unlink(String(cString: template))
        return fd
    }

    static func readAll(_ fd: Int32, limit: Int = 1 << 20) -> [UInt8] {
        lseek(fd, 0, SEEK_SET)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count < limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return bytes
    }
}

/// The `client_credentials` grant at any OpenID Provider: discovery, then the token endpoint, authenticated with
/// `client_secret_basic` or `private_key_jwt`. The ID token is used when the provider returns one, else the access token.
public struct ClientCredentialsSource: WorkloadTokenSource {
    /// The issuer.
    public let issuer: String
    /// The client id.
    public let clientID: String
    /// How the client authenticates.
    public let authentication: WorkloadSource.ClientAuthentication
    /// Scopes to request (none: the provider's default for the client).
    public let scopes: [String]
    let http: any HTTPTransport
    let clock: WallClock

    /// Creates a source.
    public init(
        issuer: String, clientID: String, authentication: WorkloadSource.ClientAuthentication, scopes: [String],
        http: any HTTPTransport, clock: WallClock
    ) {
        self.issuer = Discovery.normalize(issuer)
        self.clientID = clientID
        self.authentication = authentication
        self.scopes = scopes
        self.http = http
        self.clock = clock
    }

    public func token(logger: Logger) async throws -> String {
        // The local checks first: a secret file others can read is refused before anything goes on the network.
        let secret: String?
        let key: SigningKey?
        switch authentication {
        case .secretFile(let path):
            secret = String(decoding: try PrivateFile.read(path, what: "client secret file"), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            guard secret?.isEmpty == false else {
                throw KeylessError(
                    .configInvalid, "The client secret file \(path) is empty.", hint: "Write the client secret into it."
                )
            }
            key = nil
        case .privateKeyFile(let path):
            key = try ClientAssertion.key(pem: try PrivateFile.read(path, what: "client key file"), path: path)
            secret = nil
        }
        let metadata = try await Discovery.fetch(issuer: issuer, http: http, logger: logger)
        var form = [("grant_type", "client_credentials")]
        if !scopes.isEmpty { form.append(("scope", scopes.joined(separator: " "))) }
        var headers = ["content-type": "application/x-www-form-urlencoded", "accept": "application/json"]
        if let secret {
            // RFC 6749 §2.3.1: both parts form-encoded, then Basic.
            let pair = FormEncoding.escape(clientID) + ":" + FormEncoding.escape(secret)
            headers["authorization"] = "Basic " + Data(pair.utf8).base64EncodedString()
        } else if let key {
            form += [
                ("client_id", clientID),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                (
                    "client_assertion",
                    try ClientAssertion.make(
                        clientID: clientID, audience: metadata.tokenEndpoint, key: key, now: clock.now())
                ),
            ]
        }
        logger.debug(
            "client_credentials request",
            metadata: ["oidc.url": "\(metadata.tokenEndpoint)", "oidc.client_id": "\(clientID)"])
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "POST", url: metadata.tokenEndpoint, headers: headers,
                body: Array(FormEncoding.encode(form).utf8))
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot reach the token endpoint \(metadata.tokenEndpoint): \(error).",
                hint: "Check the network and that \(issuer) is up, then retry.")
        }
        let body = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
        guard response.status == 200 else {
            let error = body["error"] as? String ?? "HTTP \(response.status)"
            let description = (body["error_description"] as? String).map { " (\($0))" } ?? ""
            let hint: String
            switch error {
            case "invalid_client":
                hint = "Check --client-id and the client's secret or registered public key at \(issuer)."
            case "unauthorized_client", "unsupported_grant_type":
                hint = "The provider must allow client \(clientID) the client_credentials grant."
            case "invalid_scope":
                hint = "Request only scopes the client may have (--scopes), or none for the provider's default."
            default:
                hint = "Check the client's settings at \(issuer)."
            }
            throw KeylessError(
                .idpError,
                "The identity provider refused the client_credentials grant for \(clientID): \(error)\(description).",
                hint: hint)
        }
        if let idToken = body["id_token"] as? String { return idToken }
        guard let accessToken = body["access_token"] as? String else {
            throw KeylessError(
                .idpError, "The identity provider answered the client_credentials grant without a token.",
                hint: "Check the client's settings at \(issuer).")
        }
        guard UnverifiedJWT.claims(accessToken, as: WorkloadClaims.self) != nil else {
            throw KeylessError(
                .tokenInvalid,
                "\(issuer) returned no id_token and an access_token that is not a JWT, which AssumeRoleWithWebIdentity cannot use.",
                hint:
                    "Configure the client to get JWT access tokens whose aud is a client id the IAM OIDC provider for \(issuer) lists."
            )
        }
        return accessToken
    }
}

/// `private_key_jwt` client assertions (RFC 7523): `iss` and `sub` the client, `aud` the token endpoint, a unique `jti`,
/// and a one-minute life.
enum ClientAssertion {
    /// How long an assertion is valid.
    static let lifetime: TimeInterval = 60

    /// The signed assertion.
    static func make(clientID: String, audience: String, key: SigningKey, now: Date) throws -> String {
        let issuedAt = Int(now.timeIntervalSince1970)
        let header = "{\"alg\":\(jsonString(key.algorithm)),\"typ\":\"JWT\"}"
        let payload =
            "{\"iss\":\(jsonString(clientID)),\"sub\":\(jsonString(clientID)),\"aud\":\(jsonString(audience)),"
            + "\"jti\":\(jsonString(UUID().uuidString)),\"iat\":\(issuedAt),\"exp\":\(issuedAt + Int(lifetime))}"
        return try JWS.sign(header: Array(header.utf8), payload: Array(payload.utf8), key: key)
    }

    /// The signing key in a PEM file: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    static func key(pem: [UInt8], path: String) throws -> SigningKey {
        let text = String(decoding: pem, as: UTF8.self)
        let unreadable = KeylessError(
            .configInvalid, "The client key file \(path) holds no PEM RSA or P-256 private key.",
            hint: "Use a PEM private key, e.g. from: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256")
        guard let begin = text.range(of: "-----BEGIN "), let labelEnd = text[begin.upperBound...].range(of: "-----")
        else { throw unreadable }
        let label = String(text[begin.upperBound..<labelEnd.lowerBound])
        guard let end = text[labelEnd.upperBound...].range(of: "-----END " + label + "-----"),
            let der = Data(base64Encoded: text[labelEnd.upperBound..<end.lowerBound].filter { !$0.isWhitespace })
        else { throw unreadable }
        let algorithms: [String]
        switch label {
        case "RSA PRIVATE KEY": algorithms = ["RS256"]
        case "EC PRIVATE KEY": algorithms = ["ES256"]
        case "PRIVATE KEY": algorithms = ["ES256", "RS256"]
        default: throw unreadable
        }
        for algorithm in algorithms {
            if let key = try? SigningKey(algorithm: algorithm, der: der) { return key }
        }
        throw unreadable
    }
}

extension CredentialBroker {
    /// The workload's token now, checked, as a token set (never stored: the credentials made from it are).
    func workloadTokens(_ workload: WorkloadSource) async throws -> (TokenSet, WorkloadClaims) {
        let source: any WorkloadTokenSource
        let origin: String
        switch workload {
        case .clientCredentials(let authentication, let scopes):
            source =
                tokenSourceOverride
                ?? ClientCredentialsSource(
                    issuer: login.oidc.issuer, clientID: login.oidc.clientID, authentication: authentication,
                    scopes: scopes, http: context.http, clock: context.clock)
            origin = "the client_credentials grant at \(login.oidc.issuer)"
        case .tokenFile(let path):
            source = tokenSourceOverride ?? TokenFileSource(path: path)
            origin = "the web identity token file \(path)"
        case .tokenCommand(let command, let timeout):
            var environment = context.environment.values
            environment.removeValue(forKey: "KEYLESS_FILE_PASSPHRASE")  // the command needs no key to our store
            source =
                tokenSourceOverride ?? TokenCommandSource(command: command, timeout: timeout, environment: environment)
            origin = "the --token-command"
        }
        let token = try await source.token(logger: context.logger)
        let now = context.clock.now()
        let claims = try WorkloadClaims.check(
            token, origin: origin, now: now, issuer: login.oidc.issuer.isEmpty ? nil : login.oidc.issuer)
        let tokens = TokenSet(
            idToken: token, refreshToken: nil, accessToken: nil,
            accessTokenExpiresAt: claims.exp.map { Date(timeIntervalSince1970: $0) }, obtainedAt: now)
        return (tokens, claims)
    }

    /// A workload error from STS, with what the token carried: the usual cause is an `aud` the IAM OIDC provider does not list.
    func explainWorkloadRefusal(_ error: KeylessError, claims: WorkloadClaims?) -> KeylessError {
        guard login.workload != nil, [.stsInvalidIdentityToken, .stsAccessDenied].contains(error.code) else {
            return error
        }
        let issuer = claims?.iss ?? login.oidc.issuer
        return KeylessError(
            error.code,
            error.reason
                + " The token's aud is \(claims?.audienceText ?? "(unknown)"), its sub \(claims?.sub ?? "(none)").",
            hint:
                "The IAM OIDC provider for \(issuer) must list that aud as a client id (audience), and the role's trust policy must allow "
                + "sts:AssumeRoleWithWebIdentity with that aud and sub; `keyless explain` shows which condition fails.")
    }
}
