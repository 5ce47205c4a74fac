import Foundation
import GRDB
import KeylessStorage

/// An `IdPStore` in one SQLite file (WAL mode), the default for a single host; several processes may share the file.
///
/// Every spend runs in one `BEGIN IMMEDIATE` transaction: SQLite lets one writer in at a time across processes, so the
/// read-then-update inside it is atomic. Waiting writers retry for up to ten seconds (the busy timeout) before failing.
/// Times are stored as milliseconds since 1970, `amr` and transport lists as JSON text, sealed keys and passkeys' public
/// keys as BLOBs.
public final class SQLiteIdPStore: IdPStore {
    /// The database file.
    public let path: String
    private let file: SQLiteFile
    var pool: DatabasePool { file.pool }

    /// Opens (creating it if needed, mode 0600) the database at `path`; the directory must exist. Call `migrate()` next.
    public init(path: String) throws {
        self.path = path
        file = try SQLiteFile(path: path, label: "keyless-idp", what: "IdP database")
    }

    // MARK: Schema

    private static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE idp_signing_keys (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        kid TEXT NOT NULL UNIQUE,
                        algorithm TEXT NOT NULL,
                        sealed_private_key BLOB NOT NULL,
                        public_jwk TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        activates_at INTEGER NOT NULL,
                        retires_at INTEGER,
                        expires_at INTEGER
                    );
                    CREATE TABLE idp_sessions (
                        id_hash TEXT PRIMARY KEY NOT NULL,
                        subject TEXT NOT NULL,
                        auth_time INTEGER NOT NULL,
                        amr TEXT NOT NULL,
                        expires_at INTEGER NOT NULL
                    );
                    CREATE INDEX idp_sessions_expires_at ON idp_sessions (expires_at);
                    CREATE TABLE idp_authorization_codes (
                        code_hash TEXT PRIMARY KEY NOT NULL,
                        client_id TEXT NOT NULL,
                        redirect_uri TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        nonce TEXT,
                        code_challenge TEXT,
                        code_challenge_method TEXT,
                        subject TEXT NOT NULL,
                        auth_time INTEGER NOT NULL,
                        amr TEXT NOT NULL,
                        family_id TEXT NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER
                    );
                    CREATE INDEX idp_authorization_codes_expires_at ON idp_authorization_codes (expires_at);
                    CREATE INDEX idp_authorization_codes_family_id ON idp_authorization_codes (family_id);
                    CREATE TABLE idp_refresh_families (
                        id TEXT PRIMARY KEY NOT NULL,
                        revoked INTEGER NOT NULL DEFAULT 0,
                        expires_at INTEGER
                    );
                    CREATE INDEX idp_refresh_families_expires_at ON idp_refresh_families (expires_at);
                    CREATE TABLE idp_refresh_tokens (
                        token_hash TEXT PRIMARY KEY NOT NULL,
                        family_id TEXT NOT NULL REFERENCES idp_refresh_families (id) ON DELETE CASCADE,
                        client_id TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        auth_time INTEGER NOT NULL,
                        amr TEXT NOT NULL,
                        issued_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER
                    );
                    CREATE INDEX idp_refresh_tokens_family_id ON idp_refresh_tokens (family_id);
                    CREATE TABLE idp_device_codes (
                        device_code_hash TEXT PRIMARY KEY NOT NULL,
                        user_code TEXT NOT NULL UNIQUE,
                        client_id TEXT NOT NULL,
                        scope TEXT NOT NULL,
                        poll_interval INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        approval_subject TEXT,
                        approval_auth_time INTEGER,
                        approval_amr TEXT,
                        approval_family_id TEXT,
                        last_polled_at INTEGER
                    );
                    CREATE INDEX idp_device_codes_expires_at ON idp_device_codes (expires_at);
                    CREATE INDEX idp_device_codes_approval_family_id ON idp_device_codes (approval_family_id);
                    """)
        }
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE idp_single_use (
                        key TEXT PRIMARY KEY,
                        expires_at INTEGER NOT NULL
                    );
                    CREATE INDEX idp_single_use_expires_at ON idp_single_use (expires_at);
                    CREATE TABLE idp_counters (
                        key TEXT PRIMARY KEY,
                        count INTEGER NOT NULL,
                        last_increase INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL
                    );
                    CREATE INDEX idp_counters_expires_at ON idp_counters (expires_at);
                    """)
        }
        migrator.registerMigration("v3") { db in
            // Who a connector (a directory) says the person is; NULL for the users of idp.yaml.
            try db.execute(
                sql: """
                    ALTER TABLE idp_sessions ADD COLUMN identity TEXT;
                    ALTER TABLE idp_authorization_codes ADD COLUMN identity TEXT;
                    ALTER TABLE idp_refresh_tokens ADD COLUMN identity TEXT;
                    ALTER TABLE idp_device_codes ADD COLUMN approval_identity TEXT;
                    """)
        }
        migrator.registerMigration("v4") { db in
            try db.execute(
                sql: """
                    CREATE TABLE idp_passkeys (
                        credential_id TEXT PRIMARY KEY NOT NULL,
                        subject TEXT NOT NULL,
                        user_handle TEXT NOT NULL,
                        name TEXT NOT NULL,
                        public_key BLOB NOT NULL,
                        sign_count INTEGER NOT NULL,
                        aaguid TEXT NOT NULL,
                        backup_eligible INTEGER NOT NULL,
                        backed_up INTEGER NOT NULL,
                        transports TEXT NOT NULL,
                        attestation TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        last_used_at INTEGER
                    );
                    CREATE INDEX idp_passkeys_subject ON idp_passkeys (subject);
                    """)
        }
        return migrator
    }()

    public func migrate() async throws {
        try await file.migrate(Self.migrator)
    }

    public func close() async throws {
        try pool.close()
    }

    // MARK: Signing keys

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await file.read("read signing keys") { db in
            try db.rows(sql: "SELECT * FROM idp_signing_keys ORDER BY created_at, seq").map(Self.signingKey)
        }
    }

    @discardableResult
    public func insertSigningKey(_ key: SigningKeyRecord, onlyIfEmpty: Bool) async throws -> Bool {
        try await file.write("store signing key \(key.kid)", duplicate: .duplicate("signing key", key.kid)) { db in
            // Writers are serialised (BEGIN IMMEDIATE), so no other replica inserts between this check and the insert.
            if onlyIfEmpty, try db.value(Bool.self, sql: "SELECT EXISTS (SELECT 1 FROM idp_signing_keys)") == true {
                return false
            }
            try db.run(
                sql: """
                    INSERT INTO idp_signing_keys (kid, algorithm, sealed_private_key, public_jwk, created_at, activates_at,
                                                  retires_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    key.kid, key.algorithm, key.sealedPrivateKey, key.publicJWK, key.createdAt.millisecondsSince1970,
                    key.activatesAt.millisecondsSince1970, key.retiresAt?.millisecondsSince1970,
                    key.expiresAt?.millisecondsSince1970,
                ])
            return true
        }
    }

    public func retireSigningKey(kid: String, retiresAt: Date, expiresAt: Date) async throws {
        try await file.write("retire signing key \(kid)") { db in
            try db.run(
                sql: "UPDATE idp_signing_keys SET retires_at = ?, expires_at = ? WHERE kid = ?",
                arguments: [retiresAt.millisecondsSince1970, expiresAt.millisecondsSince1970, kid])
        }
    }

    public func deleteExpiredSigningKeys(now: Date) async throws {
        try await file.write("delete expired signing keys") { db in
            try db.run(sql: "DELETE FROM idp_signing_keys WHERE expires_at < ?", arguments: [now.millisecondsSince1970])
        }
    }

    // MARK: Browser sessions

    public func insertSession(_ session: SessionRecord) async throws {
        let authentication = session.authentication
        try await file.write("store session", duplicate: .duplicate("session", session.idHash)) { db in
            try db.run(
                sql: """
                    INSERT INTO idp_sessions (id_hash, subject, auth_time, amr, identity, expires_at) VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    session.idHash, authentication.subject, authentication.authTime.millisecondsSince1970,
                    try Self.json(authentication.amr), try authentication.identity?.jsonText(),
                    session.expiresAt.millisecondsSince1970,
                ])
        }
    }

    public func session(idHash: String, now: Date) async throws -> SessionRecord? {
        try await file.read("read session") { db in
            try db.row(
                sql: "SELECT * FROM idp_sessions WHERE id_hash = ? AND expires_at > ?",
                arguments: [idHash, now.millisecondsSince1970]
            ).map { row in
                SessionRecord(
                    idHash: row["id_hash"], authentication: try Self.authentication(row),
                    expiresAt: Self.date(row["expires_at"]))
            }
        }
    }

    public func deleteSession(idHash: String) async throws {
        try await file.write("delete session") { db in
            try db.run(sql: "DELETE FROM idp_sessions WHERE id_hash = ?", arguments: [idHash])
        }
    }

    // MARK: Authorization codes

    public func insertCode(_ code: AuthorizationCodeRecord) async throws {
        let authentication = code.authentication
        let duplicate = IdPStoreError.duplicate("authorization code", code.codeHash)
        try await file.write("store authorization code", duplicate: duplicate) { db in
            try db.run(
                sql: """
                    INSERT INTO idp_authorization_codes (code_hash, client_id, redirect_uri, scope, nonce, code_challenge,
                        code_challenge_method, subject, auth_time, amr, identity, family_id, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    code.codeHash, code.clientID, code.redirectURI, code.scope, code.nonce, code.codeChallenge,
                    code.codeChallengeMethod, authentication.subject,
                    authentication.authTime.millisecondsSince1970, try Self.json(authentication.amr),
                    try authentication.identity?.jsonText(), code.familyID, code.expiresAt.millisecondsSince1970,
                ])
        }
    }

    public func consumeCode(hash: String, now: Date) async throws -> CodeRedemption {
        let now = now.millisecondsSince1970
        return try await file.write("redeem authorization code") { db in
            try db.run(
                sql: """
                    UPDATE idp_authorization_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?
                    """, arguments: [now, hash, now])
            let spent = db.changesCount == 1
            guard
                let row = try db.row(
                    sql: "SELECT * FROM idp_authorization_codes WHERE code_hash = ?",
                    arguments: [hash])
            else { return .notFound }
            if spent { return .redeemed(try Self.code(row)) }
            // Not spent by us: either spent before (a replay, whenever it comes) or unused and expired.
            let usedAt: Int64? = row["used_at"]
            return usedAt == nil ? .notFound : .replayed(familyID: row["family_id"])
        }
    }

    // MARK: Refresh tokens

    public func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        try await file.write("store refresh token", duplicate: .duplicate("refresh token", token.tokenHash)) { db in
            // The first token sets the family's absolute expiry; a family revoked before it had tokens stays revoked.
            try db.run(
                sql: """
                    INSERT INTO idp_refresh_families (id, revoked, expires_at) VALUES (?, 0, ?)
                    ON CONFLICT (id) DO UPDATE SET expires_at = coalesce(expires_at, excluded.expires_at)
                    """, arguments: [token.familyID, token.expiresAt.millisecondsSince1970])
            try Self.insertToken(token, db)
        }
    }

    public func rotateRefreshToken(hash: String, now: Date, successor: RefreshSuccessor) async throws
        -> RefreshRedemption
    {
        let now = now.millisecondsSince1970
        let duplicate = IdPStoreError.duplicate("refresh token", successor.tokenHash)
        return try await file.write("rotate refresh token", duplicate: duplicate) { db in
            guard
                let row = try db.row(
                    sql: """
                        SELECT t.*, f.revoked AS family_revoked, f.expires_at AS family_expires_at
                        FROM idp_refresh_tokens t JOIN idp_refresh_families f ON f.id = t.family_id
                        WHERE t.token_hash = ?
                        """, arguments: [hash])
            else { return .notFound }
            let familyID: String = row["family_id"]
            if row["family_revoked"] as Bool { return .revoked }
            if (row["used_at"] as Int64?) != nil {
                try db.run(sql: "UPDATE idp_refresh_families SET revoked = 1 WHERE id = ?", arguments: [familyID])
                return .reused(familyID: familyID)
            }
            let familyExpiresAt: Int64? = row["family_expires_at"]
            guard now < row["expires_at"] as Int64, familyExpiresAt.map({ now < $0 }) ?? true else { return .notFound }
            try db.run(sql: "UPDATE idp_refresh_tokens SET used_at = ? WHERE token_hash = ?", arguments: [now, hash])
            let spent = try Self.refreshToken(row)
            try Self.insertToken(successor.record(replacing: spent), db)
            return .valid(spent)
        }
    }

    private static func insertToken(_ token: RefreshTokenRecord, _ db: Database) throws {
        let authentication = token.authentication
        try db.run(
            sql: """
                INSERT INTO idp_refresh_tokens (token_hash, family_id, client_id, scope, subject, auth_time, amr, identity,
                    issued_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                token.tokenHash, token.familyID, token.clientID, token.scope, authentication.subject,
                authentication.authTime.millisecondsSince1970, try json(authentication.amr),
                try authentication.identity?.jsonText(),
                token.issuedAt.millisecondsSince1970, token.expiresAt.millisecondsSince1970,
            ])
    }

    public func revokeFamily(id: String) async throws {
        try await file.write("revoke refresh family") { db in
            // An unknown family is remembered as revoked, so a token stored for it later stays revoked.
            try db.run(
                sql: """
                    INSERT INTO idp_refresh_families (id, revoked, expires_at) VALUES (?, 1, NULL)
                    ON CONFLICT (id) DO UPDATE SET revoked = 1
                    """, arguments: [id])
        }
    }

    public func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        try await file.read("read refresh token") { db in
            try db.row(sql: "SELECT * FROM idp_refresh_tokens WHERE token_hash = ?", arguments: [hash]).map(
                Self.refreshToken)
        }
    }

    public func familyOfRefreshToken(hash: String) async throws -> String? {
        try await file.read("read refresh token") { db in
            try db.value(
                String.self, sql: "SELECT family_id FROM idp_refresh_tokens WHERE token_hash = ?", arguments: [hash])
        }
    }

    // MARK: Device codes

    public func insertDeviceCode(_ device: DeviceCodeRecord) async throws {
        let approval = device.approval
        try await file.write("store device code", duplicate: .duplicate("device or user code", device.userCode)) { db in
            try db.run(
                sql: """
                    INSERT INTO idp_device_codes (device_code_hash, user_code, client_id, scope, poll_interval, expires_at, status,
                        approval_subject, approval_auth_time, approval_amr, approval_identity, approval_family_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    device.deviceCodeHash, device.userCode, device.clientID, device.scope, device.interval,
                    device.expiresAt.millisecondsSince1970, device.status.rawValue,
                    approval?.authentication.subject, approval?.authentication.authTime.millisecondsSince1970,
                    try approval.map { try Self.json($0.authentication.amr) },
                    try approval?.authentication.identity?.jsonText(), approval?.familyID,
                ])
        }
    }

    public func deviceCode(userCode: String, now: Date) async throws -> DeviceCodeRecord? {
        try await file.read("read device code") { db in
            try db.row(
                sql: "SELECT * FROM idp_device_codes WHERE user_code = ? AND expires_at > ?",
                arguments: [userCode, now.millisecondsSince1970]
            ).map(Self.deviceCode)
        }
    }

    public func approveDevice(userCode: String, approval: DeviceApproval, now: Date) async throws -> Bool {
        let authentication = approval.authentication
        return try await file.write("approve device code") { db in
            try db.run(
                sql: """
                    UPDATE idp_device_codes
                    SET status = 'approved', approval_subject = ?, approval_auth_time = ?, approval_amr = ?,
                        approval_identity = ?, approval_family_id = ?
                    WHERE user_code = ? AND status = 'pending' AND expires_at > ?
                    """,
                arguments: [
                    authentication.subject, authentication.authTime.millisecondsSince1970,
                    try Self.json(authentication.amr), try authentication.identity?.jsonText(), approval.familyID,
                    userCode, now.millisecondsSince1970,
                ])
            return db.changesCount == 1
        }
    }

    public func denyDevice(userCode: String, now: Date) async throws -> Bool {
        try await file.write("deny device code") { db in
            try db.run(
                sql: """
                    UPDATE idp_device_codes SET status = 'denied' WHERE user_code = ? AND status = 'pending' AND expires_at > ?
                    """, arguments: [userCode, now.millisecondsSince1970])
            return db.changesCount == 1
        }
    }

    public func pollDevice(deviceCodeHash: String, now: Date) async throws -> DevicePoll {
        let now = now.millisecondsSince1970
        return try await file.write("poll device code") { db in
            guard
                let row = try db.row(
                    sql: "SELECT * FROM idp_device_codes WHERE device_code_hash = ?",
                    arguments: [deviceCodeHash])
            else { return .notFound }
            var device = try Self.deviceCode(row)
            let lastPolledAt: Int64? = row["last_polled_at"]
            switch pollDecision(device: device, lastPolledAt: lastPolledAt, now: now) {
            case .answer(let poll):
                return poll
            case .handOut:
                try db.run(
                    sql: "UPDATE idp_device_codes SET status = 'consumed' WHERE device_code_hash = ?",
                    arguments: [deviceCodeHash])
                device.status = .consumed
                return .approved(device)
            case .recordPoll(let interval, let poll):
                try db.run(
                    sql: "UPDATE idp_device_codes SET last_polled_at = ?, poll_interval = ? WHERE device_code_hash = ?",
                    arguments: [now, interval, deviceCodeHash])
                return poll
            }
        }
    }

    // MARK: Single-use values and throttle counters

    public func spendOnce(key: String, expiresAt: Date, now: Date) async throws -> Bool {
        try await file.write("spend a single-use value") { db in
            // Writers are serialised (BEGIN IMMEDIATE): no other process spends the key between the read and the write.
            if let until = try db.value(
                Int64.self, sql: "SELECT expires_at FROM idp_single_use WHERE key = ?", arguments: [key]),
                now.millisecondsSince1970 < until
            {
                return false
            }
            try db.run(
                sql: "INSERT OR REPLACE INTO idp_single_use (key, expires_at) VALUES (?, ?)",
                arguments: [key, expiresAt.millisecondsSince1970])
            return true
        }
    }

    public func addToCounters(_ keys: [String], delta: Int, window: TimeInterval, now: Date) async throws
        -> [ThrottleCounter]
    {
        let now = now.millisecondsSince1970
        let expiresAt = now + Int64((window * 1000).rounded())
        return try await file.write("count an attempt") { db in
            try keys.map { key in
                let live = try db.row(
                    sql: "SELECT count, last_increase FROM idp_counters WHERE key = ? AND expires_at > ?",
                    arguments: [key, now])
                let count: Int = live?["count"] ?? 0
                guard delta > 0 else {
                    guard let live else { return .zero }
                    let lowered = max(0, count + delta)
                    try db.run(sql: "UPDATE idp_counters SET count = ? WHERE key = ?", arguments: [lowered, key])
                    return ThrottleCounter(count: lowered, lastIncrease: Self.date(live["last_increase"]))
                }
                try db.run(
                    sql:
                        "INSERT OR REPLACE INTO idp_counters (key, count, last_increase, expires_at) VALUES (?, ?, ?, ?)",
                    arguments: [key, count + delta, now, expiresAt])
                return ThrottleCounter(count: count + delta, lastIncrease: Self.date(now))
            }
        }
    }

    public func counters(_ keys: [String], now: Date) async throws -> [ThrottleCounter] {
        try await file.read("read throttle counters") { db in
            try keys.map { key in
                try db.row(
                    sql: "SELECT count, last_increase FROM idp_counters WHERE key = ? AND expires_at > ?",
                    arguments: [key, now.millisecondsSince1970]
                )
                .map { ThrottleCounter(count: $0["count"], lastIncrease: Self.date($0["last_increase"])) } ?? .zero
            }
        }
    }

    public func deleteCounter(_ key: String) async throws {
        try await file.write("delete a throttle counter") { db in
            try db.run(sql: "DELETE FROM idp_counters WHERE key = ?", arguments: [key])
        }
    }

    // MARK: Passkeys

    public func insertPasskey(_ passkey: PasskeyRecord) async throws -> Bool {
        let transports = try Self.json(passkey.transports)
        return try await file.write("store passkey") { db in
            // A credential id already stored stays its owner's (WebAuthn §7.1): the insert does nothing.
            try db.run(
                sql: """
                    INSERT INTO idp_passkeys (credential_id, subject, user_handle, name, public_key, sign_count, aaguid,
                        backup_eligible, backed_up, transports, attestation, created_at, last_used_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (credential_id) DO NOTHING
                    """,
                arguments: [
                    passkey.credentialID, passkey.subject, passkey.userHandle, passkey.name, Data(passkey.publicKey),
                    passkey.signCount, passkey.aaguid, passkey.backupEligible, passkey.backedUp, transports,
                    passkey.attestation, passkey.createdAt.millisecondsSince1970,
                    passkey.lastUsedAt?.millisecondsSince1970,
                ])
            return db.changesCount == 1
        }
    }

    public func passkeys(subject: String) async throws -> [PasskeyRecord] {
        try await file.read("read passkeys") { db in
            try db.rows(
                sql: "SELECT * FROM idp_passkeys WHERE subject = ? ORDER BY created_at, rowid", arguments: [subject]
            ).map(Self.passkey)
        }
    }

    public func passkey(credentialID: String) async throws -> PasskeyRecord? {
        try await file.read("read passkey") { db in
            try db.row(sql: "SELECT * FROM idp_passkeys WHERE credential_id = ?", arguments: [credentialID]).map(
                Self.passkey)
        }
    }

    public func recordPasskeyUse(
        credentialID: String, previousSignCount: Int64, signCount: Int64, backedUp: Bool, at: Date
    ) async throws -> Bool {
        try await file.write("record a passkey's use") { db in
            // One statement compares and sets: of two sign-ins that read the same counter, only the first changes a row.
            try db.run(
                sql: """
                    UPDATE idp_passkeys SET sign_count = ?, backed_up = ?, last_used_at = ?
                    WHERE credential_id = ? AND sign_count = ?
                    """,
                arguments: [signCount, backedUp, at.millisecondsSince1970, credentialID, previousSignCount])
            return db.changesCount == 1
        }
    }

    public func deletePasskey(credentialID: String, subject: String) async throws -> Bool {
        try await file.write("delete passkey") { db in
            try db.run(
                sql: "DELETE FROM idp_passkeys WHERE credential_id = ? AND subject = ?",
                arguments: [credentialID, subject])
            return db.changesCount == 1
        }
    }

    // MARK: Housekeeping

    public func purgeExpired(now: Date) async throws {
        let now = now.millisecondsSince1970
        try await file.write("purge expired records") { db in
            try db.run(sql: "DELETE FROM idp_sessions WHERE expires_at <= ?", arguments: [now])
            try db.run(sql: "DELETE FROM idp_single_use WHERE expires_at <= ?", arguments: [now])
            try db.run(sql: "DELETE FROM idp_counters WHERE expires_at <= ?", arguments: [now])
            try db.run(sql: "DELETE FROM idp_authorization_codes WHERE expires_at <= ?", arguments: [now])
            try db.run(sql: "DELETE FROM idp_device_codes WHERE expires_at <= ?", arguments: [now])
            try db.run(
                sql: "DELETE FROM idp_refresh_tokens WHERE family_id IN "
                    + "(SELECT id FROM idp_refresh_families WHERE expires_at <= ?)", arguments: [now])
            try db.run(sql: "DELETE FROM idp_refresh_families WHERE expires_at <= ?", arguments: [now])
            // A family revoked before it had tokens is kept while a code or device approval can still start it.
            try db.run(
                sql: """
                    DELETE FROM idp_refresh_families
                    WHERE expires_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM idp_authorization_codes c WHERE c.family_id = idp_refresh_families.id)
                      AND NOT EXISTS (SELECT 1 FROM idp_device_codes d WHERE d.approval_family_id = idp_refresh_families.id)
                    """)
        }
    }

    // MARK: Rows

    private static func date(_ milliseconds: Int64) -> Date { Date(millisecondsSince1970: milliseconds) }

    /// A list of strings (`amr`, a passkey's transports) as the JSON text the store keeps.
    private static func json(_ list: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
    }

    private static func amr(_ text: String) throws -> [String] { try list(text, named: "amr") }

    private static func list(_ text: String, named name: String) throws -> [String] {
        do {
            return try JSONDecoder().decode([String].self, from: Data(text.utf8))
        } catch {
            throw IdPStoreError("the IdP database holds an unreadable \(name) list \(text.prefix(40)): \(error)")
        }
    }

    private static func authentication(_ row: Row, prefix: String = "") throws -> Authentication {
        Authentication(
            subject: row[prefix + "subject"], authTime: date(row[prefix + "auth_time"]),
            amr: try amr(row[prefix + "amr"]), identity: try ConnectedIdentity.fromStore(row[prefix + "identity"]))
    }

    private static func signingKey(_ row: Row) -> SigningKeyRecord {
        SigningKeyRecord(
            kid: row["kid"], algorithm: row["algorithm"], sealedPrivateKey: row["sealed_private_key"],
            publicJWK: row["public_jwk"], createdAt: date(row["created_at"]), activatesAt: date(row["activates_at"]),
            retiresAt: (row["retires_at"] as Int64?).map(date), expiresAt: (row["expires_at"] as Int64?).map(date))
    }

    private static func code(_ row: Row) throws -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            codeHash: row["code_hash"], clientID: row["client_id"], redirectURI: row["redirect_uri"],
            scope: row["scope"], nonce: row["nonce"], codeChallenge: row["code_challenge"],
            codeChallengeMethod: row["code_challenge_method"], authentication: try authentication(row),
            familyID: row["family_id"], expiresAt: date(row["expires_at"]))
    }

    private static func refreshToken(_ row: Row) throws -> RefreshTokenRecord {
        RefreshTokenRecord(
            tokenHash: row["token_hash"], familyID: row["family_id"], clientID: row["client_id"],
            scope: row["scope"], authentication: try authentication(row), issuedAt: date(row["issued_at"]),
            expiresAt: date(row["expires_at"]))
    }

    private static func passkey(_ row: Row) throws -> PasskeyRecord {
        PasskeyRecord(
            credentialID: row["credential_id"], subject: row["subject"], userHandle: row["user_handle"],
            name: row["name"], publicKey: [UInt8](row["public_key"] as Data), signCount: row["sign_count"],
            aaguid: row["aaguid"], backupEligible: row["backup_eligible"], backedUp: row["backed_up"],
            transports: try list(row["transports"], named: "transports"), attestation: row["attestation"],
            createdAt: date(row["created_at"]), lastUsedAt: (row["last_used_at"] as Int64?).map(date))
    }

    private static func deviceCode(_ row: Row) throws -> DeviceCodeRecord {
        let statusText: String = row["status"]
        guard let status = DeviceStatus(rawValue: statusText) else {
            throw IdPStoreError(
                "the IdP database holds an unknown device status \(statusText); was it written by a newer keyless?")
        }
        var approval: DeviceApproval?
        if let familyID = row["approval_family_id"] as String? {
            approval = DeviceApproval(authentication: try authentication(row, prefix: "approval_"), familyID: familyID)
        }
        return DeviceCodeRecord(
            deviceCodeHash: row["device_code_hash"], userCode: row["user_code"], clientID: row["client_id"],
            scope: row["scope"], interval: row["poll_interval"], expiresAt: date(row["expires_at"]),
            status: status, approval: approval)
    }
}
