import Crypto
import Foundation
import JWTKit
import KeylessCore
import KeylessHTTP
import Logging
import Synchronization

/// An identity provider whose access tokens the server accepts, with what it pins for them.
public struct TrustedIssuer: Sendable, Equatable {
    /// The issuer identifier, normalised without trailing slash.
    public var issuer: String
    /// A token's `aud` must contain one of these.
    public var audiences: [String]
    /// The signing algorithms accepted; only asymmetric ones ever are, whatever is listed here.
    public var algorithms: [String]
    /// Where the keys are; nil to read `jwks_uri` from the issuer's discovery document.
    public var jwksURI: String?

    /// Creates a trusted issuer; `issuer` is normalised.
    public init(issuer: String, audiences: [String], algorithms: [String] = ["RS256", "ES256"], jwksURI: String? = nil)
    {
        self.issuer = Discovery.normalize(issuer)
        self.audiences = audiences
        self.algorithms = algorithms
        self.jwksURI = jwksURI
    }
}

/// Who a verified bearer token says the caller is.
public struct VerifiedBearer: Sendable, Equatable {
    /// The issuer, as configured (normalised).
    public var issuer: String
    /// The `sub` claim.
    public var subject: String
    /// The `exp` claim.
    public var expiresAt: Date
    /// Every claim of the token.
    public var claims: [String: JSONValue]
    /// The SHA-256 of the token, as the verifier keyed it (nil for identities made by hand): callers key their own
    /// per-token caches with it instead of hashing the token again.
    public var tokenDigest: TokenDigest? = nil

    /// Creates a verified identity (for servers' tests; `BearerVerifier` is the one that vouches for it).
    public init(issuer: String, subject: String, expiresAt: Date, claims: [String: JSONValue]) {
        self.issuer = issuer
        self.subject = subject
        self.expiresAt = expiresAt
        self.claims = claims
    }
}

/// Why a bearer token was refused: short, specific, safe to show the caller, and never quoting the token.
public struct BearerRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The reason, such as "expired" or "unknown issuer".
    public var reason: String

    public init(reason: String) { self.reason = reason }

    /// The reason with context, for logs.
    public var description: String { "bearer token rejected: \(reason)" }

    static let tooLarge = BearerRejection(reason: "token too large")
    static let malformed = BearerRejection(reason: "malformed token")
    static let unknownIssuer = BearerRejection(reason: "unknown issuer")
    static let criticalHeader = BearerRejection(reason: "unsupported critical header")
    static let unknownKeyID = BearerRejection(reason: "unknown key id")
    static let missingKeyID = BearerRejection(reason: "missing key id")
    static let keyMismatch = BearerRejection(reason: "key does not fit algorithm")
    static let badSignature = BearerRejection(reason: "bad signature")
    static let wrongAudience = BearerRejection(reason: "wrong audience")
    static let missingExpiry = BearerRejection(reason: "missing expiry")
    static let expired = BearerRejection(reason: "expired")
    static let expiryTooFar = BearerRejection(reason: "expires too far in the future")
    static let notYetValid = BearerRejection(reason: "not yet valid")
    static let issuedInFuture = BearerRejection(reason: "issued in the future")
    static let missingSubject = BearerRejection(reason: "missing subject")

    /// Names the algorithm only when it is a registered JOSE name, so the reason never carries arbitrary token text.
    static func algorithm(_ alg: String) -> BearerRejection {
        BearerRejection(
            reason: BearerAlgorithms.registered.contains(alg)
                ? "algorithm \(alg) is not accepted" : "algorithm is not accepted")
    }
}

/// Bounds on the times in tokens.
public enum TokenTimes {
    /// The longest an ID or access token may claim to live: a year. Anything longer is refused, never clamped.
    public static let longestLifetime: TimeInterval = 366 * 86_400
}

/// Verifies the access server's bearer tokens (JWTs from trusted issuers), failing closed: pinned asymmetric
/// algorithms, keys only from the issuer's JWKS chosen by `kid`, `iss`, `aud`, `exp`, `nbf`, `iat` and `sub` checked
/// against an injected clock. Verified tokens are cached until they expire, so a repeated token costs one SHA-256
/// and a dictionary lookup under a lock.
public final class BearerVerifier: Sendable {
    /// One configured issuer with its sets ready for lookups and its keys.
    struct Issuer: Sendable {
        let configuration: TrustedIssuer
        let algorithms: Set<String>
        let audiences: Set<String>
        let keys: JWKSCache
    }

    let issuers: [String: Issuer]
    let clock: WallClock
    let logger: Logger
    let leeway: TimeInterval
    let maximumTokenBytes: Int
    private let cache: Mutex<TokenCache>
    /// Signature checks performed; tests read it to prove the cached path does none.
    private let signatureChecks = Atomic<Int>(0)

    /// Creates a verifier for `issuers`; nothing is fetched until the first token or `prefetch()`.
    public init(
        issuers: [TrustedIssuer], http: any HTTPTransport, clock: WallClock, logger: Logger,
        leeway: TimeInterval = 60, minimumRefetchInterval: TimeInterval = 10, maximumTokenBytes: Int = 8192,
        cacheLimit: Int = 10_000
    ) {
        var table: [String: Issuer] = [:]
        for trusted in issuers {
            let issuer = Discovery.normalize(trusted.issuer)
            guard table[issuer] == nil else {
                logger.warning(
                    "trusted issuer listed twice; using the first entry", metadata: ["oidc.issuer": "\(issuer)"])
                continue
            }
            var configuration = trusted
            configuration.issuer = issuer
            let unsupported = trusted.algorithms.filter { !BearerAlgorithms.supported.contains($0) }
            if !unsupported.isEmpty {
                logger.warning(
                    "ignoring algorithms that are never accepted for bearer tokens",
                    metadata: [
                        "oidc.issuer": "\(issuer)", "oidc.algorithms": "\(unsupported.joined(separator: ","))",
                    ])
            }
            if trusted.audiences.isEmpty {
                logger.warning(
                    "trusted issuer has no audiences; none of its tokens will be accepted",
                    metadata: ["oidc.issuer": "\(issuer)"])
            }
            table[issuer] = Issuer(
                configuration: configuration,
                algorithms: Set(trusted.algorithms).intersection(BearerAlgorithms.supported),
                audiences: Set(trusted.audiences),
                keys: JWKSCache(
                    issuer: configuration, http: http, clock: clock, logger: logger,
                    minimumRefetchInterval: minimumRefetchInterval))
        }
        self.issuers = table
        self.clock = clock
        self.logger = logger
        self.leeway = leeway
        self.maximumTokenBytes = maximumTokenBytes
        self.cache = Mutex(TokenCache(limit: cacheLimit))
    }

    /// Verifies `token`: throws `BearerRejection` for a token that is not acceptable, and `KeylessError`
    /// (`.idpUnreachable`, `.idpError`) when the issuer's keys cannot be fetched.
    // nonisolated(nonsending): the cached answer is computed on the caller's executor, with no hop.
    nonisolated(nonsending) public func verify(_ token: String) async throws -> VerifiedBearer {
        guard token.utf8.count <= maximumTokenBytes else { throw BearerRejection.tooLarge }
        let digest = TokenDigest(token)
        let now = clock.now().timeIntervalSince1970
        switch cache.withLock({ $0.lookup(digest, now: now) }) {
        case .valid(let bearer): return bearer
        case .expired: throw BearerRejection.expired
        case .miss: return try await verifyUncached(token, digest: digest)
        }
    }

    /// Fetches discovery documents and JWKS for every issuer, logging failures (for server start-up).
    public func prefetch() async {
        await withTaskGroup(of: Void.self) { group in
            for issuer in issuers.values {
                // Failures are logged by the cache itself; verification retries them later.
                group.addTask { _ = try? await issuer.keys.current() }
            }
        }
    }

    // MARK: - the full check

    @concurrent
    private func verifyUncached(_ token: String, digest: TokenDigest) async throws -> VerifiedBearer {
        do {
            var bearer = try await check(token)
            bearer.tokenDigest = digest
            let deadline = bearer.expiresAt.timeIntervalSince1970 + leeway
            cache.withLock {
                $0.insert(bearer, for: digest, deadline: deadline, now: clock.now().timeIntervalSince1970)
            }
            return bearer
        } catch let rejection as BearerRejection {
            logger.debug("bearer token rejected", metadata: ["oidc.reason": "\(rejection.reason)"])
            throw rejection
        }
    }

    private func check(_ token: String) async throws -> VerifiedBearer {
        let parts = token.split(separator: ".", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 3,
            let headerData = Base64URL.decode(parts[0]), let payloadData = Base64URL.decode(parts[1]),
            let signature = Base64URL.decode(parts[2]),
            let header = try? JSONDecoder().decode([String: JSONValue].self, from: headerData),
            let claims = try? JSONDecoder().decode([String: JSONValue].self, from: payloadData),
            case .string(let alg)? = header["alg"]
        else {
            throw BearerRejection.malformed
        }
        // The unverified `iss` only selects whose keys and rules apply.
        guard case .string(let iss)? = claims["iss"], let issuer = issuers[Discovery.normalize(iss)] else {
            throw BearerRejection.unknownIssuer
        }
        guard issuer.algorithms.contains(alg) else { throw BearerRejection.algorithm(alg) }
        // RFC 7515 §4.1.11: extensions we do not implement, listed as critical, make the token unacceptable.
        guard header["crit"] == nil else { throw BearerRejection.criticalHeader }
        let kid: String?
        switch header["kid"] {
        case nil: kid = nil
        case .string(let value)?: kid = value
        default: throw BearerRejection.malformed
        }

        let verifier = try await key(for: kid, alg: alg, issuer: issuer)
        let signingInput = Array(token.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        signatureChecks.wrappingAdd(1, ordering: .relaxed)
        guard (try? verifier.verify(signature, signs: signingInput)) == true else { throw BearerRejection.badSignature }

        return try checkClaims(claims, issuer: issuer, now: clock.now().timeIntervalSince1970)
    }

    /// The issuer's key for `kid` and `alg`; an unknown `kid` gets one (rate-limited, shared) JWKS refetch.
    private func key(for kid: String?, alg: String, issuer: Issuer) async throws -> any JWTAlgorithm {
        var keys = try await issuer.keys.current()
        var match = keys.match(kid: kid, alg: alg)
        if case .unknownKid = match {
            keys = try await issuer.keys.refetch(after: keys.generation)
            match = keys.match(kid: kid, alg: alg)
        }
        switch match {
        case .key(let verifier): return verifier
        case .unknownKid: throw BearerRejection.unknownKeyID
        case .missingKid: throw BearerRejection.missingKeyID
        case .unfit: throw BearerRejection.keyMismatch
        }
    }

    private func checkClaims(_ claims: [String: JSONValue], issuer: Issuer, now: TimeInterval) throws -> VerifiedBearer
    {
        let audiences: [String]
        switch claims["aud"] {
        case .string(let one)?: audiences = [one]
        case .array(let many)?: audiences = many.compactMap { if case .string(let value) = $0 { value } else { nil } }
        default: audiences = []
        }
        guard audiences.contains(where: issuer.audiences.contains) else { throw BearerRejection.wrongAudience }
        let exp: Double
        switch claims["exp"] {
        case nil: throw BearerRejection.missingExpiry
        case .number(let value)?: exp = value
        default: throw BearerRejection.malformed
        }
        guard exp + leeway > now else { throw BearerRejection.expired }
        // No identity token lives a year; an exp beyond that (or beyond any integer) is refused before it becomes a
        // cache lifetime or a cookie's Max-Age.
        guard exp.isFinite, exp <= now + TokenTimes.longestLifetime else { throw BearerRejection.expiryTooFar }
        switch claims["nbf"] {
        case nil: break
        case .number(let nbf)? where nbf.isFinite: guard nbf - leeway <= now else { throw BearerRejection.notYetValid }
        default: throw BearerRejection.malformed
        }
        switch claims["iat"] {
        case nil: break
        case .number(let iat)? where iat.isFinite:
            guard iat - leeway <= now else { throw BearerRejection.issuedInFuture }
        default: throw BearerRejection.malformed
        }
        guard case .string(let subject)? = claims["sub"], !subject.isEmpty else { throw BearerRejection.missingSubject }
        return VerifiedBearer(
            issuer: issuer.configuration.issuer, subject: subject, expiresAt: Date(timeIntervalSince1970: exp),
            claims: claims)
    }

    // MARK: - for tests

    /// How many signatures were checked so far.
    var signatureCheckCount: Int { signatureChecks.load(ordering: .relaxed) }

    /// How many verified tokens are cached.
    var cachedTokenCount: Int { cache.withLock { $0.entries.count } }

    /// Waits for every background JWKS fetch in flight.
    func settle() async {
        for issuer in issuers.values { await issuer.keys.settle() }
    }
}

/// The SHA-256 of a token: the cache key, so the cache never holds tokens themselves.
public struct TokenDigest: Hashable, Sendable {
    let a, b, c, d: UInt64

    init(_ token: String) {
        let digest =
            token.utf8.withContiguousStorageIfAvailable { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
            ?? SHA256.hash(data: Array(token.utf8))
        (a, b, c, d) = digest.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 16, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            )
        }
    }
}

/// Verified tokens until they expire, bounded: when full, expired entries go first, then an arbitrary tenth.
struct TokenCache {
    /// What a lookup found.
    enum Lookup {
        case valid(VerifiedBearer)
        case expired
        case miss
    }

    struct Entry {
        let bearer: VerifiedBearer
        /// `exp` plus leeway, seconds since 1970.
        let deadline: Double
    }

    let limit: Int
    var entries: [TokenDigest: Entry] = [:]

    init(limit: Int) { self.limit = max(0, limit) }

    mutating func lookup(_ digest: TokenDigest, now: Double) -> Lookup {
        guard let entry = entries[digest] else { return .miss }
        guard now < entry.deadline else {
            entries[digest] = nil
            return .expired
        }
        return .valid(entry.bearer)
    }

    mutating func insert(_ bearer: VerifiedBearer, for digest: TokenDigest, deadline: Double, now: Double) {
        guard limit > 0 else { return }
        if entries.count >= limit, entries[digest] == nil {
            entries = entries.filter { $0.value.deadline > now }
            if entries.count >= limit {
                // Only verified tokens get here, so this needs many valid tokens at once; dropping a batch keeps
                // the amortised cost per insert constant.
                let excess = entries.count - limit + 1 + limit / 10
                for key in Array(entries.keys.prefix(excess)) { entries[key] = nil }
            }
        }
        entries[digest] = Entry(bearer: bearer, deadline: deadline)
    }
}
