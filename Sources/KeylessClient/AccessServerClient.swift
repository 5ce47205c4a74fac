import Foundation
import KeylessAWS
import KeylessCore
import KeylessHTTP
import KeylessWire

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
    public func credentials(idToken: String, roleArn: String, durationSeconds: Int?, scope: SessionScope = .none)
        async throws -> AWSCredentials
    {
        let request = CredentialsRequest(
            roleArn: roleArn, durationSeconds: durationSeconds, sessionPolicy: scope.policy,
            policyArns: scope.policyArns.isEmpty ? nil : scope.policyArns, agent: scope.agent)
        let response = try await send(
            "POST", "/api/v1/credentials", idToken: idToken, body: try JSONWriter.text(request))
        guard let document = try? JSONDecoder().decode(CredentialsDocument.self, from: Data(response)),
            let expiration = FlatJSON.parseRFC3339(document.expiration)
        else {
            throw KeylessError(
                .stsError, "The server at \(baseURL) answered without complete credentials.",
                hint: "Retry; if it persists, ask the server's administrator.")
        }
        return AWSCredentials(
            accessKeyId: document.accessKeyId, secretAccessKey: document.secretAccessKey,
            sessionToken: document.sessionToken, expiration: Date(timeIntervalSince1970: expiration),
            assumedRoleArn: document.assumedRoleArn)
    }

    /// A console sign-in URL for `roleArn`.
    public func console(idToken: String, roleArn: String, destination: String?) async throws -> String {
        let request = ConsoleRequest(roleArn: roleArn, destination: destination)
        let response = try await send("POST", "/api/v1/console", idToken: idToken, body: try JSONWriter.text(request))
        guard let document = try? JSONDecoder().decode(ConsoleDocument.self, from: Data(response)) else {
            throw KeylessError(
                .stsError, "The server at \(baseURL) answered without a console URL.",
                hint: "Retry; if it persists, ask the server's administrator.")
        }
        return document.url
    }

    /// Asks for a role on request.
    public func createRequest(idToken: String, _ request: AccessRequestCreate) async throws -> AccessRequestDocument {
        try decode(
            AccessRequestDocument.self,
            try await send("POST", "/api/v1/requests", idToken: idToken, body: try JSONWriter.text(request)),
            what: "/api/v1/requests")
    }

    /// The caller's requests, those waiting for their approval and the grants in force they may end.
    public func requests(idToken: String) async throws -> AccessRequestsDocument {
        try decode(
            AccessRequestsDocument.self, try await send("GET", "/api/v1/requests", idToken: idToken, body: nil),
            what: "/api/v1/requests")
    }

    /// Approves, denies (`verb` "approve", "deny") or ends early ("revoke") request `id`.
    public func act(idToken: String, id: String, verb: String, reason: String?) async throws -> AccessRequestDocument {
        let path = "/api/v1/requests/\(FormEncoding.escape(id))/\(verb)"
        return try decode(
            AccessRequestDocument.self,
            try await send(
                "POST", path, idToken: idToken, body: try JSONWriter.text(AccessRequestAction(reason: reason))),
            what: path)
    }

    func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], what: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            throw KeylessError(
                .idpError, "The server at \(baseURL) answered \(what) with something keyless cannot read: \(error).",
                hint: "Check that client and server versions match.")
        }
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
        guard (200...299).contains(response.status) else { throw Self.error(response, server: baseURL) }
        return response.body
    }

    static func error(_ response: HTTPResponseData, server: String) -> KeylessError {
        let document = try? JSONDecoder().decode(APIErrorDocument.self, from: Data(response.body))
        let code = document?.error ?? "HTTP \(response.status)"
        let message = document?.errorDescription ?? "the server answered HTTP \(response.status)."
        let request = (document?.requestID).map { " (request id \($0))" } ?? ""
        switch response.status {
        case 401:
            return KeylessError(
                .tokenInvalid, "The keyless server refused your login: \(message)\(request)",
                hint: "Log in again: keyless login.")
        case 403:
            let hint =
                code == "approval_required"
                ? "Ask for it with the command above; once an approver approves, retry (keyless requests shows the state)."
                : code == "self_approval_refused" || code == "not_an_approver"
                    ? "Ask one of the approvers named above; `keyless requests` lists what waits for you."
                    : code == "phishing_resistant_required"
                        ? "Log in again with your passkey or security key (keyless login --auth-param acr_values=phr asks the provider for one), then retry."
                        : code == "mfa_required"
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
