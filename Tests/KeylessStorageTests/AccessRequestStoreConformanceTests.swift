import Foundation
import KeylessStorage
import KeylessStoragePostgres
import KeylessStorageSQLite
import KeylessTestSupport
import Testing

extension StorageTests {
    /// The `AccessRequestStore` contract, clause by clause, against every backend.
    @Suite("every AccessRequestStore honours the contract")
    struct AccessRequestStoreConformance {
        // MARK: Schema

        @Test("migrating a migrated store again keeps its requests", arguments: Backend.allCases)
        func migrateTwice(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let request = Requests.make()
                try await store.insertRequest(request)
                try await store.migrate()
                try await replica.migrate()
                #expect(try await replica.request(id: request.id) == request.roundedToMilliseconds)
            }
        }

        @Test("two replicas migrating the same new database at once both succeed", arguments: Backend.allCases)
        func concurrentMigrations(backend: Backend) async throws {
            try await withRequestStores(backend, migrated: false) { store, replica in
                async let first: Void = store.migrate()
                async let second: Void = replica.migrate()
                _ = try await (first, second)
                let request = Requests.make()
                try await store.insertRequest(request)
                #expect(try await replica.request(id: request.id) == request.roundedToMilliseconds)
            }
        }

        // MARK: Storing and reading

        @Test(
            "a new request comes back with every field, non-ASCII text intact and times rounded to the nearest millisecond",
            arguments: Backend.allCases)
        func newRequestRoundTrip(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let request = Requests.make(
                    requester: Requests.zoe, reason: "Vorfall #42: die Datenbank läuft voll — 東京 ✓",
                    createdAt: Requests.at(0.0006), pendingUntil: Requests.at(3600.0004))
                try await store.insertRequest(request)
                let stored = try #require(try await replica.request(id: request.id))
                #expect(stored == request.roundedToMilliseconds)
                #expect(stored.createdAt == Date(millisecondsSince1970: 1_800_000_000_124))
                #expect(stored.pendingUntil == Date(millisecondsSince1970: 1_800_003_600_123))
                #expect(stored.status == .pending && stored.decidedBy == nil && stored.endedAt == nil)
                #expect(try await replica.request(id: "nosuchrequest") == nil)
            }
        }

        @Test("storing a request whose id is stored already throws and keeps the first", arguments: Backend.allCases)
        func duplicateID(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let request = Requests.make()
                try await store.insertRequest(request)
                var other = Requests.make(id: request.id, requester: Requests.bob, reason: "another")
                other.roleArn = Requests.otherRole
                await #expect(throws: IdPStoreError.self) { try await replica.insertRequest(other) }
                #expect(try await store.request(id: request.id) == request.roundedToMilliseconds)
            }
        }

        @Test(
            "requests filters by status, requester issuer and subject and since (inclusive), and honours the limit",
            arguments: Backend.allCases)
        func requestsFilters(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let pending = Requests.make(createdAt: Requests.at(1))
                let approved = Requests.make(createdAt: Requests.at(2))
                let bobs = Requests.make(requester: Requests.bob, createdAt: Requests.at(3))
                let otherIssuer = Requests.make(requester: Requests.aliceElsewhere, createdAt: Requests.at(4))
                let cancelled = Requests.make(createdAt: Requests.at(5))
                for request in [pending, approved, bobs, otherIssuer, cancelled] {
                    try await store.insertRequest(request)
                }
                _ = try await store.decide(
                    id: approved.id, .approve(by: Requests.bob, selfApproved: false, note: nil), now: Requests.at(10))
                _ = try await store.decide(
                    id: otherIssuer.id, .deny(by: Requests.bob, reason: "no"), now: Requests.at(10))
                _ = try await store.decide(id: cancelled.id, .cancel, now: Requests.at(10))

                func ids(_ query: AccessRequestQuery) async throws -> [String] {
                    try await replica.requests(query).map(\.id)
                }
                let alice = Requests.alice
                #expect(
                    try await ids(AccessRequestQuery()) == [cancelled, otherIssuer, bobs, approved, pending].map(\.id))
                #expect(try await ids(AccessRequestQuery(statuses: [.pending])) == [bobs.id, pending.id])
                #expect(
                    try await ids(AccessRequestQuery(statuses: [.approved, .denied])) == [otherIssuer.id, approved.id])
                #expect(try await ids(AccessRequestQuery(statuses: [])) == [])
                #expect(
                    try await ids(AccessRequestQuery(requesterIssuer: alice.issuer, requesterSubject: alice.subject))
                        == [cancelled.id, approved.id, pending.id])
                #expect(
                    try await ids(AccessRequestQuery(requesterSubject: alice.subject))
                        == [cancelled.id, otherIssuer.id, approved.id, pending.id])
                let elsewhere = Requests.aliceElsewhere.issuer
                #expect(try await ids(AccessRequestQuery(requesterIssuer: elsewhere)) == [otherIssuer.id])
                #expect(
                    try await ids(AccessRequestQuery(since: Requests.at(3))) == [cancelled.id, otherIssuer.id, bobs.id])
                #expect(
                    try await ids(
                        AccessRequestQuery(
                            statuses: [.pending, .cancelled, .approved], requesterIssuer: alice.issuer,
                            requesterSubject: alice.subject, since: Requests.at(2))) == [cancelled.id, approved.id])
                #expect(try await ids(AccessRequestQuery(limit: 2)) == [cancelled.id, otherIssuer.id])
                #expect(try await ids(AccessRequestQuery(statuses: [.pending], limit: 1)) == [bobs.id])
                #expect(try await ids(AccessRequestQuery(limit: 0)) == [])
            }
        }

        @Test(
            "requests lists the newest first; of requests made in the same millisecond, the later stored first",
            arguments: Backend.allCases)
        func requestsOrder(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                // 0.0002 s and 0.0001 s after the reference time round to its millisecond.
                let first = Requests.make(createdAt: Requests.at(0))
                let older = Requests.make(createdAt: Requests.at(-1))
                let second = Requests.make(createdAt: Requests.at(0.0002))
                let newest = Requests.make(createdAt: Requests.at(1))
                let third = Requests.make(createdAt: Requests.at(0.0001))
                for request in [first, older, second, newest, third] { try await store.insertRequest(request) }
                #expect(
                    try await replica.requests(AccessRequestQuery()).map(\.id)
                        == [newest, third, second, first, older].map(\.id))
                #expect(
                    try await replica.requests(AccessRequestQuery(limit: 3)).map(\.id)
                        == [newest, third, second].map(\.id))
            }
        }

        // MARK: Deciding

        @Test(
            "approving sets startsAt to now and endsAt to now plus the duration; the result is the request as stored",
            arguments: Backend.allCases)
        func approve(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let request = Requests.make(durationSeconds: 5400)
                let selfApproved = Requests.make()
                try await store.insertRequest(request)
                try await store.insertRequest(selfApproved)
                let now = Requests.at(10.0006)
                let approved = try await replica.decide(
                    id: request.id, .approve(by: Requests.bob, selfApproved: false, note: "ok für eine Stunde ✓"),
                    now: now)
                var expected = request.roundedToMilliseconds
                expected.status = .approved
                expected.decidedBy = Requests.bob
                expected.decidedAt = Date(millisecondsSince1970: 1_800_000_010_124)
                expected.decisionNote = "ok für eine Stunde ✓"
                expected.startsAt = Date(millisecondsSince1970: 1_800_000_010_124)
                expected.endsAt = Date(millisecondsSince1970: 1_800_005_410_124)
                #expect(approved == expected)
                #expect(try await store.request(id: request.id) == expected)

                let breakGlass = try await store.decide(
                    id: selfApproved.id, .approve(by: Requests.alice, selfApproved: true, note: nil), now: now)
                var expectedBreakGlass = selfApproved.roundedToMilliseconds
                expectedBreakGlass.status = .approved
                expectedBreakGlass.decidedBy = Requests.alice
                expectedBreakGlass.decidedAt = now.roundedToMilliseconds
                expectedBreakGlass.selfApproved = true
                expectedBreakGlass.startsAt = now.roundedToMilliseconds
                expectedBreakGlass.endsAt = Date(millisecondsSince1970: 1_800_003_610_124)
                #expect(breakGlass == expectedBreakGlass)
                #expect(try await replica.request(id: selfApproved.id) == expectedBreakGlass)
            }
        }

        @Test(
            "denying records the approver and reason and ends the request; cancelling ends it by the requester",
            arguments: Backend.allCases)
        func denyAndCancel(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let denied = Requests.make()
                let cancelled = Requests.make(requester: Requests.zoe)
                try await store.insertRequest(denied)
                try await store.insertRequest(cancelled)
                let now = Requests.at(20.0004)
                let denial = try await replica.decide(
                    id: denied.id, .deny(by: Requests.bob, reason: "nicht ohne Ticket — 東京"), now: now)
                var expectedDenial = denied.roundedToMilliseconds
                expectedDenial.status = .denied
                expectedDenial.decidedBy = Requests.bob
                expectedDenial.decidedAt = now.roundedToMilliseconds
                expectedDenial.decisionNote = "nicht ohne Ticket — 東京"
                expectedDenial.endedAt = now.roundedToMilliseconds
                #expect(denial == expectedDenial)
                #expect(try await store.request(id: denied.id) == expectedDenial)

                let cancellation = try await replica.decide(id: cancelled.id, .cancel, now: now)
                var expectedCancellation = cancelled.roundedToMilliseconds
                expectedCancellation.status = .cancelled
                expectedCancellation.endedBy = Requests.zoe
                expectedCancellation.endedAt = now.roundedToMilliseconds
                #expect(cancellation == expectedCancellation)
                #expect(try await store.request(id: cancelled.id) == expectedCancellation)
            }
        }

        @Test(
            "decide changes nothing and returns nil once a request is decided, ended or at its pendingUntil, or unknown",
            arguments: Backend.allCases)
        func decideOnlyWhilePending(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: nil)
                let deny = AccessDecision.deny(by: Requests.bob, reason: "no")
                var ended: [AccessRequestRecord] = []
                for (first, second) in [
                    (approve, deny), (deny, approve), (AccessDecision.cancel, approve), (approve, .cancel),
                ] {
                    let request = Requests.make()
                    try await store.insertRequest(request)
                    let decided = try #require(try await store.decide(id: request.id, first, now: Requests.at(10)))
                    #expect(try await replica.decide(id: request.id, second, now: Requests.at(11)) == nil)
                    #expect(try await replica.decide(id: request.id, first, now: Requests.at(11)) == nil)
                    ended.append(decided)
                }
                for request in ended { #expect(try await store.request(id: request.id) == request) }

                // pendingUntil is the first millisecond it can no longer be decided.
                let due = Requests.make(pendingUntil: Requests.at(100))
                try await store.insertRequest(due)
                #expect(try await replica.decide(id: due.id, approve, now: Requests.at(100)) == nil)
                #expect(try await replica.decide(id: due.id, .cancel, now: Requests.at(100.0004)) == nil)
                #expect(try await replica.decide(id: due.id, deny, now: Requests.at(500)) == nil)
                #expect(try await store.request(id: due.id) == due.roundedToMilliseconds)
                #expect(try await replica.decide(id: due.id, approve, now: Requests.at(99.999))?.status == .approved)

                // Expired, and asked about an earlier time: only its status keeps it from being decided.
                let expired = Requests.make(pendingUntil: Requests.at(200))
                try await store.insertRequest(expired)
                let expiry = try await store.expire(now: Requests.at(200))
                #expect(try await replica.decide(id: expired.id, approve, now: Requests.at(150)) == nil)
                #expect(try await store.request(id: expired.id) == expiry.first)

                let revoked = Requests.make()
                try await store.insertRequest(revoked)
                _ = try await store.decide(id: revoked.id, approve, now: Requests.at(10))
                let revocation = try await store.revoke(
                    id: revoked.id, by: Requests.bob, reason: nil, now: Requests.at(20))
                #expect(try await replica.decide(id: revoked.id, approve, now: Requests.at(30)) == nil)
                #expect(try await store.request(id: revoked.id) == revocation)

                #expect(try await replica.decide(id: "nosuchrequest", approve, now: Requests.at(10)) == nil)
            }
        }

        @Test(
            "of 20 approvals and denials of one request racing on two replicas exactly one succeeds",
            arguments: Backend.allCases)
        func decideRace(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let request = Requests.make()
                try await store.insertRequest(request)
                let results = try await withThrowingTaskGroup(of: AccessRequestRecord?.self) { group in
                    for index in 0..<20 {
                        let target = index.isMultiple(of: 2) ? store : replica
                        let approver = AccessActor(
                            issuer: Requests.issuer, subject: "approver-\(index)", name: "Approver \(index)")
                        let decision: AccessDecision =
                            index % 4 < 2
                            ? .approve(by: approver, selfApproved: false, note: "racer \(index)")
                            : .deny(by: approver, reason: "racer \(index)")
                        group.addTask { try await target.decide(id: request.id, decision, now: Requests.at(10)) }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let winners = results.compactMap { $0 }
                #expect(winners.count == 1)
                #expect(try await store.request(id: request.id) == winners.first)
            }
        }

        // MARK: Revoking

        @Test(
            "revoke ends an approved grant at now (status revoked, endsAt = now) only before its endsAt, and only once",
            arguments: Backend.allCases)
        func revoke(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: nil)
                func revokeByBob(_ id: String, at seconds: Double) async throws -> AccessRequestRecord? {
                    try await replica.revoke(id: id, by: Requests.bob, reason: nil, now: Requests.at(seconds))
                }
                let grant = Requests.make(durationSeconds: 3600)
                try await store.insertRequest(grant)
                #expect(try await revokeByBob(grant.id, at: 5) == nil)
                let approved = try #require(try await store.decide(id: grant.id, approve, now: Requests.at(10)))
                let now = Requests.at(100.0006)
                let revoked = try await replica.revoke(
                    id: grant.id, by: Requests.zoe, reason: "Zugang nicht mehr nötig ✓", now: now)
                var expected = approved
                expected.status = .revoked
                expected.endedBy = Requests.zoe
                expected.endNote = "Zugang nicht mehr nötig ✓"
                expected.endedAt = now.roundedToMilliseconds
                expected.endsAt = now.roundedToMilliseconds
                #expect(revoked == expected)
                #expect(try await store.request(id: grant.id) == expected)
                #expect(try await revokeByBob(grant.id, at: 101) == nil)
                #expect(try await store.request(id: grant.id) == expected)

                // endsAt is the first millisecond the grant can no longer be revoked.
                let runningOut = Requests.make(durationSeconds: 60)
                try await store.insertRequest(runningOut)
                let running = try #require(try await store.decide(id: runningOut.id, approve, now: Requests.at(10)))
                #expect(try await revokeByBob(runningOut.id, at: 70) == nil)
                #expect(try await revokeByBob(runningOut.id, at: 900) == nil)
                #expect(try await store.request(id: runningOut.id) == running)
                #expect(try await revokeByBob(runningOut.id, at: 69.999)?.status == .revoked)

                let denied = Requests.make()
                try await store.insertRequest(denied)
                let denial = try await store.decide(
                    id: denied.id, .deny(by: Requests.bob, reason: "no"), now: Requests.at(10))
                #expect(try await revokeByBob(denied.id, at: 11) == nil)
                #expect(try await store.request(id: denied.id) == denial)
                #expect(try await revokeByBob("nosuchrequest", at: 11) == nil)
            }
        }

        // MARK: Active grants

        @Test(
            "activeGrant finds an approved grant from its startsAt (inclusive) to its endsAt (exclusive), for its requester and role only",
            arguments: Backend.allCases)
        func activeGrantBoundaries(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let grant = Requests.make(durationSeconds: 3600)
                try await store.insertRequest(grant)
                let approved = try await store.decide(
                    id: grant.id, .approve(by: Requests.bob, selfApproved: false, note: nil), now: Requests.at(10))
                let alice = Requests.alice
                func active(
                    issuer: String = alice.issuer, subject: String = alice.subject, role: String = Requests.role,
                    at now: Date
                ) async throws -> AccessRequestRecord? {
                    try await replica.activeGrant(issuer: issuer, subject: subject, roleArn: role, now: now)
                }
                #expect(try await active(at: Requests.at(10)) == approved)
                #expect(try await active(at: Requests.at(9.999)) == nil)
                #expect(try await active(at: Requests.at(3609.999)) == approved)
                #expect(try await active(at: Requests.at(3610)) == nil)
                #expect(try await active(role: Requests.otherRole, at: Requests.at(100)) == nil)
                #expect(try await active(subject: Requests.bob.subject, at: Requests.at(100)) == nil)
                #expect(try await active(issuer: Requests.aliceElsewhere.issuer, at: Requests.at(100)) == nil)
            }
        }

        @Test(
            "activeGrant ignores pending, revoked and expired requests and picks the later-ending of several grants",
            arguments: Backend.allCases)
        func activeGrantStatusAndChoice(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: nil)
                let alice = Requests.alice
                func active(_ role: String, at now: Date) async throws -> AccessRequestRecord? {
                    try await replica.activeGrant(issuer: alice.issuer, subject: alice.subject, roleArn: role, now: now)
                }
                // Three grants of one role: the one ending last was stored neither first nor last.
                let early = Requests.make(durationSeconds: 3600)
                let late = Requests.make(durationSeconds: 7200)
                let short = Requests.make(durationSeconds: 1800)
                for request in [early, late, short] {
                    try await store.insertRequest(request)
                    _ = try await store.decide(id: request.id, approve, now: Requests.at(10))
                }
                #expect(try await active(Requests.role, at: Requests.at(200))?.id == late.id)
                #expect(try await active(Requests.role, at: Requests.at(3700))?.id == late.id)

                let pending = Requests.make(role: Requests.otherRole)
                try await store.insertRequest(pending)
                #expect(try await active(Requests.otherRole, at: Requests.at(200)) == nil)

                // Both end at the time they are moved; asked about an earlier time, only their status hides them.
                let revoked = Requests.make(role: Requests.thirdRole)
                let expired = Requests.make(role: Requests.fourthRole, durationSeconds: 60)
                for request in [revoked, expired] {
                    try await store.insertRequest(request)
                    _ = try await store.decide(id: request.id, approve, now: Requests.at(10))
                }
                _ = try await store.revoke(id: revoked.id, by: Requests.bob, reason: nil, now: Requests.at(30))
                #expect(try await active(Requests.thirdRole, at: Requests.at(20)) == nil)
                _ = try await store.expire(now: Requests.at(70))
                #expect(try await active(Requests.fourthRole, at: Requests.at(20)) == nil)
            }
        }

        // MARK: Expiry

        @Test(
            "expire moves pending requests at their pendingUntil and grants at their endsAt, once each, and leaves the rest",
            arguments: Backend.allCases)
        func expire(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: "ok")
                let now = Requests.at(100)
                let duePending = Requests.make(pendingUntil: now)
                let laterPending = Requests.make(pendingUntil: Requests.at(100.001))
                let dueGrant = Requests.make(durationSeconds: 90)
                let laterGrant = Requests.make(durationSeconds: 91)
                let overdueGrant = Requests.make(durationSeconds: 30)
                let overduePending = Requests.make(pendingUntil: Requests.at(60.0004))
                let denied = Requests.make(pendingUntil: Requests.at(50))
                for request in [duePending, laterPending, overduePending, dueGrant, laterGrant, overdueGrant, denied] {
                    try await store.insertRequest(request)
                }
                var grants: [String: AccessRequestRecord] = [:]
                for request in [dueGrant, laterGrant, overdueGrant] {
                    grants[request.id] = try await store.decide(id: request.id, approve, now: Requests.at(10))
                }
                let denial = try await store.decide(
                    id: denied.id, .deny(by: Requests.bob, reason: "no"), now: Requests.at(10))

                let moved = try await replica.expire(now: now)
                // A pending request ended at its pendingUntil, a grant at its endsAt, whenever the sweep ran.
                var expectedPending = duePending.roundedToMilliseconds
                expectedPending.status = .expired
                expectedPending.endedAt = now.roundedToMilliseconds
                var expectedOverduePending = overduePending.roundedToMilliseconds
                expectedOverduePending.status = .expired
                expectedOverduePending.endedAt = Requests.at(60.0004).roundedToMilliseconds
                var expectedGrant = try #require(grants[dueGrant.id])
                expectedGrant.status = .expired
                expectedGrant.endedAt = now.roundedToMilliseconds
                var expectedOverdue = try #require(grants[overdueGrant.id])
                expectedOverdue.status = .expired
                expectedOverdue.endedAt = Requests.at(40).roundedToMilliseconds
                let expected = [expectedPending, expectedOverduePending, expectedGrant, expectedOverdue]
                #expect(moved.sorted { $0.id < $1.id } == expected.sorted { $0.id < $1.id })
                for request in expected { #expect(try await store.request(id: request.id) == request) }
                #expect(try await store.request(id: laterPending.id) == laterPending.roundedToMilliseconds)
                #expect(try await store.request(id: laterGrant.id) == grants[laterGrant.id])
                #expect(try await store.request(id: denied.id) == denial)

                #expect(try await store.expire(now: now) == [])
                #expect(try await replica.expire(now: Requests.at(100.0004)) == [])
            }
        }

        @Test(
            "of replicas sweeping together, each due request is moved by exactly one; requests not due stay",
            arguments: Backend.allCases)
        func expireRace(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: nil)
                // Five sweeps, 1000 s apart, each with its own 20 due requests, half of them grants: several rounds,
                // the later ones on connections the first opened, make it likely that the sweepers overlap.
                let rounds = 5
                var due: [[String]] = Array(repeating: [], count: rounds)
                for round in 0..<rounds {
                    let start = Double(round * 1000)
                    for index in 0..<20 {
                        let request = Requests.make(
                            durationSeconds: round * 1000 + 60, pendingUntil: Requests.at(start + 300))
                        try await store.insertRequest(request)
                        if index.isMultiple(of: 2) {
                            _ = try await store.decide(id: request.id, approve, now: Requests.at(10))
                        }
                        due[round].append(request.id)
                    }
                }
                var notDue: [String] = []
                for index in 0..<10 {
                    let request = Requests.make(durationSeconds: 100_000, pendingUntil: Requests.at(100_000))
                    try await store.insertRequest(request)
                    if index.isMultiple(of: 2) {
                        _ = try await store.decide(id: request.id, approve, now: Requests.at(10))
                    }
                    notDue.append(request.id)
                }
                for round in 0..<rounds {
                    let now = Requests.at(Double(round * 1000) + 600)
                    let swept = try await withThrowingTaskGroup(of: [AccessRequestRecord].self) { group in
                        for index in 0..<10 {
                            let target = index.isMultiple(of: 2) ? store : replica
                            group.addTask { try await target.expire(now: now) }
                        }
                        return try await group.reduce(into: []) { $0 += $1 }
                    }
                    #expect(swept.map(\.id).sorted() == due[round].sorted(), "round \(round)")
                    #expect(swept.allSatisfy { $0.status == .expired })
                }
                for id in notDue { #expect(try await store.request(id: id)?.status != .expired) }
            }
        }

        // MARK: Purging

        @Test(
            "purge deletes only denied, cancelled, expired and revoked requests that ended before the cutoff",
            arguments: Backend.allCases)
        func purge(backend: Backend) async throws {
            try await withRequestStores(backend) { store, replica in
                let approve = AccessDecision.approve(by: Requests.bob, selfApproved: false, note: nil)
                let cutoff = Requests.at(1000)
                func stored(pendingUntil: Date = Requests.at(3600), durationSeconds: Int = 3600) async throws
                    -> AccessRequestRecord
                {
                    let request = Requests.make(durationSeconds: durationSeconds, pendingUntil: pendingUntil)
                    try await store.insertRequest(request)
                    return request
                }
                let deniedBefore = try await stored()
                _ = try await store.decide(
                    id: deniedBefore.id, .deny(by: Requests.bob, reason: "no"), now: Requests.at(10))
                let cancelledBefore = try await stored()
                _ = try await store.decide(id: cancelledBefore.id, .cancel, now: Requests.at(999.999))
                let revokedBefore = try await stored()
                _ = try await store.decide(id: revokedBefore.id, approve, now: Requests.at(10))
                _ = try await store.revoke(id: revokedBefore.id, by: Requests.bob, reason: nil, now: Requests.at(20))
                let expiredPendingBefore = try await stored(pendingUntil: Requests.at(30))
                let expiredGrantBefore = try await stored(durationSeconds: 60)
                _ = try await store.decide(id: expiredGrantBefore.id, approve, now: Requests.at(10))
                _ = try await store.expire(now: Requests.at(100))

                let deniedAtCutoff = try await stored()
                _ = try await store.decide(id: deniedAtCutoff.id, .deny(by: Requests.bob, reason: "no"), now: cutoff)
                let revokedAfter = try await stored()
                _ = try await store.decide(id: revokedAfter.id, approve, now: Requests.at(10))
                _ = try await store.revoke(id: revokedAfter.id, by: Requests.bob, reason: nil, now: Requests.at(1001))
                let pendingOld = try await stored(pendingUntil: Requests.at(5000))
                let approvedRunOut = try await stored(durationSeconds: 60)
                _ = try await store.decide(id: approvedRunOut.id, approve, now: Requests.at(200))

                try await replica.purge(endedBefore: cutoff)
                let endedBefore = [
                    deniedBefore, cancelledBefore, revokedBefore, expiredPendingBefore, expiredGrantBefore,
                ]
                for request in endedBefore {
                    #expect(try await store.request(id: request.id) == nil, "\(request.id) was purged")
                }
                for request in [deniedAtCutoff, revokedAfter, pendingOld, approvedRunOut] {
                    #expect(try await store.request(id: request.id) != nil, "\(request.id) was kept")
                }
            }
        }
    }
}

/// Runs `body` with two handles on one fresh access request store (migrated unless `migrated` is false), as `withStores`
/// does for the IdP store: two store objects on the same SQLite file or PostgreSQL database; the memory store twice.
func withRequestStores(
    _ backend: Backend, migrated: Bool = true,
    _ body: (_ store: any AccessRequestStore, _ replica: any AccessRequestStore) async throws -> Void
) async throws {
    try await withStorePair(
        backend, migrated: migrated, memory: { MemoryAccessRequestStore() as any AccessRequestStore },
        sqlite: { try SQLiteAccessRequestStore(path: $0) }, postgres: { try PostgresAccessRequestStore(url: $0) },
        migrate: { try await $0.migrate() }, close: { try await $0.close() }, body)
}

/// Access requests built around a fixed reference time, 2027-01-15T08:00:00.123Z.
enum Requests {
    static let reference = Date(timeIntervalSince1970: 1_800_000_000.123)

    /// The reference time plus `seconds` (not rounded: stores round to the millisecond).
    static func at(_ seconds: Double) -> Date { reference.addingTimeInterval(seconds) }

    static let issuer = "https://idp.example.com"
    static let alice = AccessActor(issuer: issuer, subject: "alice", name: "alice@example.com")
    /// Someone with alice's subject at another issuer: another person.
    static let aliceElsewhere = AccessActor(issuer: "https://login.other.example", subject: "alice", name: "alice")
    static let bob = AccessActor(issuer: issuer, subject: "bob-Ærø", name: "Bjørn Ærø")
    static let zoe = AccessActor(issuer: issuer, subject: "zoë-東京", name: "Zoë Ångström 東京")
    static let role = "arn:aws:iam::123456789012:role/Admin"
    static let otherRole = "arn:aws:iam::123456789012:role/ReadOnly"
    static let thirdRole = "arn:aws:iam::123456789012:role/Billing"
    static let fourthRole = "arn:aws:iam::210987654321:role/Admin"

    /// A pending request by alice for `role`, made at the reference time, pending for an hour; a fresh id unless given.
    static func make(
        id: String = freshID(), requester: AccessActor = alice, role: String = Requests.role,
        reason: String = "deploy fix",
        durationSeconds: Int = 3600, createdAt: Date = reference, pendingUntil: Date = at(3600)
    ) -> AccessRequestRecord {
        AccessRequestRecord(
            id: id, requester: requester, roleArn: role, reason: reason, durationSeconds: durationSeconds,
            createdAt: createdAt, pendingUntil: pendingUntil)
    }

    /// Twelve lowercase letters and digits, as the server's ids.
    static func freshID() -> String {
        String(UUID().uuidString.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(12))
    }
}
