import Foundation
import KeylessCore
import KeylessHTTP
import Logging

/// The parts of an OpenID Provider's discovery document keyless uses.
public struct ProviderMetadata: Codable, Sendable, Equatable {
    /// The issuer identifier; must equal the configured issuer URL.
    public var issuer: String
    /// Where the browser goes to log in.
    public var authorizationEndpoint: String
    /// Where codes, device codes and refresh tokens are exchanged.
    public var tokenEndpoint: String
    /// The provider's public keys.
    public var jwksURI: String
    /// RFC 8628 device authorization endpoint, when supported.
    public var deviceAuthorizationEndpoint: String?
    /// RFC 7009 revocation endpoint, when supported.
    public var revocationEndpoint: String?
    /// Signing algorithms the provider uses for ID tokens.
    public var idTokenSigningAlgValuesSupported: [String]?
    /// Scopes the provider says it supports (optional in discovery).
    public var scopesSupported: [String]?
    /// Client authentication methods at the token endpoint.
    public var tokenEndpointAuthMethodsSupported: [String]?
    /// Grant types (`authorization_code`, `refresh_token`, `urn:ietf:params:oauth:grant-type:device_code`, ...).
    public var grantTypesSupported: [String]?
    /// PKCE methods (`S256`).
    public var codeChallengeMethodsSupported: [String]?
    /// Response types (`code`).
    public var responseTypesSupported: [String]?

    enum CodingKeys: String, CodingKey {
        case issuer
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
        case jwksURI = "jwks_uri"
        case deviceAuthorizationEndpoint = "device_authorization_endpoint"
        case revocationEndpoint = "revocation_endpoint"
        case idTokenSigningAlgValuesSupported = "id_token_signing_alg_values_supported"
        case scopesSupported = "scopes_supported"
        case tokenEndpointAuthMethodsSupported = "token_endpoint_auth_methods_supported"
        case grantTypesSupported = "grant_types_supported"
        case codeChallengeMethodsSupported = "code_challenge_methods_supported"
        case responseTypesSupported = "response_types_supported"
    }

    /// Microsoft's multi-tenant discovery (`/common/v2.0`, `/organizations/v2.0`) names its issuer with a
    /// `{tenantid}` placeholder: each token's `iss` holds the signing-in user's tenant, given in `tid`.
    public var isTenantTemplate: Bool { issuer.contains("{tenantid}") }

    /// Creates metadata.
    public init(
        issuer: String, authorizationEndpoint: String, tokenEndpoint: String, jwksURI: String,
        deviceAuthorizationEndpoint: String? = nil, revocationEndpoint: String? = nil
    ) {
        self.issuer = issuer
        self.authorizationEndpoint = authorizationEndpoint
        self.tokenEndpoint = tokenEndpoint
        self.jwksURI = jwksURI
        self.deviceAuthorizationEndpoint = deviceAuthorizationEndpoint
        self.revocationEndpoint = revocationEndpoint
    }
}

/// Fetches and checks discovery documents (OpenID Connect Discovery 1.0 §4).
public enum Discovery {
    /// The normalised issuer: no trailing slash.
    public static func normalize(_ issuer: String) -> String {
        var text = issuer
        while text.hasSuffix("/") { text.removeLast() }
        return text
    }

    /// Fetches `issuer/.well-known/openid-configuration` and checks that it names the same issuer.
    public static func fetch(issuer: String, http: any HTTPTransport, logger: Logger) async throws -> ProviderMetadata {
        let issuer = normalize(issuer)
        guard let url = URL(string: issuer), let scheme = url.scheme, ["https", "http"].contains(scheme),
            url.host != nil
        else {
            throw KeylessError(
                .usage, "'\(issuer)' is not an issuer URL.",
                hint: "Pass --issuer-url https://your-idp.example.com (the value of `iss` in its tokens).")
        }
        if scheme == "http" && !Self.isLoopback(url.host!) {
            throw KeylessError(
                .usage, "The issuer \(issuer) uses plain http on a non-loopback host; tokens would travel unencrypted.",
                hint: "Use the https:// issuer URL.")
        }
        let documentURL = issuer + "/.well-known/openid-configuration"
        logger.debug("fetching discovery document", metadata: ["oidc.url": "\(documentURL)"])
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "GET", url: documentURL, headers: ["accept": "application/json"], body: nil)
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot reach the identity provider at \(issuer): \(error).",
                hint: "Check the network and the --issuer-url value, then retry.")
        }
        guard response.status == 200 else {
            throw KeylessError(
                .idpError, "The identity provider answered HTTP \(response.status) for \(documentURL).",
                hint: "Check that --issuer-url is the issuer (the `iss` of its tokens), not a login page.")
        }
        let metadata: ProviderMetadata
        do {
            metadata = try JSONDecoder().decode(ProviderMetadata.self, from: Data(response.body))
        } catch {
            throw KeylessError(
                .idpError, "The discovery document at \(documentURL) is not valid: \(error).",
                hint: "Check that --issuer-url points at an OpenID Provider.")
        }
        guard
            normalize(metadata.issuer) == issuer || matchesTenantTemplate(configured: issuer, template: metadata.issuer)
        else {
            throw KeylessError(
                .idpError, "The discovery document names issuer \(metadata.issuer), not \(issuer).",
                hint: "Use --issuer-url \(metadata.issuer) exactly.")
        }
        return metadata
    }

    /// Whether `configured` is Microsoft's multi-tenant form of `template`: the same URL with `common`,
    /// `organizations` or `consumers` where the template has `{tenantid}`
    /// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri).
    static func matchesTenantTemplate(configured: String, template: String) -> Bool {
        let template = normalize(template)
        guard template.contains("{tenantid}") else { return false }
        return ["common", "organizations", "consumers"].contains {
            template.replacingOccurrences(of: "{tenantid}", with: $0) == configured
        }
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]"
    }
}
