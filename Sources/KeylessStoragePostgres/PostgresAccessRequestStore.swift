import Foundation
import KeylessStorage
import Logging
import PostgresNIO

/// An `AccessRequestStore` in a PostgreSQL database, for several replicas of the access server sharing one database.
///
/// Every compare-and-set is one `UPDATE … WHERE id = … AND status = … AND <deadline> > now RETURNING *`: under READ
/// COMMITTED a concurrent UPDATE of the same row waits for the first to commit, then re-checks its WHERE on the row the
/// first stored and changes nothing, so of two replicas exactly one succeeds. Times are stored as BIGINT milliseconds
/// since 1970; each actor as three columns (issuer, subject, name), NULL when there is none. Tables are prefixed
/// `access_`, so the database can be shared with the provider's store and other applications.
public final class PostgresAccessRequestStore: AccessRequestStore {
    /// Where the store connects, without the password (for messages).
    public var endpoint: String { database.endpoint }
    private let database: PostgresDatabase
    private var client: PostgresClient { database.client }
    private var logger: Logger { database.logger }

    /// Connects to `url`, `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE[&sslrootcert=PEM]]`, with the
    /// TLS modes, the lazy connection and the `password` given apart of `PostgresIdPStore.init(url:password:logger:)`.
    ///
    /// Without a `logger`, PostgresNIO's messages below warning level (such as connections abandoned at `close()`) are
    /// dropped.
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

    /// An arbitrary constant naming the advisory lock of this schema's migrations.
    private static let migrationLock: Int64 = 0x6b65_796c_6573_7303  // "keyless" + 3

    public func migrate() async throws {
        try await database.migrate(
            PostgresSchema.accessRequestMigrations, recordedIn: "access_schema_migrations", lock: Self.migrationLock,
            schema: "access request schema")
    }

    // MARK: Requests

    public func insertRequest(_ request: AccessRequestRecord) async throws {
        try await database.run("store access request", duplicate: .duplicate("access request", request.id)) {
            try await client.query(
                """
                INSERT INTO access_requests (id, requester_issuer, requester_subject, requester_name, role_arn, reason,
                    duration_seconds, created_at, pending_until, status, decided_by_issuer, decided_by_subject,
                    decided_by_name, decided_at, decision_note, self_approved, starts_at, ends_at, ended_by_issuer,
                    ended_by_subject, ended_by_name, end_note, ended_at)
                VALUES (\(request.id), \(request.requester.issuer), \(request.requester.subject),
                        \(request.requester.name), \(request.roleArn), \(request.reason), \(request.durationSeconds),
                        \(request.createdAt.millisecondsSince1970), \(request.pendingUntil.millisecondsSince1970),
                        \(request.status.rawValue), \(request.decidedBy?.issuer), \(request.decidedBy?.subject),
                        \(request.decidedBy?.name), \(request.decidedAt?.millisecondsSince1970), \(request.decisionNote),
                        \(request.selfApproved), \(request.startsAt?.millisecondsSince1970),
                        \(request.endsAt?.millisecondsSince1970), \(request.endedBy?.issuer), \(request.endedBy?.subject),
                        \(request.endedBy?.name), \(request.endNote), \(request.endedAt?.millisecondsSince1970))
                """, logger: logger)
        }
    }

    public func request(id: String) async throws -> AccessRequestRecord? {
        try await database.run("read access request") {
            try await client.query("SELECT * FROM access_requests WHERE id = \(id)", logger: logger)
                .collect().first.map(Self.request)
        }
    }

    public func requests(_ query: AccessRequestQuery) async throws -> [AccessRequestRecord] {
        var conditions: [String] = []
        var binds = PostgresBindings()
        if let statuses = query.statuses {
            binds.append(statuses.map(\.rawValue).sorted())
            conditions.append("status = ANY($\(binds.count))")
        }
        if let issuer = query.requesterIssuer {
            binds.append(issuer)
            conditions.append("requester_issuer = $\(binds.count)")
        }
        if let subject = query.requesterSubject {
            binds.append(subject)
            conditions.append("requester_subject = $\(binds.count)")
        }
        if let since = query.since {
            binds.append(since.millisecondsSince1970)
            conditions.append("created_at >= $\(binds.count)")
        }
        binds.append(max(0, query.limit))
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT * FROM access_requests \(filter) ORDER BY created_at DESC, seq DESC LIMIT $\(binds.count)"
        return try await database.run("list access requests") {
            try await client.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger)
                .collect().map(Self.request)
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
        change: (AccessRequestRecord) -> AccessRequestRecord
    ) async throws -> AccessRequestRecord? {
        try await database.run(action) {
            guard
                let row = try await client.query("SELECT * FROM access_requests WHERE id = \(id)", logger: logger)
                    .collect().first?.makeRandomAccess()
            else { return nil }
            // The UPDATE alone decides: its WHERE holds the condition the new state is computed under, and `seq` pins
            // the row it was computed from (not one stored under the same id after a purge).
            let seq = try row["seq"].decode(Int64.self)
            let next = change(try Self.request(row))
            return try await client.query(
                """
                UPDATE access_requests
                SET status = \(next.status.rawValue), decided_by_issuer = \(next.decidedBy?.issuer),
                    decided_by_subject = \(next.decidedBy?.subject), decided_by_name = \(next.decidedBy?.name),
                    decided_at = \(next.decidedAt?.millisecondsSince1970), decision_note = \(next.decisionNote),
                    self_approved = \(next.selfApproved), starts_at = \(next.startsAt?.millisecondsSince1970),
                    ends_at = \(next.endsAt?.millisecondsSince1970), ended_by_issuer = \(next.endedBy?.issuer),
                    ended_by_subject = \(next.endedBy?.subject), ended_by_name = \(next.endedBy?.name),
                    end_note = \(next.endNote), ended_at = \(next.endedAt?.millisecondsSince1970)
                WHERE id = \(id) AND seq = \(seq) AND status = \(status.rawValue)
                  AND \(unescaped: deadline) > \(now.millisecondsSince1970)
                RETURNING *
                """, logger: logger
            ).collect().first.map(Self.request)
        }
    }

    public func activeGrant(issuer: String, subject: String, roleArn: String, now: Date) async throws
        -> AccessRequestRecord?
    {
        let now = now.millisecondsSince1970
        return try await database.run("read active grant") {
            try await client.query(
                """
                SELECT * FROM access_requests
                WHERE requester_issuer = \(issuer) AND requester_subject = \(subject) AND role_arn = \(roleArn)
                  AND status = 'approved' AND starts_at <= \(now) AND ends_at > \(now)
                ORDER BY ends_at DESC, seq
                LIMIT 1
                """, logger: logger
            ).collect().first.map(Self.request)
        }
    }

    public func expire(now: Date) async throws -> [AccessRequestRecord] {
        let now = now.millisecondsSince1970
        return try await database.run("expire access requests") {
            // The rows are locked in `seq` order, so two replicas sweeping together cannot deadlock; the second waits
            // for the first, then re-checks its WHERE on what the first stored and skips the requests it moved. The
            // end time is `AccessRequestRecord.expired(now:)`'s: a grant ended when it ran out, a pending request when
            // it was due.
            try await client.query(
                """
                WITH due AS (
                    SELECT id FROM access_requests
                    WHERE (status = 'pending' AND pending_until <= \(now)) OR (status = 'approved' AND ends_at <= \(now))
                    ORDER BY seq
                    FOR UPDATE
                )
                UPDATE access_requests r
                SET status = 'expired', ended_at = CASE r.status WHEN 'approved' THEN r.ends_at ELSE r.pending_until END
                FROM due
                WHERE r.id = due.id
                RETURNING r.*
                """, logger: logger
            ).collect().map { $0.makeRandomAccess() }
                .sorted { try $0["seq"].decode(Int64.self) < $1["seq"].decode(Int64.self) }
                .map(Self.request)
        }
    }

    public func purge(endedBefore before: Date) async throws {
        try await database.run("purge ended access requests") {
            try await client.query(
                """
                DELETE FROM access_requests
                WHERE status IN ('denied', 'cancelled', 'expired', 'revoked')
                  AND COALESCE(ended_at, created_at) < \(before.millisecondsSince1970)
                """, logger: logger)
        }
    }

    // MARK: Rows

    private static func date(_ cell: PostgresCell) throws -> Date? {
        try cell.decode(Int64?.self).map(Date.init(millisecondsSince1970:))
    }

    private static func actor(_ row: PostgresRandomAccessRow, _ prefix: String) throws -> AccessActor? {
        guard let issuer = try row[prefix + "_issuer"].decode(String?.self),
            let subject = try row[prefix + "_subject"].decode(String?.self),
            let name = try row[prefix + "_name"].decode(String?.self)
        else { return nil }
        return AccessActor(issuer: issuer, subject: subject, name: name)
    }

    private static func request(_ row: PostgresRow) throws -> AccessRequestRecord {
        try request(row.makeRandomAccess())
    }

    private static func request(_ row: PostgresRandomAccessRow) throws -> AccessRequestRecord {
        let statusText = try row["status"].decode(String.self)
        guard let status = AccessRequestStatus(rawValue: statusText) else {
            throw IdPStoreError(
                "the access request database holds an unknown status \(statusText); was it written by a newer keyless?")
        }
        var request = AccessRequestRecord(
            id: try row["id"].decode(String.self),
            requester: AccessActor(
                issuer: try row["requester_issuer"].decode(String.self),
                subject: try row["requester_subject"].decode(String.self),
                name: try row["requester_name"].decode(String.self)),
            roleArn: try row["role_arn"].decode(String.self), reason: try row["reason"].decode(String.self),
            durationSeconds: try row["duration_seconds"].decode(Int.self),
            createdAt: Date(millisecondsSince1970: try row["created_at"].decode(Int64.self)),
            pendingUntil: Date(millisecondsSince1970: try row["pending_until"].decode(Int64.self)))
        request.status = status
        request.decidedBy = try actor(row, "decided_by")
        request.decidedAt = try date(row["decided_at"])
        request.decisionNote = try row["decision_note"].decode(String?.self)
        request.selfApproved = try row["self_approved"].decode(Bool.self)
        request.startsAt = try date(row["starts_at"])
        request.endsAt = try date(row["ends_at"])
        request.endedBy = try actor(row, "ended_by")
        request.endNote = try row["end_note"].decode(String?.self)
        request.endedAt = try date(row["ended_at"])
        return request
    }
}
