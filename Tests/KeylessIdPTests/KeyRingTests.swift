import Crypto
import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessJOSE
import KeylessStorage
import KeylessTestFakes
import Testing

@Suite("signing keys: the first key, rotation and publication, sealing with the key-encryption key")
struct KeyRingTests {
    static let maxTokenLifetime: TimeInterval = 3600

    func ring(_ store: MemoryIdPStore, _ clock: ManualClock, kek: SymmetricKey, algorithm: String = "ES256") -> KeyRing
    {
        KeyRing(
            store: store, kek: kek, algorithm: algorithm, clock: clock.wallClock,
            maxTokenLifetime: Self.maxTokenLifetime)
    }

    @Test(
        "start on an empty store makes exactly one key, also when two key rings start on it, at once or one after the other"
    )
    func firstKey() async throws {
        let store = MemoryIdPStore()
        let clock = ManualClock(Fixture.reference)
        let kek = SymmetricKey(size: .bits256)
        let a = ring(store, clock, kek: kek)
        let b = ring(store, clock, kek: kek)
        async let startA: Void = a.start()
        async let startB: Void = b.start()
        _ = try await (startA, startB)
        let c = ring(store, clock, kek: kek)
        try await c.start()
        let records = try await store.signingKeys()
        #expect(records.count == 1)
        let (kid, key) = try await a.signingKey()
        #expect(try await b.signingKey().kid == kid)
        #expect(try await c.signingKey().kid == kid)
        // The kid is the key's RFC 7638 thumbprint, and the JWKS publishes exactly that key for signatures.
        #expect(try key.thumbprint() == kid)
        #expect(try jwksKids(try await a.jwks()) == [kid])
        let jwks = try #require(try JSONSerialization.jsonObject(with: Data(try await a.jwks())) as? [String: Any])
        let jwk = try #require((jwks["keys"] as? [[String: Any]])?.first)
        #expect(jwk["use"] as? String == "sig" && jwk["alg"] as? String == "ES256" && jwk["kty"] as? String == "EC")
        #expect(jwk["d"] == nil, "no private member is published")
    }

    @Test("an RS256 key ring publishes an RSA key for RS256")
    func rsaRing() async throws {
        let store = MemoryIdPStore()
        let ring = ring(store, ManualClock(Fixture.reference), kek: SymmetricKey(size: .bits256), algorithm: "RS256")
        try await ring.start()
        let jwks = try #require(try JSONSerialization.jsonObject(with: Data(try await ring.jwks())) as? [String: Any])
        let jwk = try #require((jwks["keys"] as? [[String: Any]])?.first)
        #expect(jwk["kty"] as? String == "RSA" && jwk["alg"] as? String == "RS256" && jwk["e"] as? String == "AQAB")
        #expect(try await ring.signingKey().key.algorithm == "RS256")
    }

    @Test("the private key reaches the store only sealed with the key-encryption key, bound to its kid")
    func sealed() async throws {
        let store = MemoryIdPStore()
        let kek = SymmetricKey(size: .bits256)
        let ring = ring(store, ManualClock(Fixture.reference), kek: kek)
        try await ring.start()
        let record = try #require(try await store.signingKeys().first)
        let der = try await ring.signingKey().key.der
        #expect(record.sealedPrivateKey.range(of: der) == nil)
        let box = try AES.GCM.SealedBox(combined: record.sealedPrivateKey)
        #expect(try AES.GCM.open(box, using: kek, authenticating: Data(record.kid.utf8)) == der)
        #expect(throws: (any Error).self) {
            try AES.GCM.open(box, using: kek, authenticating: Data("another-kid".utf8))
        }
    }

    @Test(
        "rotate publishes the new key at once, keeps signing with the old one until publishFor has passed, then switches"
    )
    func rotation() async throws {
        let store = MemoryIdPStore()
        let clock = ManualClock(Fixture.reference)
        let ring = ring(store, clock, kek: SymmetricKey(size: .bits256))
        try await ring.start()
        let old = try await ring.signingKey().kid
        let (new, retiring) = try await ring.rotate(publishFor: 600)
        #expect(new != old)
        #expect(retiring == [old])
        #expect(try jwksKids(try await ring.jwks()) == [old, new])
        #expect(try await ring.signingKey().kid == old)
        clock.advance(by: 599)
        #expect(try await ring.signingKey().kid == old)
        #expect(try jwksKids(try await ring.jwks()) == [old, new])
        clock.advance(by: 1)
        #expect(try await ring.signingKey().kid == new)
        #expect(try jwksKids(try await ring.jwks()) == [old, new])
    }

    @Test("a retired key stays published until activation + maxTokenLifetime, then leaves the JWKS on reload")
    func retiredKeyLeaves() async throws {
        let store = MemoryIdPStore()
        let clock = ManualClock(Fixture.reference)
        let ring = ring(store, clock, kek: SymmetricKey(size: .bits256))
        try await ring.start()
        let old = try await ring.signingKey().kid
        let (new, _) = try await ring.rotate(publishFor: 600)
        clock.advance(by: 600 + Self.maxTokenLifetime - 1)
        try await ring.reload()
        #expect(try jwksKids(try await ring.jwks()) == [old, new])
        #expect(try await ring.verificationKeys()[old] != nil)
        clock.advance(by: 1)
        try await ring.reload()
        #expect(try jwksKids(try await ring.jwks()) == [new])
        #expect(try await ring.verificationKeys()[old] == nil)
        #expect(try await ring.signingKey().kid == new)
    }

    @Test("another replica's rotation shows in this key ring's JWKS once its reload interval has passed")
    func replicaSeesRotation() async throws {
        let store = MemoryIdPStore()
        let clock = ManualClock(Fixture.reference)
        let kek = SymmetricKey(size: .bits256)
        let a = ring(store, clock, kek: kek)
        let b = ring(store, clock, kek: kek)
        try await a.start()
        try await b.start()
        let old = try await b.signingKey().kid
        let (new, _) = try await a.rotate(publishFor: 600)
        clock.advance(by: 10)
        #expect(try jwksKids(try await b.jwks()) == [old, new])
    }

    @Test("a key ring with another key-encryption key fails to start, saying to share the key-encryption key")
    func wrongKEK() async throws {
        let store = MemoryIdPStore()
        let clock = ManualClock(Fixture.reference)
        try await ring(store, clock, kek: SymmetricKey(size: .bits256)).start()
        let other = ring(store, clock, kek: SymmetricKey(size: .bits256))
        do {
            try await other.start()
            Issue.record("a key ring with the wrong key-encryption key started")
        } catch let error as KeylessError {
            #expect(error.code == .configInvalid)
            #expect(error.reason.contains("cannot be unsealed"), "\(error.reason)")
            #expect(error.hint?.contains("same key-encryption key") == true, "\(error.hint ?? "no hint")")
        }
    }

    @Test("tokens signed before a rotation still verify after it, by the engine and with verificationKeys()")
    func tokensSurviveRotation() async throws {
        let f = try await EngineFixture()
        let before = try await f.token(
            ["grant_type": "client_credentials"], authorization: basicAuthorization("deployer", Fixture.deployerSecret))
        let oldKid = try #require(try jwtHeader(before.accessToken)["kid"] as? String)
        let (newKid, _) = try await f.keys.rotate(publishFor: 0)
        f.clock.advance(by: 60)
        let after = try await f.token(
            ["grant_type": "client_credentials"], authorization: basicAuthorization("deployer", Fixture.deployerSecret))
        #expect(try jwtHeader(after.accessToken)["kid"] as? String == newKid)
        #expect(newKid != oldKid)
        #expect(
            try await f.engine.verifyAccessToken(before.accessToken).jti == jwtClaims(before.accessToken)["jti"]
                as? String)
        #expect(try await f.engine.verifyAccessToken(after.accessToken).sub == "deployer")
        let parts = try #require(JWS.parse(before.accessToken))
        let keys = try await f.keys.verificationKeys()
        #expect(Set(keys.keys) == [oldKid, newKid])
        #expect(try #require(keys[oldKid]).verify(parts.signature, for: parts.signingInput))
        #expect(!(try #require(keys[newKid]).verify(parts.signature, for: parts.signingInput)))
    }

    @Test("KeyEncryptionKey.loadOrCreate makes a 0600 file of 32 base64 bytes and returns the same key the second time")
    func keyEncryptionKeyFile() throws {
        let base = FileManager.default.temporaryDirectory.path + "/keyless-kek-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let path = base + "/state/kek"
        let first = try KeyEncryptionKey.loadOrCreate(path: path)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)
            .intValue
        #expect(mode & 0o777 == 0o600)
        let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let bytes = try #require(Data(base64Encoded: text))
        #expect(bytes.count == 32)
        #expect(first.withUnsafeBytes { Data($0) } == bytes)
        let second = try KeyEncryptionKey.loadOrCreate(path: path)
        #expect(second.withUnsafeBytes { Data($0) } == bytes)
        // No temporary files are left next to it.
        #expect(try FileManager.default.contentsOfDirectory(atPath: base + "/state") == ["kek"])
    }

    @Test("a key-encryption key file that others can read, or that is not 32 base64 bytes, is refused")
    func keyEncryptionKeyRefused() throws {
        let base = FileManager.default.temporaryDirectory.path + "/keyless-kek-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: base) }
        let path = base + "/kek"
        _ = try KeyEncryptionKey.loadOrCreate(path: path)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: KeylessError.self) { try KeyEncryptionKey.loadOrCreate(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        try Data("c2hvcnQ=\n".utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: KeylessError.self) { try KeyEncryptionKey.loadOrCreate(path: path) }
        #expect(error?.code == .configInvalid)
    }
}
