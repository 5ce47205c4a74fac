import Foundation
import Prometheus
import Synchronization

/// The provider's Prometheus metrics.
public final class IdPMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()

    /// Per-request metric objects by route and status, so a request costs one small lock instead of the registry's
    /// name and label checks.
    private let perRequest = Mutex<[String: (Counter, DurationHistogram)]>([:])

    /// Metrics in a fresh registry.
    public init() {}

    func request(route: String, status: Int, duration: Duration) {
        let key = route + " " + String(status)
        let metrics = perRequest.withLock { cache -> (Counter, DurationHistogram) in
            if let found = cache[key] { return found }
            let made = (
                registry.makeCounter(name: "keyless_idp_http_requests_total", labels: [("route", route), ("status", String(status))],
                                     help: "HTTP requests by route and status."),
                registry.makeDurationHistogram(name: "keyless_idp_http_request_duration_seconds", labels: [("route", route)],
                                               buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                                         .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1)],
                                               help: "HTTP request duration by route."))
            cache[key] = made
            return made
        }
        metrics.0.increment()
        metrics.1.record(duration)
    }

    private let tokenCounters = Mutex<[String: Counter]>([:])

    func tokenIssued(grant: String) {
        tokenCounters.withLock { cache -> Counter in
            if let found = cache[grant] { return found }
            let made = registry.makeCounter(name: "keyless_idp_tokens_issued_total", labels: [("grant", grant)], help: "Token responses by grant.")
            cache[grant] = made
            return made
        }.increment()
    }

    func tokenError(code: String) {
        registry.makeCounter(name: "keyless_idp_token_errors_total", labels: [("error", code)], help: "Token endpoint errors by OAuth error code.").increment()
    }

    func login(outcome: String) {
        registry.makeCounter(name: "keyless_idp_logins_total", labels: [("outcome", outcome)], help: "Login attempts by outcome.").increment()
    }

    func render() -> String { registry.emitToString() }
}
