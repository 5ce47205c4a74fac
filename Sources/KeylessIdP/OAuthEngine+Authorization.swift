import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// The authorization endpoint: discovery, validating requests, and issuing codes once the person has signed in.
extension OAuthEngine {
    // MARK: Discovery

    /// The discovery document (`/.well-known/openid-configuration`).
    public func discoveryDocument() -> DiscoveryDocument {
        let grants = Set(config.clients.flatMap(\.grants)).map { $0 == "device_code" ? Self.deviceGrant : $0 }.sorted()
        let clientAuthentication = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
        return DiscoveryDocument(
            issuer: issuer,
            authorizationEndpoint: issuer + "/authorize",
            tokenEndpoint: issuer + "/token",
            jwksURI: issuer + "/jwks.json",
            userinfoEndpoint: issuer + "/userinfo",
            revocationEndpoint: issuer + "/revoke",
            deviceAuthorizationEndpoint: issuer + "/device_authorization",
            responseTypesSupported: ["code"],
            responseModesSupported: ["query"],
            grantTypesSupported: grants.isEmpty ? ["authorization_code"] : grants,
            subjectTypesSupported: ["public"],
            idTokenSigningAlgValuesSupported: [config.signingAlgorithm],
            tokenEndpointAuthMethodsSupported: clientAuthentication,
            tokenEndpointAuthSigningAlgValuesSupported: ["RS256", "ES256"],
            revocationEndpointAuthMethodsSupported: clientAuthentication,
            scopesSupported: Self.standardScopes.sorted(),
            claimsSupported: [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "azp", "email", "email_verified",
                "preferred_username", "groups",
            ],
            codeChallengeMethodsSupported: ["S256"],
            authorizationResponseIssParameterSupported: true,
            requestParameterSupported: false,
            requestURIParameterSupported: false,
            claimsParameterSupported: false)
    }

    // MARK: Authorization endpoint

    /// Checks an authorization request. The client and redirect URI are checked first: if either is wrong the
    /// error is shown, never redirected.
    public func validateAuthorization(_ q: [String: String]) -> Result<AuthorizationRequest, AuthorizationFailure> {
        guard let clientID = q["client_id"], let client = config.client(clientID) else {
            return .failure(.page("The application is not registered here (unknown client_id)."))
        }
        guard let redirect = q["redirect_uri"], Self.redirectMatches(redirect, registered: client.redirectURIs ?? [])
        else {
            return .failure(
                .page(
                    "The redirect address this application sent is not registered for it, so you are not being sent there."
                ))
        }
        guard q["request"] == nil else { return .failure(.redirect("request_not_supported")) }
        guard q["request_uri"] == nil else { return .failure(.redirect("request_uri_not_supported")) }
        guard q["response_type"] == "code" else { return .failure(.redirect("unsupported_response_type")) }
        guard client.grants.contains("authorization_code") else { return .failure(.redirect("unauthorized_client")) }
        let scope = q["scope"] ?? "openid"
        let scopes = Set(scope.split(separator: " ").map(String.init))
        guard scopes.contains("openid"), scopes.isSubset(of: Self.standardScopes.union(client.scopes ?? [])) else {
            return .failure(.redirect("invalid_scope"))
        }
        let challenge = q["code_challenge"]
        if let challenge {
            guard (q["code_challenge_method"] ?? "plain") == "S256", challenge.utf8.count == 43 else {
                return .failure(.redirect("invalid_request"))
            }
        } else if client.isPublic {
            return .failure(.redirect("invalid_request"))
        }
        if let prompt = q["prompt"], !["none", "login", "consent", "select_account"].contains(prompt) {
            return .failure(.redirect("invalid_request"))
        }
        return .success(
            AuthorizationRequest(
                clientID: clientID, redirectURI: redirect, scope: scope, state: q["state"], nonce: q["nonce"],
                codeChallenge: challenge, prompt: q["prompt"],
                acrValues: q["acr_values"].flatMap { $0.isEmpty ? nil : $0 }))
    }

    /// Whether a browser session may answer `authorization` without a new sign-in: always, unless the client asked for
    /// a phishing-resistant sign-in the session was not made with.
    public func sessionSatisfies(_ session: Authentication, _ authorization: AuthorizationRequest) -> Bool {
        !authorization.wantsPhishingResistant || Self.acr(amr: session.amr) != nil
    }

    /// What an authorization error sends the browser to.
    public func errorRedirect(_ code: String, request q: [String: String], description: String? = nil) -> String {
        var items = [("error", code)]
        if let description { items.append(("error_description", description)) }
        if let state = q["state"] { items.append(("state", state)) }
        items.append(("iss", issuer))
        return Self.appendQuery(q["redirect_uri"] ?? "", items)
    }

    /// Issues a code for a validated request and the user's authentication; returns where to send the browser.
    public func issueCode(_ request: AuthorizationRequest, authentication: Authentication) async throws -> String {
        let code = randomToken()
        let now = clock.now()
        try await store.insertCode(
            AuthorizationCodeRecord(
                codeHash: Self.hash(code), clientID: request.clientID, redirectURI: request.redirectURI,
                scope: request.scope, nonce: request.nonce,
                codeChallenge: request.codeChallenge, codeChallengeMethod: request.codeChallenge == nil ? nil : "S256",
                authentication: authentication, familyID: randomToken(bytes: 16),
                expiresAt: now.addingTimeInterval(TimeInterval(config.lifetimes.code))))
        var items = [("code", code)]
        if let state = request.state { items.append(("state", state)) }
        items.append(("iss", issuer))
        return Self.appendQuery(request.redirectURI, items)
    }

    /// RFC 8252 §7.3: exact match, except that the port of a loopback IP literal may differ.
    public static func redirectMatches(_ candidate: String, registered: [String]) -> Bool {
        if registered.contains(candidate) { return true }
        guard let url = URLComponents(string: candidate), url.scheme == "http", let host = url.host,
            ["127.0.0.1", "::1", "[::1]"].contains(host)
        else { return false }
        var portless = url
        portless.port = nil
        return registered.contains { entry in
            guard var registeredURL = URLComponents(string: entry), registeredURL.scheme == "http",
                registeredURL.host == host
            else { return false }
            registeredURL.port = nil
            return registeredURL.string == portless.string
        }
    }
}
