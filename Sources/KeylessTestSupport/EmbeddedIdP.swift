import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A user of the embedded provider in tests.
public struct EmbeddedIdPUser: Sendable, Equatable {
    /// Login name.
    public let name: String
    /// Password.
    public let password: String
    /// Email.
    public let email: String
    /// Base32 TOTP secret, if the user has a second factor.
    public let totpSecret: String?

    /// alice: password only, group developers.
    public static let alice = EmbeddedIdPUser(
        name: "alice", password: "alice-password-1", email: "alice@example.com", totpSecret: nil)
    /// bob: password and TOTP (RFC 6238's test secret "12345678901234567890").
    public static let bob = EmbeddedIdPUser(
        name: "bob", password: "bob-password-1", email: "bob@example.com",
        totpSecret: "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
}

/// `keyless-cli idp serve` started as a test partner: its own idp.yaml, data directory and port on 127.0.0.1,
/// stopped by its PID.
public final class EmbeddedIdP: KeylessServerProcess {
    /// `http://127.0.0.1:PORT`.
    public let issuer: String
    public let port: Int
    /// Where this process listens: `http://127.0.0.1:PORT` (the issuer may name another replica).
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The public client keyless logs in with.
    public let clientID = "keyless-cli"
    /// A confidential client with the client_credentials grant (scope `deploy`).
    public let serviceClientID = "deployer"
    /// Its secret.
    public let serviceClientSecret = "deployer-secret-123"
    /// The directory with idp.yaml, the data directory and the log.
    public let directory: String
    /// The configuration file.
    public let configPath: String
    /// `--database` (nil: SQLite in the data directory).
    public let database: String?
    /// The key-encryption-key file.
    public let kekPath: String
    /// The server process.
    public let process: PartnerProcess

    /// `keyless-cli idp hash-password` of `secret`: the value for a `password_hash` or `secret_hash` in idp.yaml.
    public static func hashSecret(_ secret: String) throws -> String {
        let result = try PartnerProcess.run(
            "/bin/sh", ["-c", "printf '%s\\n' \"$1\" | \"$0\" idp hash-password --stdin", try keylessCLI(), secret],
            timeout: 90)
        guard result.status == 0 else {
            throw TestSupportError("keyless-cli idp hash-password failed: \(result.output)")
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The `extraClients` entry of an access server's web page at 127.0.0.1:`serverPort` (client `keyless-web`,
    /// authorization code to `/callback`, first party: no consent page).
    public static func webPageClient(serverPort: Int) -> String {
        """
          - id: keyless-web
            redirect_uris: [http://127.0.0.1:\(serverPort)/callback]
            grants: [authorization_code]
            first_party: true
        """
    }

    /// Writes an idp.yaml (alice, bob with TOTP, keyless-cli public client, deployer confidential client) into a new
    /// temporary directory; every replica of one provider shares that directory's config and key-encryption key.
    /// `extraClients` is YAML appended to the `clients:` list (items indented by two spaces, e.g. a web page's client);
    /// `extraTopLevel` is YAML appended at the top level (e.g. `connectors:` or `lifetimes:`).
    public static func writeConfiguration(
        signingAlgorithm: String = "RS256", issuerPort: Int, extraClients: String = "", extraTopLevel: String = ""
    ) throws -> String {
        let directory = try makeTemporaryDirectory(prefix: "keyless-idp")
        let hash = hashSecret
        let yaml = """
            issuer: http://127.0.0.1:\(issuerPort)
            signing_algorithm: \(signingAlgorithm)
            groups: [developers, admins]
            users:
              - username: alice
                password_hash: "\(try hash(EmbeddedIdPUser.alice.password))"
                email: alice@example.com
                groups: [developers]
              - username: bob
                password_hash: "\(try hash(EmbeddedIdPUser.bob.password))"
                email: bob@example.com
                groups: [developers, admins]
                totp_secret: \(EmbeddedIdPUser.bob.totpSecret!)
            clients:
              - id: keyless-cli
                redirect_uris: [http://127.0.0.1/callback]
                grants: [authorization_code, refresh_token, device_code]
              - id: deployer
                secret_hash: "\(try hash("deployer-secret-123"))"
                grants: [client_credentials]
                scopes: [deploy]
                audience: sts.amazonaws.com
            """
        let clients = extraClients.isEmpty || extraClients.hasSuffix("\n") ? extraClients : extraClients + "\n"
        let top = extraTopLevel.isEmpty || extraTopLevel.hasSuffix("\n") ? extraTopLevel : extraTopLevel + "\n"
        try (yaml + "\n" + clients + top).write(toFile: directory + "/idp.yaml", atomically: true, encoding: .utf8)
        return directory
    }

    /// Starts a provider. With `directory` (from `writeConfiguration`) and `port`, several replicas share one
    /// configuration; `database` is a PostgreSQL URL or nil for SQLite in the directory.
    /// `issuer` overrides the URL tokens carry (replicas behind one name share it). `extraClients` is passed to
    /// `writeConfiguration` when no `directory` is given.
    public static func start(
        signingAlgorithm: String = "RS256", directory: String? = nil, port: Int? = nil, database: String? = nil,
        issuer: String? = nil, extraClients: String = "", extraTopLevel: String = ""
    ) async throws -> EmbeddedIdP {
        let issuerPort = try port ?? freePort()
        let directory =
            try directory
            ?? writeConfiguration(
                signingAlgorithm: signingAlgorithm, issuerPort: issuerPort, extraClients: extraClients,
                extraTopLevel: extraTopLevel)
        var written = issuerPort
        return try await startOnFreePort(first: issuerPort, otherPorts: port == nil) { listenPort in
            if listenPort != written {  // the issuer names the port: rewrite it for the new one
                let text = try String(contentsOfFile: directory + "/idp.yaml", encoding: .utf8)
                    .replacingOccurrences(of: "http://127.0.0.1:\(written)", with: "http://127.0.0.1:\(listenPort)")
                try text.write(toFile: directory + "/idp.yaml", atomically: true, encoding: .utf8)
                written = listenPort
            }
            let idp = try EmbeddedIdP(directory: directory, port: listenPort, database: database, issuer: issuer)
            if try await idp.waitUntilHealthy() { return .started(idp) }
            let log = idp.process.logTail(30)
            idp.process.stop()
            return .failed("keyless idp serve did not become healthy:\n\(log)", portTaken: log.contains("in use"))
        }
    }

    init(directory: String, port: Int, database: String?, issuer: String?) throws {
        self.directory = directory
        self.port = port
        self.issuer = issuer ?? "http://127.0.0.1:\(port)"
        self.configPath = directory + "/idp.yaml"
        self.database = database
        self.kekPath = directory + "/idp-kek"
        var arguments = [
            "idp", "serve", "--config", configPath, "--listen", "127.0.0.1:\(port)", "--issuer", self.issuer,
            "--key-encryption-key", kekPath, "--key-reload-interval", "1",
        ]
        if let database { arguments += ["--database", database] }
        process = try PartnerProcess(
            executable: try Self.keylessCLI(), arguments: arguments,
            environment: ["KEYLESS_DATA_DIR": directory + "/data", "HOME": directory],
            logPath: directory + "/idp-\(port).log")
    }

    /// The `--database`/`--key-encryption-key`/`--config` arguments other provider commands need for this provider.
    public var storeArguments: [String] {
        ["--config", configPath, "--issuer", issuer, "--key-encryption-key", kekPath]
            + (database.map { ["--database", $0] } ?? [])
    }

    /// The environment other provider commands need (its data directory).
    public var storeEnvironment: [String: String] { ["KEYLESS_DATA_DIR": directory + "/data", "HOME": directory] }

    func waitUntilHealthy(timeout: TimeInterval = 90) async throws -> Bool {
        try await process.waitUntilHealthy(baseURL + "/healthz", timeout: timeout)
    }

    /// The built keyless-cli.
    public static func keylessCLI() throws -> String {
        try builtBinary("keyless-cli")
    }

    /// An HTTP request to the provider (no cookies kept, no redirects followed).
    public func send(_ method: String, _ path: String, headers: [String: String] = [:], form: [(String, String)]? = nil)
        async throws -> PartnerHTTPResponse
    {
        try await Self.send(method, path, at: baseURL, headers: headers, form: form)
    }

    /// An HTTP request to a provider listening at `baseURL` (no cookies kept, no redirects followed).
    static func send(
        _ method: String, _ path: String, at baseURL: String, headers: [String: String] = [:],
        form: [(String, String)]? = nil
    ) async throws -> PartnerHTTPResponse {
        var headers = headers
        if form != nil { headers["Content-Type"] = "application/x-www-form-urlencoded" }
        return try await PartnerHTTP.send(
            method, path.hasPrefix("http") ? path : baseURL + path, headers: headers, body: form.map(PartnerHTTP.form))
    }

    /// Approves a device code on the `/device` page as `user`, as a person would in a browser.
    public func approveDevice(userCode: String, user: EmbeddedIdPUser = .alice, otp: String? = nil) async throws {
        try await Self.approveDevice(at: baseURL, userCode: userCode, user: user, otp: otp)
    }

    /// Approves a device code on the `/device` page of the `keyless idp serve` at `baseURL` (one this type did not
    /// start, such as an installed package's), as `user`.
    public static func approveDevice(
        at baseURL: String, userCode: String, user: EmbeddedIdPUser = .alice, otp: String? = nil
    ) async throws {
        let send = { (method: String, path: String, headers: [String: String], form: [(String, String)]?) in
            try await Self.send(method, path, at: baseURL, headers: headers, form: form)
        }
        let page = try await send("GET", "/device?user_code=\(PartnerHTTP.formEscape(userCode))", [:], nil)
        guard let binding = Self.cookie("keyless_csrf", in: page.headers["set-cookie"] ?? ""),
            let csrf = Self.formField("csrf", in: page.text)
        else {
            throw TestSupportError("the /device page set no form cookie or has no csrf field: HTTP \(page.status)")
        }
        var fields = [
            ("csrf", csrf), ("user_code", userCode), ("username", user.name), ("password", user.password),
            ("action", "approve"),
        ]
        if let otp { fields.append(("otp", otp)) }
        let answer = try await send("POST", "/device", ["Cookie": "keyless_csrf=\(binding)"], fields)
        guard answer.status == 200, answer.text.contains("Device connected") else {
            throw TestSupportError(
                "the provider did not approve device code \(userCode): HTTP \(answer.status)\n\(answer.text.prefix(600))"
            )
        }
    }

    /// The value of the form field `name` (a hidden input) in one of the provider's pages.
    public static func formField(_ name: String, in html: String) -> String? {
        guard let range = html.range(of: "name=\"\(name)\" value=\"") else { return nil }
        return String(html[range.upperBound...].prefix { $0 != "\"" })
    }

    /// The value of cookie `name` in a Set-Cookie header (or several joined by commas).
    public static func cookie(_ name: String, in header: String) -> String? {
        guard let range = header.range(of: name + "=") else { return nil }
        return String(header[range.upperBound...].prefix { $0 != ";" && $0 != "," })
    }
}
