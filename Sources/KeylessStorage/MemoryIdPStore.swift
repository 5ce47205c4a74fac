import Foundation

/// An `IdPStore` in memory, for tests and single-process experiments: nothing survives the process.
///
/// It follows the same contract as the SQL stores, including their millisecond precision (times are rounded to the
/// millisecond when stored and compared), so a test that passes against it does not rely on more than a real store keeps.
/// Being an actor, every method runs alone, which makes each spend atomic.
public actor MemoryIdPStore: IdPStore {
    private struct Code {
        var record: AuthorizationCodeRecord
        var used: Bool
    }

    private struct Family {
        var revoked: Bool
        /// The first token's expiry; nil for a family revoked before its first token was stored.
        var expiresAt: Int64?
    }

    private struct Token {
        var record: RefreshTokenRecord
        var used: Bool
    }

    private struct Device {
        var record: DeviceCodeRecord
        var lastPolledAt: Int64?
    }

    /// In insertion order; `signingKeys()` sorts them by creation time.
    private var keys: [SigningKeyRecord] = []
    private var sessions: [String: SessionRecord] = [:]
    private var codes: [String: Code] = [:]
    private var families: [String: Family] = [:]
    private var tokens: [String: Token] = [:]
    private var devices: [String: Device] = [:]
    /// Passkeys by credential id, and their order of registration.
    private var passkeyRows: [String: PasskeyRecord] = [:]
    private var passkeyOrder: [String] = []
    /// Single-use keys and when each may be spent again (milliseconds).
    private var spent: [String: Int64] = [:]
    /// Counters with their last increase and expiry (milliseconds).
    private var counterRows: [String: (count: Int, lastIncrease: Int64, expiresAt: Int64)] = [:]

    /// An empty store.
    public init() {}

    /// Nothing to create.
    public func migrate() async throws {}

    /// Nothing to release; the store keeps working.
    public func close() async throws {}

    // MARK: Signing keys

    public func signingKeys() async throws -> [SigningKeyRecord] {
        // A stable sort keeps insertion order among keys made in the same millisecond, as the SQL stores do.
        keys.enumerated()
            .sorted { ($0.element.createdAt, $0.offset) < ($1.element.createdAt, $1.offset) }
            .map(\.element)
    }

    @discardableResult
    public func insertSigningKey(_ key: SigningKeyRecord, onlyIfEmpty: Bool) async throws -> Bool {
        if onlyIfEmpty && !keys.isEmpty { return false }
        guard !keys.contains(where: { $0.kid == key.kid }) else {
            throw IdPStoreError.duplicate("signing key", key.kid)
        }
        keys.append(key.roundedToMilliseconds)
        return true
    }

    public func retireSigningKey(kid: String, retiresAt: Date, expiresAt: Date) async throws {
        guard let index = keys.firstIndex(where: { $0.kid == kid }) else { return }
        keys[index].retiresAt = retiresAt.roundedToMilliseconds
        keys[index].expiresAt = expiresAt.roundedToMilliseconds
    }

    public func deleteExpiredSigningKeys(now: Date) async throws {
        let now = now.millisecondsSince1970
        keys.removeAll { key in key.expiresAt.map { $0.millisecondsSince1970 < now } ?? false }
    }

    // MARK: Browser sessions

    public func insertSession(_ session: SessionRecord) async throws {
        guard sessions[session.idHash] == nil else { throw IdPStoreError.duplicate("session", session.idHash) }
        sessions[session.idHash] = session.roundedToMilliseconds
    }

    public func session(idHash: String, now: Date) async throws -> SessionRecord? {
        guard let session = sessions[idHash], isLive(session.expiresAt, now: now) else { return nil }
        return session
    }

    public func deleteSession(idHash: String) async throws {
        sessions[idHash] = nil
    }

    // MARK: Authorization codes

    public func insertCode(_ code: AuthorizationCodeRecord) async throws {
        guard codes[code.codeHash] == nil else { throw IdPStoreError.duplicate("authorization code", code.codeHash) }
        codes[code.codeHash] = Code(record: code.roundedToMilliseconds, used: false)
    }

    public func consumeCode(hash: String, now: Date) async throws -> CodeRedemption {
        guard let code = codes[hash] else { return .notFound }
        if code.used { return .replayed(familyID: code.record.familyID) }
        guard isLive(code.record.expiresAt, now: now) else { return .notFound }
        codes[hash]?.used = true
        return .redeemed(code.record)
    }

    // MARK: Refresh tokens

    public func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        guard tokens[token.tokenHash] == nil else { throw IdPStoreError.duplicate("refresh token", token.tokenHash) }
        let record = token.roundedToMilliseconds
        var family = families[token.familyID] ?? Family(revoked: false, expiresAt: nil)
        // The first token sets the family's absolute expiry; a family revoked before it had tokens stays revoked.
        if family.expiresAt == nil { family.expiresAt = record.expiresAt.millisecondsSince1970 }
        families[token.familyID] = family
        tokens[token.tokenHash] = Token(record: record, used: false)
    }

    public func rotateRefreshToken(hash: String, now: Date, successor: RefreshSuccessor) async throws
        -> RefreshRedemption
    {
        guard let token = tokens[hash], let family = families[token.record.familyID] else { return .notFound }
        if family.revoked { return .revoked }
        if token.used {
            families[token.record.familyID]?.revoked = true
            return .reused(familyID: token.record.familyID)
        }
        let nowMilliseconds = now.millisecondsSince1970
        guard isLive(token.record.expiresAt, now: now), family.expiresAt.map({ nowMilliseconds < $0 }) ?? true else {
            return .notFound
        }
        guard tokens[successor.tokenHash] == nil else {
            throw IdPStoreError.duplicate("refresh token", successor.tokenHash)
        }
        tokens[hash]?.used = true
        let next = successor.record(replacing: token.record).roundedToMilliseconds
        tokens[next.tokenHash] = Token(record: next, used: false)
        return .valid(token.record)
    }

    public func revokeFamily(id: String) async throws {
        // An unknown family is remembered as revoked, so a token stored for it later (a code replayed while its first
        // redemption is still issuing tokens) is revoked too.
        families[id, default: Family(revoked: true, expiresAt: nil)].revoked = true
    }

    public func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        tokens[hash]?.record
    }

    public func familyOfRefreshToken(hash: String) async throws -> String? {
        tokens[hash]?.record.familyID
    }

    // MARK: Device codes

    public func insertDeviceCode(_ device: DeviceCodeRecord) async throws {
        guard devices[device.deviceCodeHash] == nil else {
            throw IdPStoreError.duplicate("device code", device.deviceCodeHash)
        }
        guard !devices.values.contains(where: { $0.record.userCode == device.userCode }) else {
            throw IdPStoreError.duplicate("user code", device.userCode)
        }
        devices[device.deviceCodeHash] = Device(record: device.roundedToMilliseconds, lastPolledAt: nil)
    }

    public func deviceCode(userCode: String, now: Date) async throws -> DeviceCodeRecord? {
        guard let device = devices.values.first(where: { $0.record.userCode == userCode }),
            isLive(device.record.expiresAt, now: now)
        else { return nil }
        return device.record
    }

    public func approveDevice(userCode: String, approval: DeviceApproval, now: Date) async throws -> Bool {
        guard let hash = pendingDevice(userCode: userCode, now: now) else { return false }
        devices[hash]?.record.status = .approved
        devices[hash]?.record.approval = DeviceApproval(
            authentication: approval.authentication.roundedToMilliseconds,
            familyID: approval.familyID)
        return true
    }

    public func denyDevice(userCode: String, now: Date) async throws -> Bool {
        guard let hash = pendingDevice(userCode: userCode, now: now) else { return false }
        devices[hash]?.record.status = .denied
        return true
    }

    public func pollDevice(deviceCodeHash: String, now: Date) async throws -> DevicePoll {
        guard var device = devices[deviceCodeHash] else { return .notFound }
        let now = now.millisecondsSince1970
        switch pollDecision(device: device.record, lastPolledAt: device.lastPolledAt, now: now) {
        case .answer(let poll):
            return poll
        case .handOut:
            device.record.status = .consumed
            devices[deviceCodeHash] = device
            return .approved(device.record)
        case .recordPoll(let interval, let poll):
            device.record.interval = interval
            device.lastPolledAt = now
            devices[deviceCodeHash] = device
            return poll
        }
    }

    // MARK: Passkeys

    public func insertPasskey(_ passkey: PasskeyRecord) async throws -> Bool {
        guard passkeyRows[passkey.credentialID] == nil else { return false }
        var stored = passkey
        stored.createdAt = Date(millisecondsSince1970: passkey.createdAt.millisecondsSince1970)
        stored.lastUsedAt = passkey.lastUsedAt.map { Date(millisecondsSince1970: $0.millisecondsSince1970) }
        passkeyRows[passkey.credentialID] = stored
        passkeyOrder.append(passkey.credentialID)
        return true
    }

    public func passkeys(subject: String) async throws -> [PasskeyRecord] {
        // Oldest first, as the SQL stores order them (created_at, then insertion).
        let mine = passkeyOrder.compactMap { passkeyRows[$0] }.filter { $0.subject == subject }
        return mine.enumerated().sorted { ($0.element.createdAt, $0.offset) < ($1.element.createdAt, $1.offset) }.map(
            \.element)
    }

    public func passkey(credentialID: String) async throws -> PasskeyRecord? { passkeyRows[credentialID] }

    public func recordPasskeyUse(
        credentialID: String, previousSignCount: Int64, signCount: Int64, backedUp: Bool, at: Date
    ) async throws -> Bool {
        guard var row = passkeyRows[credentialID], row.signCount == previousSignCount else { return false }
        row.signCount = signCount
        row.backedUp = backedUp
        row.lastUsedAt = Date(millisecondsSince1970: at.millisecondsSince1970)
        passkeyRows[credentialID] = row
        return true
    }

    public func deletePasskey(credentialID: String, subject: String) async throws -> Bool {
        guard passkeyRows[credentialID]?.subject == subject else { return false }
        passkeyRows[credentialID] = nil
        passkeyOrder.removeAll { $0 == credentialID }
        return true
    }

    // MARK: Single-use values and throttle counters

    public func spendOnce(key: String, expiresAt: Date, now: Date) async throws -> Bool {
        if let until = spent[key], now.millisecondsSince1970 < until { return false }
        spent[key] = expiresAt.millisecondsSince1970
        return true
    }

    public func addToCounters(_ keys: [String], delta: Int, window: TimeInterval, now: Date) async throws
        -> [ThrottleCounter]
    {
        let now = now.millisecondsSince1970
        return keys.map { key in
            let live = counterRows[key].flatMap { now < $0.expiresAt ? $0 : nil }
            guard delta > 0 else {
                guard var row = live else { return .zero }
                row.count = max(0, row.count + delta)
                counterRows[key] = row
                return Self.counter(row)
            }
            let row = (
                count: (live?.count ?? 0) + delta, lastIncrease: now, expiresAt: now + Int64((window * 1000).rounded())
            )
            counterRows[key] = row
            return Self.counter(row)
        }
    }

    public func counters(_ keys: [String], now: Date) async throws -> [ThrottleCounter] {
        let now = now.millisecondsSince1970
        return keys.map { key in counterRows[key].flatMap { now < $0.expiresAt ? Self.counter($0) : nil } ?? .zero }
    }

    public func deleteCounter(_ key: String) async throws {
        counterRows[key] = nil
    }

    private static func counter(_ row: (count: Int, lastIncrease: Int64, expiresAt: Int64)) -> ThrottleCounter {
        ThrottleCounter(count: row.count, lastIncrease: Date(millisecondsSince1970: row.lastIncrease))
    }

    // MARK: Housekeeping

    public func purgeExpired(now: Date) async throws {
        let nowMilliseconds = now.millisecondsSince1970
        spent = spent.filter { nowMilliseconds < $0.value }
        counterRows = counterRows.filter { nowMilliseconds < $0.value.expiresAt }
        sessions = sessions.filter { isLive($0.value.expiresAt, now: now) }
        codes = codes.filter { isLive($0.value.record.expiresAt, now: now) }
        devices = devices.filter { isLive($0.value.record.expiresAt, now: now) }
        // A family revoked before it had tokens is kept while a code or device approval can still start it.
        let referenced = Set(codes.values.map(\.record.familyID))
            .union(devices.values.compactMap(\.record.approval?.familyID))
        families = families.filter { id, family in
            if let expiresAt = family.expiresAt { return nowMilliseconds < expiresAt }
            return referenced.contains(id)
        }
        tokens = tokens.filter { families[$0.value.record.familyID] != nil }
    }

    // MARK: Helpers

    private func isLive(_ expiresAt: Date, now: Date) -> Bool {
        now.millisecondsSince1970 < expiresAt.millisecondsSince1970
    }

    /// The device-code hash of the pending, unexpired authorization with `userCode`.
    private func pendingDevice(userCode: String, now: Date) -> String? {
        devices.first {
            $0.value.record.userCode == userCode && $0.value.record.status == .pending
                && isLive($0.value.record.expiresAt, now: now)
        }?.key
    }
}
