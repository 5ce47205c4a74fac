import Foundation
import KeylessStorage
import KeylessTestSupport
import Testing

/// Every storage test: one PostgreSQL server for all of them, started on first use and stopped (by PID) at the end.
@Suite("IdP storage", .postgresPartner)
struct StorageTests {}

extension StorageTests {
    /// The `IdPStore` contract, clause by clause, against every backend.
    @Suite("every IdPStore honours the contract")
    struct Conformance {
        // MARK: Schema

        @Test("migrating a migrated store again keeps its data", arguments: Backend.allCases)
        func migrateTwice(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let key = Fixture.key()
                let session = Fixture.session()
                try await store.insertSigningKey(key, onlyIfEmpty: false)
                try await store.insertSession(session)
                try await store.migrate()
                try await replica.migrate()
                #expect(try await replica.signingKeys() == [key])
                #expect(try await replica.session(idHash: session.idHash, now: Fixture.at(0)) == session)
            }
        }

        @Test("two replicas migrating the same new database at once both succeed", arguments: Backend.allCases)
        func concurrentMigrations(backend: Backend) async throws {
            try await withStores(backend, migrated: false) { store, replica in
                async let first: Void = store.migrate()
                async let second: Void = replica.migrate()
                _ = try await (first, second)
                let session = Fixture.session()
                try await store.insertSession(session)
                #expect(try await replica.session(idHash: session.idHash, now: Fixture.at(0)) == session)
            }
        }

        // MARK: Signing keys

        @Test("signing keys come back with every field, oldest first", arguments: Backend.allCases)
        func signingKeysRoundTrip(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let newest = Fixture.key(
                    "newest", createdAt: Fixture.at(2), retiresAt: Fixture.at(milliseconds: 90_001),
                    expiresAt: Fixture.at(milliseconds: 180_002))
                let oldest = Fixture.key("oldest", createdAt: Fixture.at(0))
                let middle = Fixture.key("middle", createdAt: Fixture.at(milliseconds: 1_001), retiresAt: Fixture.at(9))
                for key in [newest, oldest, middle] { try await store.insertSigningKey(key, onlyIfEmpty: false) }
                #expect(try await replica.signingKeys() == [oldest, middle, newest])
            }
        }

        @Test("onlyIfEmpty stores a key only when the store holds none", arguments: Backend.allCases)
        func onlyIfEmpty(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let first = Fixture.key("first"), second = Fixture.key("second"),
                    third = Fixture.key("third", createdAt: Fixture.at(1))
                let firstAdded = try await store.insertSigningKey(first, onlyIfEmpty: true)
                let secondAdded = try await replica.insertSigningKey(second, onlyIfEmpty: true)
                #expect(firstAdded && !secondAdded)
                #expect(try await store.signingKeys() == [first])
                let thirdAdded = try await replica.insertSigningKey(third, onlyIfEmpty: false)
                #expect(thirdAdded)
                #expect(try await store.signingKeys() == [first, third])
            }
        }

        @Test("of 20 replicas racing to store the first key exactly one succeeds", arguments: Backend.allCases)
        func firstKeyRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let results = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        group.addTask {
                            let key = Fixture.key("racer-\(index)")
                            return (key.kid, try await target.insertSigningKey(key, onlyIfEmpty: true))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let winners = results.filter(\.1).map(\.0)
                #expect(winners.count == 1)
                #expect(try await store.signingKeys().map(\.kid) == winners)
            }
        }

        @Test(
            "retiring a key records when it stops signing and leaves the JWKS; an unknown kid changes nothing",
            arguments: Backend.allCases)
        func retireKey(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                var key = Fixture.key()
                try await store.insertSigningKey(key, onlyIfEmpty: false)
                try await replica.retireSigningKey(
                    kid: key.kid, retiresAt: Fixture.at(100), expiresAt: Fixture.at(milliseconds: 200_500))
                key.retiresAt = Fixture.at(100)
                key.expiresAt = Fixture.at(milliseconds: 200_500)
                #expect(try await store.signingKeys() == [key])
                try await store.retireSigningKey(kid: "no-such-kid", retiresAt: Fixture.at(1), expiresAt: Fixture.at(2))
                #expect(try await store.signingKeys() == [key])
            }
        }

        @Test("deleteExpiredSigningKeys deletes only keys whose expiry is before now", arguments: Backend.allCases)
        func deleteExpiredKeys(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let now = Fixture.at(1000)
                let active = Fixture.key("active", createdAt: Fixture.at(0))
                let expired = Fixture.key(
                    "expired", createdAt: Fixture.at(1), retiresAt: Fixture.at(500),
                    expiresAt: Fixture.at(milliseconds: 999_999))
                let expiringNow = Fixture.key(
                    "expiring-now", createdAt: Fixture.at(2), retiresAt: Fixture.at(500), expiresAt: now)
                let later = Fixture.key(
                    "later", createdAt: Fixture.at(3), retiresAt: Fixture.at(500), expiresAt: Fixture.at(2000))
                for key in [active, expired, expiringNow, later] {
                    try await store.insertSigningKey(key, onlyIfEmpty: false)
                }
                try await replica.deleteExpiredSigningKeys(now: now)
                #expect(try await store.signingKeys() == [active, expiringNow, later])
            }
        }

        @Test("storing a record whose key is already stored fails and keeps the first", arguments: Backend.allCases)
        func duplicates(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let key = Fixture.key()
                try await store.insertSigningKey(key, onlyIfEmpty: false)
                var otherKey = Fixture.key(key.kid)
                otherKey.algorithm = "RS256"
                await #expect(throws: IdPStoreError.self) {
                    try await replica.insertSigningKey(otherKey, onlyIfEmpty: false)
                }
                #expect(try await store.signingKeys() == [key])

                let session = Fixture.session()
                try await store.insertSession(session)
                await #expect(throws: IdPStoreError.self) { try await replica.insertSession(session) }

                let code = Fixture.code()
                try await store.insertCode(code)
                var otherCode = code
                otherCode.clientID = "another"
                await #expect(throws: IdPStoreError.self) { try await replica.insertCode(otherCode) }
                #expect(try await store.consumeCode(hash: code.codeHash, now: Fixture.at(0)) == .redeemed(code))

                let token = Fixture.token(family: Fixture.family())
                try await store.insertRefreshToken(token)
                await #expect(throws: IdPStoreError.self) { try await replica.insertRefreshToken(token) }

                let device = Fixture.device()
                try await store.insertDeviceCode(device)
                var sameHash = Fixture.device()
                sameHash.deviceCodeHash = device.deviceCodeHash
                await #expect(throws: IdPStoreError.self) { try await replica.insertDeviceCode(sameHash) }
                var sameUserCode = Fixture.device()
                sameUserCode.userCode = device.userCode
                await #expect(throws: IdPStoreError.self) { try await replica.insertDeviceCode(sameUserCode) }
                #expect(try await store.deviceCode(userCode: device.userCode, now: Fixture.at(0)) == device)
            }
        }

        // MARK: Browser sessions

        @Test("a session comes back with every field until the millisecond it expires", arguments: Backend.allCases)
        func sessionExpiry(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let session = Fixture.session(expiresAt: Fixture.at(10))
                let noMethods = Fixture.session(
                    authentication: Authentication(
                        subject: "ωμέγα", authTime: Fixture.at(milliseconds: -1),
                        amr: []))
                try await store.insertSession(session)
                try await store.insertSession(noMethods)
                #expect(try await replica.session(idHash: session.idHash, now: Fixture.at(0)) == session)
                #expect(
                    try await replica.session(idHash: session.idHash, now: Fixture.at(milliseconds: 9_999)) == session)
                #expect(try await replica.session(idHash: session.idHash, now: Fixture.at(10)) == nil)
                #expect(try await replica.session(idHash: noMethods.idHash, now: Fixture.at(0)) == noMethods)
                #expect(try await replica.session(idHash: Fixture.hash(), now: Fixture.at(0)) == nil)
            }
        }

        @Test(
            "a connector's identity comes back whole from a session, a code, a refresh token and its successor, and a device approval",
            arguments: Backend.allCases)
        func connectorIdentityRoundTrip(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let carol = Fixture.carol
                let session = Fixture.session(authentication: carol)
                try await store.insertSession(session)
                #expect(try await replica.session(idHash: session.idHash, now: Fixture.at(0)) == session)

                var code = Fixture.code()
                code.authentication = carol
                try await store.insertCode(code)
                #expect(try await replica.consumeCode(hash: code.codeHash, now: Fixture.at(0)) == .redeemed(code))

                var token = Fixture.token(family: Fixture.family())
                token.authentication = carol
                try await store.insertRefreshToken(token)
                let next = Fixture.successor()
                #expect(
                    try await replica.rotateRefreshToken(hash: token.tokenHash, now: Fixture.at(1), successor: next)
                        == .valid(token))
                let successor = try await store.refreshToken(hash: next.tokenHash)
                #expect(successor?.authentication == carol, "the successor keeps the connector's identity")
                // A rotation may carry the identity as read at that refresh: the successor then holds it.
                var reread = try #require(carol.identity)
                reread.groups = ["corp:ops"]
                reread.reference = "sealed-upstream-token-2"
                let third = RefreshSuccessor(
                    tokenHash: Fixture.hash(), issuedAt: Fixture.at(2), expiresAt: Fixture.at(86_402), identity: reread)
                #expect(
                    try await store.rotateRefreshToken(hash: next.tokenHash, now: Fixture.at(2), successor: third)
                        == .valid(try #require(successor)))
                let updated = try await replica.refreshToken(hash: third.tokenHash)
                #expect(updated?.authentication.identity == reread)
                #expect(updated?.authentication.subject == carol.subject && updated?.authentication.amr == carol.amr)

                let device = Fixture.device()
                let approval = DeviceApproval(authentication: carol, familyID: Fixture.family())
                try await store.insertDeviceCode(device)
                #expect(
                    try await replica.approveDevice(userCode: device.userCode, approval: approval, now: Fixture.at(1)))
                let approved = try await store.deviceCode(userCode: device.userCode, now: Fixture.at(1))
                #expect(approved?.approval == approval)
            }
        }

        @Test("a deleted session is not found again", arguments: Backend.allCases)
        func deleteSession(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let session = Fixture.session(), other = Fixture.session()
                try await store.insertSession(session)
                try await store.insertSession(other)
                try await replica.deleteSession(idHash: session.idHash)
                try await replica.deleteSession(idHash: Fixture.hash())
                #expect(try await store.session(idHash: session.idHash, now: Fixture.at(0)) == nil)
                #expect(try await store.session(idHash: other.idHash, now: Fixture.at(0)) == other)
            }
        }

        // MARK: Authorization codes

        @Test(
            "a code is redeemed once, then every use from any replica is a replay naming its family",
            arguments: Backend.allCases)
        func codeSingleUse(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let code = Fixture.code()
                try await store.insertCode(code)
                #expect(try await store.consumeCode(hash: code.codeHash, now: Fixture.at(1)) == .redeemed(code))
                #expect(
                    try await replica.consumeCode(hash: code.codeHash, now: Fixture.at(2))
                        == .replayed(familyID: code.familyID))
                #expect(
                    try await store.consumeCode(hash: code.codeHash, now: Fixture.at(3))
                        == .replayed(familyID: code.familyID))
                // Replay detection outlives the code's expiry (until purgeExpired removes it).
                #expect(
                    try await store.consumeCode(hash: code.codeHash, now: Fixture.at(600))
                        == .replayed(familyID: code.familyID))
            }
        }

        @Test("an expired or unknown code is not found, and an expired code is not spent", arguments: Backend.allCases)
        func codeExpiry(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let code = Fixture.code(expiresAt: Fixture.at(60))
                try await store.insertCode(code)
                #expect(try await replica.consumeCode(hash: code.codeHash, now: Fixture.at(60)) == .notFound)
                #expect(try await replica.consumeCode(hash: code.codeHash, now: Fixture.at(61)) == .notFound)
                #expect(try await store.consumeCode(hash: Fixture.hash(), now: Fixture.at(0)) == .notFound)
                // The refused attempts did not spend it: just before its expiry it still redeems.
                #expect(
                    try await store.consumeCode(hash: code.codeHash, now: Fixture.at(milliseconds: 59_999))
                        == .redeemed(code))
            }
        }

        @Test("code records keep every field: nil optionals, non-ASCII text, amr lists", arguments: Backend.allCases)
        func codeRoundTrip(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let full = Fixture.code()
                var bare = Fixture.code()
                bare.nonce = nil
                bare.codeChallenge = nil
                bare.codeChallengeMethod = nil
                bare.scope = ""
                bare.authentication = Authentication(subject: "💡", authTime: Fixture.at(milliseconds: 123), amr: [])
                try await store.insertCode(full)
                try await store.insertCode(bare)
                #expect(try await replica.consumeCode(hash: full.codeHash, now: Fixture.at(0)) == .redeemed(full))
                #expect(try await replica.consumeCode(hash: bare.codeHash, now: Fixture.at(0)) == .redeemed(bare))
            }
        }

        @Test(
            "of 20 concurrent redemptions of one code on two replicas exactly one succeeds", arguments: Backend.allCases
        )
        func codeRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let code = Fixture.code()
                try await store.insertCode(code)
                let results = try await withThrowingTaskGroup(of: CodeRedemption.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        group.addTask { try await target.consumeCode(hash: code.codeHash, now: Fixture.at(1)) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter { $0 == .redeemed(code) }.count == 1)
                #expect(results.filter { $0 == .replayed(familyID: code.familyID) }.count == 19)
            }
        }

        // MARK: Refresh tokens

        @Test(
            "a refresh token rotates once; its reuse revokes the family, so its successor is revoked",
            arguments: Backend.allCases)
        func refreshRotation(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family()
                let first = Fixture.token(family: family)
                try await store.insertRefreshToken(first)
                let next = Fixture.successor(issuedAt: Fixture.at(10), expiresAt: Fixture.at(86_410))
                #expect(
                    try await store.rotateRefreshToken(hash: first.tokenHash, now: Fixture.at(10), successor: next)
                        == .valid(first))
                let second = next.record(replacing: first)
                #expect(
                    try await replica.refreshToken(hash: second.tokenHash) == second,
                    "the successor is stored with the spent token's family")
                #expect(
                    try await replica.rotateRefreshToken(
                        hash: first.tokenHash, now: Fixture.at(20), successor: Fixture.successor())
                        == .reused(familyID: family))
                #expect(
                    try await store.rotateRefreshToken(
                        hash: second.tokenHash, now: Fixture.at(21), successor: Fixture.successor()) == .revoked)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: first.tokenHash, now: Fixture.at(22), successor: Fixture.successor()) == .revoked)
            }
        }

        @Test(
            "a rotation whose successor cannot be stored spends nothing: the presented token still rotates",
            arguments: Backend.allCases)
        func rotationIsAtomic(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family()
                let token = Fixture.token(family: family), other = Fixture.token(family: family)
                try await store.insertRefreshToken(token)
                try await store.insertRefreshToken(other)
                // A successor whose hash is taken fails inside the rotation's transaction, after the token was marked used.
                let clash = RefreshSuccessor(
                    tokenHash: other.tokenHash, issuedAt: Fixture.at(1), expiresAt: Fixture.at(100))
                await #expect(throws: IdPStoreError.self) {
                    try await store.rotateRefreshToken(hash: token.tokenHash, now: Fixture.at(1), successor: clash)
                }
                let next = Fixture.successor(issuedAt: Fixture.at(2))
                #expect(
                    try await replica.rotateRefreshToken(hash: token.tokenHash, now: Fixture.at(2), successor: next)
                        == .valid(token))
                #expect(
                    try await store.rotateRefreshToken(
                        hash: next.tokenHash, now: Fixture.at(3), successor: Fixture.successor())
                        == .valid(next.record(replacing: token)))
            }
        }

        @Test(
            "a rotation that finds the token used, revoked or expired stores no successor", arguments: Backend.allCases)
        func refusedRotationStoresNothing(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let used = Fixture.token(family: Fixture.family()),
                    expired = Fixture.token(family: Fixture.family(), expiresAt: Fixture.at(5))
                try await store.insertRefreshToken(used)
                try await store.insertRefreshToken(expired)
                _ = try await store.rotateRefreshToken(
                    hash: used.tokenHash, now: Fixture.at(1), successor: Fixture.successor())
                let refusals: [(String, Date, RefreshRedemption)] = [
                    (used.tokenHash, Fixture.at(2), .reused(familyID: used.familyID)),
                    (used.tokenHash, Fixture.at(3), .revoked),
                    (expired.tokenHash, Fixture.at(6), .notFound), (Fixture.hash(), Fixture.at(1), .notFound),
                ]
                for (hash, now, expected) in refusals {
                    let successor = Fixture.successor()
                    #expect(
                        try await replica.rotateRefreshToken(hash: hash, now: now, successor: successor) == expected)
                    #expect(try await store.refreshToken(hash: successor.tokenHash) == nil)
                }
            }
        }

        @Test(
            "an expired or unknown refresh token is not found, and an expired one is not spent",
            arguments: Backend.allCases)
        func refreshExpiry(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let token = Fixture.token(family: Fixture.family(), expiresAt: Fixture.at(100))
                try await store.insertRefreshToken(token)
                #expect(
                    try await replica.rotateRefreshToken(
                        hash: token.tokenHash, now: Fixture.at(100), successor: Fixture.successor()) == .notFound)
                #expect(
                    try await replica.rotateRefreshToken(
                        hash: Fixture.hash(), now: Fixture.at(0), successor: Fixture.successor()) == .notFound)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: token.tokenHash, now: Fixture.at(milliseconds: 99_999), successor: Fixture.successor())
                        == .valid(token))
            }
        }

        @Test(
            "a family ends at its first token's expiry, even for later tokens that would outlive it",
            arguments: Backend.allCases)
        func familyExpiry(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family()
                let first = Fixture.token(family: family, expiresAt: Fixture.at(100))
                let later = Fixture.token(family: family, issuedAt: Fixture.at(50), expiresAt: Fixture.at(1000))
                try await store.insertRefreshToken(first)
                try await store.insertRefreshToken(later)
                #expect(
                    try await replica.rotateRefreshToken(
                        hash: later.tokenHash, now: Fixture.at(100), successor: Fixture.successor()) == .notFound)
                #expect(
                    try await replica.rotateRefreshToken(
                        hash: later.tokenHash, now: Fixture.at(99), successor: Fixture.successor()) == .valid(later))
            }
        }

        @Test(
            "revokeFamily stops every token of the family, used or not, and no other family",
            arguments: Backend.allCases)
        func revokeFamily(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family(), other = Fixture.family()
                let used = Fixture.token(family: family), unused = Fixture.token(family: family)
                let bystander = Fixture.token(family: other)
                for token in [used, unused, bystander] { try await store.insertRefreshToken(token) }
                #expect(
                    try await store.rotateRefreshToken(
                        hash: used.tokenHash, now: Fixture.at(1), successor: Fixture.successor()) == .valid(used))
                try await replica.revokeFamily(id: family)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: used.tokenHash, now: Fixture.at(2), successor: Fixture.successor()) == .revoked)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: unused.tokenHash, now: Fixture.at(2), successor: Fixture.successor()) == .revoked)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: bystander.tokenHash, now: Fixture.at(2), successor: Fixture.successor())
                        == .valid(bystander))
            }
        }

        @Test(
            "a family revoked before its first token is stored stays revoked (a code replayed while its redemption issues tokens)",
            arguments: Backend.allCases)
        func revokeBeforeFirstToken(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let code = Fixture.code()
                try await store.insertCode(code)
                #expect(try await store.consumeCode(hash: code.codeHash, now: Fixture.at(1)) == .redeemed(code))
                guard
                    case .replayed(let family) = try await replica.consumeCode(hash: code.codeHash, now: Fixture.at(1))
                else {
                    Issue.record("the second redemption was not reported as a replay")
                    return
                }
                try await replica.revokeFamily(id: family)
                let token = Fixture.token(family: family)
                try await store.insertRefreshToken(token)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: token.tokenHash, now: Fixture.at(2), successor: Fixture.successor()) == .revoked)
            }
        }

        @Test(
            "familyOfRefreshToken names the family of used, unused and expired tokens, and nil for unknown ones",
            arguments: Backend.allCases)
        func familyOfToken(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family()
                let used = Fixture.token(family: family),
                    unused = Fixture.token(family: family, expiresAt: Fixture.at(5))
                try await store.insertRefreshToken(used)
                try await store.insertRefreshToken(unused)
                _ = try await store.rotateRefreshToken(
                    hash: used.tokenHash, now: Fixture.at(1), successor: Fixture.successor())
                #expect(try await replica.familyOfRefreshToken(hash: used.tokenHash) == family)
                #expect(try await replica.familyOfRefreshToken(hash: unused.tokenHash) == family)
                #expect(try await replica.familyOfRefreshToken(hash: Fixture.hash()) == nil)
            }
        }

        @Test(
            "refreshToken(hash:) returns the stored record, used or not, without spending it; nil for unknown hashes",
            arguments: Backend.allCases)
        func peekToken(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let token = Fixture.token(family: Fixture.family())
                try await store.insertRefreshToken(token)
                #expect(try await replica.refreshToken(hash: token.tokenHash) == token)
                #expect(try await replica.refreshToken(hash: token.tokenHash) == token, "reading twice spends nothing")
                #expect(
                    try await store.rotateRefreshToken(
                        hash: token.tokenHash, now: Fixture.at(1), successor: Fixture.successor()) == .valid(token))
                #expect(
                    try await replica.refreshToken(hash: token.tokenHash) == token, "a used token is still readable")
                #expect(try await replica.refreshToken(hash: Fixture.hash()) == nil)
            }
        }

        @Test(
            "of 20 concurrent rotations of one refresh token on two replicas exactly one is valid and the family ends revoked",
            arguments: Backend.allCases)
        func refreshRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let family = Fixture.family()
                let token = Fixture.token(family: family), sibling = Fixture.token(family: family)
                try await store.insertRefreshToken(token)
                try await store.insertRefreshToken(sibling)
                let results = try await withThrowingTaskGroup(of: RefreshRedemption.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        group.addTask {
                            try await target.rotateRefreshToken(
                                hash: token.tokenHash, now: Fixture.at(1), successor: Fixture.successor())
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter { $0 == .valid(token) }.count == 1)
                #expect(results.filter { $0 == .reused(familyID: family) }.count == 1)
                #expect(results.filter { $0 == .revoked }.count == 18)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: sibling.tokenHash, now: Fixture.at(2), successor: Fixture.successor()) == .revoked)
            }
        }

        // MARK: Device codes

        @Test(
            "a device authorization reads back by user code and polls as pending until the user decides",
            arguments: Backend.allCases)
        func devicePending(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device(interval: 5)
                try await store.insertDeviceCode(device)
                #expect(try await replica.deviceCode(userCode: device.userCode, now: Fixture.at(0)) == device)
                #expect(try await replica.deviceCode(userCode: "NOSUCHCD", now: Fixture.at(0)) == nil)
                #expect(
                    try await replica.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(0)) == .pending)
                #expect(
                    try await store.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(5)) == .pending)
                #expect(
                    try await replica.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(10)) == .pending
                )
            }
        }

        @Test(
            "a poll sooner than the interval after the previous one gives slowDown and adds 5 seconds",
            arguments: Backend.allCases)
        func deviceSlowDown(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device(interval: 5)
                try await store.insertDeviceCode(device)
                let hash = device.deviceCodeHash
                #expect(try await store.pollDevice(deviceCodeHash: hash, now: Fixture.at(0)) == .pending)
                #expect(
                    try await replica.pollDevice(deviceCodeHash: hash, now: Fixture.at(milliseconds: 4_999))
                        == .slowDown(interval: 10))
                // Measured from the previous poll, whatever it answered: 9.999 s later is still too soon for 10 s.
                #expect(
                    try await store.pollDevice(deviceCodeHash: hash, now: Fixture.at(milliseconds: 14_998))
                        == .slowDown(interval: 15))
                #expect(
                    try await replica.pollDevice(deviceCodeHash: hash, now: Fixture.at(milliseconds: 29_998))
                        == .pending)
                #expect(try await store.deviceCode(userCode: device.userCode, now: Fixture.at(30))?.interval == 15)
            }
        }

        @Test("an approval is handed out exactly once, then the device code is unknown", arguments: Backend.allCases)
        func deviceApproval(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device(interval: 5)
                let approval = Fixture.approval()
                try await store.insertDeviceCode(device)
                #expect(
                    try await store.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(0)) == .pending)
                #expect(
                    try await replica.approveDevice(userCode: device.userCode, approval: approval, now: Fixture.at(1)))
                #expect(
                    try await store.approveDevice(
                        userCode: device.userCode, approval: Fixture.approval(), now: Fixture.at(1)) == false)
                #expect(try await store.denyDevice(userCode: device.userCode, now: Fixture.at(1)) == false)
                var approved = device
                approved.status = .approved
                approved.approval = approval
                #expect(try await store.deviceCode(userCode: device.userCode, now: Fixture.at(1)) == approved)
                // Only a pending authorization is held to the interval: 2 s after the last poll the approval is handed out.
                var consumed = approved
                consumed.status = .consumed
                #expect(
                    try await replica.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(2))
                        == .approved(consumed))
                #expect(
                    try await store.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(20)) == .notFound)
                #expect(try await store.deviceCode(userCode: device.userCode, now: Fixture.at(20)) == consumed)
            }
        }

        @Test(
            "a denied device authorization polls as denied and can no longer be approved", arguments: Backend.allCases)
        func deviceDenial(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device()
                try await store.insertDeviceCode(device)
                #expect(try await replica.denyDevice(userCode: device.userCode, now: Fixture.at(1)))
                #expect(try await store.denyDevice(userCode: device.userCode, now: Fixture.at(1)) == false)
                #expect(
                    try await store.approveDevice(
                        userCode: device.userCode, approval: Fixture.approval(), now: Fixture.at(2)) == false)
                #expect(try await store.deviceCode(userCode: device.userCode, now: Fixture.at(2))?.status == .denied)
                #expect(
                    try await replica.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(3)) == .denied)
                #expect(
                    try await replica.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(4)) == .denied)
            }
        }

        @Test(
            "an expired device authorization polls as expired and can be neither approved nor denied",
            arguments: Backend.allCases)
        func deviceExpiry(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device(expiresAt: Fixture.at(600))
                let approvedInTime = Fixture.device(expiresAt: Fixture.at(600))
                try await store.insertDeviceCode(device)
                try await store.insertDeviceCode(approvedInTime)
                #expect(
                    try await store.approveDevice(
                        userCode: approvedInTime.userCode, approval: Fixture.approval(),
                        now: Fixture.at(milliseconds: 599_999)))
                let expired = Fixture.at(600)
                #expect(
                    try await replica.approveDevice(
                        userCode: device.userCode, approval: Fixture.approval(), now: expired) == false)
                #expect(try await replica.denyDevice(userCode: device.userCode, now: expired) == false)
                #expect(try await replica.deviceCode(userCode: device.userCode, now: expired) == nil)
                #expect(try await store.pollDevice(deviceCodeHash: device.deviceCodeHash, now: expired) == .expired)
                #expect(
                    try await store.pollDevice(deviceCodeHash: approvedInTime.deviceCodeHash, now: expired) == .expired)
                #expect(try await store.pollDevice(deviceCodeHash: Fixture.hash(), now: Fixture.at(0)) == .notFound)
            }
        }

        @Test(
            "of 20 concurrent polls of an approved device code on two replicas exactly one collects the approval",
            arguments: Backend.allCases)
        func deviceRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let device = Fixture.device()
                let approval = Fixture.approval()
                try await store.insertDeviceCode(device)
                #expect(
                    try await store.approveDevice(userCode: device.userCode, approval: approval, now: Fixture.at(1)))
                let results = try await withThrowingTaskGroup(of: DevicePoll.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        group.addTask {
                            try await target.pollDevice(deviceCodeHash: device.deviceCodeHash, now: Fixture.at(10))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                var consumed = device
                consumed.status = .consumed
                consumed.approval = approval
                #expect(results.filter { $0 == .approved(consumed) }.count == 1)
                #expect(results.filter { $0 == .notFound }.count == 19)
            }
        }

        // MARK: Single-use values

        @Test(
            "a single-use value is spent once across replicas until it expires, then may be spent again",
            arguments: Backend.allCases)
        func spendOnce(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let key = "otp:alice:" + Fixture.hash()
                let first = try await store.spendOnce(key: key, expiresAt: Fixture.at(30), now: Fixture.at(0))
                #expect(first)
                #expect(try await replica.spendOnce(key: key, expiresAt: Fixture.at(60), now: Fixture.at(1)) == false)
                #expect(
                    try await store.spendOnce(
                        key: key, expiresAt: Fixture.at(60), now: Fixture.at(milliseconds: 29_999)) == false)
                #expect(
                    try await replica.spendOnce(key: key + "x", expiresAt: Fixture.at(30), now: Fixture.at(1)) == true,
                    "another key is its own")
                // At its expiry instant it has expired: spent again, and remembered until the new expiry.
                #expect(try await replica.spendOnce(key: key, expiresAt: Fixture.at(90), now: Fixture.at(30)) == true)
                #expect(try await store.spendOnce(key: key, expiresAt: Fixture.at(120), now: Fixture.at(89)) == false)
            }
        }

        @Test("of 20 concurrent spends of one value on two replicas exactly one succeeds", arguments: Backend.allCases)
        func spendOnceRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let key = "jti:" + Fixture.hash()
                let results = try await withThrowingTaskGroup(of: Bool.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        group.addTask {
                            try await target.spendOnce(key: key, expiresAt: Fixture.at(60), now: Fixture.at(1))
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.filter { $0 }.count == 1, "\(results)")
            }
        }

        // MARK: Throttle counters

        @Test(
            "counters add up across replicas, take attempts back without going below zero, and expire a window after their last increase",
            arguments: Backend.allCases)
        func counters(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let user = "u:" + Fixture.hash(), address = "a:" + Fixture.hash()
                #expect(try await store.counters([user, address], now: Fixture.at(0)) == [.zero, .zero])
                #expect(
                    try await store.addToCounters([user, address], delta: 1, window: 60, now: Fixture.at(0))
                        == [
                            ThrottleCounter(count: 1, lastIncrease: Fixture.at(0)),
                            ThrottleCounter(count: 1, lastIncrease: Fixture.at(0)),
                        ])
                #expect(
                    try await replica.addToCounters([user], delta: 2, window: 60, now: Fixture.at(10))
                        == [ThrottleCounter(count: 3, lastIncrease: Fixture.at(10))])
                // Taking back keeps the last increase (and so the expiry), and stops at zero.
                #expect(
                    try await store.addToCounters([address, user], delta: -1, window: 60, now: Fixture.at(20))
                        == [
                            ThrottleCounter(count: 0, lastIncrease: Fixture.at(0)),
                            ThrottleCounter(count: 2, lastIncrease: Fixture.at(10)),
                        ])
                #expect(
                    try await replica.addToCounters([address], delta: -1, window: 60, now: Fixture.at(20))
                        == [ThrottleCounter(count: 0, lastIncrease: Fixture.at(0))])
                #expect(
                    try await replica.counters([address, user], now: Fixture.at(milliseconds: 69_999))
                        == [.zero, ThrottleCounter(count: 2, lastIncrease: Fixture.at(10))])
                // The user's counter lives until 60 s after its last increase (at 10 s).
                #expect(try await replica.counters([user], now: Fixture.at(70)) == [.zero])
                #expect(
                    try await store.addToCounters([user], delta: 1, window: 60, now: Fixture.at(70))
                        == [ThrottleCounter(count: 1, lastIncrease: Fixture.at(70))],
                    "an expired counter starts again from zero")
                #expect(
                    try await store.addToCounters(
                        ["absent:" + Fixture.hash()], delta: -1, window: 60, now: Fixture.at(70)) == [.zero])
                try await replica.deleteCounter(user)
                #expect(try await store.counters([user], now: Fixture.at(71)) == [.zero])
            }
        }

        @Test(
            "20 concurrent increases of the same counters on two replicas are all counted", arguments: Backend.allCases)
        func counterRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let keys = ["p:" + Fixture.hash(), "a:" + Fixture.hash()]
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        // Half of them name the keys in the other order: the stores must not deadlock on that.
                        let order = index % 4 < 2 ? keys : keys.reversed()
                        group.addTask {
                            _ = try await target.addToCounters(order, delta: 1, window: 60, now: Fixture.at(1))
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(try await store.counters(keys, now: Fixture.at(2)).map(\.count) == [20, 20])
            }
        }

        // MARK: Passkeys

        @Test(
            "a passkey comes back with every field, and a subject's passkeys are listed oldest first without anyone else's",
            arguments: Backend.allCases)
        func passkeyRoundTrip(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let first = Fixture.passkey(createdAt: Fixture.at(milliseconds: 1))
                let sameMillisecond = Fixture.passkey(
                    createdAt: Fixture.at(milliseconds: 1), transports: [], backupEligible: true, backedUp: true,
                    lastUsedAt: Fixture.at(milliseconds: 86_400_123))
                let someoneElses = Fixture.passkey(subject: "bob-Ærø", createdAt: Fixture.at(2))
                var blurred = Fixture.passkey(signCount: 0, createdAt: Fixture.at(3))
                blurred.createdAt = Fixture.at(3).addingTimeInterval(0.000_6)
                blurred.lastUsedAt = Fixture.at(4).addingTimeInterval(0.000_4)
                for passkey in [first, sameMillisecond, someoneElses, blurred] {
                    let added = try await store.insertPasskey(passkey)
                    #expect(added)
                }
                var rounded = blurred
                rounded.createdAt = Fixture.at(milliseconds: 3_001)
                rounded.lastUsedAt = Fixture.at(4)
                #expect(try await replica.passkey(credentialID: first.credentialID) == first)
                #expect(try await replica.passkey(credentialID: first.credentialID)?.lastUsedAt == nil)
                #expect(try await replica.passkey(credentialID: sameMillisecond.credentialID) == sameMillisecond)
                #expect(try await replica.passkey(credentialID: rounded.credentialID) == rounded)
                #expect(try await replica.passkey(credentialID: Fixture.credentialID()) == nil)
                #expect(
                    try await replica.passkeys(subject: Fixture.alice.subject) == [first, sameMillisecond, rounded])
                #expect(try await replica.passkeys(subject: someoneElses.subject) == [someoneElses])
                #expect(try await replica.passkeys(subject: "nobody") == [])
            }
        }

        @Test(
            "a passkey with a stored credential id is refused, even for another subject, and the first is kept",
            arguments: Backend.allCases)
        func passkeyCredentialIDIsUnique(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let original = Fixture.passkey()
                let originalAdded = try await store.insertPasskey(original)
                #expect(originalAdded)
                var takeover = Fixture.passkey(subject: "mallory", signCount: 0, createdAt: Fixture.at(5))
                takeover.credentialID = original.credentialID
                #expect(try await replica.insertPasskey(takeover) == false)
                var again = Fixture.passkey(createdAt: Fixture.at(6))
                again.credentialID = original.credentialID
                #expect(try await store.insertPasskey(again) == false)
                #expect(try await replica.passkey(credentialID: original.credentialID) == original)
                #expect(try await replica.passkeys(subject: original.subject) == [original])
                #expect(try await replica.passkeys(subject: "mallory") == [])
            }
        }

        @Test(
            "recording a passkey's use is a compare-and-set on its counter: a stale counter changes nothing, on any replica",
            arguments: Backend.allCases)
        func passkeyUseCompareAndSet(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let passkey = Fixture.passkey(signCount: 5, backupEligible: true, backedUp: false)
                let bystander = Fixture.passkey(signCount: 5)
                let passkeyAdded = try await store.insertPasskey(passkey)
                let bystanderAdded = try await store.insertPasskey(bystander)
                #expect(passkeyAdded && bystanderAdded)
                #expect(
                    try await replica.recordPasskeyUse(
                        credentialID: passkey.credentialID, previousSignCount: 5, signCount: 4_294_967_295,
                        backedUp: true, at: Fixture.at(milliseconds: 10_001)))
                var used = passkey
                used.signCount = 4_294_967_295
                used.backedUp = true
                used.lastUsedAt = Fixture.at(milliseconds: 10_001)
                #expect(try await store.passkey(credentialID: passkey.credentialID) == used)
                // The sign-in that read the counter before that use has lost the race.
                #expect(
                    try await store.recordPasskeyUse(
                        credentialID: passkey.credentialID, previousSignCount: 5, signCount: 6, backedUp: false,
                        at: Fixture.at(20)) == false)
                #expect(try await replica.passkey(credentialID: passkey.credentialID) == used)
                #expect(try await store.passkey(credentialID: passkey.credentialID) == used)
                #expect(try await replica.passkey(credentialID: bystander.credentialID) == bystander)
                #expect(
                    try await replica.recordPasskeyUse(
                        credentialID: Fixture.credentialID(), previousSignCount: 5, signCount: 6, backedUp: false,
                        at: Fixture.at(20)) == false)
            }
        }

        @Test(
            "a passkey whose authenticator keeps no counter (always 0) records every use", arguments: Backend.allCases)
        func passkeyUseWithoutCounter(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let passkey = Fixture.passkey(signCount: 0, backupEligible: true, backedUp: true)
                let passkeyAdded = try await store.insertPasskey(passkey)
                #expect(passkeyAdded)
                for (index, target) in [store, replica, store].enumerated() {
                    let at = Fixture.at(Int64(index + 1))
                    #expect(
                        try await target.recordPasskeyUse(
                            credentialID: passkey.credentialID, previousSignCount: 0, signCount: 0, backedUp: true,
                            at: at))
                    #expect(try await replica.passkey(credentialID: passkey.credentialID)?.lastUsedAt == at)
                }
            }
        }

        @Test(
            "of 20 concurrent uses of a passkey with one counter value on two replicas exactly one is recorded",
            arguments: Backend.allCases)
        func passkeyUseRace(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let passkey = Fixture.passkey(signCount: 41)
                let passkeyAdded = try await store.insertPasskey(passkey)
                #expect(passkeyAdded)
                let results = try await withThrowingTaskGroup(of: (Int64, Bool).self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        let signCount = Int64(42 + index)
                        group.addTask {
                            let recorded = try await target.recordPasskeyUse(
                                credentialID: passkey.credentialID, previousSignCount: 41, signCount: signCount,
                                backedUp: false, at: Fixture.at(milliseconds: signCount))
                            return (signCount, recorded)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let winners = results.filter(\.1).map(\.0)
                #expect(winners.count == 1, "\(results)")
                let stored = try await store.passkey(credentialID: passkey.credentialID)
                #expect(stored?.signCount == winners.first)
                #expect(stored?.lastUsedAt == winners.first.map { Fixture.at(milliseconds: $0) })
            }
        }

        @Test(
            "a passkey is deleted only by its own subject; another subject's delete or an unknown id gives false",
            arguments: Backend.allCases)
        func deletePasskey(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let doomed = Fixture.passkey(), kept = Fixture.passkey(createdAt: Fixture.at(1))
                let bobs = Fixture.passkey(subject: "bob-Ærø")
                for passkey in [doomed, kept, bobs] {
                    let added = try await store.insertPasskey(passkey)
                    #expect(added)
                }
                #expect(
                    try await replica.deletePasskey(credentialID: doomed.credentialID, subject: bobs.subject) == false)
                #expect(try await store.passkey(credentialID: doomed.credentialID) == doomed)
                #expect(
                    try await replica.deletePasskey(credentialID: Fixture.credentialID(), subject: doomed.subject)
                        == false)
                #expect(try await replica.deletePasskey(credentialID: doomed.credentialID, subject: doomed.subject))
                #expect(try await store.passkey(credentialID: doomed.credentialID) == nil)
                #expect(
                    try await store.deletePasskey(credentialID: doomed.credentialID, subject: doomed.subject) == false)
                #expect(try await store.passkeys(subject: doomed.subject) == [kept])
                #expect(try await store.passkeys(subject: bobs.subject) == [bobs])
            }
        }

        @Test("passkeys never expire: purgeExpired keeps them, used or not", arguments: Backend.allCases)
        func purgeKeepsPasskeys(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let unused = Fixture.passkey(createdAt: Fixture.at(0))
                let used = Fixture.passkey(createdAt: Fixture.at(1), lastUsedAt: Fixture.at(2))
                for passkey in [unused, used] {
                    let added = try await store.insertPasskey(passkey)
                    #expect(added)
                }
                // Ten years on.
                try await replica.purgeExpired(now: Fixture.at(315_360_000))
                #expect(try await store.passkeys(subject: unused.subject) == [unused, used])
            }
        }

        // MARK: Housekeeping

        @Test(
            "purgeExpired deletes expired sessions, codes, device codes, families, single-use values and counters, and keeps the rest",
            arguments: Backend.allCases)
        func purge(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let short = Fixture.at(10), long = Fixture.at(1000), now = Fixture.at(10)
                let oldSession = Fixture.session(expiresAt: short), liveSession = Fixture.session(expiresAt: long)
                let oldCode = Fixture.code(expiresAt: short)
                let revokedEarly = Fixture.family(), abandoned = Fixture.family()
                let liveCode = Fixture.code(family: revokedEarly, expiresAt: long)
                let oldFamily = Fixture.family(), liveFamily = Fixture.family()
                let oldToken = Fixture.token(family: oldFamily, expiresAt: short)
                let liveToken = Fixture.token(family: liveFamily, expiresAt: long)
                let oldDevice = Fixture.device(expiresAt: short), liveDevice = Fixture.device(expiresAt: long)
                for session in [oldSession, liveSession] { try await store.insertSession(session) }
                for code in [oldCode, liveCode] { try await store.insertCode(code) }
                for token in [oldToken, liveToken] { try await store.insertRefreshToken(token) }
                for device in [oldDevice, liveDevice] { try await store.insertDeviceCode(device) }
                #expect(try await store.consumeCode(hash: oldCode.codeHash, now: Fixture.at(0)) == .redeemed(oldCode))
                try await store.revokeFamily(id: revokedEarly)  // still referenced by liveCode: kept
                try await store.revokeFamily(id: abandoned)  // referenced by nothing: purged
                let oldUse = "old:" + Fixture.hash(), liveUse = "live:" + Fixture.hash()
                #expect(try await store.spendOnce(key: oldUse, expiresAt: short, now: Fixture.at(0)) == true)
                #expect(try await store.spendOnce(key: liveUse, expiresAt: long, now: Fixture.at(0)) == true)
                let oldCounter = "old:" + Fixture.hash(), liveCounter = "live:" + Fixture.hash()
                _ = try await store.addToCounters([oldCounter], delta: 1, window: 10, now: Fixture.at(0))
                _ = try await store.addToCounters([liveCounter], delta: 1, window: 1000, now: Fixture.at(0))

                try await replica.purgeExpired(now: now)

                #expect(
                    try await store.counters([oldCounter, liveCounter], now: Fixture.at(0))
                        == [.zero, ThrottleCounter(count: 1, lastIncrease: Fixture.at(0))])
                #expect(
                    try await store.spendOnce(key: oldUse, expiresAt: long, now: Fixture.at(0)) == true,
                    "purged, so spendable even at a time it was remembered")
                #expect(try await store.spendOnce(key: liveUse, expiresAt: long, now: now) == false)

                // Gone, even when asked about a time at which they were still valid.
                #expect(try await store.session(idHash: oldSession.idHash, now: Fixture.at(0)) == nil)
                #expect(try await store.consumeCode(hash: oldCode.codeHash, now: Fixture.at(0)) == .notFound)
                #expect(try await store.familyOfRefreshToken(hash: oldToken.tokenHash) == nil)
                #expect(try await store.deviceCode(userCode: oldDevice.userCode, now: Fixture.at(0)) == nil)
                var reusedUserCode = Fixture.device()
                reusedUserCode.userCode = oldDevice.userCode
                try await store.insertDeviceCode(reusedUserCode)
                // Kept.
                #expect(try await store.session(idHash: liveSession.idHash, now: now) == liveSession)
                #expect(try await store.familyOfRefreshToken(hash: liveToken.tokenHash) == liveFamily)
                #expect(try await store.deviceCode(userCode: liveDevice.userCode, now: now) == liveDevice)
                #expect(try await store.consumeCode(hash: liveCode.codeHash, now: now) == .redeemed(liveCode))
                let lateToken = Fixture.token(family: revokedEarly)
                try await store.insertRefreshToken(lateToken)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: lateToken.tokenHash, now: now, successor: Fixture.successor()) == .revoked)
                let freshStart = Fixture.token(family: abandoned)
                try await store.insertRefreshToken(freshStart)
                #expect(
                    try await store.rotateRefreshToken(
                        hash: freshStart.tokenHash, now: now, successor: Fixture.successor()) == .valid(freshStart))
                #expect(
                    try await store.rotateRefreshToken(
                        hash: liveToken.tokenHash, now: now, successor: Fixture.successor()) == .valid(liveToken))
            }
        }

        // MARK: Precision

        @Test("times are kept to the millisecond, rounded to the nearest", arguments: Backend.allCases)
        func millisecondPrecision(backend: Backend) async throws {
            try await withStores(backend) { store, replica in
                let exact = Fixture.key(
                    "exact", createdAt: Fixture.at(milliseconds: 1), retiresAt: Fixture.at(milliseconds: 2),
                    expiresAt: Fixture.at(milliseconds: 3))
                var blurred = Fixture.key(
                    "blurred", createdAt: Fixture.at(milliseconds: 5), retiresAt: nil, expiresAt: nil)
                blurred.createdAt = Fixture.at(milliseconds: 5).addingTimeInterval(0.000_4)
                blurred.activatesAt = Fixture.at(milliseconds: 7).addingTimeInterval(0.000_6)
                try await store.insertSigningKey(exact, onlyIfEmpty: false)
                try await store.insertSigningKey(blurred, onlyIfEmpty: false)
                var expected = blurred
                expected.createdAt = Fixture.at(milliseconds: 5)
                expected.activatesAt = Fixture.at(milliseconds: 8)
                #expect(try await replica.signingKeys() == [exact, expected])
            }
        }
    }
}

extension Fixture {
    /// A fresh credential id: 32 random bytes, base64url without padding, as authenticators make them.
    static func credentialID() -> String {
        Data((0..<32).map { _ in UInt8.random(in: .min ... .max) }).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A passkey with a fresh credential id, by default Alice's: a public key holding every byte value (zeros
    /// included), a non-ASCII name, several transports and a counter beyond 31 bits.
    static func passkey(
        subject: String = alice.subject, signCount: Int64 = 3_000_000_000, createdAt: Date = at(0),
        transports: [String] = ["usb", "nfc", "hybrid"], backupEligible: Bool = false, backedUp: Bool = false,
        lastUsedAt: Date? = nil
    ) -> PasskeyRecord {
        PasskeyRecord(
            credentialID: credentialID(), subject: subject, userHandle: "dXNlci1oYW5kbGUtw6TDtsO8",
            name: "Zoë's YubiKey 5C ✓", publicKey: (0...255).map { UInt8($0) } + [0, 0], signCount: signCount,
            aaguid: "ee882879-721c-4913-9775-3dfcce97072a", backupEligible: backupEligible, backedUp: backedUp,
            transports: transports, attestation: "certified CN=Yubico U2F EE Serial 61730834, O=Yubico AB, C=SE",
            createdAt: createdAt, lastUsedAt: lastUsedAt)
    }
}
