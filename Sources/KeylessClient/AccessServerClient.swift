import Foundation
import KeylessAWS
import KeylessCore
import KeylessHTTP

/// What `GET /api/v1/config` answers: the caller, how to log in, and every role they may assume by account.
public struct ServerConfigDocument: Codable, Sendable, Equatable {
    /// One assumable role with what `configure` writes for it.
    public struct Role: Codable, Sendable, Equatable {
        public var arn: String
        public var name: String
        public var description: String?
        public var maxSessionSeconds: Int
        public var mfaRequired: Bool
        public var credentials: String
        public var region: String
        public var profile: String
        public var credentialProcess: String

        enum CodingKeys: String, CodingKey {
            case arn, name, description, credentials, region, profile
            case maxSessionSeconds = "max_session_seconds", mfaRequired = "mfa_required", credentialProcess =
                "credential_process"
        }
    }

    /// An account and its roles.
    public struct Account: Codable, Sendable, Equatable {
        public var id: String
        public var alias: String?
        public var roles: [Role]
        /// The alias when there is one, else the id.
        public var label: String { alias ?? id }
        /// "alias (id)", or the id.
        public var heading: String { alias.map { "\($0) (\(id))" } ?? id }
    }

    /// The caller as the server sees them.
    public struct CallerInfo: Codable, Sendable, Equatable {
        public var subject: String
        public var name: String
        public var groups: [String]
        public var mfa: Bool
    }

    public var issuer: String
    public var clientID: String
    public var serverURL: String
    public var defaultRegion: String
    public var caller: CallerInfo
    public var accounts: [Account]

    enum CodingKeys: String, CodingKey {
        case issuer, caller, accounts
        case clientID = "client_id", serverURL = "server_url", defaultRegion = "default_region"
    }

    /// Every role, with its account.
    public var allRoles: [(account: Account, role: Role)] {
        accounts.flatMap { account in account.roles.map { (account, $0) } }
    }
}

/// Talks to `keyless server` with the caller's ID token as the bearer token.
public struct AccessServerClient: Sendable {
    let baseURL: String
    let http: any HTTPTransport

    /// A client for the server at `baseURL`.
    public init(baseURL: String, http: any HTTPTransport) throws {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme, let host = url.host,
            ["http", "https"].contains(scheme)
        else {
            throw KeylessError(
                .usage, "'\(baseURL)' is not a server URL.",
                hint: "Pass --server https://keyless.example.com (or --config-url).")
        }
        if scheme == "http" && !["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) {
            throw KeylessError(
                .usage,
                "The server \(base) uses plain http on a non-loopback host; your token and credentials would travel unencrypted.",
                hint: "Use the https:// URL of the server.")
        }
        self.baseURL = base
        self.http = http
    }

    /// The caller's accounts and roles.
    public func config(idToken: String) async throws -> ServerConfigDocument {
        let response = try await send("GET", "/api/v1/config", idToken: idToken, body: nil)
        do {
            return try JSONDecoder().decode(ServerConfigDocument.self, from: Data(response))
        } catch {
            throw KeylessError(
                .idpError,
                "The server at \(baseURL) answered /api/v1/config with something keyless cannot read: \(error).",
                hint: "Check --config-url points at keyless server, and that client and server versions match.")
        }
    }

    /// Credentials for `roleArn`, issued by the server.
    public func credentials(idToken: String, roleArn: String, durationSeconds: Int?) async throws -> AWSCredentials {
        var body = "{\"role_arn\":" + jsonString(roleArn)
        if let durationSeconds { body += ",\"duration_seconds\":" + String(durationSeconds) }
        let response = try await send("POST", "/api/v1/credentials", idToken: idToken, body: body + "}")
        guard let object = try? JSONSerialization.jsonObject(with: Data(response)) as? [String: Any],
            let key = object["AccessKeyId"] as? String, let secret = object["SecretAccessKey"] as? String,
            let token = object["SessionToken"] as? String, let expirationText = object["Expiration"] as? String,
            let expiration = FlatJSON.parseRFC3339(expirationText)
        else {
            throw KeylessError(
                .stsError, "The server at \(baseURL) answered without complete credentials.",
                hint: "Retry; if it persists, ask the server's administrator.")
        }
        return AWSCredentials(
            accessKeyId: key, secretAccessKey: secret, sessionToken: token,
            expiration: Date(timeIntervalSince1970: expiration),
            assumedRoleArn: object["AssumedRoleArn"] as? String)
    }

    /// A console sign-in URL for `roleArn`.
    public func console(idToken: String, roleArn: String, destination: String?) async throws -> String {
        var body = "{\"role_arn\":" + jsonString(roleArn)
        if let destination { body += ",\"destination\":" + jsonString(destination) }
        let response = try await send("POST", "/api/v1/console", idToken: idToken, body: body + "}")
        guard let object = try? JSONSerialization.jsonObject(with: Data(response)) as? [String: Any],
            let url = object["url"] as? String
        else {
            throw KeylessError(
                .stsError, "The server at \(baseURL) answered without a console URL.",
                hint: "Retry; if it persists, ask the server's administrator.")
        }
        return url
    }

    func send(_ method: String, _ path: String, idToken: String, body: String?) async throws -> [UInt8] {
        var headers = ["authorization": "Bearer " + idToken, "accept": "application/json"]
        if body != nil { headers["content-type"] = "application/json" }
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: method, url: baseURL + path, headers: headers, body: body.map { Array($0.utf8) })
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot reach the keyless server at \(baseURL): \(error).",
                hint: "Check the network and --server / --config-url, then retry.")
        }
        guard response.status == 200 else { throw Self.error(response, server: baseURL) }
        return response.body
    }

    static func error(_ response: HTTPResponseData, server: String) -> KeylessError {
        let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        let code = object?["error"] as? String ?? "HTTP \(response.status)"
        let message = object?["error_description"] as? String ?? "the server answered HTTP \(response.status)."
        let request = (object?["request_id"] as? String).map { " (request id \($0))" } ?? ""
        switch response.status {
        case 401:
            return KeylessError(
                .tokenInvalid, "The keyless server refused your login: \(message)\(request)",
                hint: "Log in again: keyless login.")
        case 403:
            let hint =
                code == "mfa_required"
                ? "Log in again with a second factor (your provider's MFA), then retry."
                : "Ask an administrator to grant you the role in the server's policy; `keyless roles` lists what you have."
            return KeylessError(
                .stsAccessDenied, "The keyless server denied it (\(code)): \(message)\(request)", hint: hint)
        case 502, 503:
            return KeylessError(
                .stsError, "The keyless server could not get it from AWS: \(message)\(request)",
                hint: "Retry in a moment.")
        default:
            return KeylessError(
                .stsError, "The keyless server at \(server) answered \(code): \(message)\(request)",
                hint: "Check the flags, then retry.")
        }
    }
}
