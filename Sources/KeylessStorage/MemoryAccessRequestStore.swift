import Foundation

/// An `AccessRequestStore` in memory, for tests and a server run without a store file: nothing survives the process.
/// It keeps the SQL stores' millisecond precision, and being an actor makes every compare-and-set atomic.
public actor MemoryAccessRequestStore: AccessRequestStore {
    /// In insertion order (the tie-break of `requests`).
    private var rows: [AccessRequestRecord] = []

    /// An empty store.
    public init() {}

    public func migrate() async throws {}
    public func close() async throws {}

    public func insertRequest(_ request: AccessRequestRecord) async throws {
        guard !rows.contains(where: { $0.id == request.id }) else {
            throw IdPStoreError.duplicate("access request", request.id)
        }
        rows.append(request.roundedToMilliseconds)
    }

    public func request(id: String) async throws -> AccessRequestRecord? { rows.first { $0.id == id } }

    public func requests(_ query: AccessRequestQuery) async throws -> [AccessRequestRecord] {
        let since = query.since?.roundedToMilliseconds
        let matching = rows.enumerated().filter { _, row in
            (query.statuses?.contains(row.status) ?? true)
                && (query.requesterIssuer.map { $0 == row.requester.issuer } ?? true)
                && (query.requesterSubject.map { $0 == row.requester.subject } ?? true)
                && (since.map { row.createdAt >= $0 } ?? true)
        }
        return
            matching
            .sorted { ($0.element.createdAt, $0.offset) > ($1.element.createdAt, $1.offset) }
            .prefix(max(0, query.limit)).map(\.element)
    }

    public func decide(id: String, _ decision: AccessDecision, now: Date) async throws -> AccessRequestRecord? {
        let now = now.roundedToMilliseconds
        guard let index = rows.firstIndex(where: { $0.id == id }), rows[index].status == .pending,
            now < rows[index].pendingUntil
        else { return nil }
        rows[index] = rows[index].applying(decision, now: now).roundedToMilliseconds
        return rows[index]
    }

    public func revoke(id: String, by actor: AccessActor, reason: String?, now: Date) async throws
        -> AccessRequestRecord?
    {
        let now = now.roundedToMilliseconds
        guard let index = rows.firstIndex(where: { $0.id == id }), rows[index].status == .approved,
            let endsAt = rows[index].endsAt, now < endsAt
        else { return nil }
        rows[index] = rows[index].revoked(by: actor, reason: reason, now: now).roundedToMilliseconds
        return rows[index]
    }

    public func activeGrant(issuer: String, subject: String, roleArn: String, now: Date) async throws
        -> AccessRequestRecord?
    {
        let now = now.roundedToMilliseconds
        return
            rows
            .filter {
                $0.status == .approved && $0.requester.issuer == issuer && $0.requester.subject == subject
                    && $0.roleArn == roleArn && ($0.startsAt ?? now) <= now && now < ($0.endsAt ?? now)
            }
            .max { ($0.endsAt ?? now) < ($1.endsAt ?? now) }
    }

    public func expire(now: Date) async throws -> [AccessRequestRecord] {
        let now = now.roundedToMilliseconds
        var moved: [AccessRequestRecord] = []
        for index in rows.indices {
            let row = rows[index]
            let due =
                (row.status == .pending && row.pendingUntil <= now)
                || (row.status == .approved && (row.endsAt ?? now) <= now)
            guard due else { continue }
            rows[index] = row.expired(now: now).roundedToMilliseconds
            moved.append(rows[index])
        }
        return moved
    }

    public func purge(endedBefore before: Date) async throws {
        let before = before.roundedToMilliseconds
        rows.removeAll { row in
            [.denied, .cancelled, .expired, .revoked].contains(row.status) && (row.endedAt ?? row.createdAt) < before
        }
    }
}
