import Foundation
import JWTKit
import KeylessCore
import KeylessHTTP
import Logging

/// The ID-token claims keyless reads.
public struct IDTokenClaims: Codable, Sendable, Equatable {
    /// Issuer.
    public var iss: String
    /// Subject.
    public var sub: String
    /// Audiences.
    public var aud: AudienceList
    /// Expiry, seconds since 1970.
    public var exp: Double
    /// Issued at.
    public var iat: Double?
    /// Not before.
    public var nbf: Double?
    /// The nonce sent in the authorization request.
    public var nonce: String?
    /// Authorized party.
    public var azp: String?
    /// Email address.
    public var email: String?
    /// Login name.
    public var preferredUsername: String?
    /// Authentication methods.
    public var amr: [String]?
    /// Whether the provider verified `email` (a boolean, or "true"/"false" as some providers send it).
    public var emailVerified: LenientBool?
    /// Entra ID's user principal name (v1 tokens, or as an optional claim).
    public var upn: String?
    /// Entra ID's tenant id.
    public var tid: String?

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, nbf, nonce, azp, email, amr, upn, tid
        case preferredUsername = "preferred_username"
        case emailVerified = "email_verified"
    }

    /// Expiry as a date.
    public var expiresAt: Date { Date(timeIntervalSince1970: exp) }

    /// The email when the provider has not said it is unverified (`email_verified: false` makes it no identity).
    public var trustedEmail: String? { emailVerified?.value == false ? nil : email }

    /// Who this is, for people: a verified email, else login name (Entra's `preferred_username`, then `upn`), else subject.
    public var displayName: String { trustedEmail ?? preferredUsername ?? upn ?? sub }
}

/// A boolean claim that some providers send as a string ("true"); anything else decodes as nil.
public struct LenientBool: Codable, Sendable, Equatable {
    public var value: Bool?

    /// Wraps a value.
    public init(_ value: Bool?) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bool = try? container.decode(Bool.self) {
            value = bool
        } else if let text = try? container.decode(String.self) {
            value = text == "true" ? true : (text == "false" ? false : nil)
        } else {
            value = nil
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }
}

/// The claims part of a JWT, decoded without any verification: only for display of tokens we
/// verified earlier, never for decisions.
public enum UnverifiedJWT {
    /// Decodes the payload of `token` as `T`.
    public static func claims<T: Decodable>(_ token: String, as type: T.Type = IDTokenClaims.self) -> T? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = Base64URL.decode(parts[1]) else { return nil }
        return try? JSONDecoder().decode(T.self, from: data)
    }
}

/// jwt-kit needs a payload type; the claim checks are ours (with an injected clock), so its hook is empty.
struct SignatureOnlyPayload: JWTPayload {
    var claims: IDTokenClaims
    init(from decoder: any Decoder) throws { claims = try IDTokenClaims(from: decoder) }
    func encode(to encoder: any Encoder) throws { try claims.encode(to: encoder) }
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A key from the provider's JWKS with the `kid` it really had (none for some providers).
struct ProviderKey: Sendable {
    let kid: String?
    let jwk: JWK
}

/// Verifies ID tokens from one issuer: signature against the provider's JWKS (fetched, cached, and
/// refetched once for an unknown `kid`), pinned algorithms, `iss`, `aud`/`azp`, `exp`, `iat`, `nbf`, `nonce`.
public actor IDTokenVerifier {
    let issuer: String
    /// Other `iss` forms this issuer's documentation allows (Google's scheme-less one).
    let alternativeIssuers: Set<String>
    /// A multi-tenant issuer with `{tenantid}` (Entra's common endpoint): `iss` must be it with the token's `tid`.
    let tenantTemplate: String?
    let clientID: String
    let jwksURI: String
    let http: any HTTPTransport
    let clock: WallClock
    let logger: Logger
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    let leeway: TimeInterval = 60
    /// The ID-token signing algorithms keyless accepts (never `none`, never HMAC).
    public static let allowedAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ]

    private var keys: [ProviderKey] = []
    private var fetchedAt: Date?

    /// Creates a verifier for tokens that `issuer` issues to `clientID`.
    public init(
        issuer: String, clientID: String, jwksURI: String, http: any HTTPTransport, clock: WallClock, logger: Logger,
        alternativeIssuers: Set<String> = [], tenantTemplate: String? = nil
    ) {
        self.issuer = Discovery.normalize(issuer)
        self.alternativeIssuers = Set(alternativeIssuers.map(Discovery.normalize))
        self.tenantTemplate = tenantTemplate.map(Discovery.normalize)
        self.clientID = clientID
        self.jwksURI = jwksURI
        self.http = http
        self.clock = clock
        self.logger = logger
    }

    /// Verifies `token` and returns its claims; `nonce` must match when given.
    public func verify(_ token: String, nonce: String?) async throws -> IDTokenClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, token.utf8.count < 16_384,
            let headerData = Base64URL.decode(parts[0]),
            let header = try? JSONDecoder().decode([String: JSONValue].self, from: headerData),
            let alg = header["alg"]?.string
        else {
            throw invalid("it is not a signed JWT")
        }
        guard Self.allowedAlgorithms.contains(alg) else { throw invalid("its algorithm \(alg) is not accepted") }
        let kid = header["kid"]?.string
        let key = try await key(for: kid, alg: alg)
        let collection = JWTKeyCollection()
        do {
            try await collection.add(jwk: key, isDefault: true)
        } catch {
            throw invalid("the provider's key \(kid ?? "-") cannot be used: \(error)")
        }
        let claims: IDTokenClaims
        do {
            claims = try await collection.verify(token, as: SignatureOnlyPayload.self).claims
        } catch {
            throw invalid("its signature does not verify against the provider's key \(kid ?? "-")")
        }
        try check(claims, nonce: nonce)
        return claims
    }

    func check(_ claims: IDTokenClaims, nonce: String?) throws {
        let now = clock.now().timeIntervalSince1970
        try checkIssuer(claims)
        guard claims.aud.values.contains(clientID) else {
            throw invalid(
                "its audience \(claims.aud.values.joined(separator: ",")) does not include the client \(clientID)")
        }
        if claims.aud.values.count > 1, let azp = claims.azp, azp != clientID {
            throw invalid("its authorized party \(azp) is not the client \(clientID)")
        }
        guard claims.exp.isFinite, claims.exp <= now + TokenTimes.longestLifetime else {
            throw invalid("it claims to expire more than a year from now")
        }
        guard claims.exp + leeway > now else { throw expired(claims) }
        if let nbf = claims.nbf {
            guard nbf.isFinite, nbf - leeway <= now else { throw invalid("it is not valid yet (nbf)") }
        }
        if let iat = claims.iat {
            guard iat.isFinite, iat - leeway <= now else { throw invalid("it claims to be issued in the future") }
        }
        if let nonce, claims.nonce != nonce {
            throw invalid("its nonce does not match this login (replayed or mixed-up response)")
        }
    }

    func checkIssuer(_ claims: IDTokenClaims) throws {
        let iss = Discovery.normalize(claims.iss)
        if iss == issuer || alternativeIssuers.contains(iss) { return }
        if let tenantTemplate {
            guard let tid = claims.tid, !tid.isEmpty, !tid.contains("/") else {
                throw invalid("it carries no tenant id (tid), which the multi-tenant issuer \(tenantTemplate) needs")
            }
            if iss == tenantTemplate.replacingOccurrences(of: "{tenantid}", with: tid) { return }
            throw invalid("it was issued by \(claims.iss), which is not the issuer of its own tenant \(tid)")
        }
        throw invalid("it was issued by \(claims.iss), not \(issuer)")
    }

    private func key(for kid: String?, alg: String) async throws -> JWK {
        if keys.isEmpty { try await refresh() }
        if let found = match(kid: kid, alg: alg) { return found }
        // An unknown kid may mean the provider rotated its keys: refetch once, at most every 10 s.
        if fetchedAt.map({ clock.now().timeIntervalSince($0) > 10 }) ?? true {
            try await refresh()
            if let found = match(kid: kid, alg: alg) { return found }
        }
        throw invalid(
            kid.map { "its key id \($0) is not in the provider's JWKS" }
                ?? "it names no key and the provider has several")
    }

    private func match(kid: String?, alg: String) -> JWK? {
        let candidates: [ProviderKey]
        if let kid {
            candidates = keys.filter { $0.kid == kid }
        } else if keys.count == 1 {
            candidates = keys
        } else {
            candidates = []
        }
        return candidates.map(\.jwk).first { jwk in
            if let keyAlg = jwk.algorithm?.rawValue, keyAlg != alg { return false }
            switch jwk.keyType {
            case .rsa: return alg.hasPrefix("RS") || alg.hasPrefix("PS")
            case .ecdsa: return alg.hasPrefix("ES")
            case .octetKeyPair: return alg == "EdDSA"
            default: return false
            }
        }
    }

    private func refresh() async throws {
        let response: HTTPResponseData
        do {
            response = try await http.send(
                method: "GET", url: jwksURI, headers: ["accept": "application/json"], body: nil)
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot fetch the provider's keys from \(jwksURI): \(error).",
                hint: "Check the network, then retry.")
        }
        guard response.status == 200, let rawKeys = JWKSet(json: response.body)?.keys else {
            throw KeylessError(
                .idpError, "The provider's JWKS at \(jwksURI) is unusable (HTTP \(response.status)).",
                hint: "Check the identity provider's configuration.")
        }
        // RFC 7517 §5: keys of a type or algorithm we do not know are ignored, not fatal. Symmetric and
        // encryption keys never verify ID tokens. A key without `kid` gets a private one so jwt-kit accepts it.
        keys = rawKeys.compactMap { raw -> ProviderKey? in
            guard let kty = raw["kty"]?.string, ["RSA", "EC", "OKP"].contains(kty),
                (raw["use"]?.string ?? "sig") == "sig"
            else { return nil }
            var named = raw
            let kid = raw["kid"]?.string
            if kid == nil { named["kid"] = .string("keyless-unnamed-key") }
            guard let data = try? JSONEncoder().encode(named),
                let jwk = try? JSONDecoder().decode(JWK.self, from: data)
            else { return nil }
            return ProviderKey(kid: kid, jwk: jwk)
        }
        fetchedAt = clock.now()
        logger.debug("fetched JWKS", metadata: ["oidc.keys": "\(keys.count)"])
    }

    private func invalid(_ why: String) -> KeylessError {
        KeylessError(
            .tokenInvalid, "The ID token from \(issuer) was rejected: \(why).",
            hint: "Log in again (keyless login); if it persists, check --issuer-url and --client-id.")
    }

    private func expired(_ claims: IDTokenClaims) -> KeylessError {
        KeylessError(
            .tokenInvalid, "The ID token from \(issuer) expired at \(claims.expiresAt).",
            hint: "Log in again (keyless login).")
    }
}
