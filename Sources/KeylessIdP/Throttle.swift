import Crypto
import Foundation
import KeylessCore
import KeylessStorage

/// How many failures the provider lets through before it makes people wait.
///
/// Logins are throttled three ways, so that no one can lock a user out from one address:
/// - per user and source address: a few free failures, then each attempt waits a delay that doubles with every further
///   failure (`firstDelay`, 2×, 4×, … up to `longestDelay`); this is what slows a guesser down;
/// - per source address, over all users: `failuresPerAddress` within `window` (password spraying);
/// - per user, over all addresses: `failuresPerUser` within `window`, far more than one address can reach, so only an
///   attack from many addresses at once can lock the user out, and then only while it lasts.
///
/// Guesses that are not tied to a user (device user codes, client secrets) are limited per source address.
/// Every counter lives in the store, so replicas sharing it share the limits; a counter is forgotten `window` seconds
/// after its last failure.
public struct ThrottleLimits: Sendable, Equatable {
    /// Failures one address may make for one user before its attempts are delayed.
    public var freeFailures: Int
    /// The first delay, in seconds.
    public var firstDelay: TimeInterval
    /// The longest delay, in seconds.
    public var longestDelay: TimeInterval
    /// Failed logins from one address, over all users, within the window.
    public var failuresPerAddress: Int
    /// Failed logins for one user, from all addresses, within the window.
    public var failuresPerUser: Int
    /// Wrong device user codes, or failed client authentications, from one address within the window.
    public var guessesPerAddress: Int
    /// Seconds after its last failure that a counter is forgotten.
    public var window: TimeInterval

    /// Limits; the defaults are 3 free failures then 2 s doubling up to 5 min per user and address, 30 failures per
    /// address, 300 per user, 20 wrong codes or client secrets per address, all within 15 minutes.
    public init(
        freeFailures: Int = 3, firstDelay: TimeInterval = 2, longestDelay: TimeInterval = 300,
        failuresPerAddress: Int = 30,
        failuresPerUser: Int = 300, guessesPerAddress: Int = 20, window: TimeInterval = 900
    ) {
        self.freeFailures = freeFailures; self.firstDelay = firstDelay; self.longestDelay = longestDelay
        self.failuresPerAddress = failuresPerAddress; self.failuresPerUser = failuresPerUser
        self.guessesPerAddress = guessesPerAddress; self.window = window
    }

    /// The delay before the attempt after `failures` failures of one user from one address.
    func delay(afterFailures failures: Int) -> TimeInterval {
        guard failures >= freeFailures else { return 0 }
        let doublings = min(failures - freeFailures, 30)
        return min(longestDelay, firstDelay * pow(2, Double(doublings)))
    }
}

/// What a throttled kind of guess is, for its counter's name.
public enum GuessKind: String, Sendable {
    /// A user code typed on the device page.
    case deviceCode = "device"
    /// A client secret or assertion at the token, device-authorization or revocation endpoint.
    case clientAuthentication = "client"
}

/// Counts failed logins and guesses in the shared store and says when to refuse further attempts.
public struct Throttle: Sendable {
    public let limits: ThrottleLimits
    let store: any IdPStore

    /// A throttle keeping its counters in `store`.
    public init(store: any IdPStore, limits: ThrottleLimits = ThrottleLimits()) {
        self.store = store; self.limits = limits
    }

    // MARK: Logins

    /// Checks the limits for a login attempt and, when it may be made, counts it as a failure until `loginSucceeded`
    /// says otherwise. Returns the seconds to wait when it may not. Parallel attempts cannot outrun the limits: an
    /// attempt that finds others counted since it looked is taken back and refused.
    public func beginLogin(user: String, address: String, now: Date) async throws -> Int? {
        let keys = loginKeys(user: user, address: address)
        let before = try await store.counters(keys, now: now)
        if let wait = loginWait(before, now: now) { return wait }
        let after = try await store.addToCounters(keys, delta: 1, window: limits.window, now: now)
        let raced = after[0].count > before[0].count + 1 && after[0].count > limits.freeFailures
        if raced || after[1].count > limits.failuresPerAddress || after[2].count > limits.failuresPerUser {
            _ = try await store.addToCounters(keys, delta: -1, window: limits.window, now: now)
            return loginWait(after, now: now) ?? max(1, Int(limits.delay(afterFailures: after[0].count).rounded(.up)))
        }
        return nil
    }

    /// After a successful login: forgets the failures of this user from this address, and takes this attempt back
    /// from the address's and the user's counts (earlier failures there stay counted).
    public func loginSucceeded(user: String, address: String, now: Date) async throws {
        let keys = loginKeys(user: user, address: address)
        try await store.deleteCounter(keys[0])
        _ = try await store.addToCounters(Array(keys[1...]), delta: -1, window: limits.window, now: now)
    }

    /// Takes back an attempt `beginLogin` counted when nothing was checked after all (the password pool was full).
    public func loginNotAttempted(user: String, address: String, now: Date) async throws {
        _ = try await store.addToCounters(
            loginKeys(user: user, address: address), delta: -1, window: limits.window, now: now)
    }

    /// Seconds to wait given the counters (user and address, address, user), or nil.
    func loginWait(_ counters: [ThrottleCounter], now: Date) -> Int? {
        var waits: [TimeInterval] = []
        if let last = counters[0].lastIncrease {
            let delay = limits.delay(afterFailures: counters[0].count)
            if delay > 0 { waits.append(last.addingTimeInterval(delay).timeIntervalSince(now)) }
        }
        for (counter, limit) in [(counters[1], limits.failuresPerAddress), (counters[2], limits.failuresPerUser)] {
            if counter.count >= limit, let last = counter.lastIncrease {
                waits.append(last.addingTimeInterval(limits.window).timeIntervalSince(now))
            }
        }
        guard let longest = waits.max(), longest > 0 else { return nil }
        return max(1, Int(longest.rounded(.up)))
    }

    func loginKeys(user: String, address: String) -> [String] {
        let user = user.lowercased()
        return [
            Self.key("login-pair", user + "\u{0}" + address), Self.key("login-address", address),
            Self.key("login-user", user),
        ]
    }

    // MARK: Guesses per address

    /// Seconds to wait before another guess of this kind from this address, or nil.
    public func retryAfter(_ kind: GuessKind, address: String, now: Date) async throws -> Int? {
        let counter = try await store.counters([Self.key(kind.rawValue, address)], now: now)[0]
        guard counter.count >= limits.guessesPerAddress, let last = counter.lastIncrease else { return nil }
        return max(1, Int(last.addingTimeInterval(limits.window).timeIntervalSince(now).rounded(.up)))
    }

    /// Records a wrong guess of this kind from an address.
    public func recordFailure(_ kind: GuessKind, address: String, now: Date) async throws {
        _ = try await store.addToCounters([Self.key(kind.rawValue, address)], delta: 1, window: limits.window, now: now)
    }

    /// A counter's name: its kind and the SHA-256 of what it counts, so that user names of any length or content make
    /// keys of one shape, and the store holds no user name or address in the clear.
    static func key(_ kind: String, _ subject: String) -> String {
        kind + ":" + Hex.encode(SHA256.hash(data: Data(subject.utf8)))
    }
}
