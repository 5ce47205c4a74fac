import Foundation
import Prometheus

/// The provider's Prometheus metrics.
public final class IdPMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()

    /// Metrics in a fresh registry.
    public init() {}

    func request(route: String, status: Int, duration: Duration) {
        registry.makeCounter(name: "keyless_idp_http_requests_total", labels: [("route", route), ("status", String(status))],
                             help: "HTTP requests by route and status.").increment()
        registry.makeDurationHistogram(name: "keyless_idp_http_request_duration_seconds", labels: [("route", route)],
                                       buckets: [.milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                                                 .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1)],
                                       help: "HTTP request duration by route.").record(duration)
    }

    func tokenIssued(grant: String) {
        registry.makeCounter(name: "keyless_idp_tokens_issued_total", labels: [("grant", grant)], help: "Token responses by grant.").increment()
    }

    func tokenError(code: String) {
        registry.makeCounter(name: "keyless_idp_token_errors_total", labels: [("error", code)], help: "Token endpoint errors by OAuth error code.").increment()
    }

    func login(outcome: String) {
        registry.makeCounter(name: "keyless_idp_logins_total", labels: [("outcome", outcome)], help: "Login attempts by outcome.").increment()
    }

    func render() -> String { registry.emitToString() }
}
