import Foundation
import KeylessCore
import KeylessFastPath
import KeylessOIDC
import Logging

/// How a service or a pipeline gets its OIDC token, with no person in the loop.
public enum WorkloadSource: Sendable, Equatable {
    /// How a confidential client authenticates at the token endpoint.
    public enum ClientAuthentication: Sendable, Equatable {
        /// `client_secret_basic`, the secret read from this file (which must be 0600).
        case secretFile(String)
        /// `private_key_jwt`, signed with the PEM private key in this file (RSA → RS256, P-256 → ES256; 0600).
        case privateKeyFile(String)
    }

    /// The `client_credentials` grant at the provider's token endpoint (found by discovery), asking for `scopes`
    /// (none: the provider's default for the client).
    case clientCredentials(ClientAuthentication, scopes: [String])
    /// A token file something else keeps fresh (Kubernetes projected tokens, CI), read on every refresh.
    case tokenFile(String)
    /// A command whose trimmed stdout is the token, killed after `timeout` seconds.
    case tokenCommand(String, timeout: Double)

    /// This source's part of the cache key (no secrets in it).
    public var cacheIdentity: String {
        switch self {
        case .clientCredentials:
            return CacheKey.workloadSource(clientCredentials: true, tokenFile: nil, tokenCommand: nil)!
        case .tokenFile(let path):
            return CacheKey.workloadSource(clientCredentials: false, tokenFile: path, tokenCommand: nil)!
        case .tokenCommand(let command, _):
            return CacheKey.workloadSource(clientCredentials: false, tokenFile: nil, tokenCommand: command)!
        }
    }

    /// A short name for messages and cache labels.
    public var kind: String {
        switch self {
        case .clientCredentials: return "client-credentials"
        case .tokenFile: return "web-identity-token-file"
        case .tokenCommand: return "token-command"
        }
    }
}

/// Where a workload's token comes from. Asked afresh on every refresh: files and commands rotate their tokens,
/// and the AWS credentials made from a token are what keyless caches.
public protocol WorkloadTokenSource: Sendable {
    /// The raw token (a JWT), obtained now.
    func token(logger: Logger) async throws -> String
}

/// A token source backed by a closure, for tests.
public struct ClosureTokenSource: WorkloadTokenSource {
    let body: @Sendable () async throws -> String
    /// Creates a source that calls `body`.
    public init(_ body: @escaping @Sendable () async throws -> String) { self.body = body }
    public func token(logger: Logger) async throws -> String { try await body() }
}

/// The claims keyless reads from a workload token, unverified: STS verifies the signature; keyless only names the
/// session and explains failures with them.
public struct WorkloadClaims: Decodable, Sendable, Equatable {
    /// Issuer.
    public var iss: String?
    /// Subject.
    public var sub: String?
    /// Audiences: one of them must be a client id the IAM OIDC provider lists.
    public var aud: AudienceList?
    /// Expiry, seconds since 1970.
    public var exp: Double?
    /// The OAuth client (RFC 9068).
    public var clientID: String?
    /// Authorized party.
    public var azp: String?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, azp
        case clientID = "client_id"
    }

    /// Who the session is for: `sub`, else `client_id`, else `azp`.
    public var sessionSubject: String? { sub ?? clientID ?? azp }

    /// The audiences as text for messages.
    public var audienceText: String { aud.map { $0.values.joined(separator: ", ") } ?? "(none)" }

    /// Reads and checks a token from `origin` (for messages): a JWT, not expired at `now`, issued by `issuer` when one is given.
    public static func check(_ token: String, origin: String, now: Date, issuer: String?) throws -> WorkloadClaims {
        guard let claims = UnverifiedJWT.claims(token, as: WorkloadClaims.self) else {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) is not a JWT.",
                hint:
                    "AssumeRoleWithWebIdentity needs a JWT whose aud is a client id the IAM OIDC provider lists; check what \(origin) produces."
            )
        }
        if let exp = claims.exp, exp <= now.timeIntervalSince1970 {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) expired at \(rfc3339(exp)).",
                hint: "Whatever writes it (kubelet, the CI runner, the command) has stopped refreshing it.")
        }
        if let issuer, !issuer.isEmpty, let iss = claims.iss, Discovery.normalize(iss) != Discovery.normalize(issuer) {
            throw KeylessError(
                .tokenInvalid, "The token from \(origin) was issued by \(iss), not by --issuer-url \(issuer).",
                hint: "Pass the token's issuer as --issuer-url, or leave --issuer-url out.")
        }
        return claims
    }
}

extension CredentialBroker {
    /// The workload's token now, checked, as a token set (never stored: the credentials made from it are).
    func workloadTokens(_ workload: WorkloadSource) async throws -> (TokenSet, WorkloadClaims) {
        let source: any WorkloadTokenSource
        let origin: String
        switch workload {
        case .clientCredentials(let authentication, let scopes):
            source =
                tokenSourceOverride
                ?? ClientCredentialsSource(
                    issuer: login.oidc.issuer, clientID: login.oidc.clientID, authentication: authentication,
                    scopes: scopes, http: context.http, clock: context.clock)
            origin = "the client_credentials grant at \(login.oidc.issuer)"
        case .tokenFile(let path):
            source = tokenSourceOverride ?? TokenFileSource(path: path)
            origin = "the web identity token file \(path)"
        case .tokenCommand(let command, let timeout):
            var environment = context.environment.values
            environment.removeValue(forKey: "KEYLESS_FILE_PASSPHRASE")  // the command needs no key to our store
            source =
                tokenSourceOverride ?? TokenCommandSource(command: command, timeout: timeout, environment: environment)
            origin = "the --token-command"
        }
        let token = try await source.token(logger: context.logger)
        let now = context.clock.now()
        let claims = try WorkloadClaims.check(
            token, origin: origin, now: now, issuer: login.oidc.issuer.isEmpty ? nil : login.oidc.issuer)
        let tokens = TokenSet(
            idToken: token, refreshToken: nil, accessToken: nil,
            accessTokenExpiresAt: claims.exp.map { Date(timeIntervalSince1970: $0) }, obtainedAt: now)
        return (tokens, claims)
    }

    /// A workload error from STS, with what the token carried: the usual cause is an `aud` the IAM OIDC provider does not list.
    func explainWorkloadRefusal(_ error: KeylessError, claims: WorkloadClaims?) -> KeylessError {
        guard login.workload != nil, [.stsInvalidIdentityToken, .stsAccessDenied].contains(error.code) else {
            return error
        }
        let issuer = claims?.iss ?? login.oidc.issuer
        return KeylessError(
            error.code,
            error.reason
                + " The token's aud is \(claims?.audienceText ?? "(unknown)"), its sub \(claims?.sub ?? "(none)").",
            hint:
                "The IAM OIDC provider for \(issuer) must list that aud as a client id (audience), and the role's trust policy must allow "
                + "sts:AssumeRoleWithWebIdentity with that aud and sub; `keyless explain` shows which condition fails.")
    }
}
