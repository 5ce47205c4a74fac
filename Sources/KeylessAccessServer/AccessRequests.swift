import Foundation
import KeylessCore
import KeylessPolicy
import KeylessStorage
import KeylessWire

/// Where request events go: the webhook, or a test's recorder. `notify` returns at once (delivery is the sink's job).
public protocol RequestEventSink: Sendable {
    /// One event (`request.created`, `request.approved`, `request.denied`, `request.cancelled`, `request.revoked`,
    /// `request.expired`) with its JSON body.
    func notify(event: String, body: String)
}

/// The webhook takes request events.
extension WebhookNotifier: RequestEventSink {}

/// Just-in-time access: requests for roles on request, their approval or denial, and the time-bound grants they become.
///
/// Every change of a request's state is a compare-and-set in the shared store, then an audit record (fsync'ed before the
/// answer), then an event for the webhook; a change that loses the race (another approver, another replica) writes
/// nothing.
extension AccessService {
    /// The longest reason or note kept, in characters.
    static let reasonLimit = 500

    // MARK: Asking

    /// Creates a request by `caller` for `roleArn` (an ARN or `alias/name`) lasting `durationSeconds` once approved.
    public func createRequest(
        for caller: Caller, roleArn: String, durationSeconds: Int?, reason: String?, origin: RequestOrigin
    ) async throws -> AccessRequestRecord {
        let current = policy.current
        guard let (entitlement, eligibility) = current.eligibility(caller.policyCaller, roleArn: roleArn) else {
            switch current.decide(caller.policyCaller, roleArn: roleArn) {
            case .granted(let entitlement, _):
                throw AccessError(
                    409, "already_granted",
                    "\(caller.name) may assume \(entitlement.role.arn) already (a standing grant): no request is needed."
                )
            case .denied(let reason, let message) where reason == .mfaRequired || reason == .phishingResistantRequired:
                // A standing grant the caller's sign-in is too weak for: no request is needed, a stronger sign-in is.
                throw AccessError(
                    403, reason.rawValue, "\(message). No request is needed: the role is yours once you do.")
            case .denied(let reason, let message):
                try await record(
                    "access_request", "refused", caller, role: roleArn, origin: origin,
                    reason: "\(reason.rawValue): \(message)")
                throw AccessError(
                    403, reason == .unknownRole ? reason.rawValue : "not_eligible",
                    "\(message). Only roles offered on request can be asked for (keyless roles lists them).")
            }
        }
        let role = entitlement.role
        let reference = Self.reference(entitlement)
        let text = try Self.text(reason, what: "reason")
        if eligibility.reasonRequired && text == nil {
            throw AccessError(
                400, "reason_required",
                "A request for \(reference) needs a reason: keyless request \(reference) --reason \"what for\".")
        }
        let longest = eligibility.maxDurationSeconds
        let duration = durationSeconds ?? min(3600, longest)
        guard duration >= 900 && duration <= longest else {
            throw AccessError(
                400, "invalid_request",
                "\(reference) may be asked for from 15 minutes to \(DurationText.describe(seconds: longest)); \(DurationText.describe(seconds: duration)) is outside that."
            )
        }
        let now = clock.now()
        let open = try await storeCall {
            try await requests.requests(
                AccessRequestQuery(
                    statuses: [.pending, .approved], requesterIssuer: caller.bearer.issuer,
                    requesterSubject: caller.bearer.subject, limit: 500))
        }
        if let same = open.first(where: { $0.roleArn == role.arn && Self.isOpen($0, now: now) }) {
            throw AccessError(
                409, same.status == .pending ? "already_requested" : "already_granted",
                same.status == .pending
                    ? "You asked for \(reference) already (request \(same.id), waiting for an approver until \(AuditRecord.timestamp(same.pendingUntil))). keyless requests shows it; keyless revoke \(same.id) withdraws it."
                    : "You hold \(reference) already through request \(same.id), until \(AuditRecord.timestamp(same.endsAt ?? now))."
            )
        }
        let requester = Self.actor(caller)
        var created: AccessRequestRecord?
        for _ in 0..<3 where created == nil {
            let candidate = AccessRequestRecord(
                id: Self.newRequestID(), requester: requester, roleArn: role.arn, reason: text ?? "",
                durationSeconds: duration, createdAt: now,
                pendingUntil: now.addingTimeInterval(configuration.requests.pendingSeconds))
            do {
                try await requests.insertRequest(candidate)
                created = candidate.roundedToMilliseconds
            } catch let error as IdPStoreError where error.description.contains("already stored") {
                continue  // a random id met another: draw again
            } catch {
                throw Self.storeFailure(error)
            }
        }
        guard let created else { throw Self.storeFailure(IdPStoreError("three random request ids were taken")) }
        try await recordRequest(
            "requested", created, actor: requester, origin: origin,
            reason: "asked for \(DurationText.describe(seconds: duration))"
                + (text.map { ": \($0)" } ?? "") + Self.approversNote(eligibility))
        notify("request.created", created)
        return created
    }

    // MARK: Deciding

    /// Approves (`approve`) or denies request `id` as `caller`. The requester may approve their own request only where
    /// the policy allows it (break-glass); their "deny" withdraws it.
    public func decideRequest(
        id: String, approve: Bool, by caller: Caller, note: String?, origin: RequestOrigin
    ) async throws -> AccessRequestRecord {
        let request = try await existingRequest(id)
        let actor = Self.actor(caller)
        let text = try Self.text(note, what: approve ? "note" : "reason")
        let own = Self.isRequester(caller, of: request)
        guard request.status == .pending, clock.now() < request.pendingUntil else {
            throw Self.notPending(request, now: clock.now())
        }
        let decision: AccessDecision
        if own && !approve {
            decision = .cancel
        } else if own {
            guard let (_, eligibility) = policy.current.eligibility(caller.policyCaller, roleArn: request.roleArn),
                eligibility.selfApproval
            else {
                let groups = policy.current.approverGroups(roleArn: request.roleArn)
                try await recordRequest(
                    "approve_refused", request, actor: actor, origin: origin,
                    reason: "self_approval_refused: the requester may not approve their own request")
                throw AccessError(
                    403, "self_approval_refused",
                    "You cannot approve your own request: "
                        + (groups.isEmpty
                            ? "no approver group covers this role any more."
                            : "a member of \(groups.joined(separator: ", ")) approves it."))
            }
            decision = .approve(by: actor, selfApproved: true, note: text)
        } else {
            try await checkApprover(caller, for: request, origin: origin, verb: approve ? "approve" : "deny")
            guard approve || text != nil else {
                throw AccessError(
                    400, "reason_required",
                    "Say why the request is denied (keyless deny \(request.id) --reason \"...\"): the requester is shown it."
                )
            }
            decision = approve ? .approve(by: actor, selfApproved: false, note: text) : .deny(by: actor, reason: text!)
        }
        guard let decided = try await storeCall({ try await requests.decide(id: id, decision, now: clock.now()) })
        else {
            let now = clock.now()
            throw Self.notPending(try await existingRequest(id), now: now)
        }
        let (outcome, event) =
            switch decided.status {
            case .approved: ("approved", "request.approved")
            case .cancelled: ("cancelled", "request.cancelled")
            default: ("denied", "request.denied")
            }
        var detail = text.map { ": \($0)" } ?? ""
        if decided.selfApproved {
            detail = " by the requester (break-glass, allowed by the policy)" + detail
        }
        if decided.status == .approved, let endsAt = decided.endsAt {
            detail += "; grant until \(AuditRecord.timestamp(endsAt))"
        }
        try await recordRequest(outcome, decided, actor: actor, origin: origin, reason: outcome + detail)
        notify(event, decided)
        return decided
    }

    /// Ends request `id` early as `caller` (its requester, or an approver of its role): an approved grant is revoked, a
    /// pending request of the caller's own is withdrawn.
    public func revokeRequest(id: String, by caller: Caller, reason: String?, origin: RequestOrigin) async throws
        -> AccessRequestRecord
    {
        let request = try await existingRequest(id)
        if request.status == .pending && Self.isRequester(caller, of: request) {
            return try await decideRequest(id: id, approve: false, by: caller, note: reason, origin: origin)
        }
        let actor = Self.actor(caller)
        let text = try Self.text(reason, what: "reason")
        if !Self.isRequester(caller, of: request) {
            try await checkApprover(caller, for: request, origin: origin, verb: "revoke")
        }
        guard request.status == .approved,
            let ended = try await storeCall({
                try await requests.revoke(id: id, by: actor, reason: text, now: clock.now())
            })
        else {
            let now = clock.now()
            let current = try await existingRequest(id)
            throw AccessError(
                409, "not_active",
                "Request \(id) grants nothing now (it is \(Self.state(current, now: now))); there is nothing to end.")
        }
        try await recordRequest(
            "revoked", ended, actor: actor, origin: origin,
            reason: "grant ended early" + (text.map { ": \($0)" } ?? ""))
        notify("request.revoked", ended)
        return ended
    }

    // MARK: Reading

    /// The requests `caller` may see: their own (the last 50 and every open one), those waiting for their approval,
    /// and the grants in force they may end.
    public func requestsView(for caller: Caller) async throws -> (
        mine: [AccessRequestRecord], toApprove: [AccessRequestRecord], active: [AccessRequestRecord]
    ) {
        let now = clock.now()
        let mine = try await storeCall {
            try await requests.requests(
                AccessRequestQuery(
                    requesterIssuer: caller.bearer.issuer, requesterSubject: caller.bearer.subject, limit: 50))
        }
        let open = try await storeCall {
            try await requests.requests(AccessRequestQuery(statuses: [.pending, .approved], limit: 1000))
        }
        let others = open.filter {
            !Self.isRequester(caller, of: $0) && Self.isOpen($0, now: now) && approves(caller, $0)
        }
        return (
            mine,
            others.filter { $0.status == .pending }.sorted { $0.createdAt < $1.createdAt },
            others.filter { $0.status == .approved }.sorted { ($0.endsAt ?? now) < ($1.endsAt ?? now) }
        )
    }

    /// One request, for its requester or an approver of its role.
    public func visibleRequest(id: String, for caller: Caller) async throws -> AccessRequestRecord {
        let request = try await existingRequest(id)
        guard Self.isRequester(caller, of: request) || approves(caller, request) else {
            throw AccessError(
                404, "not_found",
                "There is no request \(id) that you asked for or may approve. keyless requests lists yours.")
        }
        return request
    }

    /// The API's view of a request.
    public func document(_ request: AccessRequestRecord) -> AccessRequestDocument {
        func person(_ actor: AccessActor?) -> AccessRequestDocument.Person? {
            actor.map { AccessRequestDocument.Person(name: $0.name, subject: $0.subject) }
        }
        return AccessRequestDocument(
            id: request.id, status: request.status.rawValue, roleArn: request.roleArn,
            role: policy.current.entitlement(roleArn: request.roleArn).map(Self.reference),
            requester: person(request.requester)!, reason: request.reason, durationSeconds: request.durationSeconds,
            createdAt: AuditRecord.timestamp(request.createdAt),
            pendingUntil: AuditRecord.timestamp(request.pendingUntil), decidedBy: person(request.decidedBy),
            decidedAt: request.decidedAt.map(AuditRecord.timestamp), decisionNote: request.decisionNote,
            selfApproved: request.selfApproved, startsAt: request.startsAt.map(AuditRecord.timestamp),
            endsAt: request.endsAt.map(AuditRecord.timestamp), endedBy: person(request.endedBy),
            endNote: request.endNote, endedAt: request.endedAt.map(AuditRecord.timestamp))
    }

    // MARK: Grants in force

    /// The approved request through which `caller` holds `roleArn` now; otherwise a refusal (audited) saying how the
    /// role is had: on request, and when the caller's last grant of it ended.
    func activeGrant(for caller: Caller, roleArn: String, refusal: String, action: String, origin: RequestOrigin)
        async throws -> AccessRequestRecord
    {
        let arn = policy.current.entitlement(roleArn: roleArn)?.role.arn ?? roleArn
        let now = clock.now()
        if let grant = try await storeCall({
            try await requests.activeGrant(
                issuer: caller.bearer.issuer, subject: caller.bearer.subject, roleArn: arn, now: now)
        }) {
            return grant
        }
        var message = refusal
        let history = try await storeCall {
            try await requests.requests(
                AccessRequestQuery(
                    requesterIssuer: caller.bearer.issuer, requesterSubject: caller.bearer.subject, limit: 50))
        }
        if let last = history.first(where: { $0.roleArn == arn }) {
            message = Self.lastRequestNote(last, now: now) + " " + refusal
        }
        try await record(
            action, "denied", caller, role: arn, origin: origin,
            reason: "\(DenialReason.approvalRequired.rawValue): \(message)")
        throw AccessError(403, DenialReason.approvalRequired.rawValue, message)
    }

    /// What became of `caller`'s last request for a role, said before the way to ask again.
    static func lastRequestNote(_ request: AccessRequestRecord, now: Date) -> String {
        switch request.status {
        case .pending where now < request.pendingUntil:
            return "Your request \(request.id) for it is waiting for an approver."
        case .approved where now < (request.endsAt ?? now):
            return
                "Your request \(request.id) for it is approved from \(AuditRecord.timestamp(request.startsAt ?? now))."
        case .approved,
            .expired where request.decidedAt != nil:
            return "Your access through request \(request.id) ended at \(AuditRecord.timestamp(request.endsAt ?? now))."
        case .revoked:
            return
                "Your access through request \(request.id) was ended early at \(AuditRecord.timestamp(request.endedAt ?? now)) by \(request.endedBy?.name ?? "someone")"
                + (request.endNote.map { ": \($0)." } ?? ".")
        case .denied:
            return "Your request \(request.id) for it was denied by \(request.decidedBy?.name ?? "an approver")"
                + (request.decisionNote.map { ": \($0)." } ?? ".")
        case .cancelled:
            return "You withdrew your request \(request.id) for it."
        default:
            return
                "Your request \(request.id) for it expired at \(AuditRecord.timestamp(request.pendingUntil)) without a decision."
        }
    }

    // MARK: Housekeeping

    /// Expires requests nobody decided in time and grants that ran their course (each once, whichever replica sweeps
    /// first), each with its audit record and event; returns how many it expired.
    @discardableResult
    public func sweepRequests() async throws -> Int {
        let expired = try await storeCall { try await requests.expire(now: clock.now()) }
        for request in expired {
            let reason =
                request.decidedAt == nil
                ? "expired: nobody decided before \(AuditRecord.timestamp(request.pendingUntil))"
                : "expired: the grant ended at \(AuditRecord.timestamp(request.endsAt ?? request.pendingUntil))"
            let entry = AuditRecord(
                time: clock.now(), action: "access_request", outcome: "expired", issuer: request.requester.issuer,
                subject: request.requester.subject, name: request.requester.name, role: request.roleArn,
                sourceAddress: "-", requestID: "", reason: reason, accessRequest: request.id)
            try await append(entry)
            notify("request.expired", request)
        }
        return expired.count
    }

    // MARK: Helpers

    func existingRequest(_ id: String) async throws -> AccessRequestRecord {
        guard Self.isRequestID(id), let request = try await storeCall({ try await requests.request(id: id) }) else {
            throw AccessError(404, "not_found", "There is no request \(id). keyless requests lists yours.")
        }
        return request
    }

    /// Whether `caller` may approve, deny or end `request`: a member of an approver group of its role (not the
    /// requester).
    func approves(_ caller: Caller, _ request: AccessRequestRecord) -> Bool {
        let groups = Set(policy.current.approverGroups(roleArn: request.roleArn))
        return !Self.isRequester(caller, of: request) && caller.policyCaller.groups.contains { groups.contains($0) }
    }

    /// Refuses (audited) a caller who may not act on `request` as an approver, or whose sign-in is weaker than what the
    /// role itself needs.
    func checkApprover(_ caller: Caller, for request: AccessRequestRecord, origin: RequestOrigin, verb: String)
        async throws
    {
        let current = policy.current
        let groups = current.approverGroups(roleArn: request.roleArn)
        guard approves(caller, request) else {
            try await recordRequest(
                "\(verb)_refused", request, actor: Self.actor(caller), origin: origin,
                reason: "not_an_approver: \(caller.name) is in none of \(groups.joined(separator: ", "))")
            throw AccessError(
                403, "not_an_approver",
                groups.isEmpty
                    ? "Nobody may \(verb) request \(request.id): no grant on request covers its role any more."
                    : "Only members of \(groups.joined(separator: ", ")) may \(verb) request \(request.id); \(caller.name) is not one."
            )
        }
        if let role = current.entitlement(roleArn: request.roleArn)?.role {
            let weak =
                role.phishingResistantRequired && !caller.policyCaller.phishingResistant
                ? "a passkey sign-in" : role.mfaRequired && !caller.policyCaller.mfa ? "a second factor" : nil
            if let weak {
                try await recordRequest(
                    "\(verb)_refused", request, actor: Self.actor(caller), origin: origin,
                    reason: "mfa_required: the approver's sign-in lacks \(weak)")
                throw AccessError(
                    403, role.phishingResistantRequired ? "phishing_resistant_required" : "mfa_required",
                    "To \(verb) a request for \(role.arn) you need \(weak), as the role itself does; sign in again with it (keyless login)."
                )
            }
        }
    }

    func recordRequest(
        _ outcome: String, _ request: AccessRequestRecord, actor: AccessActor, origin: RequestOrigin, reason: String
    ) async throws {
        var text = reason
        if actor.subject != request.requester.subject || actor.issuer != request.requester.issuer {
            text += " (request of \(request.requester.name))"
        }
        try await append(
            AuditRecord(
                time: clock.now(), action: "access_request", outcome: outcome, issuer: actor.issuer,
                subject: actor.subject, name: actor.name, role: request.roleArn, sourceAddress: origin.address,
                requestID: origin.requestID, reason: text, accessRequest: request.id))
    }

    func notify(_ event: String, _ request: AccessRequestRecord) {
        guard let events else { return }
        let body = RequestEvent(
            event: event, request: document(request), serverURL: configuration.publicURL,
            url: configuration.publicURL + "/#request-" + request.id)
        events.notify(event: event, body: (try? JSONWriter.text(body)) ?? "{}")
    }

    /// Runs a store call; a store that fails is the server's problem, answered 503 (never a grant).
    func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() } catch let error as AccessError { throw error } catch {
            throw Self.storeFailure(error)
        }
    }

    static func storeFailure(_ error: any Error) -> AccessError {
        AccessError(
            503, "requests_unavailable",
            "The server cannot read or write access requests right now (\(error)); nothing was granted. Retry in a moment; if it persists, ask its administrator to check requests.store."
        )
    }

    static func notPending(_ request: AccessRequestRecord, now: Date) -> AccessError {
        AccessError(
            409, "not_pending", "Request \(request.id) is \(state(request, now: now)); it can no longer be decided.")
    }

    /// The request's state in words: "approved by alice until …", "denied by …", "expired".
    static func state(_ request: AccessRequestRecord, now: Date) -> String {
        switch request.status {
        case .pending where now >= request.pendingUntil: return "expired (nobody decided in time)"
        case .pending: return "pending"
        case .approved where now >= (request.endsAt ?? now): return "over (its grant ended)"
        case .approved:
            return "approved by \(request.decidedBy?.name ?? "?") until \(AuditRecord.timestamp(request.endsAt ?? now))"
        case .denied: return "denied by \(request.decidedBy?.name ?? "?")"
        case .cancelled: return "withdrawn by its requester"
        case .expired: return "expired"
        case .revoked: return "ended early by \(request.endedBy?.name ?? "?")"
        }
    }

    static func isOpen(_ request: AccessRequestRecord, now: Date) -> Bool {
        switch request.status {
        case .pending: now < request.pendingUntil
        case .approved: now < (request.endsAt ?? now)
        default: false
        }
    }

    static func isRequester(_ caller: Caller, of request: AccessRequestRecord) -> Bool {
        caller.bearer.issuer == request.requester.issuer && caller.bearer.subject == request.requester.subject
    }

    static func actor(_ caller: Caller) -> AccessActor {
        AccessActor(issuer: caller.bearer.issuer, subject: caller.bearer.subject, name: caller.name)
    }

    static func reference(_ entitlement: Entitlement) -> String {
        "\(entitlement.account.displayName)/\(entitlement.role.name)"
    }

    static func approversNote(_ eligibility: Eligibility) -> String {
        var parts: [String] = []
        if !eligibility.approverGroups.isEmpty {
            parts.append("approvers: " + eligibility.approverGroups.joined(separator: ", "))
        }
        if eligibility.selfApproval { parts.append("self-approval allowed") }
        return parts.isEmpty ? "" : " (" + parts.joined(separator: "; ") + ")"
    }

    /// A reason or note: trimmed, nil when empty; refused when longer than `reasonLimit` or holding control characters.
    static func text(_ value: String?, what: String) throws -> String? {
        guard let trimmed = value?.trimmingCharacters(in: .whitespacesAndNewlines), !trimmed.isEmpty else { return nil }
        guard trimmed.count <= reasonLimit else {
            throw AccessError(
                400, "invalid_request", "The \(what) is longer than \(reasonLimit) characters; shorten it.")
        }
        guard
            !trimmed.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control || $0.properties.generalCategory == .format
            })
        else {
            throw AccessError(
                400, "invalid_request",
                "The \(what) holds control or formatting characters; write it on one line of plain text.")
        }
        return trimmed
    }

    /// Ten characters of [a-z2-7] (50 random bits): short enough to type, too many to guess.
    static func newRequestID() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567")
        return String(secureRandomBytes(10).map { alphabet[Int($0 & 31)] })
    }

    static func isRequestID(_ text: String) -> Bool {
        text.utf8.count == 10 && text.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x32 && $0 <= 0x37) }
    }
}

/// The webhook's body: the event, the request as the API shows it, and where to act on it.
struct RequestEvent: Encodable {
    let event: String
    let request: AccessRequestDocument
    let serverURL: String
    /// The web page, at the request.
    let url: String

    enum CodingKeys: String, CodingKey { case event, request, serverURL = "server_url", url }
}
