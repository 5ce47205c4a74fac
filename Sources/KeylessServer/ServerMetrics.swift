import Foundation
import Prometheus
import Synchronization

/// The access server's Prometheus metrics.
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()
    /// Metric objects by route and status, so a request costs one small lock instead of the registry's checks.
    private let perRequest = Mutex<[String: (Counter, DurationHistogram)]>([:])
    private let decisions = Mutex<[String: Counter]>([:])

    /// Metrics in a fresh registry.
    public init() {}

    func request(route: String, status: Int, duration: Duration) {
        let key = route + " " + String(status)
        let metrics = perRequest.withLock { cache -> (Counter, DurationHistogram) in
            if let found = cache[key] { return found }
            let made = (
                registry.makeCounter(name: "keyless_server_http_requests_total", labels: [("route", route), ("status", String(status))],
                                     help: "HTTP requests by route and status."),
                registry.makeDurationHistogram(name: "keyless_server_http_request_duration_seconds", labels: [("route", route)],
                                               buckets: [.microseconds(250), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                                         .milliseconds(100), .milliseconds(250), .seconds(1)],
                                               help: "HTTP request duration by route."))
            cache[key] = made
            return made
        }
        metrics.0.increment()
        metrics.1.record(duration)
    }

    func decision(action: String, outcome: String) {
        decisions.withLock { cache -> Counter in
            let key = action + " " + outcome
            if let found = cache[key] { return found }
            let made = registry.makeCounter(name: "keyless_server_decisions_total", labels: [("action", action), ("outcome", outcome)],
                                            help: "Credential and console requests by outcome (granted, denied, failed).")
            cache[key] = made
            return made
        }.increment()
    }

    func render() -> String { registry.emitToString() }
}
