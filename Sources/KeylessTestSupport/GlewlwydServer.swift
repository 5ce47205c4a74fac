import Foundation

/// A user seeded by scripts/partners/glewlwyd-setup.sh.
public struct GlewlwydUser: Sendable, Equatable {
    /// The login name.
    public let name: String
    public let password: String
    /// The email claim glewlwyd puts in ID tokens.
    public let email: String

    /// alice / alice-password-1.
    public static let alice = GlewlwydUser(name: "alice", password: "alice-password-1", email: "alice@example.com")
    /// bob / bob-password-1.
    public static let bob = GlewlwydUser(name: "bob", password: "bob-password-1", email: "bob@example.com")
}

/// A private glewlwyd OpenID Provider (SQLite, loopback port) seeded by scripts/partners/glewlwyd-setup.sh.
public final class GlewlwydServer: Sendable {
    /// The base URL, "http://127.0.0.1:PORT".
    public let baseURL: String
    public let port: Int
    /// The OIDC issuer, "http://127.0.0.1:PORT/api/oidc".
    public let issuer: String
    /// The public client's id ("swift-cli").
    public let clientID = "swift-cli"
    /// The only redirect URI the public client accepts: "http://127.0.0.1:REDIRECT_PORT/callback".
    public let redirectURI: String
    /// The redirect port given to `start`.
    public let redirectPort: Int
    /// The confidential client_credentials client's id ("svc").
    public let serviceClientID = "svc"
    /// The confidential client's secret ("svc-secret-123").
    public let serviceClientSecret = "svc-secret-123"
    /// The directory holding the database, configuration, keys and logs.
    public let directory: String
    /// glewlwyd's own log file.
    public let logPath: String
    /// The glewlwyd process id (read from DIR/glewlwyd.pid); `stop` signals this PID only.
    public let pid: Int32

    /// Every scope the setup script lets `swift-cli` request.
    public static let allScopes = "openid email profile offline_access aws"

    private init(port: Int, redirectPort: Int, directory: String, pid: Int32) {
        self.port = port
        self.baseURL = "http://127.0.0.1:\(port)"
        self.issuer = "http://127.0.0.1:\(port)/api/oidc"
        self.redirectPort = redirectPort
        self.redirectURI = "http://127.0.0.1:\(redirectPort)/callback"
        self.directory = directory
        self.logPath = (directory as NSString).appendingPathComponent("glewlwyd.log")
        self.pid = pid
    }

    /// Seeds and starts glewlwyd in a new temporary directory on a free port (about 1 s); `swift-cli` redirects to
    /// `http://127.0.0.1:redirectPort/callback`; token lifetimes in seconds.
    public static func start(redirectPort: Int, accessTTL: Int = 3600, refreshTTL: Int = 1209600) async throws
        -> GlewlwydServer
    {
        guard Tooling.have("glewlwyd") else {
            throw TestSupportError(
                "glewlwyd is not installed (apt-get install glewlwyd sqlite3 jq curl openssl, or run scripts/test)")
        }
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/glewlwyd-setup.sh")
        return try await startOnFreePort { port in
            let directory = try makeTemporaryDirectory(prefix: "keyless-glewlwyd")
            let result = try PartnerProcess.run(
                "/bin/bash", [script, directory, String(port), String(redirectPort)],
                environment: [
                    "GLEWLWYD_ACCESS_TTL": String(accessTTL),
                    "GLEWLWYD_REFRESH_TTL": String(refreshTTL),
                ],
                timeout: 60)
            let pidFile = (directory as NSString).appendingPathComponent("glewlwyd.pid")
            let pid = (try? String(contentsOfFile: pidFile, encoding: .utf8))
                .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if result.status == 0, let pid {
                return .started(GlewlwydServer(port: port, redirectPort: redirectPort, directory: directory, pid: pid))
            }
            if let pid { stopProcess(pid: pid) }  // the script stops it on failure; make sure
            let log =
                (try? String(
                    contentsOfFile: (directory as NSString).appendingPathComponent("glewlwyd.log"), encoding: .utf8))
                ?? ""
            return .failed(
                "glewlwyd-setup.sh \(directory) \(port) \(redirectPort) failed (status \(result.status)):\n\(result.output)"
                    + (log.isEmpty
                        ? "" : "\nglewlwyd.log:\n\(log.split(separator: "\n").suffix(20).joined(separator: "\n"))"),
                portTaken: log.contains("Address already in use") || result.output.contains("exited early"))
        }
    }

    /// Approves a device authorization as `user`: logs in (`POST /api/auth/`), grants `scopes` to swift-cli
    /// (`PUT /api/auth/grant/swift-cli`, which replaces earlier grants), then `GET /api/oidc/device?code=USERCODE&g_continue`.
    /// Throws if glewlwyd answers `prompt=deviceCodeError` (unknown, expired or already used code).
    public func approveDevice(
        userCode: String, user: String, password: String, scopes: String = GlewlwydServer.allScopes
    ) async throws {
        let cookie = try await login(user: user, password: password)
        try await grant(scopes: scopes, cookie: cookie)
        let url = "\(baseURL)/api/oidc/device?code=\(PartnerHTTP.formEscape(userCode))&g_continue"
        let answer = try await PartnerHTTP.send("GET", url, headers: ["Cookie": cookie])
        let location = answer.headers["location"] ?? ""
        guard answer.status == 302, location.contains("prompt=deviceComplete") else {
            throw TestSupportError(
                "glewlwyd did not approve device code \(userCode): HTTP \(answer.status), Location: \(location)")
        }
    }

    /// Logs `user` in with glewlwyd's login API and returns the session cookie ("GLEWLWYD2_SESSION_ID=...").
    public func login(user: String, password: String) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["username": user, "password": password])
        let answer = try await PartnerHTTP.send(
            "POST", "\(baseURL)/api/auth/", headers: ["Content-Type": "application/json"], body: body)
        guard answer.status == 200 else {
            throw TestSupportError("glewlwyd login as \(user) answered HTTP \(answer.status) \(answer.text)")
        }
        let setCookie = answer.headers["set-cookie"] ?? ""
        guard let start = setCookie.range(of: "GLEWLWYD2_SESSION_ID=") else {
            throw TestSupportError("glewlwyd login as \(user) set no session cookie (Set-Cookie: \(setCookie))")
        }
        let rest = setCookie[start.lowerBound...]
        return String(rest.prefix { $0 != ";" && $0 != "," })
    }

    /// Grants `scopes` (space-separated) to swift-cli for the session's user, as the consent page does; replaces earlier grants.
    public func grant(scopes: String, cookie: String) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["scope": scopes])
        let answer = try await PartnerHTTP.send(
            "PUT", "\(baseURL)/api/auth/grant/\(clientID)",
            headers: ["Content-Type": "application/json", "Cookie": cookie], body: body)
        guard answer.status == 200 else {
            throw TestSupportError(
                "glewlwyd grant of \(scopes) to \(clientID) answered HTTP \(answer.status) \(answer.text)")
        }
    }

    /// Registers a confidential web client (authorization code + refresh token, `client_secret_basic`/`_post`) with
    /// its redirect URIs, as glewlwyd's administrator (admin/password, from its seed database).
    public func registerClient(id: String, secret: String, redirectURIs: [String]) async throws {
        let admin = try await login(user: "admin", password: "password")
        let body = try JSONSerialization.data(withJSONObject: [
            "client_id": id, "name": id, "enabled": true, "confidential": true, "password": secret,
            "token_endpoint_auth_method": ["client_secret_basic", "client_secret_post"], "redirect_uri": redirectURIs,
            "authorization_type": ["code", "refresh_token"], "scope": [],
        ])
        let answer = try await PartnerHTTP.send(
            "POST", "\(baseURL)/api/client/", headers: ["Content-Type": "application/json", "Cookie": admin], body: body
        )
        guard answer.status == 200 else {
            throw TestSupportError("glewlwyd registering client \(id) answered HTTP \(answer.status) \(answer.text)")
        }
    }

    /// Deletes a user, as the organisation's administrator would at offboarding.
    public func deleteUser(_ name: String) async throws {
        let admin = try await login(user: "admin", password: "password")
        let answer = try await PartnerHTTP.send("DELETE", "\(baseURL)/api/user/\(name)", headers: ["Cookie": admin])
        guard answer.status == 200 else {
            throw TestSupportError("glewlwyd deleting user \(name) answered HTTP \(answer.status) \(answer.text)")
        }
    }

    /// Stops glewlwyd by its PID (SIGTERM, then SIGKILL after 3 s) and waits until it is gone. Idempotent.
    public func stop() { stopProcess(pid: pid) }

    /// Stops glewlwyd and deletes its directory.
    public func stopAndRemove() {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Stops glewlwyd; deletes its directory unless KEYLESS_KEEP_PARTNER_FILES is set.
    deinit {
        stopProcess(pid: pid)
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) }
    }
}
