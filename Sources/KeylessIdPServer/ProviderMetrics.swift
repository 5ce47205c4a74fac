import KeylessHTTPServer

extension HTTPMetrics {
    /// The provider's metrics, named `keyless_idp_…`.
    public static func provider() -> HTTPMetrics {
        HTTPMetrics(
            prefix: "keyless_idp",
            buckets: [
                .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            ])
    }

    func tokenIssued(grant: String) {
        increment("tokens_issued_total", labels: [("grant", grant)], help: "Token responses by grant.")
    }

    func tokenError(code: String) {
        increment("token_errors_total", labels: [("error", code)], help: "Token endpoint errors by OAuth error code.")
    }

    func login(outcome: String) {
        increment("logins_total", labels: [("outcome", outcome)], help: "Login attempts by outcome.")
    }
}
