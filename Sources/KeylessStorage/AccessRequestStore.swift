import Foundation

/// What the access server keeps between requests: people's requests for roles they are eligible for, and the
/// time-bound grants approved requests become. Replicas share one store (SQLite for one server, PostgreSQL for
/// several); the server keeps nothing else.
///
/// Every change of state is a compare-and-set on the request's status (and its times), atomic across processes sharing
/// the store: of two approvers clicking at once, or two replicas expiring the same grant, exactly one succeeds, and only
/// that one writes the audit record and sends the notification. All times are passed in (`now:`); stores keep
/// millisecond precision (rounding to the nearest millisecond).
public protocol AccessRequestStore: Sendable {
    /// Creates or upgrades the schema; safe to call from several processes at once.
    func migrate() async throws
    /// Releases connections.
    func close() async throws

    /// Stores a new request (status `.pending`); a request whose id is stored already throws `IdPStoreError`.
    func insertRequest(_ request: AccessRequestRecord) async throws
    /// The request with this id, in whatever state.
    func request(id: String) async throws -> AccessRequestRecord?
    /// Requests matching `query`, newest first (requests made in the same millisecond: the later stored first).
    func requests(_ query: AccessRequestQuery) async throws -> [AccessRequestRecord]
    /// Applies `decision` to request `id` only if it is still pending and undecided at `now` (`now < pendingUntil`):
    /// approved (`startsAt` = `now`, `endsAt` = `now` + its duration), denied or cancelled. Returns the request as now
    /// stored, or nil when it was not pending (decided by someone else first, expired, unknown).
    func decide(id: String, _ decision: AccessDecision, now: Date) async throws -> AccessRequestRecord?
    /// Ends the grant of request `id` early (status `.revoked`) only if it is approved and has not ended at `now`.
    /// Returns the request as now stored, or nil.
    func revoke(id: String, by actor: AccessActor, reason: String?, now: Date) async throws -> AccessRequestRecord?
    /// The approved request that grants `roleArn` to the requester `issuer`/`subject` at `now` (`startsAt <= now <
    /// endsAt`), the one ending last when there are several; nil when none does.
    func activeGrant(issuer: String, subject: String, roleArn: String, now: Date) async throws -> AccessRequestRecord?
    /// Moves every pending request whose `pendingUntil` has come and every approved one whose `endsAt` has come to
    /// `.expired`, and returns those it moved (each moved once: of replicas sweeping together, one gets each request).
    func expire(now: Date) async throws -> [AccessRequestRecord]
    /// Deletes requests that ended (denied, cancelled, expired, revoked) before `before`; pending and approved ones stay.
    func purge(endedBefore before: Date) async throws
}

/// The state of an access request.
public enum AccessRequestStatus: String, Sendable, Equatable, CaseIterable, Codable {
    /// Waiting for an approver.
    case pending
    /// Approved: a grant from `startsAt` until `endsAt`.
    case approved
    /// Refused by an approver.
    case denied
    /// Withdrawn by the requester before anyone decided.
    case cancelled
    /// Not decided in time, or a grant that ran its course.
    case expired
    /// A grant ended early, by an approver or the requester.
    case revoked
}

/// Who acted on a request: the issuer and subject of their token and a name for people.
public struct AccessActor: Sendable, Equatable, Codable {
    public var issuer: String
    public var subject: String
    /// Email, else login name, else subject.
    public var name: String

    public init(issuer: String, subject: String, name: String) {
        self.issuer = issuer; self.subject = subject; self.name = name
    }
}

/// An approver's or the requester's decision on a pending request.
public enum AccessDecision: Sendable, Equatable {
    /// Approved by `by` (with `selfApproved` when the policy lets the requester approve their own, break-glass).
    case approve(by: AccessActor, selfApproved: Bool, note: String?)
    /// Denied by `by`, with the reason the requester is shown.
    case deny(by: AccessActor, reason: String)
    /// Withdrawn by the requester.
    case cancel
}

/// One request for a role, and the grant it became.
public struct AccessRequestRecord: Sendable, Equatable {
    /// A short random id people type (`keyless approve ID`): lowercase letters and digits.
    public var id: String
    /// Who asked.
    public var requester: AccessActor
    /// The role's ARN.
    public var roleArn: String
    /// Why, in the requester's words (may be empty where the policy does not require one).
    public var reason: String
    /// How long the grant lasts once approved, in seconds.
    public var durationSeconds: Int
    /// When it was asked for.
    public var createdAt: Date
    /// Until when it may be decided; afterwards it expires.
    public var pendingUntil: Date
    public var status: AccessRequestStatus
    /// Who approved or denied it, and when (nil while pending, and for a cancelled request).
    public var decidedBy: AccessActor?
    public var decidedAt: Date?
    /// The approver's note, or the reason of a denial.
    public var decisionNote: String?
    /// Whether the requester approved it themselves (a break-glass grant the policy allows).
    public var selfApproved: Bool
    /// The grant's start and end (set on approval; `endsAt` moves to the revocation time when ended early).
    public var startsAt: Date?
    public var endsAt: Date?
    /// Who ended it early (whoever revoked the grant, or the requester who cancelled it) and why (a revocation's reason),
    /// and when it ended: set once it is denied, cancelled, revoked or expired; `purge` goes by it.
    public var endedBy: AccessActor?
    public var endNote: String?
    public var endedAt: Date?

    /// A new pending request.
    public init(
        id: String, requester: AccessActor, roleArn: String, reason: String, durationSeconds: Int, createdAt: Date,
        pendingUntil: Date
    ) {
        self.id = id; self.requester = requester; self.roleArn = roleArn; self.reason = reason
        self.durationSeconds = durationSeconds; self.createdAt = createdAt; self.pendingUntil = pendingUntil
        status = .pending; selfApproved = false
    }

    /// The request with `decision` applied at `now` (what `decide` stores).
    public func applying(_ decision: AccessDecision, now: Date) -> AccessRequestRecord {
        var next = self
        switch decision {
        case .approve(let actor, let selfApproved, let note):
            next.status = .approved; next.decidedBy = actor; next.decidedAt = now; next.decisionNote = note
            next.selfApproved = selfApproved
            next.startsAt = now; next.endsAt = now.addingTimeInterval(TimeInterval(durationSeconds))
        case .deny(let actor, let reason):
            next.status = .denied; next.decidedBy = actor; next.decidedAt = now; next.decisionNote = reason
            next.endedAt = now
        case .cancel:
            next.status = .cancelled; next.endedBy = requester; next.endedAt = now
        }
        return next
    }

    /// The request ended early at `now` by `actor` (what `revoke` stores).
    public func revoked(by actor: AccessActor, reason: String?, now: Date) -> AccessRequestRecord {
        var next = self
        next.status = .revoked; next.endedBy = actor; next.endNote = reason; next.endedAt = now; next.endsAt = now
        return next
    }

    /// The request expired at `now` (what `expire` stores): a pending one undecided, an approved one run out.
    public func expired(now: Date) -> AccessRequestRecord {
        var next = self
        next.status = .expired
        next.endedAt = status == .approved ? (endsAt ?? now) : pendingUntil
        return next
    }
}

/// Which requests `AccessRequestStore.requests` lists.
public struct AccessRequestQuery: Sendable, Equatable {
    /// Only these states (nil: any).
    public var statuses: Set<AccessRequestStatus>?
    /// Only this requester's (issuer and subject).
    public var requesterIssuer: String?
    public var requesterSubject: String?
    /// Only requests made at or after this time.
    public var since: Date?
    /// At most this many (newest first).
    public var limit: Int

    public init(
        statuses: Set<AccessRequestStatus>? = nil, requesterIssuer: String? = nil, requesterSubject: String? = nil,
        since: Date? = nil, limit: Int = 200
    ) {
        self.statuses = statuses; self.requesterIssuer = requesterIssuer; self.requesterSubject = requesterSubject
        self.since = since; self.limit = limit
    }
}
