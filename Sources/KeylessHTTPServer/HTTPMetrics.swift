import Foundation
import Prometheus
import Synchronization

/// A server's Prometheus metrics: every request by route and status with its duration, and the server's own counters,
/// all named with its prefix (`keyless_idp`, `keyless_server`).
public final class HTTPMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()
    /// The start of every metric's name.
    public let prefix: String
    private let buckets: [Duration]
    /// Metric objects by name and labels, so a request costs one small lock instead of the registry's name and label
    /// checks.
    private let perRequest = Mutex<[String: (Counter, DurationHistogram)]>([:])
    private let counters = Mutex<[String: Counter]>([:])

    /// Metrics named `PREFIX_…` in a fresh registry; request durations go into `buckets`.
    public init(prefix: String, buckets: [Duration]) {
        self.prefix = prefix
        self.buckets = buckets
    }

    /// Counts one request and records its duration.
    public func request(route: String, status: Int, duration: Duration) {
        let key = route + " " + String(status)
        let metrics = perRequest.withLock { cache -> (Counter, DurationHistogram) in
            if let found = cache[key] { return found }
            let made = (
                registry.makeCounter(
                    name: prefix + "_http_requests_total", labels: [("route", route), ("status", String(status))],
                    help: "HTTP requests by route and status."),
                registry.makeDurationHistogram(
                    name: prefix + "_http_request_duration_seconds", labels: [("route", route)],
                    buckets: buckets, help: "HTTP request duration by route.")
            )
            cache[key] = made
            return made
        }
        metrics.0.increment()
        metrics.1.record(duration)
    }

    /// Adds one to the counter `PREFIX_name` with `labels`.
    public func increment(_ name: String, labels: [(String, String)], help: String) {
        let key = ([name] + labels.flatMap { [$0.0, $0.1] }).joined(separator: "\u{0}")
        counters.withLock { cache -> Counter in
            if let found = cache[key] { return found }
            let made = registry.makeCounter(name: prefix + "_" + name, labels: labels, help: help)
            cache[key] = made
            return made
        }.increment()
    }

    /// The metrics in Prometheus's text format.
    public func render() -> String { registry.emitToString() }
}
