import Foundation
import KeylessCore
import Synchronization

/// A wall clock a test moves by hand, so expiry, refresh and throttling windows need no sleeps.
public final class ManualClock: Sendable {
    /// Where fixture clocks start unless told otherwise: 2026-01-01T00:00:00Z.
    public static let reference = Date(timeIntervalSince1970: 1_767_225_600)

    private let current: Mutex<Date>

    /// A clock showing `start`.
    public init(_ start: Date = ManualClock.reference) { current = Mutex(start) }

    /// The time it shows.
    public var now: Date { current.withLock { $0 } }

    /// Moves it forward (or back, with a negative number).
    public func advance(by seconds: TimeInterval) { current.withLock { $0 = $0.addingTimeInterval(seconds) } }

    /// The clock as the code under test takes it.
    public var wallClock: WallClock { WallClock { [self] in now } }
}
