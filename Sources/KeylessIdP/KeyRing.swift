import Crypto
import Foundation
import KeylessCore
import KeylessJOSE
import KeylessStorage
import Synchronization
#if canImport(Glibc)
    import Glibc
#endif

/// The key that seals private signing keys before they reach the store, so a database dump alone signs nothing.
/// Replicas sharing a database must share this file.
public enum KeyEncryptionKey {
    /// Reads the key at `path`, creating it (32 random bytes, mode 0600) when missing. Creation is race-free:
    /// several processes starting at once all end up with the same key.
    public static func loadOrCreate(path: String) throws -> SymmetricKey {
        if let key = try read(path) { return key }
        try Files.ensurePrivateDirectory(Files.parentDirectory(path))
        let temp = path + ".\(getpid()).new"
        let fresh = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0).base64EncodedString() }
        try Files.writeAtomically(Array((fresh + "\n").utf8), to: temp, mode: 0o600)
        defer { unlink(temp) }
        if link(temp, path) != 0 && errno != EEXIST {
            throw KeylessError(
                .io, "Cannot create \(path): \(Files.errnoString()).", hint: "Check that the directory is writable.")
        }
        guard let key = try read(path) else {
            throw KeylessError(.io, "\(path) vanished while it was being created.", hint: "Start the provider again.")
        }
        return key
    }

    static func read(_ path: String) throws -> SymmetricKey? {
        guard let bytes = try Files.read(path, requirePrivate: true) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let data = Data(base64Encoded: text), data.count == 32 else {
            throw KeylessError(
                .configInvalid, "\(path) is not a keyless key-encryption key (32 bytes, base64).",
                hint:
                    "Restore it from a backup; without it the stored signing keys cannot be used (run `keyless idp rotate-keys` after replacing it)."
            )
        }
        return SymmetricKey(data: data)
    }
}

/// The provider's signing keys: makes the first one, signs with the active one, publishes every key a live token
/// may have been signed with, and rotates (the next key is published before it signs; the old one stays published
/// until every token it signed has expired). Reloads from the store so replicas see each other's rotations.
public actor KeyRing {
    struct Loaded {
        var record: SigningKeyRecord
        var key: SigningKey
        var jwk: [String: String]
    }

    let store: any IdPStore
    let kek: SymmetricKey
    let algorithm: String
    let clock: WallClock
    let maxTokenLifetime: TimeInterval
    let reloadInterval: TimeInterval
    private var keys: [Loaded] = []
    private var loadedAt: Date?
    /// The signing key and the interval in which it is certainly the right one (until the next reload or activation),
    /// readable without entering the actor: every token request asks for it.
    private nonisolated let current = Mutex<CurrentKey?>(nil)

    struct CurrentKey: Sendable {
        var kid: String
        var key: SigningKey
        var from: Date
        var until: Date
    }
    private var jwksCache: (at: Date, bytes: [UInt8])?

    /// A key ring over `store`; private keys are sealed with `kek`. `maxTokenLifetime` is the longest lifetime of any
    /// token the provider signs; `reloadInterval` how often the store is re-read for other replicas' rotations.
    public init(
        store: any IdPStore, kek: SymmetricKey, algorithm: String, clock: WallClock, maxTokenLifetime: TimeInterval,
        reloadInterval: TimeInterval = 10
    ) {
        self.store = store; self.kek = kek; self.algorithm = algorithm; self.clock = clock
        self.maxTokenLifetime = maxTokenLifetime; self.reloadInterval = reloadInterval
    }

    /// Makes the first key if the store has none (once, even with several replicas starting), then loads.
    public func start() async throws {
        if try await store.signingKeys().isEmpty {
            let now = clock.now()
            try await store.insertSigningKey(try makeRecord(activatesAt: now, now: now), onlyIfEmpty: true)
        }
        try await reload()
    }

    /// Re-reads the keys from the store.
    public func reload() async throws {
        let now = clock.now()
        var loaded: [Loaded] = []
        for record in try await store.signingKeys() where record.expiresAt.map({ $0 > now }) ?? true {
            let der: Data
            do {
                der = try AES.GCM.open(
                    AES.GCM.SealedBox(combined: record.sealedPrivateKey), using: kek,
                    authenticating: Data(record.kid.utf8))
            } catch {
                throw KeylessError(
                    .configInvalid,
                    "signing key \(record.kid) in the store cannot be unsealed with this key-encryption key.",
                    hint:
                        "Give every replica the same key-encryption key file (--key-encryption-key), or run `keyless idp rotate-keys` with this one."
                )
            }
            let key = try SigningKey(algorithm: record.algorithm, der: der).accelerated()
            var jwk = try key.publicJWKMembers()
            jwk["kid"] = record.kid; jwk["use"] = "sig"; jwk["alg"] = record.algorithm
            loaded.append(Loaded(record: record, key: key, jwk: jwk))
        }
        keys = loaded
        loadedAt = now
        jwksCache = nil
        current.withLock { $0 = nil }
    }

    private func reloadIfStale() async throws {
        let now = clock.now()
        if loadedAt == nil || now.timeIntervalSince(loadedAt!) >= reloadInterval || now < loadedAt! {
            try await reload()
        }
    }

    /// The key that signs now, from the snapshot when it is still valid, else from the actor.
    public nonisolated func currentSigningKey() async throws -> (kid: String, key: SigningKey) {
        let now = clock.now()
        if let hit = current.withLock({ snapshot in
            snapshot.flatMap { now >= $0.from && now < $0.until ? ($0.kid, $0.key) : nil }
        }) {
            return hit
        }
        return try await signingKey()
    }

    /// The key that signs now: the most recently activated key that has not retired.
    public func signingKey() async throws -> (kid: String, key: SigningKey) {
        try await reloadIfStale()
        let now = clock.now()
        let active = keys.filter { $0.record.activatesAt <= now && ($0.record.retiresAt.map { $0 > now } ?? true) }
        guard
            let chosen = (active.isEmpty ? keys.filter { $0.record.activatesAt <= now } : active)
                .max(by: { ($0.record.activatesAt, $0.record.kid) < ($1.record.activatesAt, $1.record.kid) })
        else {
            throw KeylessError(
                .configInvalid, "the store holds no signing key that is active.",
                hint: "Run `keyless idp rotate-keys --publish-for 0`.")
        }
        // Valid until the next reload, the next key's activation or this key's retirement, whichever comes first.
        let changes =
            keys.map(\.record.activatesAt).filter { $0 > now }
            + [chosen.record.retiresAt, loadedAt!.addingTimeInterval(reloadInterval)].compactMap { $0 }
        let snapshot = CurrentKey(kid: chosen.record.kid, key: chosen.key, from: loadedAt!, until: changes.min()!)
        current.withLock { $0 = snapshot }
        return (chosen.record.kid, chosen.key)
    }

    /// The JWKS document: every key that is published (upcoming, active, or retired with live tokens).
    public func jwks() async throws -> [UInt8] {
        try await reloadIfStale()
        if let cache = jwksCache, cache.at == loadedAt { return cache.bytes }
        let bytes = try JSONWriter.bytes(["keys": keys.map(\.jwk)])
        jwksCache = (loadedAt!, bytes)
        return bytes
    }

    /// Public keys by `kid`, for checking this provider's own access tokens.
    public func verificationKeys() async throws -> [String: VerificationKey] {
        try await reloadIfStale()
        var result: [String: VerificationKey] = [:]
        for loaded in keys {
            switch loaded.key {
            case .rsa(let key): result[loaded.record.kid] = .rsa(key.publicKey)
            case .rsaOpenSSL(let fast): result[loaded.record.kid] = .rsa(fast.key.publicKey)
            case .ec(let key): result[loaded.record.kid] = .ec(key.publicKey)
            }
        }
        return result
    }

    /// Adds a key that starts signing after `publishFor` seconds, and schedules the keys signing now to retire
    /// then and to leave the JWKS once their last token has expired. Returns the new kid and the retiring ones.
    public func rotate(publishFor: TimeInterval) async throws -> (new: String, retiring: [String]) {
        try await reload()
        let now = clock.now()
        let activatesAt = now.addingTimeInterval(max(0, publishFor))
        let record = try makeRecord(activatesAt: activatesAt, now: now)
        var retiring: [String] = []
        for loaded in keys where loaded.record.retiresAt == nil || loaded.record.retiresAt! > activatesAt {
            try await store.retireSigningKey(
                kid: loaded.record.kid, retiresAt: activatesAt,
                expiresAt: activatesAt.addingTimeInterval(maxTokenLifetime))
            retiring.append(loaded.record.kid)
        }
        try await store.insertSigningKey(record, onlyIfEmpty: false)
        try await store.deleteExpiredSigningKeys(now: now)
        try await reload()
        return (record.kid, retiring)
    }

    private func makeRecord(activatesAt: Date, now: Date) throws -> SigningKeyRecord {
        let key = try SigningKey.generate(algorithm: algorithm)
        let kid = try key.thumbprint()
        var jwk = try key.publicJWKMembers()
        jwk["kid"] = kid; jwk["use"] = "sig"; jwk["alg"] = algorithm
        let sealed = try AES.GCM.seal(key.der, using: kek, authenticating: Data(kid.utf8)).combined!
        let jwkText = try JSONWriter.text(jwk)
        return SigningKeyRecord(
            kid: kid, algorithm: algorithm, sealedPrivateKey: sealed, publicJWK: jwkText, createdAt: now,
            activatesAt: activatesAt)
    }
}
