import Foundation
import KeylessStorage
import Logging
import PostgresNIO

/// An `IdPStore` in a PostgreSQL database, for several replicas of the provider sharing one database.
///
/// Spends are atomic across replicas: a code is spent by `UPDATE … WHERE used_at IS NULL … RETURNING` (a passkey's counter
/// likewise, `WHERE sign_count = …`), a refresh token and a device code are read `FOR UPDATE` and changed in the same
/// transaction, and the first signing key and the schema are created under transaction-scoped advisory locks. Times are
/// stored as BIGINT milliseconds since 1970, `amr` lists as `text[]`, passkeys' transports as JSON text, sealed keys and
/// passkeys' public keys as `bytea`. Tables are prefixed `idp_`, so the database can be shared with other applications.
public final class PostgresIdPStore: IdPStore {
    /// Where the store connects, without the password (for messages).
    public var endpoint: String { database.endpoint }
    var settings: PostgresURL { database.settings }
    private let database: PostgresDatabase
    private var client: PostgresClient { database.client }
    private var logger: Logger { database.logger }

    /// Connects to `url`, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE[&sslrootcert=PEM]]`.
    ///
    /// Without `sslmode`, or with `sslmode=disable`, the connection is not encrypted (unlike libpq, whose default is
    /// `prefer`): use it for a database on the loopback interface or a private network. `require` encrypts without checking
    /// the server's certificate (as libpq does), `verify-ca` checks it against `sslrootcert` (else the system roots),
    /// `verify-full` also checks the host name; `allow` and `prefer` use TLS when the server offers it. Connections are
    /// opened on first use, so a wrong host or password shows at `migrate()`. Call `close()` when done.
    ///
    /// Without a `logger`, PostgresNIO's messages below warning level (such as connections abandoned at `close()`) are
    /// dropped.
    /// `password`, when given, is used for a URL without one (a URL with one and a password given apart is refused).
    public init(
        url: String, password: String? = nil,
        logger: Logger? = nil
    ) throws {
        database = try PostgresDatabase(url: url, password: password, logger: logger ?? PostgresDatabase.quietLogger())
    }

    /// Closes every connection; the store cannot be used afterwards.
    public func close() async throws {
        await database.close()
    }

    // MARK: Schema

    /// Arbitrary constants naming this schema's advisory locks.
    private static let migrationLock: Int64 = 0x6b65_796c_6573_7301  // "keyless" + 1
    private static let signingKeyLock: Int64 = 0x6b65_796c_6573_7302

    public func migrate() async throws {
        try await database.migrate(
            PostgresSchema.idpMigrations, recordedIn: "idp_schema_migrations", lock: Self.migrationLock,
            schema: "IdP schema")
    }

    // MARK: Signing keys

    public func signingKeys() async throws -> [SigningKeyRecord] {
        try await database.run("read signing keys") {
            try await client.query("SELECT * FROM idp_signing_keys ORDER BY created_at, seq", logger: logger)
                .collect().map(Self.signingKey)
        }
    }

    @discardableResult
    public func insertSigningKey(_ key: SigningKeyRecord, onlyIfEmpty: Bool) async throws -> Bool {
        try await database.run("store signing key \(key.kid)", duplicate: .duplicate("signing key", key.kid)) {
            let insert: PostgresQuery = try """
            INSERT INTO idp_signing_keys (kid, algorithm, sealed_private_key, public_jwk, created_at, activates_at,
                                          retires_at, expires_at)
            VALUES (\(key.kid), \(key.algorithm), \(key.sealedPrivateKey), \(key.publicJWK),
                    \(key.createdAt.millisecondsSince1970), \(key.activatesAt.millisecondsSince1970),
                    \(key.retiresAt?.millisecondsSince1970), \(key.expiresAt?.millisecondsSince1970))
            """
            guard onlyIfEmpty else {
                try await client.query(insert, logger: logger)
                return true
            }
            return try await client.withTransaction(logger: logger) { connection in
                // Under READ COMMITTED two replicas would both see an empty table; the lock makes them take turns.
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.signingKeyLock))", logger: logger)
                let existing = try await connection.query("SELECT 1 FROM idp_signing_keys LIMIT 1", logger: logger)
                    .collect()
                guard existing.isEmpty else { return false }
                try await connection.query(insert, logger: logger)
                return true
            }
        }
    }

    public func retireSigningKey(kid: String, retiresAt: Date, expiresAt: Date) async throws {
        try await database.run("retire signing key \(kid)") {
            try await client.query(
                """
                UPDATE idp_signing_keys SET retires_at = \(retiresAt.millisecondsSince1970),
                    expires_at = \(expiresAt.millisecondsSince1970)
                WHERE kid = \(kid)
                """, logger: logger)
        }
    }

    public func deleteExpiredSigningKeys(now: Date) async throws {
        try await database.run("delete expired signing keys") {
            try await client.query(
                "DELETE FROM idp_signing_keys WHERE expires_at < \(now.millisecondsSince1970)", logger: logger)
        }
    }

    // MARK: Browser sessions

    public func insertSession(_ session: SessionRecord) async throws {
        let authentication = session.authentication
        let identity = try authentication.identity?.jsonText()
        try await database.run("store session", duplicate: .duplicate("session", session.idHash)) {
            try await client.query(
                """
                INSERT INTO idp_sessions (id_hash, subject, auth_time, amr, identity, expires_at)
                VALUES (\(session.idHash), \(authentication.subject), \(authentication.authTime.millisecondsSince1970),
                        \(authentication.amr), \(identity), \(session.expiresAt.millisecondsSince1970))
                """, logger: logger)
        }
    }

    public func session(idHash: String, now: Date) async throws -> SessionRecord? {
        try await database.run("read session") {
            try await client.query(
                """
                SELECT * FROM idp_sessions WHERE id_hash = \(idHash) AND expires_at > \(now.millisecondsSince1970)
                """, logger: logger
            ).collect().first.map { row in
                let row = row.makeRandomAccess()
                return SessionRecord(
                    idHash: try row["id_hash"].decode(String.self), authentication: try Self.authentication(row),
                    expiresAt: try Self.date(row["expires_at"]))
            }
        }
    }

    public func deleteSession(idHash: String) async throws {
        try await database.run("delete session") {
            try await client.query("DELETE FROM idp_sessions WHERE id_hash = \(idHash)", logger: logger)
        }
    }

    // MARK: Authorization codes

    public func insertCode(_ code: AuthorizationCodeRecord) async throws {
        let authentication = code.authentication
        let identity = try authentication.identity?.jsonText()
        try await database.run("store authorization code", duplicate: .duplicate("authorization code", code.codeHash)) {
            try await client.query(
                """
                INSERT INTO idp_authorization_codes (code_hash, client_id, redirect_uri, scope, nonce, code_challenge,
                    code_challenge_method, subject, auth_time, amr, identity, family_id, expires_at)
                VALUES (\(code.codeHash), \(code.clientID), \(code.redirectURI), \(code.scope), \(code.nonce),
                        \(code.codeChallenge), \(code.codeChallengeMethod), \(authentication.subject),
                        \(authentication.authTime.millisecondsSince1970), \(authentication.amr), \(identity),
                        \(code.familyID),
                        \(code.expiresAt.millisecondsSince1970))
                """, logger: logger)
        }
    }

    public func consumeCode(hash: String, now: Date) async throws -> CodeRedemption {
        let now = now.millisecondsSince1970
        return try await database.run("redeem authorization code") {
            // A concurrent UPDATE of the same row waits for ours to commit, then finds used_at set and changes nothing.
            let spent = try await client.query(
                """
                UPDATE idp_authorization_codes SET used_at = \(now)
                WHERE code_hash = \(hash) AND used_at IS NULL AND expires_at > \(now)
                RETURNING *
                """, logger: logger
            ).collect()
            if let row = spent.first { return .redeemed(try Self.code(row.makeRandomAccess())) }
            let rows = try await client.query(
                "SELECT family_id, used_at FROM idp_authorization_codes WHERE code_hash = \(hash)",
                logger: logger
            ).collect()
            guard let row = rows.first?.makeRandomAccess(), try row["used_at"].decode(Int64?.self) != nil else {
                return .notFound
            }
            return .replayed(familyID: try row["family_id"].decode(String.self))
        }
    }

    // MARK: Refresh tokens

    public func insertRefreshToken(_ token: RefreshTokenRecord) async throws {
        let authentication = token.authentication
        let identity = try authentication.identity?.jsonText()
        try await database.run("store refresh token", duplicate: .duplicate("refresh token", token.tokenHash)) {
            try await client.withTransaction(logger: logger) { connection in
                // The first token sets the family's absolute expiry; a family revoked before it had tokens stays revoked.
                try await connection.query(
                    """
                    INSERT INTO idp_refresh_families (id, revoked, expires_at)
                    VALUES (\(token.familyID), FALSE, \(token.expiresAt.millisecondsSince1970))
                    ON CONFLICT (id) DO UPDATE
                    SET expires_at = coalesce(idp_refresh_families.expires_at, excluded.expires_at)
                    """, logger: logger)
                try await connection.query(
                    """
                    INSERT INTO idp_refresh_tokens (token_hash, family_id, client_id, scope, subject, auth_time, amr, identity,
                                                    issued_at, expires_at)
                    VALUES (\(token.tokenHash), \(token.familyID), \(token.clientID), \(token.scope), \(authentication.subject),
                            \(authentication.authTime.millisecondsSince1970), \(authentication.amr), \(identity),
                            \(token.issuedAt.millisecondsSince1970), \(token.expiresAt.millisecondsSince1970))
                    """, logger: logger)
            }
        }
    }

    public func rotateRefreshToken(hash: String, now: Date, successor: RefreshSuccessor) async throws
        -> RefreshRedemption
    {
        let now = now.millisecondsSince1970
        let replacementIdentity = try successor.identity?.jsonText()
        let duplicate = IdPStoreError.duplicate("refresh token", successor.tokenHash)
        return try await database.run("rotate refresh token", duplicate: duplicate) {
            try await client.withTransaction(logger: logger) { connection -> RefreshRedemption in
                // FOR UPDATE makes a concurrent rotation of the same token wait, then read what this one wrote.
                let rows = try await connection.query(
                    """
                    SELECT t.*, f.revoked AS family_revoked, f.expires_at AS family_expires_at
                    FROM idp_refresh_tokens t JOIN idp_refresh_families f ON f.id = t.family_id
                    WHERE t.token_hash = \(hash)
                    FOR UPDATE OF t, f
                    """, logger: logger
                ).collect()
                guard let row = rows.first?.makeRandomAccess() else { return .notFound }
                let familyID = try row["family_id"].decode(String.self)
                if try row["family_revoked"].decode(Bool.self) { return .revoked }
                if try row["used_at"].decode(Int64?.self) != nil {
                    try await connection.query(
                        "UPDATE idp_refresh_families SET revoked = TRUE WHERE id = \(familyID)",
                        logger: logger)
                    return .reused(familyID: familyID)
                }
                let familyExpiresAt = try row["family_expires_at"].decode(Int64?.self)
                guard now < (try row["expires_at"].decode(Int64.self)), familyExpiresAt.map({ now < $0 }) ?? true else {
                    return .notFound
                }
                // Spends the token and stores its successor, copied from it, in one statement of the same transaction.
                try await connection.query(
                    """
                    WITH spent AS (
                        UPDATE idp_refresh_tokens SET used_at = \(now) WHERE token_hash = \(hash)
                        RETURNING family_id, client_id, scope, subject, auth_time, amr, identity
                    )
                    INSERT INTO idp_refresh_tokens (token_hash, family_id, client_id, scope, subject, auth_time, amr, identity,
                                                    issued_at, expires_at)
                    SELECT \(successor.tokenHash), family_id, client_id, scope, subject, auth_time, amr,
                           COALESCE(\(replacementIdentity), identity),
                           \(successor.issuedAt.millisecondsSince1970), \(successor.expiresAt.millisecondsSince1970)
                    FROM spent
                    """, logger: logger)
                return .valid(try Self.refreshToken(row))
            }
        }
    }

    public func revokeFamily(id: String) async throws {
        try await database.run("revoke refresh family") {
            // An unknown family is remembered as revoked, so a token stored for it later stays revoked.
            try await client.query(
                """
                INSERT INTO idp_refresh_families (id, revoked, expires_at) VALUES (\(id), TRUE, NULL)
                ON CONFLICT (id) DO UPDATE SET revoked = TRUE
                """, logger: logger)
        }
    }

    public func refreshToken(hash: String) async throws -> RefreshTokenRecord? {
        try await database.run("read refresh token") {
            try await client.query("SELECT * FROM idp_refresh_tokens WHERE token_hash = \(hash)", logger: logger)
                .collect().first.map { try Self.refreshToken($0.makeRandomAccess()) }
        }
    }

    public func familyOfRefreshToken(hash: String) async throws -> String? {
        try await database.run("read refresh token") {
            try await client.query(
                "SELECT family_id FROM idp_refresh_tokens WHERE token_hash = \(hash)", logger: logger
            )
            .collect().first.map { try $0.decode(String.self) }
        }
    }

    // MARK: Device codes

    public func insertDeviceCode(_ device: DeviceCodeRecord) async throws {
        let approval = device.approval
        let identity = try approval?.authentication.identity?.jsonText()
        try await database.run("store device code", duplicate: .duplicate("device or user code", device.userCode)) {
            try await client.query(
                """
                INSERT INTO idp_device_codes (device_code_hash, user_code, client_id, scope, poll_interval, expires_at, status,
                    approval_subject, approval_auth_time, approval_amr, approval_identity, approval_family_id)
                VALUES (\(device.deviceCodeHash), \(device.userCode), \(device.clientID), \(device.scope), \(device.interval),
                        \(device.expiresAt.millisecondsSince1970), \(device.status.rawValue),
                        \(approval?.authentication.subject), \(approval?.authentication.authTime.millisecondsSince1970),
                        \(approval?.authentication.amr), \(identity), \(approval?.familyID))
                """, logger: logger)
        }
    }

    public func deviceCode(userCode: String, now: Date) async throws -> DeviceCodeRecord? {
        try await database.run("read device code") {
            try await client.query(
                """
                SELECT * FROM idp_device_codes WHERE user_code = \(userCode) AND expires_at > \(now.millisecondsSince1970)
                """, logger: logger
            ).collect().first.map { try Self.deviceCode($0.makeRandomAccess()) }
        }
    }

    public func approveDevice(userCode: String, approval: DeviceApproval, now: Date) async throws -> Bool {
        let authentication = approval.authentication
        let identity = try authentication.identity?.jsonText()
        return try await database.run("approve device code") {
            try await !client.query(
                """
                UPDATE idp_device_codes
                SET status = 'approved', approval_subject = \(authentication.subject),
                    approval_auth_time = \(authentication.authTime.millisecondsSince1970),
                    approval_amr = \(authentication.amr), approval_identity = \(identity),
                    approval_family_id = \(approval.familyID)
                WHERE user_code = \(userCode) AND status = 'pending' AND expires_at > \(now.millisecondsSince1970)
                RETURNING 1
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func denyDevice(userCode: String, now: Date) async throws -> Bool {
        try await database.run("deny device code") {
            try await !client.query(
                """
                UPDATE idp_device_codes SET status = 'denied'
                WHERE user_code = \(userCode) AND status = 'pending' AND expires_at > \(now.millisecondsSince1970)
                RETURNING 1
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func pollDevice(deviceCodeHash: String, now: Date) async throws -> DevicePoll {
        let now = now.millisecondsSince1970
        return try await database.run("poll device code") {
            try await client.withTransaction(logger: logger) { connection -> DevicePoll in
                let rows = try await connection.query(
                    """
                    SELECT * FROM idp_device_codes WHERE device_code_hash = \(deviceCodeHash) FOR UPDATE
                    """, logger: logger
                ).collect()
                guard let row = rows.first?.makeRandomAccess() else { return .notFound }
                var device = try Self.deviceCode(row)
                let lastPolledAt = try row["last_polled_at"].decode(Int64?.self)
                switch pollDecision(device: device, lastPolledAt: lastPolledAt, now: now) {
                case .answer(let poll):
                    return poll
                case .handOut:
                    try await connection.query(
                        """
                        UPDATE idp_device_codes SET status = 'consumed' WHERE device_code_hash = \(deviceCodeHash)
                        """, logger: logger)
                    device.status = .consumed
                    return .approved(device)
                case .recordPoll(let interval, let poll):
                    try await connection.query(
                        """
                        UPDATE idp_device_codes SET last_polled_at = \(now), poll_interval = \(interval)
                        WHERE device_code_hash = \(deviceCodeHash)
                        """, logger: logger)
                    return poll
                }
            }
        }
    }

    // MARK: Single-use values and throttle counters

    public func spendOnce(key: String, expiresAt: Date, now: Date) async throws -> Bool {
        let now = now.millisecondsSince1970
        return try await database.run("spend a single-use value") {
            // The row lock of ON CONFLICT makes a concurrent spend of the same key wait, then see this one's expiry.
            let rows = try await client.query(
                """
                INSERT INTO idp_single_use (key, expires_at) VALUES (\(key), \(expiresAt.millisecondsSince1970))
                ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE idp_single_use.expires_at <= \(now)
                RETURNING 1
                """, logger: logger
            ).collect()
            return !rows.isEmpty
        }
    }

    public func addToCounters(_ keys: [String], delta: Int, window: TimeInterval, now: Date) async throws
        -> [ThrottleCounter]
    {
        let now = now.millisecondsSince1970
        let expiresAt = now + Int64((window * 1000).rounded())
        let delta = Int64(delta)
        return try await database.run("count an attempt") {
            try await client.withTransaction(logger: logger) { connection in
                // Rows are locked in key order, so two transactions counting the same keys cannot deadlock.
                var result: [String: ThrottleCounter] = [:]
                for key in Set(keys).sorted() {
                    let rows: [PostgresRow]
                    if delta > 0 {
                        rows = try await connection.query(
                            """
                            INSERT INTO idp_counters AS c (key, count, last_increase, expires_at)
                            VALUES (\(key), \(delta), \(now), \(expiresAt))
                            ON CONFLICT (key) DO UPDATE
                            SET count = CASE WHEN c.expires_at > \(now) THEN c.count ELSE 0 END + \(delta),
                                last_increase = \(now), expires_at = \(expiresAt)
                            RETURNING count, last_increase
                            """, logger: logger
                        ).collect()
                    } else {
                        rows = try await connection.query(
                            """
                            UPDATE idp_counters SET count = greatest(0, count + \(delta))
                            WHERE key = \(key) AND expires_at > \(now)
                            RETURNING count, last_increase
                            """, logger: logger
                        ).collect()
                    }
                    result[key] = try rows.first.map(Self.counter) ?? .zero
                }
                return keys.map { result[$0] ?? .zero }
            }
        }
    }

    public func counters(_ keys: [String], now: Date) async throws -> [ThrottleCounter] {
        let now = now.millisecondsSince1970
        return try await database.run("read throttle counters") {
            var found: [String: ThrottleCounter] = [:]
            let rows = try await client.query(
                """
                SELECT key, count, last_increase FROM idp_counters WHERE key = ANY(\(keys)) AND expires_at > \(now)
                """, logger: logger
            ).collect()
            for row in rows {
                let (key, count, last) = try row.decode((String, Int64, Int64).self)
                found[key] = ThrottleCounter(count: Int(count), lastIncrease: Date(millisecondsSince1970: last))
            }
            return keys.map { found[$0] ?? .zero }
        }
    }

    public func deleteCounter(_ key: String) async throws {
        try await database.run("delete a throttle counter") {
            try await client.query("DELETE FROM idp_counters WHERE key = \(key)", logger: logger)
        }
    }

    private static func counter(_ row: PostgresRow) throws -> ThrottleCounter {
        let (count, last) = try row.decode((Int64, Int64).self)
        return ThrottleCounter(count: Int(count), lastIncrease: Date(millisecondsSince1970: last))
    }

    // MARK: Passkeys

    public func insertPasskey(_ passkey: PasskeyRecord) async throws -> Bool {
        let transports = try Self.json(passkey.transports)
        return try await database.run("store passkey") {
            // A credential id already stored stays its owner's (WebAuthn §7.1): the insert does nothing.
            try await !client.query(
                """
                INSERT INTO idp_passkeys (credential_id, subject, user_handle, name, public_key, sign_count, aaguid,
                    backup_eligible, backed_up, transports, attestation, created_at, last_used_at)
                VALUES (\(passkey.credentialID), \(passkey.subject), \(passkey.userHandle), \(passkey.name),
                        \(Data(passkey.publicKey)), \(passkey.signCount), \(passkey.aaguid), \(passkey.backupEligible),
                        \(passkey.backedUp), \(transports), \(passkey.attestation), \(passkey.createdAt.millisecondsSince1970),
                        \(passkey.lastUsedAt?.millisecondsSince1970))
                ON CONFLICT (credential_id) DO NOTHING
                RETURNING 1
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func passkeys(subject: String) async throws -> [PasskeyRecord] {
        try await database.run("read passkeys") {
            try await client.query(
                "SELECT * FROM idp_passkeys WHERE subject = \(subject) ORDER BY created_at, seq", logger: logger
            ).collect().map { try Self.passkey($0.makeRandomAccess()) }
        }
    }

    public func passkey(credentialID: String) async throws -> PasskeyRecord? {
        try await database.run("read passkey") {
            try await client.query("SELECT * FROM idp_passkeys WHERE credential_id = \(credentialID)", logger: logger)
                .collect().first.map { try Self.passkey($0.makeRandomAccess()) }
        }
    }

    public func recordPasskeyUse(
        credentialID: String, previousSignCount: Int64, signCount: Int64, backedUp: Bool, at: Date
    ) async throws -> Bool {
        try await database.run("record a passkey's use") {
            // The row lock makes a concurrent update wait, then re-check the counter this one set (READ COMMITTED
            // re-evaluates the WHERE clause on the updated row), so of two sign-ins with one counter value one wins.
            try await !client.query(
                """
                UPDATE idp_passkeys
                SET sign_count = \(signCount), backed_up = \(backedUp), last_used_at = \(at.millisecondsSince1970)
                WHERE credential_id = \(credentialID) AND sign_count = \(previousSignCount)
                RETURNING 1
                """, logger: logger
            ).collect().isEmpty
        }
    }

    public func deletePasskey(credentialID: String, subject: String) async throws -> Bool {
        try await database.run("delete passkey") {
            try await !client.query(
                """
                DELETE FROM idp_passkeys WHERE credential_id = \(credentialID) AND subject = \(subject) RETURNING 1
                """, logger: logger
            ).collect().isEmpty
        }
    }

    // MARK: Housekeeping

    public func purgeExpired(now: Date) async throws {
        let now = now.millisecondsSince1970
        try await database.run("purge expired records") {
            try await client.withTransaction(logger: logger) { connection in
                try await connection.query("DELETE FROM idp_sessions WHERE expires_at <= \(now)", logger: logger)
                try await connection.query("DELETE FROM idp_single_use WHERE expires_at <= \(now)", logger: logger)
                try await connection.query("DELETE FROM idp_counters WHERE expires_at <= \(now)", logger: logger)
                try await connection.query(
                    "DELETE FROM idp_authorization_codes WHERE expires_at <= \(now)", logger: logger)
                try await connection.query("DELETE FROM idp_device_codes WHERE expires_at <= \(now)", logger: logger)
                // Tokens go with their family (ON DELETE CASCADE).
                try await connection.query(
                    "DELETE FROM idp_refresh_families WHERE expires_at <= \(now)", logger: logger)
                // A family revoked before it had tokens is kept while a code or device approval can still start it.
                try await connection.query(
                    """
                    DELETE FROM idp_refresh_families f
                    WHERE f.expires_at IS NULL
                      AND NOT EXISTS (SELECT 1 FROM idp_authorization_codes c WHERE c.family_id = f.id)
                      AND NOT EXISTS (SELECT 1 FROM idp_device_codes d WHERE d.approval_family_id = f.id)
                    """, logger: logger)
            }
        }
    }

    // MARK: Rows

    private static func date(_ cell: PostgresCell) throws -> Date {
        Date(millisecondsSince1970: try cell.decode(Int64.self))
    }

    private static func optionalDate(_ cell: PostgresCell) throws -> Date? {
        try cell.decode(Int64?.self).map(Date.init(millisecondsSince1970:))
    }

    private static func authentication(_ row: PostgresRandomAccessRow, prefix: String = "") throws -> Authentication {
        Authentication(
            subject: try row[prefix + "subject"].decode(String.self), authTime: try date(row[prefix + "auth_time"]),
            amr: try row[prefix + "amr"].decode([String].self),
            identity: try ConnectedIdentity.fromStore(row[prefix + "identity"].decode(String?.self)))
    }

    private static func signingKey(_ row: PostgresRow) throws -> SigningKeyRecord {
        let row = row.makeRandomAccess()
        return SigningKeyRecord(
            kid: try row["kid"].decode(String.self), algorithm: try row["algorithm"].decode(String.self),
            sealedPrivateKey: try row["sealed_private_key"].decode(Data.self),
            publicJWK: try row["public_jwk"].decode(String.self), createdAt: try date(row["created_at"]),
            activatesAt: try date(row["activates_at"]), retiresAt: try optionalDate(row["retires_at"]),
            expiresAt: try optionalDate(row["expires_at"]))
    }

    private static func code(_ row: PostgresRandomAccessRow) throws -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            codeHash: try row["code_hash"].decode(String.self), clientID: try row["client_id"].decode(String.self),
            redirectURI: try row["redirect_uri"].decode(String.self), scope: try row["scope"].decode(String.self),
            nonce: try row["nonce"].decode(String?.self), codeChallenge: try row["code_challenge"].decode(String?.self),
            codeChallengeMethod: try row["code_challenge_method"].decode(String?.self),
            authentication: try authentication(row), familyID: try row["family_id"].decode(String.self),
            expiresAt: try date(row["expires_at"]))
    }

    private static func refreshToken(_ row: PostgresRandomAccessRow) throws -> RefreshTokenRecord {
        RefreshTokenRecord(
            tokenHash: try row["token_hash"].decode(String.self), familyID: try row["family_id"].decode(String.self),
            clientID: try row["client_id"].decode(String.self), scope: try row["scope"].decode(String.self),
            authentication: try authentication(row), issuedAt: try date(row["issued_at"]),
            expiresAt: try date(row["expires_at"]))
    }

    /// A passkey's transports as the JSON text the store keeps.
    private static func json(_ list: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
    }

    private static func passkey(_ row: PostgresRandomAccessRow) throws -> PasskeyRecord {
        let transportsText = try row["transports"].decode(String.self)
        let transports: [String]
        do {
            transports = try JSONDecoder().decode([String].self, from: Data(transportsText.utf8))
        } catch {
            throw IdPStoreError(
                "the IdP database holds an unreadable transports list \(transportsText.prefix(40)): \(error)")
        }
        return PasskeyRecord(
            credentialID: try row["credential_id"].decode(String.self), subject: try row["subject"].decode(String.self),
            userHandle: try row["user_handle"].decode(String.self), name: try row["name"].decode(String.self),
            publicKey: [UInt8](try row["public_key"].decode(Data.self)),
            signCount: try row["sign_count"].decode(Int64.self), aaguid: try row["aaguid"].decode(String.self),
            backupEligible: try row["backup_eligible"].decode(Bool.self),
            backedUp: try row["backed_up"].decode(Bool.self), transports: transports,
            attestation: try row["attestation"].decode(String.self), createdAt: try date(row["created_at"]),
            lastUsedAt: try optionalDate(row["last_used_at"]))
    }

    private static func deviceCode(_ row: PostgresRandomAccessRow) throws -> DeviceCodeRecord {
        let statusText = try row["status"].decode(String.self)
        guard let status = DeviceStatus(rawValue: statusText) else {
            throw IdPStoreError(
                "the IdP database holds an unknown device status \(statusText); was it written by a newer keyless?")
        }
        var approval: DeviceApproval?
        if let familyID = try row["approval_family_id"].decode(String?.self) {
            approval = DeviceApproval(authentication: try authentication(row, prefix: "approval_"), familyID: familyID)
        }
        return DeviceCodeRecord(
            deviceCodeHash: try row["device_code_hash"].decode(String.self),
            userCode: try row["user_code"].decode(String.self), clientID: try row["client_id"].decode(String.self),
            scope: try row["scope"].decode(String.self), interval: try row["poll_interval"].decode(Int.self),
            expiresAt: try date(row["expires_at"]), status: status, approval: approval)
    }
}
