import Foundation
import KeylessCore
import KeylessHTTPServer
import KeylessOIDC
import KeylessYAML
import Yams

/// One issuer whose tokens the server accepts, and what `configure` writes for its users.
public struct ServerIssuer: Sendable, Equatable {
    /// What the verifier checks: issuer, audiences, pinned algorithms, optional JWKS URL.
    public var trusted: TrustedIssuer
    /// The CLI's client id at this issuer (written into `credential_process` lines); the first audience by default.
    public var clientID: String
    /// The claim that lists the caller's groups.
    public var groupsClaim: String
    /// `amr` values that count as multi-factor (RFC 8176).
    public var mfaMethods: Set<String>
    /// `amr` values that count as a phishing-resistant sign-in (`mfa_required: phishing-resistant`): by default `hwk`
    /// (RFC 8176 §2: proof of possession of a hardware-secured key) and `fido` (Microsoft Entra ID's value for a FIDO2
    /// security key or passkey, https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference
    /// "amr claim").
    public var phishingResistantMethods: Set<String> = ["hwk", "fido"]
    /// `acr` values that do: by default `phr` and `phrh` (OpenID Extended Authentication Profile ACR values 1.0 §3:
    /// phishing-resistant, and phishing-resistant hardware-protected), which keyless idp writes for passkey sign-ins.
    public var phishingResistantACR: Set<String> = ["phr", "phrh"]
}

/// The web page's OIDC client: authorization code with PKCE at one of the trusted issuers.
public struct WebLogin: Sendable, Equatable {
    /// The trusted issuer the page signs in with.
    public var issuer: String
    /// The page's client id (must be among that issuer's audiences).
    public var clientID: String
    /// The client secret, for confidential clients (read from a file, never from the YAML itself).
    public var clientSecret: String?
}

/// server.yaml `requests:`: where access requests are kept and how long they wait.
public struct RequestSettings: Sendable, Equatable {
    /// Where the store is.
    public enum Store: Sendable, Equatable {
        /// One SQLite file: one server (or several processes on one host).
        case sqlite(path: String)
        /// A PostgreSQL database shared by replicas; the password from the URL, `passwordFile`, or PGPASSWORD.
        case postgres(url: String, passwordFile: String?)
    }

    /// The store (default: requests.sqlite beside the audit log, a directory the server writes already).
    public var store: Store
    /// How long a request waits for a decision before it expires (`pending_for:`, default 24 h).
    public var pendingSeconds: TimeInterval = 86400
    /// How often a replica expires requests and grants that ran out (`sweep_interval:`, default 30 s). Grants stop
    /// working at their end whatever this is: the sweep writes the "expired" record and sends the event.
    public var sweepInterval: TimeInterval = 30
    /// Where request events are sent (`webhook:`), if anywhere.
    public var webhook: WebhookSettings?

    public init(store: Store) { self.store = store }
}

/// `server.yaml`: where the server listens, whom it trusts, its policy, AWS access, console federation and audit log.
public struct ServerConfiguration: Sendable {
    /// Address to bind.
    public var host: String
    /// Port (0 picks one).
    public var port: Int
    /// The URL people reach the server at (redirect URIs, `configure` lines); defaults to http://listen.
    public var publicURL: String
    /// The policy file (reloaded on change).
    public var policyPath: String
    /// The audit log (JSON lines, fsync per record).
    public var auditLogPath: String
    /// Trusted issuers.
    public var issuers: [ServerIssuer]
    /// The web page's login, when the page is enabled.
    public var web: WebLogin?
    /// The region for STS calls and SigV4.
    public var region: String
    /// The STS endpoint (nil: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else regional).
    public var stsEndpoint: String?
    /// The AWS profile for the server's own credentials (nil: the default chain).
    public var awsProfile: String?
    /// The console federation endpoint.
    public var federationEndpoint: String
    /// Where the console opens when no destination is given.
    public var consoleDestination: String
    /// The `Issuer` shown on the AWS sign-in page.
    public var consoleIssuerName: String
    /// Hosts a console destination may point at.
    public var consoleDestinationHosts: [String]
    /// Least time between two JWKS refetches for an unknown key id.
    public var jwksRefetchInterval: TimeInterval
    /// Seconds between checks of the policy file.
    public var policyReloadInterval: TimeInterval
    /// Seconds a connection may stay silent (between requests, or before its request head is complete) before it is closed.
    public var idleTimeout: TimeInterval = 30
    /// Who may read `/metrics` (`metrics:` off, open or token-file:PATH; off by default).
    public var metrics: MetricsAccess = .off
    /// Load balancers whose X-Forwarded-For names the client, for the audit log (`trusted_proxies:`; none by default).
    public var trustedProxies: TrustedProxies = .none
    /// Connections taken at once (`max_connections:`; by default the descriptor limit less `ConnectionLimit.reserve`).
    public var maxConnections: Int?
    /// Whether `publicURL` was derived from `listen:` (no `public_url:`), so that it follows `--listen`.
    public var publicURLFollowsListen = false
    /// Access requests (`requests:`).
    public var requests = RequestSettings(store: .sqlite(path: "requests.sqlite"))

    /// Listens on `host:port` instead (`--listen`); a public URL derived from `listen:` follows it.
    public mutating func listen(on host: String, port: Int) {
        self.host = host
        self.port = port
        if publicURLFollowsListen { publicURL = Discovery.normalize("http://\(host):\(port)") }
    }

    /// Every key server.yaml may have, for typo messages.
    static let topKeys: Set<String> = [
        "listen", "public_url", "policy", "audit_log", "issuers", "web", "aws", "console",
        "jwks_refetch_interval", "policy_reload_interval", "idle_timeout", "metrics", "trusted_proxies",
        "max_connections", "requests",
    ]

    /// Reads and checks `path`; relative file names in it are relative to its directory.
    public static func load(path: String) throws -> ServerConfiguration {
        let text = try YAMLFile.text(
            atPath: path,
            missing: KeylessError(
                .configInvalid, "The server configuration \(path) does not exist.",
                hint: "Pass --config with the path of server.yaml (see docs/server.example.yaml)."))
        return try parse(text, file: path)
    }

    /// Parses server.yaml text; `file` names it in errors and anchors relative paths.
    public static func parse(_ text: String, file: String) throws -> ServerConfiguration {
        guard let root = try YAMLFile.compose(text, file: file, hint: hint) else {
            throw bad(file, nil, "the file is empty")
        }
        let top = try mapping(root, file: file, allowed: topKeys, what: "the top level")
        let directory = Files.parentDirectory(file)
        func resolve(_ path: String) -> String { path.hasPrefix("/") ? path : directory + "/" + path }

        let listen = try string(top["listen"], file: file, what: "listen") ?? "127.0.0.1:8080"
        guard let (host, port) = ListenAddress.parse(listen) else {
            throw bad(file, top["listen"], "listen must be HOST:PORT, e.g. 127.0.0.1:8080")
        }
        let publicURL = Discovery.normalize(
            try string(top["public_url"], file: file, what: "public_url") ?? "http://\(listen)")
        guard let policy = try string(top["policy"], file: file, what: "policy") else {
            throw bad(file, root, "policy: is required (the path of the policy file, e.g. policy.yaml)")
        }
        let audit = try string(top["audit_log"], file: file, what: "audit_log") ?? "audit.log"

        guard let issuerList = top["issuers"], let issuerNodes = issuerList.sequence, !issuerNodes.isEmpty else {
            throw bad(
                file, top["issuers"] ?? root, "issuers: must list at least one trusted issuer (issuer, audiences)")
        }
        var issuers: [ServerIssuer] = []
        for node in issuerNodes {
            let map = try mapping(
                node, file: file,
                allowed: [
                    "issuer", "audiences", "algorithms", "jwks_uri", "client_id", "groups_claim", "mfa_amr",
                    "phishing_resistant_amr", "phishing_resistant_acr",
                ],
                what: "an issuer")
            guard let url = try string(map["issuer"], file: file, what: "issuer") else {
                throw bad(file, node, "an issuer needs issuer: (its URL)")
            }
            guard let parsed = URL(string: url), let scheme = parsed.scheme, ["http", "https"].contains(scheme),
                parsed.host != nil
            else {
                throw bad(file, map["issuer"], "issuer \(url) is not an http(s) URL")
            }
            let audiences = try strings(map["audiences"], file: file, what: "audiences")
            guard !audiences.isEmpty else {
                throw bad(
                    file, map["audiences"] ?? node,
                    "issuer \(url) needs audiences: (the client ids its tokens are issued to)")
            }
            let algorithms = try strings(map["algorithms"], file: file, what: "algorithms")
            for algorithm in algorithms
            where !["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"].contains(algorithm)
            {
                throw bad(
                    file, map["algorithms"],
                    "algorithm \(algorithm) is not accepted (asymmetric ones only: RS256, PS256, ES256, EdDSA, ...)")
            }
            let clientID = try string(map["client_id"], file: file, what: "client_id") ?? audiences[0]
            guard audiences.contains(clientID) else {
                throw bad(file, map["client_id"], "client_id \(clientID) must be one of the issuer's audiences")
            }
            let mfa = try strings(map["mfa_amr"], file: file, what: "mfa_amr")
            let strongAMR = try strings(map["phishing_resistant_amr"], file: file, what: "phishing_resistant_amr")
            let strongACR = try strings(map["phishing_resistant_acr"], file: file, what: "phishing_resistant_acr")
            let trusted = TrustedIssuer(
                issuer: Discovery.normalize(url), audiences: audiences,
                algorithms: algorithms.isEmpty ? ["RS256", "ES256"] : algorithms,
                jwksURI: try string(map["jwks_uri"], file: file, what: "jwks_uri"))
            if issuers.contains(where: { $0.trusted.issuer == trusted.issuer }) {
                throw bad(file, map["issuer"], "issuer \(url) is listed twice")
            }
            var issuer = ServerIssuer(
                trusted: trusted, clientID: clientID,
                groupsClaim: try string(map["groups_claim"], file: file, what: "groups_claim") ?? "groups",
                mfaMethods: Set(mfa.isEmpty ? ["mfa", "otp", "hwk", "swk", "sc"] : mfa))
            if !strongAMR.isEmpty { issuer.phishingResistantMethods = Set(strongAMR) }
            if !strongACR.isEmpty { issuer.phishingResistantACR = Set(strongACR) }
            issuers.append(issuer)
        }

        var web: WebLogin?
        if let webNode = top["web"] {
            let map = try mapping(
                webNode, file: file, allowed: ["issuer", "client_id", "client_secret_file"], what: "web")
            let issuer = Discovery.normalize(
                try string(map["issuer"], file: file, what: "web.issuer") ?? issuers[0].trusted.issuer)
            guard let trusted = issuers.first(where: { $0.trusted.issuer == issuer }) else {
                throw bad(file, map["issuer"], "web.issuer \(issuer) is not one of the trusted issuers")
            }
            guard let clientID = try string(map["client_id"], file: file, what: "web.client_id") else {
                throw bad(file, webNode, "web needs client_id: (the page's OIDC client)")
            }
            guard trusted.trusted.audiences.contains(clientID) else {
                throw bad(
                    file, map["client_id"],
                    "web.client_id \(clientID) must be among issuer \(issuer)'s audiences, or the page's own logins would be refused"
                )
            }
            var secret: String?
            if let secretFile = try string(map["client_secret_file"], file: file, what: "web.client_secret_file") {
                guard let bytes = try Files.read(resolve(secretFile)) else {
                    throw bad(file, map["client_secret_file"], "the file \(secretFile) does not exist")
                }
                secret = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            web = WebLogin(issuer: issuer, clientID: clientID, clientSecret: secret)
        }

        var region = "us-east-1", stsEndpoint: String?, awsProfile: String?
        if let awsNode = top["aws"] {
            let map = try mapping(awsNode, file: file, allowed: ["region", "sts_endpoint", "profile"], what: "aws")
            region = try string(map["region"], file: file, what: "aws.region") ?? region
            stsEndpoint = try string(map["sts_endpoint"], file: file, what: "aws.sts_endpoint")
            awsProfile = try string(map["profile"], file: file, what: "aws.profile")
        }
        var federation = "https://signin.aws.amazon.com/federation", destination = "https://console.aws.amazon.com/",
            issuerName = "keyless"
        var destinationHosts: [String] = []
        if let consoleNode = top["console"] {
            let map = try mapping(
                consoleNode, file: file,
                allowed: ["federation_endpoint", "destination", "issuer_name", "destination_hosts"], what: "console")
            federation =
                try string(map["federation_endpoint"], file: file, what: "console.federation_endpoint") ?? federation
            destination = try string(map["destination"], file: file, what: "console.destination") ?? destination
            issuerName = try string(map["issuer_name"], file: file, what: "console.issuer_name") ?? issuerName
            destinationHosts = try strings(map["destination_hosts"], file: file, what: "console.destination_hosts")
        }
        if destinationHosts.isEmpty, let host = URL(string: destination)?.host { destinationHosts = [host] }
        let reloadInterval = try seconds(top["policy_reload_interval"], file: file, what: "policy_reload_interval") ?? 1
        // Zero would make the reloader stat the policy file in a loop that never sleeps.
        guard reloadInterval > 0 else {
            throw bad(file, top["policy_reload_interval"], "policy_reload_interval must be more than 0, e.g. 1s")
        }
        let idleTimeout = try seconds(top["idle_timeout"], file: file, what: "idle_timeout") ?? 30
        guard idleTimeout > 0 && idleTimeout <= 3600 else {
            throw bad(file, top["idle_timeout"], "idle_timeout must be more than 0 and at most 1h, e.g. 30s")
        }
        var configuration = ServerConfiguration(
            host: host, port: port, publicURL: publicURL, policyPath: resolve(policy), auditLogPath: resolve(audit),
            issuers: issuers, web: web,
            region: region, stsEndpoint: stsEndpoint, awsProfile: awsProfile, federationEndpoint: federation,
            consoleDestination: destination,
            consoleIssuerName: issuerName, consoleDestinationHosts: destinationHosts,
            jwksRefetchInterval: try seconds(top["jwks_refetch_interval"], file: file, what: "jwks_refetch_interval")
                ?? 10,
            policyReloadInterval: reloadInterval)
        configuration.idleTimeout = idleTimeout
        configuration.publicURLFollowsListen = top["public_url"] == nil
        configuration.requests = try requestSettings(
            top["requests"], file: file, auditLog: resolve(audit), resolve: resolve)
        let proxies = try strings(top["trusted_proxies"], file: file, what: "trusted_proxies")
        do {
            configuration.trustedProxies = try TrustedProxies(proxies, what: "trusted_proxies")
        } catch let error as KeylessError {
            throw bad(file, top["trusted_proxies"], error.reason)
        }
        if let text = try string(top["max_connections"], file: file, what: "max_connections") {
            guard let value = Int(text), value >= 1 else {
                throw bad(file, top["max_connections"], "max_connections must be a whole number of at least 1")
            }
            configuration.maxConnections = value
        }
        if let text = try string(top["metrics"], file: file, what: "metrics") {
            do {
                configuration.metrics = try MetricsAccess.parse(
                    text.hasPrefix("token-file:") && !text.hasPrefix("token-file:/")
                        ? "token-file:" + resolve(String(text.dropFirst("token-file:".count))) : text,
                    what: "metrics")
            } catch let error as KeylessError {
                throw bad(file, top["metrics"], error.reason)
            }
        }
        return configuration
    }

    /// `requests:` (absent: a SQLite file beside the audit log).
    static func requestSettings(
        _ node: Node?, file: String, auditLog: String, resolve: (String) -> String
    ) throws -> RequestSettings {
        var settings = RequestSettings(store: .sqlite(path: Files.parentDirectory(auditLog) + "/requests.sqlite"))
        guard let node else { return settings }
        let map = try mapping(
            node, file: file, allowed: ["store", "password_file", "pending_for", "sweep_interval", "webhook"],
            what: "requests")
        let passwordFile = try string(map["password_file"], file: file, what: "requests.password_file").map(resolve)
        if let store = try string(map["store"], file: file, what: "requests.store") {
            if store.hasPrefix("postgres://") || store.hasPrefix("postgresql://") {
                settings.store = .postgres(url: store, passwordFile: passwordFile)
            } else if store.contains("://") {
                throw bad(
                    file, map["store"],
                    "requests.store must be a SQLite file's path or a postgres:// URL, not \(store.prefix(while: { $0 != ":" }))://"
                )
            } else {
                settings.store = .sqlite(path: resolve(store))
            }
        }
        if passwordFile != nil, case .sqlite = settings.store {
            throw bad(file, map["password_file"], "requests.password_file is for a postgres:// store only")
        }
        if let pending = try seconds(map["pending_for"], file: file, what: "requests.pending_for") {
            guard pending >= 60 && pending <= 30 * 86400 else {
                throw bad(file, map["pending_for"], "requests.pending_for must be from 1m to 30d, e.g. 24h")
            }
            settings.pendingSeconds = pending
        }
        if let sweep = try seconds(map["sweep_interval"], file: file, what: "requests.sweep_interval") {
            guard sweep > 0 && sweep <= 3600 else {
                throw bad(file, map["sweep_interval"], "requests.sweep_interval must be more than 0 and at most 1h")
            }
            settings.sweepInterval = sweep
        }
        if let hook = map["webhook"] {
            settings.webhook = try webhookSettings(hook, file: file, resolve: resolve)
        }
        return settings
    }

    /// `requests.webhook`: an https URL (http only to this machine), the HMAC key from a private file, and how hard to try.
    static func webhookSettings(_ node: Node, file: String, resolve: (String) -> String) throws -> WebhookSettings {
        let map = try mapping(
            node, file: file, allowed: ["url", "secret_file", "timeout", "attempts"], what: "requests.webhook")
        guard let url = try string(map["url"], file: file, what: "requests.webhook.url") else {
            throw bad(file, node, "requests.webhook needs url: (where events are POSTed)")
        }
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), let host = parsed.host,
            !host.isEmpty, scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost", "::1"].contains(host))
        else {
            throw bad(
                file, map["url"],
                "requests.webhook.url must be an https:// URL (http:// only to 127.0.0.1 or localhost): events name people and roles"
            )
        }
        guard let secretFile = try string(map["secret_file"], file: file, what: "requests.webhook.secret_file") else {
            throw bad(
                file, node,
                "requests.webhook needs secret_file: (a file of mode 0600 holding the key that signs each body, shared with the receiver)"
            )
        }
        let bytes: [UInt8]?
        do {
            bytes = try Files.read(resolve(secretFile), requirePrivate: true)
        } catch let error as KeylessError {
            throw bad(file, map["secret_file"], error.reason)
        }
        guard var secret = bytes else {
            throw bad(file, map["secret_file"], "the file \(secretFile) does not exist")
        }
        while let last = secret.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { secret.removeLast() }
        guard secret.count >= 16 else {
            throw bad(
                file, map["secret_file"],
                "the webhook key in \(secretFile) is shorter than 16 bytes; use a random one, e.g. openssl rand -hex 32"
            )
        }
        var settings = WebhookSettings(url: url, secret: secret)
        if let timeout = try seconds(map["timeout"], file: file, what: "requests.webhook.timeout") {
            guard timeout > 0 && timeout <= 60 else {
                throw bad(file, map["timeout"], "requests.webhook.timeout must be more than 0 and at most 60s")
            }
            settings.timeout = timeout
        }
        if let text = try string(map["attempts"], file: file, what: "requests.webhook.attempts") {
            guard let attempts = Int(text), (1...20).contains(attempts) else {
                throw bad(file, map["attempts"], "requests.webhook.attempts must be a whole number from 1 to 20")
            }
            settings.attempts = attempts
        }
        return settings
    }

    // MARK: YAML helpers with line numbers

    static let hint =
        "Fix the server configuration and start the server again (docs/server.example.yaml shows every field)."

    static func bad(_ file: String, _ node: Node?, _ reason: String) -> KeylessError {
        YAMLFile.error(node, in: file, reason + ".", hint: hint)
    }

    /// `key:` with no value, `key: ~` or `key: null`: the key is absent (as in the policy file).
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func mapping(_ node: Node, file: String, allowed: Set<String>, what: String) throws -> [String: Node] {
        guard let pairs = node.mapping else { throw bad(file, node, "\(what) must be a mapping of keys to values") }
        var result: [String: Node] = [:]
        var seen = Set<String>()
        for (key, value) in pairs {
            guard let name = key.string else { throw bad(file, key, "keys must be text") }
            guard allowed.contains(name) else {
                throw bad(
                    file, key, "unknown key \(name) in \(what); allowed: \(allowed.sorted().joined(separator: ", "))")
            }
            guard seen.insert(name).inserted else { throw bad(file, key, "\(name) appears twice in \(what)") }
            // A null value would otherwise read as the text "" (an audience "", a policy path ""): treat it as absent.
            if !isNull(value) { result[name] = value }
        }
        return result
    }

    static func string(_ node: Node?, file: String, what: String) throws -> String? {
        guard let node else { return nil }
        guard let scalar = node.scalar else { throw bad(file, node, "\(what) must be a single value") }
        return scalar.string
    }

    static func strings(_ node: Node?, file: String, what: String) throws -> [String] {
        guard let node else { return [] }
        if let scalar = node.scalar { return [scalar.string] }
        guard let items = node.sequence else { throw bad(file, node, "\(what) must be a list") }
        return try items.map { item in
            guard let scalar = item.scalar else { throw bad(file, item, "\(what) must list plain values") }
            return scalar.string
        }
    }

    static func seconds(_ node: Node?, file: String, what: String) throws -> TimeInterval? {
        guard let text = try string(node, file: file, what: what) else { return nil }
        if let value = DurationText.seconds(text) { return value }
        throw bad(file, node, "\(what) must be a duration such as 10, 10s, 5m or 1h")
    }
}
