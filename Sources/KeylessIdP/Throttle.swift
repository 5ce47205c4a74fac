import Foundation

/// Counts failed logins per user and per source address in a sliding window and says when to refuse further
/// attempts. In memory: each replica throttles on its own (an attacker spread over N replicas gets N times the budget).
public actor LoginThrottle {
    /// Failures allowed per user within the window.
    public let perUser: Int
    /// Failures allowed per source address within the window.
    public let perAddress: Int
    /// The window, in seconds.
    public let window: TimeInterval
    private var failures: [String: [Date]] = [:]

    /// A throttle: by default 5 failures per user and 20 per address in 5 minutes.
    public init(perUser: Int = 5, perAddress: Int = 20, window: TimeInterval = 300) {
        self.perUser = perUser; self.perAddress = perAddress; self.window = window
    }

    /// Seconds to wait before another attempt for this user or address, or nil when an attempt may be made.
    public func retryAfter(user: String, address: String, now: Date) -> Int? {
        var waits: [TimeInterval] = []
        for (key, limit) in [("u:" + user.lowercased(), perUser), ("a:" + address, perAddress)] {
            let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < window }
            failures[key] = recent.isEmpty ? nil : recent
            if recent.count >= limit, let oldest = recent.first { waits.append(window - now.timeIntervalSince(oldest)) }
        }
        return waits.max().map { max(1, Int($0.rounded(.up))) }
    }

    /// Records a failed attempt.
    public func recordFailure(user: String, address: String, now: Date) {
        failures["u:" + user.lowercased(), default: []].append(now)
        failures["a:" + address, default: []].append(now)
        if failures.count > 100_000 { failures = failures.filter { now.timeIntervalSince($0.value.last!) < window } }
    }

    /// Seconds to wait before another attempt from this address (for guesses not tied to a user, such as device
    /// user codes), or nil.
    public func retryAfter(address: String, now: Date) -> Int? {
        let key = "c:" + address
        let recent = (failures[key] ?? []).filter { now.timeIntervalSince($0) < window }
        failures[key] = recent.isEmpty ? nil : recent
        guard recent.count >= perAddress, let oldest = recent.first else { return nil }
        return max(1, Int((window - now.timeIntervalSince(oldest)).rounded(.up)))
    }

    /// Records a failed guess from an address.
    public func recordFailure(address: String, now: Date) {
        failures["c:" + address, default: []].append(now)
    }

    /// Checks the limits and, when an attempt may be made, counts it as a failure until `recordSuccess` says
    /// otherwise; returns the seconds to wait when it may not.
    public func beginAttempt(user: String, address: String, now: Date) -> Int? {
        if let wait = retryAfter(user: user, address: address, now: now) { return wait }
        recordFailure(user: user, address: address, now: now)
        return nil
    }

    /// After a successful login: forgets the user's failures and takes back the address's count for this attempt.
    public func recordSuccess(user: String, address: String, attemptAt: Date) {
        failures["u:" + user.lowercased()] = nil
        if let index = failures["a:" + address]?.lastIndex(of: attemptAt) { failures["a:" + address]?.remove(at: index) }
    }
}
