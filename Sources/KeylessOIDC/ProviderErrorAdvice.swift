import Foundation

/// What to change when a provider refuses a login: the flag on our side or the setting at the provider, for each
/// error a person meets (RFC 6749 §4.1.2.1 and §5.2 codes, and the words Google and Entra put around them).
public struct ProviderErrorAdvice: Sendable {
    /// Where in the login the error came.
    public enum Step: Sendable {
        /// The browser's redirect back from the authorization endpoint.
        case authorization
        /// The token endpoint (code exchange, refresh).
        case token
        /// The device authorization or its polling.
        case device
    }

    let issuer: String
    let clientID: String
    let hasSecret: Bool
    let scopesSupported: [String]?

    /// Advice for a login to `issuer` as `clientID`.
    public init(issuer: String, clientID: String, hasSecret: Bool, scopesSupported: [String]?) {
        self.issuer = issuer
        self.clientID = clientID
        self.hasSecret = hasSecret
        self.scopesSupported = scopesSupported
    }

    /// The hint for `error` (with its description, which some providers fill with their own codes).
    public func hint(error: String, description: String?, step: Step) -> String {
        let text = (description ?? "").lowercased()
        if error == "redirect_uri_mismatch" || text.contains("aadsts50011") || text.contains("redirect_uri")
            || text.contains("redirect uri")
        {
            return
                "Register the loopback redirect URI http://127.0.0.1:PORT/callback for client \(clientID) at the provider "
                + "(providers that allow any port for 127.0.0.1 need it without a port), or pass --redirect-port PORT to match the one registered."
        }
        if text.contains("aadsts700025") || (error == "invalid_client" && text.contains("public") && hasSecret) {
            return "Client \(clientID) is a public client at the provider: drop --client-secret/--client-secret-file."
        }
        if text.contains("client_secret") && !hasSecret || text.contains("aadsts7000218") {
            return
                "The provider requires the client secret of \(clientID) (Google's \"Desktop app\" clients do, even with PKCE): "
                + "pass --client-secret VALUE (for secrets that are public by design) or --client-secret-file FILE."
        }
        if text.contains("offline token") || (error == "invalid_scope" && text.contains("offline_access")) {
            return
                "The provider refused offline_access for you or this client (Keycloak needs the offline_access role): ask for it, "
                + "or pass --scopes without offline_access (you will then log in again when the ID token expires)."
        }
        switch error {
        case "invalid_scope":
            let supported = scopesSupported.map { " The provider lists: \($0.joined(separator: " "))." } ?? ""
            return
                "The provider refused a requested scope. Pass --scopes with scopes it supports (openid is always added).\(supported)"
        case "unauthorized_client":
            let grant =
                step == .device
                ? "the device code grant"
                : (step == .token ? "the authorization code and refresh token grants" : "the authorization code flow")
            return "Client \(clientID) may not use \(grant) at the provider: enable it in the client's settings"
                + (step == .device
                    ? ", or log in without --device." : ", or use --device if the client has the device grant.")
        case "invalid_client":
            return hasSecret
                ? "The provider does not accept client \(clientID) with that secret: check --client-id and the secret (is the client public? then drop the secret)."
                : "The provider does not know client \(clientID), or requires it to authenticate: check --client-id, and for a confidential client pass --client-secret-file."
        case "access_denied", "consent_required", "interaction_required":
            return
                "The login or its consent was declined. Log in again and allow keyless; if your organisation requires an administrator's consent for \(clientID), ask them to grant it."
        case "invalid_grant":
            return
                "The code or refresh token was refused (expired, already used, or issued to another client): run keyless login again."
        case "login_required":
            return "The provider wants you to sign in again: run keyless login."
        case "temporarily_unavailable", "server_error":
            return "The provider has a problem of its own: retry in a moment."
        default:
            return "Check --client-id \(clientID) and the client's allowed grants and redirect URIs at \(issuer)."
        }
    }

    /// The hint when no redirect arrived: the provider may have shown its error on a page keyless never sees.
    public static func noCallbackHint(redirectURI: String, clientID: String) -> String {
        "Run the login again (with no browser here use --device or --no-browser). If the browser showed an error from the provider: "
            + "redirect_uri_mismatch → register \(redirectURI) (or use --redirect-port to match the registered port); "
            + "invalid_scope → pass --scopes with scopes it supports; invalid_client or unauthorized_client → check --client-id \(clientID) and its allowed grants."
    }
}
