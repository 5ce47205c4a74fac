import Foundation
import KeylessAWS
import KeylessCore
import KeylessFastPath
import KeylessOIDC
import KeylessSecrets
import Logging

/// How to log in: the provider, the client and the interactive choices.
public struct LoginSettings: Sendable {
    /// Provider and client.
    public var oidc: OIDCClientConfiguration
    /// Use the device flow.
    public var device: Bool
    /// Print the URL instead of starting a browser.
    public var noBrowser: Bool
    /// The browser command.
    public var browser: String?
    /// The loopback port (0: any).
    public var redirectPort: Int
    /// How long to wait for a browser login, in seconds.
    public var timeout: Double
    /// A service's token source; when set, no person is ever asked to log in.
    public var workload: WorkloadSource?
    /// The ID-token claim that names the STS session (nil: verified email, preferred_username, upn, sub).
    public var sessionNameClaim: String?

    /// Creates settings.
    public init(
        oidc: OIDCClientConfiguration, device: Bool = false, noBrowser: Bool = false, browser: String? = nil,
        redirectPort: Int = 0, timeout: Double = 300,
        workload: WorkloadSource? = nil, sessionNameClaim: String? = nil
    ) {
        self.sessionNameClaim = sessionNameClaim
        self.oidc = oidc
        self.device = device
        self.noBrowser = noBrowser
        self.browser = browser
        self.redirectPort = redirectPort
        self.timeout = timeout
        self.workload = workload
    }
}

/// Which role to assume and where STS is.
public struct RoleSettings: Sendable {
    /// The role ARN.
    public var roleArn: String
    /// Requested session length in seconds.
    public var durationSeconds: Int?
    /// The region (for the STS endpoint).
    public var region: String?
    /// An explicit STS endpoint.
    public var stsEndpoint: String?
    /// The keyless server that issues the credentials (nil: AssumeRoleWithWebIdentity directly).
    public var server: String?
    /// Session policies narrowing the session (none: the role's permissions).
    public var scope: SessionScope

    /// Creates settings.
    public init(
        roleArn: String, durationSeconds: Int? = nil, region: String? = nil, stsEndpoint: String? = nil,
        server: String? = nil, scope: SessionScope = .none
    ) {
        self.roleArn = roleArn
        self.durationSeconds = durationSeconds
        self.region = region
        self.stsEndpoint = stsEndpoint
        self.server = server
        self.scope = scope
    }
}

/// Gets ID tokens and AWS credentials for one provider and client: from the cache, by refresh, or by
/// logging in, with one process at a time doing the slow part (a file lock, then a re-check).
public struct CredentialBroker: Sendable {
    public let login: LoginSettings
    let store: any SecretStore
    let context: ClientContext
    let client: OIDCClient
    /// ID tokens with less than this left are refreshed before they go to STS.
    let tokenMargin: TimeInterval = 120
    /// Replaces the workload's token source (tests).
    let tokenSourceOverride: (any WorkloadTokenSource)?

    /// Creates a broker; `tokenSource` replaces the workload's own source (for tests).
    public init(
        login: LoginSettings, store: any SecretStore, context: ClientContext,
        tokenSource: (any WorkloadTokenSource)? = nil
    ) {
        self.login = login
        self.store = store
        self.context = context
        self.client = OIDCClient(
            configuration: login.oidc, http: context.http, clock: context.clock, logger: context.logger)
        self.tokenSourceOverride = tokenSource
    }

    var tokenKey: CacheKey {
        CacheKey(issuer: login.oidc.issuer, clientID: login.oidc.clientID, workload: login.workload?.cacheIdentity)
    }

    /// AWS credentials for `role`, from the cache while more than 15 minutes remain.
    public func credentials(for role: RoleSettings) async throws -> CachedCredentials {
        try STSClient.validateRoleArn(role.roleArn)
        try role.scope.validate()
        let key = CacheKey(
            issuer: login.oidc.issuer, clientID: login.oidc.clientID, roleArn: role.roleArn,
            durationSeconds: role.durationSeconds, server: role.server,
            workload: login.workload?.cacheIdentity, scope: role.scope.cacheIdentity)
        if let cached = try readFresh(key) { return cached }
        let lock = try takeLock()
        defer { lock.unlock() }
        // Another process may have done the work while we waited for the lock.
        if let cached = try readFresh(key) { return cached }

        let tokens = try await usableTokens(forceRefresh: false)
        let credentials: AWSCredentials
        if let server = role.server {
            credentials = try await serverCredentials(server: server, role: role, tokens: tokens)
        } else {
            credentials = try await webIdentityCredentials(role: role, tokens: tokens)
        }
        let cached = CachedCredentials(
            accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken, expiration: credentials.expiration.timeIntervalSince1970,
            assumedRoleArn: credentials.assumedRoleArn)
        var labels = [
            "kind": "aws-credentials", "issuer": login.oidc.issuer, "client_id": login.oidc.clientID,
            "role_arn": role.roleArn,
        ]
        if let arn = credentials.assumedRoleArn { labels["assumed_role_arn"] = arn }
        if let server = role.server { labels["server"] = server }
        if !role.scope.isEmpty { labels["narrowed"] = "true" }
        if let workload = login.workload { labels["workload"] = workload.kind }
        try storeCredentials(cached, store: store, key: key, updatedAt: context.clock.now(), labels: labels)
        return cached
    }

    /// Asks the keyless server for the credentials, with a fresh ID token once if it refuses the cached one.
    func serverCredentials(server: String, role: RoleSettings, tokens: TokenSet) async throws -> AWSCredentials {
        let client = try AccessServerClient(baseURL: server, http: context.http)
        do {
            return try await client.credentials(
                idToken: tokens.idToken, roleArn: role.roleArn, durationSeconds: role.durationSeconds, scope: role.scope
            )
        } catch let error as KeylessError where error.code == .tokenInvalid {
            let fresh = try await usableTokens(forceRefresh: true)
            return try await client.credentials(
                idToken: fresh.idToken, roleArn: role.roleArn, durationSeconds: role.durationSeconds, scope: role.scope)
        }
    }

    /// `AssumeRoleWithWebIdentity` with the ID token, with a fresh token once if STS calls it expired.
    func webIdentityCredentials(role: RoleSettings, tokens: TokenSet) async throws -> AWSCredentials {
        var tokens = tokens
        let sts = STSClient(
            endpoint: STSEndpoint.resolve(
                explicit: role.stsEndpoint, region: role.region, environment: context.environment),
            http: context.http, logger: context.logger)
        let claims = UnverifiedJWT.claims(tokens.idToken)
        // Workload tokens need not carry a person's claims (client_credentials tokens often have no email, even no sub).
        let workloadClaims = login.workload == nil ? nil : UnverifiedJWT.claims(tokens.idToken, as: WorkloadClaims.self)
        func request(_ tokens: TokenSet) -> WebIdentityRequest {
            let person =
                workloadClaims.map { SessionName.sanitize($0.sessionSubject ?? "keyless-workload") }
                ?? SessionName.sanitize(personSessionName(tokens.idToken, claims: claims))
            let sessionName = role.scope.agent.map { SessionScope.agentSessionName($0, person: person) } ?? person
            return WebIdentityRequest(
                roleArn: role.roleArn, sessionName: sessionName, webIdentityToken: tokens.idToken,
                durationSeconds: role.durationSeconds,
                issuer: login.oidc.issuer.isEmpty ? (workloadClaims?.iss ?? "the token's issuer") : login.oidc.issuer,
                scope: role.scope)
        }
        let credentials: AWSCredentials
        do {
            do {
                credentials = try await sts.assumeRoleWithWebIdentity(request(tokens))
            } catch let error as KeylessError where error.code == .stsExpiredToken {
                // STS and our clock disagree about the token's expiry: get a new token once.
                tokens = try await usableTokens(forceRefresh: true)
                credentials = try await sts.assumeRoleWithWebIdentity(request(tokens))
            }
        } catch let error as KeylessError {
            throw explainWorkloadRefusal(error, claims: workloadClaims)
        }
        return credentials
    }

    /// Who the STS session names: the `--session-name-claim` claim when the token has it as text, else a verified email,
    /// preferred_username (Entra), upn, then sub (some providers send only a numeric sub).
    func personSessionName(_ idToken: String, claims: IDTokenClaims?) -> String {
        if let claim = login.sessionNameClaim, let all = UnverifiedJWT.claims(idToken, as: [String: JSONValue].self),
            let value = all[claim]?.text, !value.isEmpty
        {
            return value
        }
        return claims?.displayName ?? "keyless"
    }

    /// A valid ID token (refreshing or logging in as needed), under the lock.
    public func tokens(forceRefresh: Bool = false) async throws -> TokenSet {
        let lock = try takeLock()
        defer { lock.unlock() }
        return try await usableTokens(forceRefresh: forceRefresh)
    }

    /// Logs in interactively now and stores the tokens.
    public func loginNow() async throws -> (TokenSet, IDTokenClaims) {
        let lock = try takeLock()
        defer { lock.unlock() }
        // An explicit login starts afresh (Google then asks consent again and issues a new refresh token); only the
        // `--scopes` and `--auth-param` values of the last login carry over.
        var previous = try storedTokens()
        previous?.refreshToken = nil
        let tokens = try await interactiveLogin(requested: true, previous: previous)
        let claims = try await client.verify(idToken: tokens.idToken)
        return (tokens, claims)
    }

    /// Clears tokens and credentials for this provider and client and revokes the refresh token where supported.
    /// Returns what was done, for the person.
    public func logout() async throws -> [String] {
        var done: [String] = []
        if let entry = try? store.read(tokenKey.tokenEntry),
            let tokens = try? JSONDecoder().decode(TokenSet.self, from: Data(entry.secret)),
            let refresh = tokens.refreshToken
        {
            do {
                done.append(
                    try await client.revoke(refreshToken: refresh)
                        ? "revoked the refresh token at \(login.oidc.issuer)"
                        : "\(login.oidc.issuer) offers no revocation endpoint; the refresh token was only deleted here")
            } catch let error as KeylessError {
                done.append("could not revoke the refresh token (\(error.reason)); deleted it here")
            }
        }
        for header in try store.headers()
        where header.labels["issuer"] == login.oidc.issuer && header.labels["client_id"] == login.oidc.clientID {
            try store.delete(header.name)
            done.append(
                "removed \(header.labels["kind"] ?? "entry") \(header.labels["role_arn"] ?? "")".trimmingCharacters(
                    in: .whitespaces))
        }
        try store.delete(tokenKey.tokenEntry)
        return done
    }

    // MARK: - internals

    func takeLock() throws -> FileLock {
        let directory = context.paths.state + "/locks"
        try Files.ensurePrivateDirectory(directory)
        return try FileLock.lock(directory + "/" + tokenKey.lockName, timeout: login.timeout + 60) {
            context.terminal.say(
                "Another keyless process is refreshing or logging in for \(login.oidc.issuer); waiting for it…")
        }
    }

    func readFresh(_ key: CacheKey) throws -> CachedCredentials? {
        do {
            return try freshCredentials(store: store, key: key, now: context.clock.now())
        } catch let error as KeylessError where error.code == .cacheCorrupt {
            context.terminal.say("warning: \(error.reason) It will be replaced.")
            return nil
        }
    }

    public func storedTokens() throws -> TokenSet? {
        do {
            guard let entry = try store.read(tokenKey.tokenEntry) else { return nil }
            return try JSONDecoder().decode(TokenSet.self, from: Data(entry.secret))
        } catch let error as KeylessError where error.code == .cacheCorrupt {
            context.terminal.say("warning: \(error.reason) Logging in again.")
            return nil
        } catch is DecodingError {
            context.terminal.say("warning: the cached tokens do not decode; logging in again.")
            return nil
        }
    }

    func usableTokens(forceRefresh: Bool) async throws -> TokenSet {
        // A workload's token comes from its source every time; nothing to refresh, and never a login.
        if let workload = login.workload { return try await workloadTokens(workload).0 }
        let now = context.clock.now()
        var previous = try storedTokens()
        if let tokens = previous {
            if !forceRefresh, let claims = UnverifiedJWT.claims(tokens.idToken),
                claims.expiresAt.timeIntervalSince(now) > tokenMargin
            {
                return tokens
            }
            if tokens.refreshToken != nil {
                do {
                    let refreshed = try await client.refresh(tokens)
                    // A refresh that kept the old ID token does not help when STS just called it expired.
                    if !(forceRefresh && refreshed.idToken == tokens.idToken) {
                        try save(refreshed)
                        context.logger.info("refreshed tokens", metadata: ["oidc.issuer": "\(login.oidc.issuer)"])
                        return refreshed
                    }
                } catch let error as KeylessError where error.code == .loginRequired || error.code == .tokenInvalid {
                    context.terminal.say("\(error.reason) A new login is needed.")
                    // A refresh token the provider refused is not kept: the new login must get a new one.
                    previous?.refreshToken = nil
                }
            }
        }
        return try await interactiveLogin(requested: false, previous: previous)
    }

    /// Logs a person in. `requested`: they ran `keyless login`, so the URL or code is shown on stderr even without a
    /// terminal, and the login waits (ssh host keyless login --no-browser, scripts, notebooks). A login that a tool's
    /// `credential_process` call would start instead fails at once without a terminal or browser: the AWS CLI captures
    /// that stderr, so nobody would see the URL.
    /// `previous`: the tokens kept from the last login (its refresh token, `--scopes` and `--auth-param` values carry over).
    func interactiveLogin(requested: Bool, previous: TokenSet?) async throws -> TokenSet {
        if let workload = login.workload {
            throw KeylessError(
                .usage, "keyless never logs a person in for a workload (--\(workload.kind)).",
                hint:
                    "Drop the workload flags to log in as a person; a workload gets its token from its own source on every call."
            )
        }
        let presenter = TerminalPresenter(
            terminal: context.terminal, environment: context.environment, browserCommand: login.browser,
            noBrowser: login.noBrowser)
        if !requested && !login.device && presenter.resolvedBrowser() == nil && !context.terminal.isInteractive {
            throw KeylessError(
                .loginRequired,
                "A login to \(login.oidc.issuer) is needed, and there is neither a browser to open nor a terminal to show the URL on.",
                hint:
                    "Run `keyless login --issuer-url \(login.oidc.issuer) --client-id \(login.oidc.clientID)` in a terminal, then retry."
            )
        }
        context.terminal.say("keyless: logging in to \(login.oidc.issuer) as client \(login.oidc.clientID).")
        let tokens =
            login.device
            ? try await client.loginWithDevice(presenter: presenter, previous: previous)
            : try await client.loginWithBrowser(
                redirectPort: login.redirectPort, presenter: presenter, timeout: login.timeout, previous: previous)
        try save(tokens)
        return tokens
    }

    func save(_ tokens: TokenSet) throws {
        let claims = UnverifiedJWT.claims(tokens.idToken)
        var labels = ["kind": "oidc-tokens", "issuer": login.oidc.issuer, "client_id": login.oidc.clientID]
        if let claims { labels["subject"] = claims.displayName }
        labels["refresh_token"] = tokens.refreshToken == nil ? "no" : "yes"
        let header = EntryHeader(
            name: tokenKey.tokenEntry, expiresAt: claims?.expiresAt, updatedAt: context.clock.now(), labels: labels,
            backend: store.backendName)
        try store.write(SecretEntry(header: header, secret: Array(try JSONEncoder().encode(tokens))))
    }
}
