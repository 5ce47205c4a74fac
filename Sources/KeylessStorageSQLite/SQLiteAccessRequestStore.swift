import Foundation
import GRDB
import KeylessStorage

/// An `AccessRequestStore` in one SQLite file (WAL mode), the default for a single access server; several processes may
/// share the file.
///
/// Every compare-and-set (`decide`, `revoke`, `expire`) runs in one `BEGIN IMMEDIATE` transaction, its UPDATE's WHERE
/// re-checking the status and times: SQLite lets one writer in at a time across processes, so of two processes changing
/// one request only the first changes a row. Times are stored as milliseconds since 1970; each actor as three columns
/// (issuer, subject, name), NULL when there is none. `seq` orders requests made in the same millisecond.
public final class SQLiteAccessRequestStore: AccessRequestStore {
    /// The database file.
    public let path: String
    private let file: SQLiteFile

    /// Opens (creating it if needed, mode 0600) the database at `path`; the directory must exist. Call `migrate()` next.
    public init(path: String) throws {
        self.path = path
        file = try SQLiteFile(path: path, label: "keyless-access", what: "access request database")
    }

    // MARK: Schema

    private static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE access_requests (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        requester_issuer TEXT NOT NULL,
                        requester_subject TEXT NOT NULL,
                        requester_name TEXT NOT NULL,
                        role_arn TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        duration_seconds INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        pending_until INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        decided_by_issuer TEXT,
                        decided_by_subject TEXT,
                        decided_by_name TEXT,
                        decided_at INTEGER,
                        decision_note TEXT,
                        self_approved INTEGER NOT NULL,
                        starts_at INTEGER,
                        ends_at INTEGER,
                        ended_by_issuer TEXT,
                        ended_by_subject TEXT,
                        ended_by_name TEXT,
                        end_note TEXT,
                        ended_at INTEGER
                    );
                    CREATE INDEX access_requests_status ON access_requests (status);
                    CREATE INDEX access_requests_requester_role
                        ON access_requests (requester_issuer, requester_subject, role_arn, status);
                    """)
        }
        return migrator
    }()

    public func migrate() async throws {
        try await file.migrate(Self.migrator)
    }

    public func close() async throws {
        try file.pool.close()
    }

    // MARK: Requests

    public func insertRequest(_ request: AccessRequestRecord) async throws {
        try await file.write("store access request", duplicate: .duplicate("access request", request.id)) { db in
            try db.run(
                sql: """
                    INSERT INTO access_requests (id, requester_issuer, requester_subject, requester_name, role_arn, reason,
                        duration_seconds, created_at, pending_until, status, decided_by_issuer, decided_by_subject,
                        decided_by_name, decided_at, decision_note, self_approved, starts_at, ends_at, ended_by_issuer,
                        ended_by_subject, ended_by_name, end_note, ended_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    request.id, request.requester.issuer, request.requester.subject, request.requester.name,
                    request.roleArn, request.reason, request.durationSeconds, request.createdAt.millisecondsSince1970,
                    request.pendingUntil.millisecondsSince1970,
                ] + Self.stateArguments(request))
        }
    }

    public func request(id: String) async throws -> AccessRequestRecord? {
        try await file.read("read access request") { db in
            try db.row(sql: "SELECT * FROM access_requests WHERE id = ?", arguments: [id]).map(Self.request)
        }
    }

    public func requests(_ query: AccessRequestQuery) async throws -> [AccessRequestRecord] {
        var conditions: [String] = []
        var arguments = StatementArguments()
        if let statuses = query.statuses {
            conditions.append("status IN (\(databaseQuestionMarks(count: statuses.count)))")
            arguments += StatementArguments(statuses.map(\.rawValue).sorted())
        }
        if let issuer = query.requesterIssuer {
            conditions.append("requester_issuer = ?")
            arguments += [issuer]
        }
        if let subject = query.requesterSubject {
            conditions.append("requester_subject = ?")
            arguments += [subject]
        }
        if let since = query.since {
            conditions.append("created_at >= ?")
            arguments += [since.millisecondsSince1970]
        }
        arguments += [max(0, query.limit)]
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT * FROM access_requests \(filter) ORDER BY created_at DESC, seq DESC LIMIT ?"
        return try await file.read("list access requests") { [arguments] db in
            try db.rows(sql: sql, arguments: arguments).map(Self.request)
        }
    }

    public func decide(id: String, _ decision: AccessDecision, now: Date) async throws -> AccessRequestRecord? {
        let now = now.roundedToMilliseconds
        return try await compareAndSet(
            "decide access request", id: id, status: .pending, before: "pending_until", now,
            change: { $0.applying(decision, now: now) })
    }

    public func revoke(id: String, by actor: AccessActor, reason: String?, now: Date) async throws
        -> AccessRequestRecord?
    {
        let now = now.roundedToMilliseconds
        return try await compareAndSet(
            "revoke access request", id: id, status: .approved, before: "ends_at", now,
            change: { $0.revoked(by: actor, reason: reason, now: now) })
    }

    /// Stores `change(request)` as request `id` if the request still has `status` and `now` is before its `deadline`
    /// column, and returns it as stored; nil when it does not (any more), or there is no such request.
    private func compareAndSet(
        _ action: String, id: String, status: AccessRequestStatus, before deadline: String, _ now: Date,
        change: @escaping @Sendable (AccessRequestRecord) -> AccessRequestRecord
    ) async throws -> AccessRequestRecord? {
        try await file.write(action) { db in
            guard let row = try db.row(sql: "SELECT * FROM access_requests WHERE id = ?", arguments: [id]) else {
                return nil
            }
            // The UPDATE alone decides: its WHERE holds the condition the new state is computed under.
            let next = change(try Self.request(row))
            return try db.row(
                sql: """
                    UPDATE access_requests
                    SET status = ?, decided_by_issuer = ?, decided_by_subject = ?, decided_by_name = ?, decided_at = ?,
                        decision_note = ?, self_approved = ?, starts_at = ?, ends_at = ?, ended_by_issuer = ?,
                        ended_by_subject = ?, ended_by_name = ?, end_note = ?, ended_at = ?
                    WHERE id = ? AND status = ? AND \(deadline) > ?
                    RETURNING *
                    """,
                arguments: Self.stateArguments(next) + [id, status.rawValue, now.millisecondsSince1970]
            ).map(Self.request)
        }
    }

    public func activeGrant(issuer: String, subject: String, roleArn: String, now: Date) async throws
        -> AccessRequestRecord?
    {
        let now = now.millisecondsSince1970
        return try await file.read("read active grant") { db in
            try db.row(
                sql: """
                    SELECT * FROM access_requests
                    WHERE requester_issuer = ? AND requester_subject = ? AND role_arn = ? AND status = 'approved'
                      AND starts_at <= ? AND ends_at > ?
                    ORDER BY ends_at DESC, seq
                    LIMIT 1
                    """,
                arguments: [issuer, subject, roleArn, now, now]
            ).map(Self.request)
        }
    }

    public func expire(now: Date) async throws -> [AccessRequestRecord] {
        let now = now.millisecondsSince1970
        return try await file.write("expire access requests") { db in
            // As `AccessRequestRecord.expired(now:)`: a grant ended when it ran out, a pending request when it was due.
            try db.rows(
                sql: """
                    UPDATE access_requests
                    SET status = 'expired', ended_at = CASE status WHEN 'approved' THEN ends_at ELSE pending_until END
                    WHERE (status = 'pending' AND pending_until <= ?) OR (status = 'approved' AND ends_at <= ?)
                    RETURNING *
                    """,
                arguments: [now, now]
            )
            .sorted { ($0["seq"] as Int64) < ($1["seq"] as Int64) }
            .map(Self.request)
        }
    }

    public func purge(endedBefore before: Date) async throws {
        try await file.write("purge ended access requests") { db in
            try db.run(
                sql: """
                    DELETE FROM access_requests
                    WHERE status IN ('denied', 'cancelled', 'expired', 'revoked') AND COALESCE(ended_at, created_at) < ?
                    """,
                arguments: [before.millisecondsSince1970])
        }
    }

    // MARK: Rows

    /// The values of the columns a request's state changes (from `status` to `ended_at`), in the table's order.
    private static func stateArguments(_ request: AccessRequestRecord) -> StatementArguments {
        [
            request.status.rawValue, request.decidedBy?.issuer, request.decidedBy?.subject, request.decidedBy?.name,
            request.decidedAt?.millisecondsSince1970, request.decisionNote, request.selfApproved,
            request.startsAt?.millisecondsSince1970, request.endsAt?.millisecondsSince1970, request.endedBy?.issuer,
            request.endedBy?.subject, request.endedBy?.name, request.endNote, request.endedAt?.millisecondsSince1970,
        ]
    }

    private static func date(_ milliseconds: Int64?) -> Date? { milliseconds.map(Date.init(millisecondsSince1970:)) }

    private static func actor(_ row: Row, _ prefix: String) -> AccessActor? {
        guard let issuer = row[prefix + "_issuer"] as String?, let subject = row[prefix + "_subject"] as String?,
            let name = row[prefix + "_name"] as String?
        else { return nil }
        return AccessActor(issuer: issuer, subject: subject, name: name)
    }

    private static func request(_ row: Row) throws -> AccessRequestRecord {
        let statusText: String = row["status"]
        guard let status = AccessRequestStatus(rawValue: statusText) else {
            throw IdPStoreError(
                "the access request database holds an unknown status \(statusText); was it written by a newer keyless?")
        }
        var request = AccessRequestRecord(
            id: row["id"],
            requester: AccessActor(
                issuer: row["requester_issuer"], subject: row["requester_subject"], name: row["requester_name"]),
            roleArn: row["role_arn"], reason: row["reason"], durationSeconds: row["duration_seconds"],
            createdAt: Date(millisecondsSince1970: row["created_at"]),
            pendingUntil: Date(millisecondsSince1970: row["pending_until"]))
        request.status = status
        request.decidedBy = actor(row, "decided_by")
        request.decidedAt = date(row["decided_at"])
        request.decisionNote = row["decision_note"]
        request.selfApproved = row["self_approved"]
        request.startsAt = date(row["starts_at"])
        request.endsAt = date(row["ends_at"])
        request.endedBy = actor(row, "ended_by")
        request.endNote = row["end_note"]
        request.endedAt = date(row["ended_at"])
        return request
    }
}
