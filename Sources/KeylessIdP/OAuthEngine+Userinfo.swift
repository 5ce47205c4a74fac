import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// Userinfo and revocation: what a bearer access token may read, and ending a login from the client.
extension OAuthEngine {
    // MARK: Userinfo and revocation

    /// The userinfo endpoint: the claims of the user an access token from this provider was issued for.
    public func userinfo(bearer: String?) async throws -> UserInfo {
        guard let bearer, !bearer.isEmpty else {
            throw OAuthError("missing_token", "send the access token as Authorization: Bearer.", status: 401)
        }
        let claims = try await verifyAccessToken(bearer)
        // Only tokens from a user's login (they carry auth_time) describe a user; a client's own token does not.
        guard claims.auth_time != nil else {
            throw OAuthError("invalid_token", "the token is not for a user.", status: 401)
        }
        // The users of idp.yaml are looked up there (one removed since is refused); a directory's person is described
        // by the claims the token carries, read from the directory when it was issued.
        if config.user(subject: claims.sub) != nil {
            let released = ReleasedClaims(
                authentication: Authentication(subject: claims.sub, authTime: .distantPast, amr: []), config: config,
                scope: claims.scope)
            return UserInfo(
                sub: claims.sub, preferredUsername: released.preferredUsername, email: released.email,
                emailVerified: released.email == nil ? nil : true, groups: released.groups)
        }
        guard let colon = claims.sub.firstIndex(of: ":"),
            let type = config.connector(String(claims.sub[..<colon]))?.type, type != "local"
        else {
            throw OAuthError("invalid_token", "the token is not for a user.", status: 401)
        }
        return UserInfo(
            sub: claims.sub, preferredUsername: claims.preferred_username, name: claims.name, email: claims.email,
            emailVerified: claims.email == nil ? nil : true, groups: claims.groups)
    }

    /// Checks one of this provider's access tokens: signature by a published key, `typ`, issuer, expiry.
    public func verifyAccessToken(_ token: String?) async throws -> AccessClaims {
        guard let token, let parts = JWS.parse(token), parts.header.typ?.lowercased() == "at+jwt",
            let kid = parts.header.kid,
            let key = try await keys.verificationKeys()[kid], key.algorithm == parts.header.alg,
            key.verify(parts.signature, for: parts.signingInput),
            let claims = try? JSONDecoder().decode(AccessClaims.self, from: parts.payload)
        else {
            throw OAuthError("invalid_token", "the access token is not one this provider issued.", status: 401)
        }
        guard claims.iss == issuer, claims.exp > Self.seconds(clock.now()) else {
            throw OAuthError("invalid_token", "the access token has expired.", status: 401)
        }
        return claims
    }

    /// RFC 7009: revokes a refresh token's whole family. Access tokens are self-contained JWTs and expire on their
    /// own; the answer is the same either way, as the RFC asks.
    public func revoke(form: [String: String], credentials: ClientCredentials, address: String) async throws {
        _ = try await clients.authenticate(credentials, address: address)
        guard let token = form["token"] else { throw OAuthError("invalid_request", "token is required.") }
        // Holding the refresh token is the proof needed to end its login; the store does not say which client it
        // was issued to, so any registered client that presents it may revoke it.
        if let family = try await store.refreshToken(hash: Self.hash(token))?.familyID {
            try await store.revokeFamily(id: family)
        }
    }
}
