import Foundation

/// One of `scripts/partners/provider_zoo.py`'s personas: Google, Entra ID, Okta, Auth0 or Keycloak as each documents its
/// behaviour, on Authlib, on a free loopback port; stopped by its PID.
public final class ProviderZoo: Sendable {
    /// The persona's name.
    public enum Persona: String, Sendable, CaseIterable {
        case google, entra, okta, auth0, keycloak
    }

    /// Entra's tenant in the zoo.
    public static let entraTenant = "11111111-2222-3333-4444-555555555555"

    public let persona: Persona
    /// "http://127.0.0.1:PORT".
    public let baseURL: String
    /// The issuer keyless logs in with: the persona's own (Entra: its tenant's).
    public let issuer: String
    /// The server process.
    public let process: PartnerProcess

    private init(persona: Persona, port: Int, process: PartnerProcess) {
        self.persona = persona
        self.baseURL = "http://127.0.0.1:\(port)"
        switch persona {
        case .google: issuer = baseURL
        case .entra: issuer = "\(baseURL)/\(Self.entraTenant)/v2.0"
        case .okta: issuer = "\(baseURL)/oauth2/default"
        case .auth0: issuer = baseURL + "/"
        case .keycloak: issuer = "\(baseURL)/realms/zoo"
        }
        self.process = process
    }

    /// Entra's multi-tenant issuer (`/common/v2.0`, whose discovery names `{tenantid}`).
    public var entraCommonIssuer: String { "\(baseURL)/common/v2.0" }

    /// Starts `persona` with extra flags (`--token-lifetime 100`, `--no-kid`, `--aud-array`, ...) and waits for /healthz.
    public static func start(_ persona: Persona, flags: [String] = []) async throws -> ProviderZoo {
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/provider_zoo.py")
        do {
            return try await startOnFreePort { port in
                let process = try PartnerProcess(
                    executable: Tooling.python(),
                    arguments: [script, "--persona", persona.rawValue, "--port", String(port)] + flags,
                    environment: ["PYTHONUNBUFFERED": "1"])
                let zoo = ProviderZoo(persona: persona, port: port, process: process)
                if try await process.waitUntilHealthy(zoo.baseURL + "/healthz", timeout: 90) { return .started(zoo) }
                let why =
                    "provider_zoo.py --persona \(persona.rawValue) did not become healthy on \(zoo.baseURL) within 90 s:\n\(process.logTail())"
                process.stop()
                return .failed(why, portTaken: process.log().contains("Address already in use"))
            }
        } catch let error as TestSupportError {
            throw TestSupportError(
                error.description
                    + "\n(needs Authlib and Flask: python3 -m pip install authlib flask, or run scripts/test)")
        }
    }

    /// One request the persona recorded (`GET /_zoo/requests`): the endpoint, its parameters (secrets redacted),
    /// how the client authenticated, and the outcome.
    public struct RecordedRequest: Sendable {
        /// "authorize", "token", "device", "revoke", ...
        public let endpoint: String
        /// Query or form parameters.
        public let params: [String: String]
        /// "client_secret_basic", "client_secret_post", "none", "basic-empty-secret".
        public let clientAuth: String?
        /// "ok" or the OAuth error code.
        public let outcome: String?
    }

    /// Every request recorded so far.
    public func requests() async throws -> [RecordedRequest] {
        let answer = try await PartnerHTTP.send("GET", baseURL + "/_zoo/requests")
        guard answer.status == 200, let list = try JSONSerialization.jsonObject(with: answer.body) as? [[String: Any]]
        else {
            throw TestSupportError("provider_zoo /_zoo/requests answered HTTP \(answer.status): \(answer.text)")
        }
        return list.map { item in
            let params = (item["params"] as? [String: Any] ?? [:]).compactMapValues {
                $0 as? String ?? ($0 as? [String])?.joined(separator: " ")
            }
            return RecordedRequest(
                endpoint: item["endpoint"] as? String ?? "", params: params,
                clientAuth: item["client_auth"] as? String, outcome: item["outcome"] as? String)
        }
    }

    /// Stops the persona.
    public func stop() { process.stop() }

    deinit { process.stop() }
}
