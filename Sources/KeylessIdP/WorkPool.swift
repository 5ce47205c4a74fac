import Foundation

/// Bounds how many expensive computations (scrypt checks of passwords and client secrets) run at once.
///
/// `limit` run; up to `queue` more wait their turn in arrival order; anyone beyond that is refused at once with
/// `WorkPoolFull`, so a flood of requests costs the server nothing but the refusal. The provider keeps one pool for
/// logins and another for client secrets, so that made-up client credentials can never take the CPU that people
/// signing in need.
public actor WorkPool {
    /// Computations that may run at once.
    public let limit: Int
    /// Computations that may wait for a turn.
    public let queue: Int
    private var running = 0
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// A pool of `limit` running and `queue` waiting computations.
    public init(limit: Int, queue: Int) {
        self.limit = max(1, limit); self.queue = max(0, queue)
    }

    /// Runs `work` when a turn comes, or throws `WorkPoolFull` when the pool and its queue are full.
    public func run<T: Sendable>(_ work: @Sendable () async throws -> T) async throws -> T {
        if running < limit {
            running += 1
        } else {
            guard waiting.count < queue else { throw WorkPoolFull() }
            // The finishing computation hands its turn over (running stays the same).
            await withCheckedContinuation { waiting.append($0) }
        }
        defer {
            if waiting.isEmpty { running -= 1 } else { waiting.removeFirst().resume() }
        }
        return try await work()
    }

    /// Computations running now (for tests and metrics).
    public var busy: Int { running }
}

/// The pool and its queue were full.
public struct WorkPoolFull: Error, Sendable {}
