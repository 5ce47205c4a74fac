import Foundation
import KeylessCore

/// A provider whose documented behaviour differs from the plain OpenID Connect a client can infer from discovery.
public enum ProviderDialect: String, Sendable, Equatable, CaseIterable {
    /// Everything read from the discovery document.
    case generic
    /// Google: no `offline_access`; refresh tokens with `access_type=offline`; `iss` with or without the scheme.
    case google
    /// Microsoft Entra ID: multi-tenant issuers hold `{tenantid}`.
    case entra

    /// The dialect an issuer URL names by its host (Google and Entra are recognised; everything else is generic).
    public static func detect(issuer: String) -> ProviderDialect {
        guard let host = URL(string: issuer)?.host?.lowercased() else { return .generic }
        if host == "accounts.google.com" { return .google }
        if host == "login.microsoftonline.com" || host == "login.microsoftonline.us"
            || host == "login.partner.microsoftonline.cn"
        {
            return .entra
        }
        return .generic
    }
}

/// One extra authorization request parameter (`--auth-param KEY=VALUE`): Auth0's `audience`, Okta's `idp`,
/// Entra's `domain_hint`, `login_hint`.
public struct AuthorizationParameter: Codable, Sendable, Equatable {
    /// The parameter name.
    public var name: String
    /// Its value.
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Names keyless sets itself: a login would break (or lose its protection) if they were replaced.
    public static let reserved: Set<String> = [
        "response_type", "client_id", "redirect_uri", "state", "nonce", "code_challenge",
        "code_challenge_method", "scope", "client_secret", "grant_type", "code", "code_verifier",
    ]

    /// Parses `KEY=VALUE`; refuses reserved names with what to use instead.
    public static func parse(_ text: String) throws -> AuthorizationParameter {
        guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
            throw KeylessError(
                .usage, "--auth-param '\(text)' is not KEY=VALUE.",
                hint: "For example --auth-param audience=https://api.example.com.")
        }
        let name = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        guard !reserved.contains(name) else {
            throw KeylessError(
                .usage, "--auth-param cannot set \(name): keyless sets it itself.",
                hint: name == "scope"
                    ? "Use --scopes for scopes."
                    : "Leave \(name) out; only provider-specific parameters (audience, idp, domain_hint, login_hint, prompt, ...) go in --auth-param."
            )
        }
        return AuthorizationParameter(name: name, value: value)
    }
}

/// How this client talks to one provider: which scopes, which extra parameters, which client authentication,
/// which `iss` forms to accept. Decided from the discovery document and the dialect; the person's explicit
/// choices (`--scopes`, `--auth-param`) always win.
public struct ProviderProfile: Sendable, Equatable {
    /// The dialect in effect.
    public var dialect: ProviderDialect

    public init(dialect: ProviderDialect) {
        self.dialect = dialect
    }

    /// The scopes a person's login asks for when none were given and the provider lists none.
    public static let defaultPersonScopes = ["openid", "email", "profile", "offline_access"]
    /// Asked for only when the provider lists it: keyless idp, dex and Okta release groups only for the `groups` scope,
    /// and providers that do not know it may refuse the whole request.
    public static let listedOnlyScopes = ["groups"]

    /// The scopes to request: `explicit` when given (with `openid`); otherwise openid plus those of email, profile,
    /// groups and offline_access the provider lists in `scopes_supported` (all but groups when it lists none, as OpenID
    /// Discovery makes the list optional). Google lists no `offline_access` and answers 400 invalid_scope to it.
    /// Without `refresh` (a web sign-in that keeps no refresh token) `offline_access` is left out.
    public func scopes(explicit: [String]?, metadata: ProviderMetadata, refresh: Bool = true) -> [String] {
        if let explicit, !explicit.isEmpty { return explicit.contains("openid") ? explicit : ["openid"] + explicit }
        let wanted = ["email", "profile"] + Self.listedOnlyScopes + (refresh ? ["offline_access"] : [])
        guard let supported = metadata.scopesSupported, !supported.isEmpty else {
            return ["openid"] + wanted.filter { Self.defaultPersonScopes.contains($0) }
        }
        return ["openid"] + wanted.filter { supported.contains($0) }
    }

    /// The extra authorization parameters: the dialect's, then the person's (theirs replace ours of the same name).
    /// - Parameters:
    ///   - holdsRefreshToken: whether a working refresh token is already kept for this login.
    ///   - offline: whether the login wants a refresh token at all (a web page's sign-in does not).
    public func authorizationParameters(
        explicit: [AuthorizationParameter], holdsRefreshToken: Bool, offline: Bool = true
    ) -> [(String, String)] {
        var parameters: [(String, String)] = []
        if dialect == .google && offline {
            // https://developers.google.com/identity/protocols/oauth2/native-app#step-2:-send-a-request-to-googles-oauth-2.0-server
            // Refresh tokens come only with access_type=offline, and only at the first consent unless prompt=consent.
            parameters.append(("access_type", "offline"))
            if !holdsRefreshToken { parameters.append(("prompt", "consent")) }
        }
        let overridden = Set(explicit.map(\.name))
        parameters.removeAll { overridden.contains($0.0) }
        return parameters + explicit.map { ($0.name, $0.value) }
    }

    /// How to present a client secret at the token endpoint: HTTP Basic unless the provider lists only
    /// `client_secret_post` (RFC 8414 §2: the default, when the list is absent, is client_secret_basic).
    public func secretMethod(metadata: ProviderMetadata) -> ClientSecretMethod {
        guard let methods = metadata.tokenEndpointAuthMethodsSupported, !methods.isEmpty else { return .basic }
        if methods.contains("client_secret_basic") { return .basic }
        if methods.contains("client_secret_post") { return .post }
        return .basic
    }

    /// The `iss` values accepted for `issuer` besides the exact one: Google's documented scheme-less form
    /// (https://developers.google.com/identity/openid-connect/openid-connect#validatinganidtoken: "The value of iss
    /// in the ID token is equal to accounts.google.com or https://accounts.google.com"), for Google only.
    public func alternativeIssuers(_ issuer: String) -> Set<String> {
        guard dialect == .google, let range = issuer.range(of: "://") else { return [] }
        return [String(issuer[range.upperBound...])]
    }
}

/// The two ways of sending a client secret (RFC 6749 §2.3.1).
public enum ClientSecretMethod: String, Sendable, Equatable {
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))`.
    case basic = "client_secret_basic"
    /// `client_id` and `client_secret` in the form.
    case post = "client_secret_post"
}
