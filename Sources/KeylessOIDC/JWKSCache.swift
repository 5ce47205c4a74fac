import Foundation
import JWTKit
import KeylessCore
import KeylessHTTP
import Logging

/// The algorithms a bearer token may ever be signed with: asymmetric only, so that a published public key
/// can never double as an HMAC secret, and never `none`.
enum BearerAlgorithms {
    /// Every algorithm this verifier can check; a pinned algorithm outside this set is never accepted.
    static let supported: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
    ]

    /// Registered JOSE algorithm names (RFC 7518 §3.1, RFC 8037, RFC 8812): the only header values a rejection
    /// reason may repeat, so that a reason never echoes arbitrary token content.
    static let registered: Set<String> = supported.union([
        "none", "HS256", "HS384", "HS512", "ES256K", "Ed25519", "Ed448",
    ])

    /// Whether a JWK of type `kty` on curve `crv` can verify `alg`: RSA for RS*/PS*, the matching NIST curve for
    /// ES*, Ed25519 for EdDSA.
    static func fits(kty: String, crv: String?, alg: String) -> Bool {
        switch alg {
        case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512": return kty == "RSA"
        case "ES256": return kty == "EC" && crv == "P-256"
        case "ES384": return kty == "EC" && crv == "P-384"
        case "ES512": return kty == "EC" && crv == "P-521"
        case "EdDSA": return kty == "OKP" && crv == "Ed25519"
        default: return false
        }
    }
}

/// One JWKS fetch turned into ready-to-use verification keys, so that verifying a token costs a dictionary lookup
/// and a signature check, never a key parse.
struct VerificationKeys: Sendable {
    /// What a token's `kid` and `alg` found.
    enum Match {
        /// The key to check the signature with.
        case key(any JWTAlgorithm)
        /// No published key has this `kid`.
        case unknownKid
        /// The token names no key and the JWKS holds several.
        case missingKid
        /// The key exists but its type, curve or `alg` does not fit the token's algorithm.
        case unfit
    }

    /// Keys by `kid`, then by algorithm.
    let named: [String: [String: any JWTAlgorithm]]
    /// The only key of a one-key JWKS, by algorithm: it also matches tokens without `kid`.
    let sole: [String: any JWTAlgorithm]?
    /// How many keys are usable.
    let count: Int
    /// Increases with every successful fetch; tells a waiter whether the keys changed since it looked.
    let generation: Int
    /// When the JWKS was fetched.
    let fetchedAt: Date

    /// The key for a token with `kid` signed with `alg` (already checked against the pinned list).
    func match(kid: String?, alg: String) -> Match {
        if let kid {
            guard let byAlgorithm = named[kid] else { return .unknownKid }
            return byAlgorithm[alg].map(Match.key) ?? .unfit
        }
        guard let sole else { return .missingKid }
        return sole[alg].map(Match.key) ?? .unfit
    }

    /// A JWKS holds at most this many keys we look at; the rest are ignored, which bounds the work per fetch.
    static let maximumKeys = 100

    /// Builds verification keys from a JWKS document for the `algorithms` an issuer pins.
    static func build(jwks body: [UInt8], algorithms: [String], generation: Int, fetchedAt: Date, logger: Logger) async
        -> VerificationKeys?
    {
        guard let rawKeys = JWKSet(json: body)?.keys else { return nil }
        let pinned = algorithms.filter(BearerAlgorithms.supported.contains)
        var usable: [(kid: String?, byAlgorithm: [String: any JWTAlgorithm])] = []
        for raw in rawKeys.prefix(maximumKeys) {
            guard let byAlgorithm = await verifiers(for: raw, pinned: pinned, logger: logger), !byAlgorithm.isEmpty
            else { continue }
            usable.append((raw["kid"]?.string, byAlgorithm))
        }
        var named: [String: [String: any JWTAlgorithm]] = [:]
        for key in usable {
            guard let kid = key.kid else { continue }
            if named[kid] == nil {
                named[kid] = key.byAlgorithm
            } else {
                // Two keys under one kid would make the choice ambiguous; the first one published wins.
                logger.warning("JWKS publishes a key id twice; using the first", metadata: ["oidc.kid": "\(kid)"])
            }
        }
        return VerificationKeys(
            named: named, sole: usable.count == 1 ? usable[0].byAlgorithm : nil,
            count: usable.count, generation: generation, fetchedAt: fetchedAt)
    }

    /// A verifier per pinned algorithm the JWK `raw` may verify; nil when the key is not a public signing key.
    private static func verifiers(for raw: [String: JSONValue], pinned: [String], logger: Logger) async -> [String:
        any JWTAlgorithm]?
    {
        // RFC 7517 §5: keys of a type or use we do not know are ignored, not fatal. Symmetric keys never qualify.
        guard let kty = raw["kty"]?.string, ["RSA", "EC", "OKP"].contains(kty) else { return nil }
        if let use = raw["use"] { guard use.string == "sig" else { return nil } }
        if let operations = raw["key_ops"] {
            guard operations.stringArray?.contains("verify") == true else { return nil }
        }
        if let kid = raw["kid"], kid.string == nil { return nil }
        let keyAlgorithm: String?
        if let alg = raw["alg"] {
            guard let alg = alg.string else { return nil }
            keyAlgorithm = alg
        } else {
            keyAlgorithm = nil
        }
        let curve = raw["crv"]?.string
        // A JWK that names an algorithm is used for that algorithm only (RFC 7517 §4.4).
        let candidates = pinned.filter { alg in
            (keyAlgorithm == nil || keyAlgorithm == alg) && BearerAlgorithms.fits(kty: kty, crv: curve, alg: alg)
        }
        var result: [String: any JWTAlgorithm] = [:]
        for alg in candidates {
            // Only the public members are copied: a JWKS that leaks a private key must not make us a signer.
            var members: [String: String] = ["kty": kty, "alg": alg, "kid": "keyless-bearer"]
            for name in kty == "RSA" ? ["n", "e"] : ["crv", "x", "y"] {
                if let value = raw[name]?.string { members[name] = value }
            }
            do {
                let data = try JSONEncoder().encode(members)
                let jwk = try JSONDecoder().decode(JWK.self, from: data)
                let collection = JWTKeyCollection()
                try await collection.add(jwk: jwk)
                let verifier = try await collection.getKey(for: JWKIdentifier(string: "keyless-bearer"), alg: alg)
                // jwt-kit builds the signer from the JWK's own alg; make sure it is the one we asked for.
                guard verifier.name == alg else { continue }
                result[alg] = verifier
            } catch {
                logger.debug(
                    "ignoring a JWKS key that cannot verify",
                    metadata: [
                        "oidc.kid": "\(raw["kid"]?.string ?? "-")", "oidc.alg": "\(alg)", "oidc.error": "\(error)",
                    ])
            }
        }
        return result
    }
}

/// One trusted issuer's keys: fetched lazily (after discovery when no `jwks_uri` is configured), cached, refetched
/// at most once per `minimumRefetchInterval` for an unknown `kid`, and refreshed in the background after
/// `maximumAge`. Concurrent callers share one in-flight fetch.
actor JWKSCache {
    private enum State {
        /// Nothing fetched yet, or every fetch so far failed; the last failure answers callers within the refetch interval.
        case empty(lastFailure: KeylessError?)
        /// A fetch is running; `previous` (when there is one) keeps being served meanwhile.
        case fetching(Task<VerificationKeys, any Error>, previous: VerificationKeys?)
        /// Keys are available.
        case ready(VerificationKeys)
    }

    let issuer: String
    let algorithms: [String]
    let configuredJWKSURI: String?
    let http: any HTTPTransport
    let clock: WallClock
    let logger: Logger
    let minimumRefetchInterval: TimeInterval
    let maximumAge: TimeInterval

    private var state: State = .empty(lastFailure: nil)
    private var discoveredJWKSURI: String?
    private var lastAttempt: Date?
    private var generation = 0

    init(
        issuer: TrustedIssuer, http: any HTTPTransport, clock: WallClock, logger: Logger,
        minimumRefetchInterval: TimeInterval, maximumAge: TimeInterval = 3600
    ) {
        self.issuer = issuer.issuer
        self.algorithms = issuer.algorithms
        self.configuredJWKSURI = issuer.jwksURI
        self.http = http
        self.clock = clock
        self.logger = logger
        self.minimumRefetchInterval = minimumRefetchInterval
        self.maximumAge = maximumAge
    }

    /// The current keys, fetching them first when there are none. Keys older than `maximumAge` are still returned
    /// while a refresh runs in the background; if it fails they stay in use.
    func current() async throws -> VerificationKeys {
        switch state {
        case .ready(let keys):
            if clock.now().timeIntervalSince(keys.fetchedAt) >= maximumAge, mayFetch() {
                logger.debug("refreshing JWKS in the background", metadata: ["oidc.issuer": "\(issuer)"])
                _ = startFetch(previous: keys)
            }
            return keys
        case .fetching(let task, let previous):
            if let previous { return previous }
            return try await Self.value(of: task)
        case .empty(let lastFailure):
            if let lastFailure, !mayFetch() { throw lastFailure }
            return try await Self.value(of: startFetch(previous: nil))
        }
    }

    /// The keys after one more fetch, for a token whose `kid` was not in the keys of `generation`: joins a fetch in
    /// flight, returns newer keys when another caller already refetched, and otherwise fetches unless the last fetch
    /// was less than `minimumRefetchInterval` ago. A failed refetch leaves the known keys in place.
    func refetch(after seen: Int) async throws -> VerificationKeys {
        switch state {
        case .ready(let keys):
            guard keys.generation == seen, mayFetch() else { return keys }
            return (try? await startFetch(previous: keys).value) ?? keys
        case .fetching(let task, let previous):
            if let previous { return (try? await task.value) ?? previous }
            return try await Self.value(of: task)
        case .empty:
            return try await current()
        }
    }

    /// Waits for a fetch in flight (tests use it to observe a background refresh).
    func settle() async {
        if case .fetching(let task, _) = state { _ = try? await task.value }
    }

    private func mayFetch() -> Bool {
        guard let lastAttempt else { return true }
        return clock.now().timeIntervalSince(lastAttempt) >= minimumRefetchInterval
    }

    /// Starts the one fetch; callers that arrive while it runs find it in `state` and share it.
    private func startFetch(previous: VerificationKeys?) -> Task<VerificationKeys, any Error> {
        lastAttempt = clock.now()
        let task = Task { try await self.load(previous: previous) }
        state = .fetching(task, previous: previous)
        return task
    }

    private func load(previous: VerificationKeys?) async throws -> VerificationKeys {
        do {
            let uri = try await jwksURI()
            let body = try await download(uri)
            guard
                let keys = await VerificationKeys.build(
                    jwks: body, algorithms: algorithms, generation: generation + 1,
                    fetchedAt: clock.now(), logger: logger)
            else {
                throw KeylessError(
                    .idpError, "The JWKS of \(issuer) at \(uri) is not a JSON Web Key Set.",
                    hint: "Check the identity provider's configuration.")
            }
            guard keys.count > 0 else {
                throw KeylessError(
                    .idpError,
                    "The JWKS of \(issuer) at \(uri) has no key for the algorithms \(algorithms.joined(separator: ", ")).",
                    hint: "Check the issuer's algorithms in the server configuration and the provider's signing keys.")
            }
            generation = keys.generation
            state = .ready(keys)
            logger.debug("fetched JWKS", metadata: ["oidc.issuer": "\(issuer)", "oidc.keys": "\(keys.count)"])
            return keys
        } catch {
            let failure =
                error as? KeylessError
                ?? KeylessError(
                    .idpUnreachable, "Cannot fetch the keys of \(issuer): \(error).",
                    hint: "Check the network, then retry.")
            logger.warning(
                "JWKS fetch failed",
                metadata: [
                    "oidc.issuer": "\(issuer)", "oidc.error": "\(failure.reason)",
                    "oidc.serving_previous_keys": "\(previous != nil)",
                ])
            state = previous.map(State.ready) ?? .empty(lastFailure: failure)
            throw failure
        }
    }

    private func jwksURI() async throws -> String {
        if let uri = configuredJWKSURI ?? discoveredJWKSURI { return uri }
        do {
            let metadata = try await Discovery.fetch(issuer: issuer, http: http, logger: logger)
            discoveredJWKSURI = metadata.jwksURI
            return metadata.jwksURI
        } catch let error as KeylessError where error.code == .idpUnreachable || error.code == .idpError {
            throw error
        } catch let error as KeylessError {
            throw KeylessError(.idpError, error.reason, hint: error.hint)
        }
    }

    private func download(_ uri: String) async throws -> [UInt8] {
        let response: HTTPResponseData
        do {
            response = try await http.send(method: "GET", url: uri, headers: ["accept": "application/json"], body: nil)
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot fetch the keys of \(issuer) from \(uri): \(error).",
                hint: "Check the network, then retry.")
        }
        guard response.status == 200 else {
            throw KeylessError(
                .idpError, "The JWKS of \(issuer) at \(uri) answered HTTP \(response.status).",
                hint: "Check the identity provider's configuration.")
        }
        return response.body
    }

    /// Fetch tasks only throw `KeylessError`; anything else (none expected) still maps to an unreachable provider.
    private static func value(of task: Task<VerificationKeys, any Error>) async throws -> VerificationKeys {
        do {
            return try await task.value
        } catch let error as KeylessError {
            throw error
        } catch {
            throw KeylessError(
                .idpUnreachable, "Cannot fetch the issuer's keys: \(error).", hint: "Check the network, then retry.")
        }
    }
}
