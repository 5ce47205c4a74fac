import KeylessHTTPServer
import Testing

@Suite("HTTPMetrics: one metrics type for both servers, named by prefix")
struct HTTPMetricsTests {
    @Test("requests are counted by route and status and timed by route, every name starting with the server's prefix")
    func requests() {
        let metrics = HTTPMetrics(prefix: "keyless_test", buckets: [.milliseconds(1), .milliseconds(10)])
        metrics.request(route: "/token", status: 200, duration: .microseconds(500))
        metrics.request(route: "/token", status: 200, duration: .milliseconds(5))
        metrics.request(route: "/token", status: 400, duration: .milliseconds(20))
        let text = metrics.render()
        #expect(text.contains(#"keyless_test_http_requests_total{route="/token",status="200"} 2"#))
        #expect(text.contains(#"keyless_test_http_requests_total{route="/token",status="400"} 1"#))
        #expect(text.contains(#"keyless_test_http_request_duration_seconds_bucket{route="/token",le="0.001"} 1"#))
        #expect(text.contains(#"keyless_test_http_request_duration_seconds_bucket{route="/token",le="0.01"} 2"#))
        #expect(text.contains(#"keyless_test_http_request_duration_seconds_count{route="/token"} 3"#))
        let names = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.map {
            $0.prefix { $0 != "{" && $0 != " " }
        }
        #expect(!names.isEmpty && names.allSatisfy { $0.hasPrefix("keyless_test_") }, "\(names)")
    }

    @Test("a named counter keeps one series per label set, and label values that look alike stay apart")
    func counters() {
        let metrics = HTTPMetrics(prefix: "keyless_test", buckets: [.milliseconds(1)])
        for _ in 0..<3 { metrics.increment("logins_total", labels: [("outcome", "success")], help: "Logins.") }
        metrics.increment("logins_total", labels: [("outcome", "failure")], help: "Logins.")
        metrics.increment("pairs_total", labels: [("a", "b c"), ("d", "e")], help: "Pairs.")
        metrics.increment("pairs_total", labels: [("a", "b"), ("d", "c e")], help: "Pairs.")
        let text = metrics.render()
        #expect(text.contains(#"keyless_test_logins_total{outcome="success"} 3"#))
        #expect(text.contains(#"keyless_test_logins_total{outcome="failure"} 1"#))
        #expect(text.contains(#"keyless_test_pairs_total{a="b c",d="e"} 1"#))
        #expect(text.contains(#"keyless_test_pairs_total{a="b",d="c e"} 1"#))
    }
}
