import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage

/// The token endpoint: client authentication, then the authorization-code, refresh, client-credentials and device grants.
extension OAuthEngine {
    // MARK: Token endpoint

    /// The token endpoint: authenticates the client, then runs the grant.
    public func token(form: [String: String], credentials: ClientCredentials, address: String) async throws
        -> TokenResponse
    {
        guard let grant = form["grant_type"] else { throw OAuthError("invalid_request", "grant_type is missing.") }
        let client = try await clients.authenticate(credentials, address: address)
        switch grant {
        case "authorization_code": return try await codeGrant(form, client: client)
        case "refresh_token": return try await refreshGrant(form, client: client)
        case "client_credentials": return try await clientCredentialsGrant(form, client: client)
        case Self.deviceGrant: return try await deviceGrant(form, client: client)
        default: throw OAuthError("unsupported_grant_type", "grant_type \(grant) is not supported.")
        }
    }

    func require(_ grant: String, _ client: IdPConfiguration.Client) throws {
        guard client.grants.contains(grant) else {
            throw OAuthError("unauthorized_client", "client \(client.id) may not use the \(grant) grant.")
        }
    }

    private func codeGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("authorization_code", client)
        guard let code = form["code"], let redirect = form["redirect_uri"] else {
            throw OAuthError("invalid_request", "code and redirect_uri are required.")
        }
        switch try await store.consumeCode(hash: Self.hash(code), now: clock.now()) {
        case .notFound:
            throw OAuthError("invalid_grant", "the code is unknown or has expired.")
        case .replayed(let family):
            try await store.revokeFamily(id: family)
            throw OAuthError("invalid_grant", "the code was already used; tokens issued for it have been revoked.")
        case .redeemed(let record):
            guard record.clientID == client.id else {
                throw OAuthError("invalid_grant", "the code was issued to another client.")
            }
            guard record.redirectURI == redirect else {
                throw OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
            }
            if let challenge = record.codeChallenge {
                guard let verifier = form["code_verifier"], (43...128).contains(verifier.utf8.count),
                    constantTimeEqual(
                        Array(Base64URL.encode(Array(SHA256.hash(data: Data(verifier.utf8)))).utf8),
                        Array(challenge.utf8))
                else {
                    throw OAuthError("invalid_grant", "code_verifier does not match the code_challenge (PKCE).")
                }
            } else if form["code_verifier"] != nil {
                throw OAuthError("invalid_grant", "code_verifier sent for a code issued without code_challenge.")
            }
            return try await userTokens(
                client: client, scope: record.scope, authentication: record.authentication, nonce: record.nonce,
                familyID: record.familyID)
        }
    }

    private func refreshGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("refresh_token", client)
        guard let token = form["refresh_token"] else {
            throw OAuthError("invalid_request", "refresh_token is required.")
        }
        // Check the request before spending the token, so a refused request leaves it usable (a retry is not reuse).
        let tokenHash = Self.hash(token)
        let stored = try await store.refreshToken(hash: tokenHash)
        if let narrowed = form["scope"], let stored, stored.clientID == client.id,
            !Set(narrowed.split(separator: " ")).isSubset(of: Set(stored.scope.split(separator: " ")))
        {
            throw OAuthError("invalid_scope", "a refresh may only narrow the original scopes.")
        }
        // The person's source is asked before the token is spent, so a directory that cannot answer leaves the token
        // usable for a retry; a person it no longer vouches for ends the whole login.
        var fresh: Authentication?
        if let stored, stored.clientID == client.id {
            fresh = try await currentAuthentication(stored)
        }
        let now = clock.now()
        let successor = randomToken()
        // The successor keeps what the person's source said now (an upstream provider's rotated refresh token must be
        // the one used next time).
        let successorRecord = RefreshSuccessor(
            tokenHash: Self.hash(successor), issuedAt: now, expiresAt: refreshExpiry(client, now: now),
            identity: fresh?.identity)
        switch try await store.rotateRefreshToken(hash: tokenHash, now: now, successor: successorRecord) {
        case .notFound: throw OAuthError("invalid_grant", "the refresh token is unknown or has expired.")
        case .revoked: throw OAuthError("invalid_grant", "the refresh token was revoked.")
        case .reused:
            throw OAuthError(
                "invalid_grant",
                "the refresh token was already used; every token of this login is now revoked. Log in again.")
        case .valid(let record):
            guard record.clientID == client.id else {
                try await store.revokeFamily(id: record.familyID)
                throw OAuthError("invalid_grant", "the refresh token belongs to another client.")
            }
            var scope = record.scope
            if let narrowed = form["scope"] {
                guard Set(narrowed.split(separator: " ")).isSubset(of: Set(record.scope.split(separator: " "))) else {
                    throw OAuthError("invalid_scope", "a refresh may only narrow the original scopes.")
                }
                scope = narrowed
            }
            let authentication = if let fresh { fresh } else { try await currentAuthentication(record) }
            // The successor, stored by the rotation, keeps the original scope even when this response is narrowed (RFC 6749 §6).
            return try await userTokens(
                client: client, scope: scope, authentication: authentication, nonce: nil,
                familyID: record.familyID,
                rotatedTo: successor)
        }
    }

    /// What a refresh token's person is now, by its source; throws `invalid_grant` (ending the family) for a person
    /// who is gone, and `temporarily_unavailable` when the source cannot be asked.
    private func currentAuthentication(_ record: RefreshTokenRecord) async throws -> Authentication {
        switch await freshness(of: record.authentication) {
        case .current(let current): return current
        case .gone(let reason):
            try await store.revokeFamily(id: record.familyID)
            throw OAuthError("invalid_grant", reason + " Log in again.")
        case .unavailable:
            throw OAuthError(
                "temporarily_unavailable",
                "the directory that vouches for this user cannot be reached now; retry the refresh later.",
                status: 503, retryAfter: 30)
        }
    }

    private func clientCredentialsGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws
        -> TokenResponse
    {
        try require("client_credentials", client)
        guard !client.isPublic else { throw OAuthError.invalidClient("public clients cannot use client_credentials.") }
        let allowed = Set(client.scopes ?? [])
        let requested = form["scope"].map { Set($0.split(separator: " ").map(String.init)) } ?? allowed
        guard requested.isSubset(of: allowed) else {
            throw OAuthError(
                "invalid_scope", "client \(client.id) may ask only for: \(allowed.sorted().joined(separator: " ")).")
        }
        let scope = requested.sorted().joined(separator: " ")
        let now = clock.now()
        let ttl = client.accessTokenTTL ?? config.lifetimes.accessToken
        let (kid, key) = try await keys.currentSigningKey()
        let access = try sign(
            AccessClaims(
                iss: issuer, sub: client.id, aud: AudienceList([client.audience ?? client.id]),
                exp: Self.seconds(now) + ttl,
                iat: Self.seconds(now), jti: randomToken(bytes: 16), client_id: client.id, scope: scope),
            typ: "at+jwt", kid: kid, key: key)
        return TokenResponse(accessToken: access, expiresIn: ttl, scope: scope)
    }

    private func deviceGrant(_ form: [String: String], client: IdPConfiguration.Client) async throws -> TokenResponse {
        try require("device_code", client)
        guard let code = form["device_code"] else { throw OAuthError("invalid_request", "device_code is required.") }
        switch try await store.pollDevice(deviceCodeHash: Self.hash(code), now: clock.now()) {
        case .pending: throw OAuthError("authorization_pending", "the user has not approved the request yet.")
        case .slowDown(let interval):
            throw OAuthError("slow_down", "polling too fast; wait \(interval) seconds between requests.")
        case .denied: throw OAuthError("access_denied", "the user denied the request.")
        case .expired: throw OAuthError("expired_token", "the device code has expired; start again.")
        case .notFound: throw OAuthError("invalid_grant", "the device code is unknown or was already used.")
        case .approved(let record):
            guard record.clientID == client.id, let approval = record.approval else {
                throw OAuthError("invalid_grant", "the device code was issued to another client.")
            }
            return try await userTokens(
                client: client, scope: record.scope, authentication: approval.authentication, nonce: nil,
                familyID: approval.familyID)
        }
    }

    /// The tokens of a user's grant. A refresh token is issued to clients with the grant: `rotatedTo` when a rotation
    /// has already stored it, otherwise a new one of `familyID`.
    func userTokens(
        client: IdPConfiguration.Client, scope: String, authentication: Authentication, nonce: String?,
        familyID: String,
        rotatedTo: String? = nil
    ) async throws -> TokenResponse {
        let now = clock.now()
        let (kid, key) = try await keys.currentSigningKey()
        let idTTL = client.idTokenTTL ?? config.lifetimes.idToken
        let accessTTL = client.accessTokenTTL ?? config.lifetimes.accessToken
        let released = ReleasedClaims(authentication: authentication, config: config, scope: scope)
        let fromDirectory = authentication.identity != nil
        let idToken = try sign(
            IDClaims(
                iss: issuer, sub: authentication.subject, aud: client.id, exp: Self.seconds(now) + idTTL,
                iat: Self.seconds(now),
                auth_time: Self.seconds(authentication.authTime), nonce: nonce, amr: authentication.amr,
                acr: Self.acr(amr: authentication.amr), azp: client.id,
                email: released.email, email_verified: released.email.map { _ in true },
                preferred_username: released.preferredUsername, name: released.name, groups: released.groups,
                awsTags: awsTags(authentication), awsSourceIdentity: authentication.identity?.awsSourceIdentity,
                extra: released.extra),
            typ: "JWT", kid: kid, key: key)
        let access = try sign(
            AccessClaims(
                iss: issuer, sub: authentication.subject, aud: AudienceList([client.audience ?? client.id]),
                exp: Self.seconds(now) + accessTTL, iat: Self.seconds(now), jti: randomToken(bytes: 16),
                client_id: client.id, scope: scope, auth_time: Self.seconds(authentication.authTime),
                amr: authentication.amr, acr: Self.acr(amr: authentication.amr), groups: released.groups,
                email: fromDirectory ? released.email : nil,
                preferred_username: fromDirectory ? released.preferredUsername : nil,
                name: fromDirectory ? released.name : nil),
            typ: "at+jwt", kid: kid, key: key)
        var refresh = rotatedTo
        if refresh == nil, client.grants.contains("refresh_token") {
            let token = randomToken()
            try await store.insertRefreshToken(
                RefreshTokenRecord(
                    tokenHash: Self.hash(token), familyID: familyID, clientID: client.id, scope: scope,
                    authentication: authentication, issuedAt: now,
                    expiresAt: refreshExpiry(client, now: now)))
            refresh = token
        }
        return TokenResponse(
            accessToken: access, expiresIn: accessTTL, idToken: idToken, refreshToken: refresh, scope: scope)
    }

    /// The `acr` of a sign-in, from how it was made (README, "Passkeys"): a device-bound passkey or security key (`hwk`)
    /// is `phrh`, a synced passkey (`swk`) `phr` — the OpenID Extended Authentication Profile's ACR values 1.0 §3
    /// (phishing-resistant hardware-protected, phishing-resistant). Other sign-ins carry no `acr`.
    public static func acr(amr: [String]) -> String? {
        if amr.contains("hwk") { return "phrh" }
        if amr.contains("swk") { return "phr" }
        return nil
    }

    /// The `https://aws.amazon.com/tags` claim of a connector's person: their tags, and the connector's transitive keys
    /// among those they have (STS refuses a transitive key without its tag).
    func awsTags(_ authentication: Authentication) -> AWSTagsClaim? {
        guard let identity = authentication.identity, let tags = identity.awsTags else { return nil }
        let transitive = config.connector(identity.connector)?.aws?.transitiveTagKeys?.filter { tags[$0] != nil }
        return AWSTagsClaim(tags: tags, transitive: transitive)
    }

    private func refreshExpiry(_ client: IdPConfiguration.Client, now: Date) -> Date {
        now.addingTimeInterval(TimeInterval(client.refreshTokenTTL ?? config.lifetimes.refreshToken))
    }
}
