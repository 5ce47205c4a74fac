#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The process environment as a value, so that code under test never reads or writes the real one.
public struct Environment: Sendable, Equatable {
    /// The variables.
    public var values: [String: String]

    public init(_ values: [String: String] = [:]) { self.values = values }

    /// The variable's value, with an empty string treated as unset.
    public subscript(_ name: String) -> String? {
        get { values[name].flatMap { $0.isEmpty ? nil : $0 } }
        set { values[name] = newValue }
    }

    /// The environment of this process, read once.
    public static var process: Environment {
        var values: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let pair = String(cString: entry)
            if let equals = pair.firstIndex(of: "=") {
                values[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
            pointer += 1
        }
        return Environment(values)
    }
}

/// Wall-clock time, injected so tests can fix it.
public struct WallClock: Sendable {
    /// The current time.
    public let now: @Sendable () -> Date

    /// A clock that returns `now()`.
    public init(now: @escaping @Sendable () -> Date) { self.now = now }

    /// The system clock.
    public static let system = WallClock { Date() }

    /// A clock that always says `date`.
    public static func fixed(_ date: Date) -> WallClock { WallClock { date } }
}
