import Foundation
import KeylessCore
import KeylessOIDC
@testable import KeylessAccessServer
import KeylessTestSupport
import Testing

/// server.yaml: the full model from a complete file, and every mistake reported with file:line:column.
@Suite("Access server: server.yaml")
struct ServerConfigurationTests {
    static let full = """
        listen: 127.0.0.1:8443
        public_url: https://keyless.example.com/
        policy: policy.yaml
        policy_reload_interval: 5s
        audit_log: /var/log/keyless/audit.log
        jwks_refetch_interval: 2m
        issuers:
          - issuer: https://idp.example.com/
            audiences: [keyless-cli, keyless-web]
            client_id: keyless-cli
            algorithms: [RS256, ES256, EdDSA]
            groups_claim: roles
            mfa_amr: [otp, hwk]
          - issuer: https://partner.example.org
            audiences: partner-cli
            jwks_uri: https://partner.example.org/jwks.json
        web:
          issuer: https://idp.example.com
          client_id: keyless-web
          client_secret_file: web-secret
        aws:
          region: eu-west-1
          sts_endpoint: https://sts.eu-west-1.amazonaws.com
          profile: keyless-server
        console:
          federation_endpoint: https://signin.aws.amazon.com/federation
          destination: https://eu-west-1.console.aws.amazon.com/
          issuer_name: Example Corp
          destination_hosts: [console.aws.amazon.com, aws.amazon.com]
        """

    @Test("--listen moves a public URL derived from listen:, and leaves a written public_url: alone")
    func listenOverride() throws {
        let base =
            "listen: 127.0.0.1:8080\npolicy: policy.yaml\nissuers:\n  - issuer: https://idp.example.com\n    audiences: [keyless-cli]\n"
        var derived = try ServerConfiguration.parse(base, file: "server.yaml")
        derived.listen(on: "127.0.0.1", port: 9191)
        #expect(derived.publicURL == "http://127.0.0.1:9191" && derived.port == 9191)
        var written = try ServerConfiguration.parse(
            base + "public_url: https://keyless.example.com\n", file: "server.yaml")
        written.listen(on: "127.0.0.1", port: 9191)
        #expect(written.publicURL == "https://keyless.example.com" && written.port == 9191)
    }

    @Test("trusted_proxies: lists addresses and CIDR blocks; a bad entry names its line")
    func trustedProxiesSetting() throws {
        let base = "policy: policy.yaml\nissuers:\n  - issuer: https://idp.example.com\n    audiences: [keyless-cli]\n"
        #expect(try ServerConfiguration.parse(base, file: "server.yaml").trustedProxies == .none)
        let parsed = try ServerConfiguration.parse(
            base + "trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n", file: "server.yaml")
        #expect(parsed.trustedProxies.clientAddress(peer: "10.2.3.4", forwardedFor: ["198.51.100.9"]) == "198.51.100.9")
        let bad = #expect(throws: KeylessError.self) {
            try ServerConfiguration.parse(base + "trusted_proxies: [10.0.0.0/99]\n", file: "server.yaml")
        }
        #expect(bad?.reason.hasPrefix("server.yaml:5:") == true, "\(String(describing: bad))")
    }

    @Test("metrics: is off unless set; a bad value names its line; token-file: paths are relative to server.yaml")
    func metricsSetting() throws {
        let base = "policy: policy.yaml\nissuers:\n  - issuer: https://idp.example.com\n    audiences: [keyless-cli]\n"
        #expect(try ServerConfiguration.parse(base, file: "/etc/keyless/server.yaml").metrics == .off)
        #expect(
            try ServerConfiguration.parse(base + "metrics: open\n", file: "/etc/keyless/server.yaml").metrics == .open)
        let bad = #expect(throws: KeylessError.self) {
            try ServerConfiguration.parse(base + "metrics: public\n", file: "server.yaml")
        }
        #expect(
            bad?.reason.hasPrefix("server.yaml:5:") == true
                && bad?.reason.contains("off, open or token-file:PATH") == true, "\(String(describing: bad))")
        let missing = #expect(throws: KeylessError.self) {
            try ServerConfiguration.parse(
                base + "metrics: token-file:metrics-token\n", file: "/nonexistent-dir/server.yaml")
        }
        #expect(missing?.reason.contains("/nonexistent-dir/metrics-token") == true, "\(String(describing: missing))")
    }

    @Test("a server.yaml with a YAML alias is refused before it is composed, naming the line")
    func aliasRefused() throws {
        let error = #expect(throws: KeylessError.self) {
            try ServerConfiguration.parse("listen: &l 127.0.0.1:8080\npublic_url: *l\n", file: "server.yaml")
        }
        #expect(error?.reason.hasPrefix("server.yaml:2:13:") == true, "\(String(describing: error))")
    }

    @Test(
        "a complete server.yaml gives exactly the model it describes, with relative paths resolved against its directory"
    )
    func fullConfiguration() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-server-config")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "  s3cr3t-web\n".write(toFile: directory + "/web-secret", atomically: true, encoding: .utf8)
        let configuration = try ServerConfiguration.parse(Self.full, file: directory + "/server.yaml")

        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8443)
        #expect(configuration.publicURL == "https://keyless.example.com")
        #expect(configuration.policyPath == directory + "/policy.yaml")
        #expect(configuration.auditLogPath == "/var/log/keyless/audit.log")
        #expect(configuration.policyReloadInterval == 5)
        #expect(configuration.jwksRefetchInterval == 120)
        #expect(
            configuration.issuers == [
                ServerIssuer(
                    trusted: TrustedIssuer(
                        issuer: "https://idp.example.com", audiences: ["keyless-cli", "keyless-web"],
                        algorithms: ["RS256", "ES256", "EdDSA"]),
                    clientID: "keyless-cli", groupsClaim: "roles", mfaMethods: ["otp", "hwk"]),
                ServerIssuer(
                    trusted: TrustedIssuer(
                        issuer: "https://partner.example.org", audiences: ["partner-cli"],
                        algorithms: ["RS256", "ES256"],
                        jwksURI: "https://partner.example.org/jwks.json"),
                    clientID: "partner-cli", groupsClaim: "groups", mfaMethods: ["mfa", "otp", "hwk", "swk", "sc"]),
            ])
        #expect(
            configuration.web
                == WebLogin(issuer: "https://idp.example.com", clientID: "keyless-web", clientSecret: "s3cr3t-web"))
        #expect(configuration.region == "eu-west-1")
        #expect(configuration.stsEndpoint == "https://sts.eu-west-1.amazonaws.com")
        #expect(configuration.awsProfile == "keyless-server")
        #expect(configuration.federationEndpoint == "https://signin.aws.amazon.com/federation")
        #expect(configuration.consoleDestination == "https://eu-west-1.console.aws.amazon.com/")
        #expect(configuration.consoleIssuerName == "Example Corp")
        #expect(configuration.consoleDestinationHosts == ["console.aws.amazon.com", "aws.amazon.com"])
    }

    @Test("a minimal server.yaml (policy and one issuer) takes the documented defaults")
    func defaults() throws {
        let configuration = try ServerConfiguration.parse(
            """
            policy: /etc/keyless/policy.yaml
            issuers:
              - issuer: https://idp.example.com
                audiences: [keyless-cli]
            """, file: "/etc/keyless/server.yaml")
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.publicURL == "http://127.0.0.1:8080")
        #expect(configuration.auditLogPath == "/etc/keyless/audit.log")
        #expect(configuration.web == nil)
        #expect(configuration.region == "us-east-1")
        #expect(configuration.stsEndpoint == nil)
        #expect(configuration.federationEndpoint == "https://signin.aws.amazon.com/federation")
        #expect(configuration.consoleDestination == "https://console.aws.amazon.com/")
        #expect(configuration.consoleDestinationHosts == ["console.aws.amazon.com"])
        #expect(configuration.jwksRefetchInterval == 10)
        #expect(configuration.policyReloadInterval == 1)
        #expect(configuration.issuers.first?.clientID == "keyless-cli")
        #expect(configuration.issuers.first?.trusted.algorithms == ["RS256", "ES256"])
    }

    struct Mistake: Sendable, CustomStringConvertible {
        let name: String
        let yaml: String
        /// "line:column" the reason must start with (after the file name).
        let place: String
        /// A phrase the reason must contain.
        let says: String
        var description: String { name }
    }

    static let base = """
        policy: policy.yaml
        issuers:
          - issuer: https://idp.example.com
            audiences: [keyless-cli, keyless-web]
        """

    static let mistakes: [Mistake] = [
        Mistake(
            name: "unknown top-level key", yaml: base + "\npolicy_reload: 5s", place: "5:1",
            says: "unknown key policy_reload"),
        Mistake(
            name: "unknown key in an issuer", yaml: base + "\n    audience: keyless-cli", place: "5:5",
            says: "unknown key audience in an issuer"),
        Mistake(
            name: "missing policy",
            yaml: """
                issuers:
                  - issuer: https://idp.example.com
                    audiences: [keyless-cli]
                """, place: "1:1", says: "policy: is required"),
        Mistake(
            name: "issuer without audiences",
            yaml: """
                policy: policy.yaml
                issuers:
                  - issuer: https://idp.example.com
                    algorithms: [RS256]
                """, place: "3:5", says: "needs audiences"),
        Mistake(
            name: "issuer with an empty audiences list",
            yaml: """
                policy: policy.yaml
                issuers:
                  - issuer: https://idp.example.com
                    audiences: []
                """, place: "4:16", says: "needs audiences"),
        Mistake(
            name: "issuer with audiences: and no value",
            yaml: """
                policy: policy.yaml
                issuers:
                  - issuer: https://idp.example.com
                    audiences:
                    client_id: keyless-cli
                """, place: "3:5", says: "needs audiences"),
        Mistake(
            name: "HS256 algorithm", yaml: base + "\n    algorithms: [RS256, HS256]", place: "5:17",
            says: "algorithm HS256 is not accepted"),
        Mistake(
            name: "none algorithm", yaml: base + "\n    algorithms: none", place: "5:17",
            says: "algorithm none is not accepted"),
        Mistake(
            name: "client_id not among the audiences", yaml: base + "\n    client_id: other-cli", place: "5:16",
            says: "must be one of the issuer's audiences"),
        Mistake(
            name: "web.client_id not among the audiences", yaml: base + "\nweb:\n  client_id: keyless-webapp",
            place: "6:14",
            says: "web.client_id keyless-webapp must be among issuer https://idp.example.com's audiences"),
        Mistake(
            name: "web.issuer not trusted",
            yaml: base + "\nweb:\n  issuer: https://other.example.com\n  client_id: keyless-web", place: "6:11",
            says: "is not one of the trusted issuers"),
        Mistake(
            name: "listen without a port", yaml: "listen: localhost\n" + base, place: "1:9",
            says: "listen must be HOST:PORT"),
        Mistake(
            name: "listen with a port out of range", yaml: "listen: 127.0.0.1:70000\n" + base, place: "1:9",
            says: "listen must be HOST:PORT"),
        Mistake(
            name: "listen with only a port", yaml: "listen: 8080\n" + base, place: "1:9",
            says: "listen must be HOST:PORT"),
        Mistake(
            name: "no issuers", yaml: "policy: policy.yaml\nissuers: []", place: "2:10",
            says: "issuers: must list at least one"),
        Mistake(
            name: "issuer that is not a URL",
            yaml: "policy: policy.yaml\nissuers:\n  - issuer: idp.example.com\n    audiences: [a]", place: "3:13",
            says: "is not an http(s) URL"),
        Mistake(
            name: "issuer listed twice", yaml: base + "\n  - issuer: https://idp.example.com/\n    audiences: [x]",
            place: "5:13", says: "listed twice"),
        Mistake(
            name: "a policy reload interval of zero", yaml: base + "\npolicy_reload_interval: 0s", place: "5:25",
            says: "must be more than 0"),
        Mistake(
            name: "bad duration", yaml: base + "\njwks_refetch_interval: soon", place: "5:24",
            says: "must be a duration"),
        // Yams itself refuses duplicate keys; the error points at the first of them.
        Mistake(
            name: "duplicate key", yaml: base + "\npolicy: other.yaml", place: "1:1",
            says: "the key 'policy' appears more than once"),
        Mistake(name: "YAML syntax error", yaml: base + "\nweb: [unclosed", place: "6:1", says: "not valid YAML"),
        Mistake(
            name: "policy: with no value",
            yaml: "policy:\n" + base.split(separator: "\n").dropFirst().joined(separator: "\n"), place: "1:1",
            says: "policy: is required"),
        Mistake(
            name: "console destination host list of mappings", yaml: base + "\nconsole:\n  destination_hosts: [{a: b}]",
            place: "6:23",
            says: "must list plain values"),
    ]

    @Test(
        "each mistake in server.yaml is a config_invalid error whose reason starts with file:line:column and says what is wrong",
        arguments: mistakes)
    func mistakeIsReported(_ mistake: Mistake) throws {
        let file = "/etc/keyless/server.yaml"
        let error = try #require(throws: KeylessError.self) { try ServerConfiguration.parse(mistake.yaml, file: file) }
        #expect(error.code == .configInvalid)
        #expect(error.reason.hasPrefix(file + ":" + mistake.place), "\(mistake): \(error.reason)")
        #expect(
            error.reason.range(of: #"^/etc/keyless/server\.yaml:\d+:\d+: "#, options: .regularExpression) != nil,
            "\(error.reason)")
        #expect(error.reason.contains(mistake.says), "\(mistake): \(error.reason)")
        #expect(error.hint?.isEmpty == false)
    }

    @Test(
        "listen takes HOST:PORT with IPv6 in brackets and port 0 for any free port",
        arguments: [
            ("127.0.0.1:8080", "127.0.0.1", 8080), ("[::1]:9000", "::1", 9000), ("0.0.0.0:0", "0.0.0.0", 0),
            ("keyless.internal:443", "keyless.internal", 443),
        ])
    func listen(text: String, host: String, port: Int) throws {
        let configuration = try ServerConfiguration.parse("listen: \"\(text)\"\n" + Self.base, file: "/srv/server.yaml")
        #expect(configuration.host == host)
        #expect(configuration.port == port)
    }

    @Test("a server.yaml that is not YAML, or is empty, is config_invalid naming the file")
    func notYAML() throws {
        for text in ["", "listen: [unclosed", "- a list\n- at the top"] {
            let error = try #require(throws: KeylessError.self) {
                try ServerConfiguration.parse(text, file: "/srv/server.yaml")
            }
            #expect(error.code == .configInvalid)
            #expect(error.reason.hasPrefix("/srv/server.yaml"), "\(error.reason)")
        }
    }

    @Test("a missing client_secret_file is reported at its line")
    func missingSecretFile() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-server-config")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = try #require(throws: KeylessError.self) {
            try ServerConfiguration.parse(
                Self.base + "\nweb:\n  client_id: keyless-web\n  client_secret_file: nope",
                file: directory + "/server.yaml")
        }
        #expect(error.reason.hasPrefix(directory + "/server.yaml:7:23: "), "\(error.reason)")
    }
}
