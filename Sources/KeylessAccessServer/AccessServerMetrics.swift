import KeylessHTTPServer

extension HTTPMetrics {
    /// The access server's metrics, named `keyless_server_…`.
    public static func accessServer() -> HTTPMetrics {
        HTTPMetrics(
            prefix: "keyless_server",
            buckets: [
                .microseconds(250), .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(100), .milliseconds(250), .seconds(1),
            ])
    }

    func decision(action: String, outcome: String) {
        increment(
            "decisions_total", labels: [("action", action), ("outcome", outcome)],
            help: "Credential and console requests by outcome (granted, denied, failed).")
    }
}
