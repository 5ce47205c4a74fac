import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage
import KeylessWebAuthn

/// A validated authorization request (`/authorize`).
public struct AuthorizationRequest: Sendable, Equatable {
    public var clientID: String
    /// The redirect URI as sent (checked against the registration).
    public var redirectURI: String
    /// Requested scopes, space separated.
    public var scope: String
    /// Passed back unchanged.
    public var state: String?
    /// Put into the ID token.
    public var nonce: String?
    /// PKCE challenge (S256).
    public var codeChallenge: String?
    /// `login` forces a new login even with a session; `none` fails instead of showing a page.
    public var prompt: String?
    /// Requested authentication context classes (OpenID Connect Core §3.1.2.1), space separated: `phr` or `phrh` ask
    /// for a passkey sign-in (a session without one is not reused; a person with a passkey must use it).
    public var acrValues: String?

    /// Whether the client asked for a phishing-resistant sign-in (`acr_values` names `phr` or `phrh`).
    public var wantsPhishingResistant: Bool {
        (acrValues ?? "").split(separator: " ").contains { $0 == "phr" || $0 == "phrh" }
    }

    /// The request as query or form fields, for carrying it through the login form.
    public var fields: [(String, String)] {
        var result = [
            ("response_type", "code"), ("client_id", clientID), ("redirect_uri", redirectURI), ("scope", scope),
        ]
        if let state { result.append(("state", state)) }
        if let nonce { result.append(("nonce", nonce)) }
        if let codeChallenge {
            result.append(("code_challenge", codeChallenge)); result.append(("code_challenge_method", "S256"))
        }
        if let acrValues { result.append(("acr_values", acrValues)) }
        return result
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.fields.elementsEqual(b.fields) { $0 == $1 } && a.prompt == b.prompt
    }
}

/// Why an authorization request failed: shown on a page (the redirect URI cannot be trusted) or sent back to the client.
public enum AuthorizationFailure: Error, Sendable, Equatable {
    /// Unknown client or unregistered redirect URI: never redirect (no open redirects).
    case page(String)
    /// Anything else: redirect to the client with `error`, `error_description`, `state` and `iss`.
    case redirect(String)
}

/// Why a login attempt failed.
public enum LoginFailure: Error, Sendable, Equatable {
    /// Wrong username, password or one-time code (deliberately not saying which).
    case invalid
    /// The user has a second factor and gave no code.
    case otpRequired
    /// The password was right and the person has passkeys: the second step is this ceremony.
    case passkeyRequired(PasskeyCeremonyStart)
    /// A passkey sign-in was refused: a sentence for the person, and the WebAuthn code for the log.
    case passkeyRefused(String, code: String? = nil)
    /// Too many failures; try again after this many seconds.
    case throttled(retryAfter: Int)
    /// The provider cannot check the attempt now (every password-check slot is taken, or the store is down): try again
    /// after this many seconds. Nothing was checked.
    case unavailable(retryAfter: Int)
    /// The password was right but the directory refuses the account (disabled, locked, password expired): the reason,
    /// told only to someone who knew the password.
    case accountRefused(String)
    /// The directory named `connector` cannot be asked now (down, slow, TLS): never a login from what it said before.
    /// `reason` is for the log, not the page.
    case directoryUnavailable(connector: String, reason: String)
}

/// The token endpoint's successful answer.
public struct TokenResponse: Sendable, Equatable {
    /// The access token (a JWT, RFC 9068).
    public var accessToken: String
    /// Seconds until the access token expires.
    public var expiresIn: Int
    /// The ID token, for user grants.
    public var idToken: String?
    /// A new refresh token, when the client may refresh.
    public var refreshToken: String?
    /// The granted scopes.
    public var scope: String

    /// The response body, written by hand: the token endpoint is the provider's hot path, and a JSONEncoder per answer
    /// was measured by bench/idp-tokens among its largest costs (tokens are base64url and need no escaping, but are
    /// escaped anyway).
    public var jsonText: String {
        var text =
            "{\"access_token\":" + jsonString(accessToken) + ",\"token_type\":\"Bearer\",\"expires_in\":"
            + String(expiresIn)
        if let idToken { text += ",\"id_token\":" + jsonString(idToken) }
        if let refreshToken { text += ",\"refresh_token\":" + jsonString(refreshToken) }
        return text + ",\"scope\":" + jsonString(scope) + "}"
    }
}

/// The device authorization endpoint's answer (RFC 8628 §3.2).
public struct DeviceAuthorization: Codable, Sendable, Equatable {
    /// The secret the device polls with.
    public var deviceCode: String
    /// The code the user types, formatted `XXXX-XXXX`.
    public var userCode: String
    /// Where the user types it.
    public var verificationURI: String
    /// The same with the code filled in.
    public var verificationURIComplete: String
    /// Seconds until it expires.
    public var expiresIn: Int
    /// Seconds between polls.
    public var interval: Int

    enum CodingKeys: String, CodingKey {
        case deviceCode = "device_code", userCode = "user_code", verificationURI = "verification_uri"
        case verificationURIComplete = "verification_uri_complete", expiresIn = "expires_in", interval
    }
}

/// The discovery document (`/.well-known/openid-configuration`, OpenID Connect Discovery 1.0 §3, RFC 8414).
public struct DiscoveryDocument: Codable, Sendable, Equatable {
    public var issuer: String
    public var authorizationEndpoint: String
    public var tokenEndpoint: String
    public var jwksURI: String
    public var userinfoEndpoint: String
    public var revocationEndpoint: String
    public var deviceAuthorizationEndpoint: String
    public var responseTypesSupported: [String]
    public var responseModesSupported: [String]
    public var grantTypesSupported: [String]
    public var subjectTypesSupported: [String]
    public var idTokenSigningAlgValuesSupported: [String]
    public var tokenEndpointAuthMethodsSupported: [String]
    public var tokenEndpointAuthSigningAlgValuesSupported: [String]
    public var revocationEndpointAuthMethodsSupported: [String]
    public var scopesSupported: [String]
    public var claimsSupported: [String]
    public var codeChallengeMethodsSupported: [String]
    public var authorizationResponseIssParameterSupported: Bool
    public var requestParameterSupported: Bool
    public var requestURIParameterSupported: Bool
    public var claimsParameterSupported: Bool

    enum CodingKeys: String, CodingKey {
        case issuer
        case authorizationEndpoint = "authorization_endpoint"
        case tokenEndpoint = "token_endpoint"
        case jwksURI = "jwks_uri"
        case userinfoEndpoint = "userinfo_endpoint"
        case revocationEndpoint = "revocation_endpoint"
        case deviceAuthorizationEndpoint = "device_authorization_endpoint"
        case responseTypesSupported = "response_types_supported"
        case responseModesSupported = "response_modes_supported"
        case grantTypesSupported = "grant_types_supported"
        case subjectTypesSupported = "subject_types_supported"
        case idTokenSigningAlgValuesSupported = "id_token_signing_alg_values_supported"
        case tokenEndpointAuthMethodsSupported = "token_endpoint_auth_methods_supported"
        case tokenEndpointAuthSigningAlgValuesSupported = "token_endpoint_auth_signing_alg_values_supported"
        case revocationEndpointAuthMethodsSupported = "revocation_endpoint_auth_methods_supported"
        case scopesSupported = "scopes_supported"
        case claimsSupported = "claims_supported"
        case codeChallengeMethodsSupported = "code_challenge_methods_supported"
        case authorizationResponseIssParameterSupported = "authorization_response_iss_parameter_supported"
        case requestParameterSupported = "request_parameter_supported"
        case requestURIParameterSupported = "request_uri_parameter_supported"
        case claimsParameterSupported = "claims_parameter_supported"
    }
}

/// What `/userinfo` answers for a user's access token: the subject, and the claims its scopes release.
public struct UserInfo: Codable, Sendable, Equatable {
    public var sub: String
    public var preferredUsername: String?
    /// The person's name, from a directory.
    public var name: String?
    public var email: String?
    /// True with `email`: the address is the one the provider's administrator wrote in idp.yaml.
    public var emailVerified: Bool?
    public var groups: [String]?

    enum CodingKeys: String, CodingKey {
        case sub, email, groups, name
        case preferredUsername = "preferred_username", emailVerified = "email_verified"
    }
}

/// The OpenID Provider's protocol logic, free of HTTP: authorization requests, logins, codes, the token endpoint's
/// grants, device authorization, userinfo and revocation. The server maps requests onto it.
public final class OAuthEngine: Sendable {
    /// The configuration.
    public let config: IdPConfiguration
    /// The issuer URL (no trailing slash).
    public let issuer: String
    public let store: any IdPStore
    /// The signing keys.
    public let keys: KeyRing
    public let clock: WallClock
    /// Login, device-code and client-authentication throttling, in the store.
    public let throttle: Throttle
    /// Client authentication.
    public let clients: ClientAuthenticator
    /// Where password checks run: by default as many at once as there are cores, with four times as many waiting.
    public let loginPool: WorkPool
    /// The directories people sign in from, besides the users of idp.yaml.
    public let connectors: Connectors
    /// The provider as a WebAuthn relying party (passkeys).
    public let relyingParty: RelyingParty
    let formKey: SymmetricKey

    /// Scopes every client may ask for.
    public static let standardScopes: Set<String> = ["openid", "profile", "email", "groups", "offline_access"]
    /// The device-code grant type URN.
    public static let deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

    /// An engine for `issuer`.
    public init(
        config: IdPConfiguration, issuer: String, store: any IdPStore, keys: KeyRing, clock: WallClock,
        limits: ThrottleLimits = ThrottleLimits(),
        loginPool: WorkPool = WorkPool(
            limit: ProcessInfo.processInfo.activeProcessorCount,
            queue: 4 * ProcessInfo.processInfo.activeProcessorCount),
        clientPool: WorkPool? = nil, connectors: Connectors = .none
    ) throws {
        var trimmed = issuer
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.config = config; self.issuer = trimmed; self.store = store; self.keys = keys; self.clock = clock
        self.throttle = Throttle(store: store, limits: limits)
        self.loginPool = loginPool
        self.connectors = connectors
        self.relyingParty = try Self.makeRelyingParty(config: config, issuer: trimmed)
        self.formKey = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: keys.kek, info: Data("keyless idp form tokens".utf8), outputByteCount: 32)
        let audiences: Set<String> = [trimmed, trimmed + "/token"]
        self.clients =
            if let clientPool {
                try ClientAuthenticator(
                    config: config, audiences: audiences, clock: clock, throttle: throttle, pool: clientPool)
            } else {
                try ClientAuthenticator(config: config, audiences: audiences, clock: clock, throttle: throttle)
            }
    }

    /// The longest lifetime of any token this configuration signs (how long a retired key stays published).
    public static func maxTokenLifetime(_ config: IdPConfiguration) -> TimeInterval {
        let perClient = config.clients.flatMap { [$0.idTokenTTL ?? 0, $0.accessTokenTTL ?? 0] }
        return TimeInterval(([config.lifetimes.idToken, config.lifetimes.accessToken] + perClient).max()!)
    }
}
