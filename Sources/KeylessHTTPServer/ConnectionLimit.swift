#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// How many connections a server takes at once, so that it keeps file descriptors for its own work (database
/// connections, JWKS and STS requests, the audit log) however many clients connect: connections beyond the limit wait
/// in the listen backlog until others end (the idle timeout ends silent ones), instead of the server running out of
/// descriptors and failing everything it does.
public enum ConnectionLimit {
    /// Descriptors kept for the server's own work.
    public static let reserve = 64

    /// Raises the soft descriptor limit to the hard one (as much room as the system allows), and returns the number of
    /// connections to accept at once: `requested` when given (at most the limit less the reserve), else the limit less
    /// the reserve, between 16 and 16,384.
    public static func prepare(requested: Int? = nil) -> Int {
        var limits = rlimit()
        guard getrlimit(resourceNoFile, &limits) == 0 else { return requested ?? 1024 }
        if limits.rlim_cur < limits.rlim_max {
            var raised = limits
            raised.rlim_cur = limits.rlim_max
            if setrlimit(resourceNoFile, &raised) == 0 { limits = raised }
        }
        let available = Int(clamping: limits.rlim_cur)  // RLIM_INFINITY is the largest value: clamped to Int.max
        return connections(descriptors: available, requested: requested)
    }

    /// The connections to accept with `descriptors` available.
    public static func connections(descriptors: Int, requested: Int?) -> Int {
        let room = max(16, descriptors - reserve)
        return min(requested.map { max(1, $0) } ?? 16_384, room)
    }

    #if canImport(Glibc)
        private static let resourceNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
        private static let resourceNoFile = RLIMIT_NOFILE
    #endif
}
