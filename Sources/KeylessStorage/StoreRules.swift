import Foundation

// Rules every store applies the same way, so that the backends cannot drift apart.

/// What one poll of a device code does, decided from its stored state; every store applies the same rules.
package enum DevicePollDecision: Sendable, Equatable {
    /// Answer without changing anything.
    case answer(DevicePoll)
    /// Mark it consumed and hand out the approval (once).
    case handOut
    /// Store the poll time and `interval` (raised by 5 s after a poll that came too soon), then answer.
    case recordPoll(interval: Int, DevicePoll)
}

/// The rules of `IdPStore.pollDevice`: a consumed code is gone (`notFound`); an expired one says so; a decision is
/// answered at once (RFC 8628 makes `slow_down` a variant of `authorization_pending`, so only a pending code is held to
/// its interval); a pending code polled sooner than `interval` seconds after the previous poll (whatever that poll
/// answered) gets `slowDown` with the interval raised by 5 s. Times are milliseconds since 1970.
package func pollDecision(device: DeviceCodeRecord, lastPolledAt: Int64?, now: Int64) -> DevicePollDecision {
    if device.status == .consumed { return .answer(.notFound) }
    guard now < device.expiresAt.millisecondsSince1970 else { return .answer(.expired) }
    switch device.status {
    case .denied:
        return .answer(.denied)
    case .approved:
        return .handOut
    case .consumed:
        return .answer(.notFound)
    case .pending:
        if let lastPolledAt, now - lastPolledAt < Int64(device.interval) * 1000 {
            return .recordPoll(interval: device.interval + 5, .slowDown(interval: device.interval + 5))
        }
        return .recordPoll(interval: device.interval, .pending)
    }
}

extension IdPStoreError {
    /// A record whose key is already stored: a programming error, or a collision of random values.
    package static func duplicate(_ kind: String, _ key: String) -> IdPStoreError {
        IdPStoreError("\(kind) \(key.prefix(16)) is already stored; generate a new one")
    }
}
