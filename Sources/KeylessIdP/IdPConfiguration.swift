import Foundation
import KeylessCore
import KeylessJOSE
import KeylessYAML
import Yams

/// `idp.yaml`: the embedded OpenID Provider's users, groups and clients.
public struct IdPConfiguration: Sendable, Equatable {
    /// A person who can log in.
    public struct User: Codable, Sendable, Equatable {
        /// Login name (`preferred_username`).
        public var username: String
        /// The scrypt hash from `keyless idp hash-password`.
        public var passwordHash: String
        /// Email address (`email` claim).
        public var email: String?
        /// Groups (`groups` claim).
        public var groups: [String]?
        /// Base32 TOTP secret; when present a second factor is required (`amr` gets `otp` and `mfa`).
        public var totpSecret: String?
        /// A stable subject; defaults to the username.
        public var subject: String?

        enum CodingKeys: String, CodingKey {
            case username, email, groups, subject
            case passwordHash = "password_hash"
            case totpSecret = "totp_secret"
        }
    }

    /// A relying party.
    public struct Client: Codable, Sendable, Equatable {
        /// The client id.
        public var id: String
        /// Confidential clients: the scrypt hash of their secret.
        public var secretHash: String?
        /// Confidential clients using `private_key_jwt`: their public JWKS (inline JSON).
        public var jwks: String?
        /// Redirect URIs (exact match; any port for 127.0.0.1 and [::1] per RFC 8252).
        public var redirectURIs: [String]?
        /// Allowed grants: authorization_code, refresh_token, client_credentials, device_code.
        public var grants: [String]
        /// Allowed scopes.
        public var scopes: [String]?
        /// Token lifetimes in seconds, overriding the defaults.
        public var idTokenTTL: Int?
        /// Access-token lifetime in seconds.
        public var accessTokenTTL: Int?
        /// Refresh-token lifetime in seconds, counted from the login (rotations do not extend a family).
        public var refreshTokenTTL: Int?
        /// The `aud` of its access tokens; defaults to the client id (what an IAM OIDC provider's client-id list names).
        public var audience: String?
        /// First-party clients skip the consent page (the default); for others the user allows each authorization.
        public var firstParty: Bool?

        enum CodingKeys: String, CodingKey {
            case id, jwks, grants, scopes, audience
            case secretHash = "secret_hash"
            case redirectURIs = "redirect_uris"
            case idTokenTTL = "id_token_ttl"
            case accessTokenTTL = "access_token_ttl"
            case refreshTokenTTL = "refresh_token_ttl"
            case firstParty = "first_party"
        }

        /// Whether the client is public (no secret, no key).
        public var isPublic: Bool { secretHash == nil && jwks == nil }
    }

    /// Default lifetimes, in seconds.
    public struct Lifetimes: Codable, Sendable, Equatable {
        /// ID tokens (1 h).
        public var idToken: Int = 3600
        /// Access tokens (1 h).
        public var accessToken: Int = 3600
        /// Refresh tokens, counted from the login: rotations do not extend a family (7 days).
        public var refreshToken: Int = 7 * 86400
        /// Authorization codes (60 s).
        public var code: Int = 60
        /// Device codes (10 min).
        public var deviceCode: Int = 600
        /// The minimum seconds between device-code polls (5 s).
        public var deviceInterval: Int = 5
        /// Browser login sessions (8 h).
        public var session: Int = 8 * 3600

        /// The defaults.
        public init() {}

        enum CodingKeys: String, CodingKey {
            case idToken = "id_token", accessToken = "access_token", refreshToken = "refresh_token", code
            case deviceCode = "device_code", deviceInterval = "device_interval", session
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            idToken = try c.decodeIfPresent(Int.self, forKey: .idToken) ?? idToken
            accessToken = try c.decodeIfPresent(Int.self, forKey: .accessToken) ?? accessToken
            refreshToken = try c.decodeIfPresent(Int.self, forKey: .refreshToken) ?? refreshToken
            code = try c.decodeIfPresent(Int.self, forKey: .code) ?? code
            deviceCode = try c.decodeIfPresent(Int.self, forKey: .deviceCode) ?? deviceCode
            deviceInterval = try c.decodeIfPresent(Int.self, forKey: .deviceInterval) ?? deviceInterval
            session = try c.decodeIfPresent(Int.self, forKey: .session) ?? session
        }
    }

    /// The issuer URL (`iss`), unless `--issuer` overrides it.
    public var issuer: String?
    /// Default token lifetimes.
    public var lifetimes: Lifetimes = Lifetimes()
    /// `RS256` (default) or `ES256`.
    public var signingAlgorithm: String
    /// Users.
    public var users: [User]
    /// Group names.
    public var groups: [String]
    /// Clients.
    public var clients: [Client]
    /// Where people sign in from; nil: the users above only.
    public var connectors: [Connector]?
    /// Passkey (WebAuthn) settings; nil: the defaults.
    public var passkeys: Passkeys?

    struct File: Codable {
        var issuer: String?
        var signingAlgorithm: String?
        var users: [User]?
        var groups: [String]?
        var clients: [Client]?
        var lifetimes: Lifetimes?
        var connectors: [Connector]?
        var passkeys: Passkeys?
        enum CodingKeys: String, CodingKey {
            case issuer, users, groups, clients, lifetimes, connectors, passkeys
            case signingAlgorithm = "signing_algorithm"
        }
    }

    /// A configuration from values (tests, tools).
    public init(
        issuer: String?, signingAlgorithm: String = "RS256", users: [User], groups: [String], clients: [Client],
        lifetimes: Lifetimes = Lifetimes(), connectors: [Connector]? = nil
    ) {
        self.issuer = issuer; self.signingAlgorithm = signingAlgorithm; self.users = users; self.groups = groups
        self.clients = clients; self.lifetimes = lifetimes; self.connectors = connectors
    }

    /// The client with this id.
    public func client(_ id: String) -> Client? { clients.first { $0.id == id } }

    /// The user with this username.
    public func user(_ username: String) -> User? { users.first { $0.username == username } }

    /// The user with this subject.
    public func user(subject: String) -> User? { users.first { ($0.subject ?? $0.username) == subject } }

    static let knownGrants: Set<String> = ["authorization_code", "refresh_token", "client_credentials", "device_code"]

    /// Loads and checks `path`; every error names the file, the line and what to fix.
    public static func load(path: String) throws -> IdPConfiguration {
        let text = try YAMLFile.text(
            atPath: path,
            missing: KeylessError(
                .configInvalid, "\(path) does not exist.",
                hint: "Create it (see README, \"The identity provider\"), or pass --config with the right path."))
        return try parse(text, path: path)
    }

    /// Parses and checks the text of an `idp.yaml`.
    public static func parse(_ text: String, path: String) throws -> IdPConfiguration {
        // Room for tens of thousands of users with their hashes.
        let composed = try YAMLFile.compose(
            text, file: path, hint: "Fix the YAML syntax at the position shown.",
            limits: YAMLGuard.Limits(maxBytes: 16 << 20, maxNodes: 1_000_000))
        guard let root = composed else {
            throw KeylessError(.configInvalid, "\(path) is empty.", hint: "Declare at least users and clients.")
        }
        let file: File
        do {
            file = try YAMLDecoder().decode(File.self, from: root)
        } catch let error as DecodingError {
            throw Self.located(error, root: root, path: path)
        }
        var config = IdPConfiguration(
            issuer: file.issuer, signingAlgorithm: file.signingAlgorithm ?? "RS256",
            users: file.users ?? [], groups: file.groups ?? [], clients: file.clients ?? [],
            lifetimes: file.lifetimes ?? Lifetimes(), connectors: file.connectors)
        config.passkeys = file.passkeys
        try config.check(root: root, path: path)
        config.issuer = config.issuer.map {
            var t = $0; while t.hasSuffix("/") { t.removeLast() }; return t
        }
        return config
    }

    func check(root: Node, path: String) throws {
        func fail(_ keys: [Any], _ reason: String, _ hint: String) -> KeylessError {
            YAMLFile.error(Self.node(at: keys, in: root), in: path, reason, hint: hint)
        }
        guard ["RS256", "ES256"].contains(signingAlgorithm) else {
            throw fail(
                ["signing_algorithm"], "signing_algorithm \(signingAlgorithm) is not supported.",
                "Use RS256 (the default) or ES256.")
        }
        if let issuer,
            !(issuer.hasPrefix("https://") || issuer.hasPrefix("http://127.0.0.1")
                || issuer.hasPrefix("http://localhost"))
        {
            throw fail(
                ["issuer"], "issuer \(issuer) must be https (plain http only on loopback).",
                "Use the https:// URL the provider is reached at.")
        }
        let l = lifetimes
        for (key, value) in [
            ("id_token", l.idToken), ("access_token", l.accessToken), ("refresh_token", l.refreshToken),
            ("code", l.code),
            ("device_code", l.deviceCode), ("device_interval", l.deviceInterval), ("session", l.session),
        ] where value <= 0 {
            throw fail(
                ["lifetimes", key], "lifetimes.\(key) must be a positive number of seconds, not \(value).",
                "Set a positive value or remove it for the default.")
        }
        var seenUsers = Set<String>()
        for (index, user) in users.enumerated() {
            guard !user.username.isEmpty, seenUsers.insert(user.username).inserted else {
                throw fail(
                    ["users", index, "username"], "user '\(user.username)' is empty or declared twice.",
                    "Give every user a unique username.")
            }
            guard PasswordHash(user.passwordHash) != nil else {
                throw fail(
                    ["users", index, "password_hash"],
                    "the password_hash of user '\(user.username)' is not a keyless scrypt hash (a plain password?).",
                    "Run `keyless idp hash-password` and paste its output.")
            }
            if let secret = user.totpSecret, (TOTP.base32Decode(secret)?.count ?? 0) < 10 {
                throw fail(
                    ["users", index, "totp_secret"],
                    "the totp_secret of user '\(user.username)' is not base32 of at least 80 bits.",
                    "Use the base32 secret your authenticator app was set up with (e.g. from `oathtool` or a QR code).")
            }
            for group in user.groups ?? [] where !groups.contains(group) {
                throw fail(
                    ["users", index, "groups"],
                    "user '\(user.username)' is in group '\(group)', which is not declared.",
                    "Add '\(group)' under groups:, or fix the name.")
            }
        }
        try checkConnectors(root: root, path: path)
        try checkPasskeys(root: root, path: path)
        var seenClients = Set<String>()
        for (index, client) in clients.enumerated() {
            guard !client.id.isEmpty, seenClients.insert(client.id).inserted else {
                throw fail(
                    ["clients", index, "id"], "client '\(client.id)' is empty or declared twice.",
                    "Give every client a unique id.")
            }
            if users.contains(where: { ($0.subject ?? $0.username) == client.id }) {
                throw fail(
                    ["clients", index, "id"],
                    "client '\(client.id)' has the same id as a user's subject, so its tokens could be taken for that user's.",
                    "Rename the client (for example '\(client.id)-service').")
            }
            for (grantIndex, grant) in client.grants.enumerated() where !Self.knownGrants.contains(grant) {
                throw fail(
                    ["clients", index, "grants", grantIndex],
                    "client '\(client.id)' names an unknown grant '\(grant)'.",
                    "Use authorization_code, refresh_token, client_credentials or device_code.")
            }
            if client.grants.contains("client_credentials") && client.isPublic {
                throw fail(
                    ["clients", index, "grants"], "public client '\(client.id)' cannot use client_credentials.",
                    "Give it a secret_hash or a jwks, or drop the grant.")
            }
            if let jwks = client.jwks, (try? ClientKeys(jwks: jwks)) == nil {
                throw fail(
                    ["clients", index, "jwks"],
                    "the jwks of client '\(client.id)' holds no usable RSA or P-256 public key.",
                    "Paste the client's public JWKS as JSON: {\"keys\": [...]}.")
            }
            if let hash = client.secretHash, PasswordHash(hash) == nil {
                throw fail(
                    ["clients", index, "secret_hash"],
                    "the secret_hash of client '\(client.id)' is not a keyless scrypt hash.",
                    "Run `keyless idp hash-password` for the secret and paste its output.")
            }
            if client.grants.contains("authorization_code") && (client.redirectURIs ?? []).isEmpty {
                throw fail(
                    ["clients", index, "grants"],
                    "client '\(client.id)' uses authorization_code but lists no redirect_uris.",
                    "Add its redirect URIs (for the CLI: http://127.0.0.1/callback).")
            }
            for (uriIndex, uri) in (client.redirectURIs ?? []).enumerated() {
                guard let url = URL(string: uri), let scheme = url.scheme, url.host != nil, url.fragment == nil,
                    scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost", "::1"].contains(url.host!))
                else {
                    throw fail(
                        ["clients", index, "redirect_uris", uriIndex],
                        "redirect URI '\(uri)' of client '\(client.id)' is not allowed.",
                        "Use https://…, or http://127.0.0.1/… for native apps; no fragments.")
                }
            }
        }
    }

    /// Turns a decoding error into one that names the line of the offending node.
    static func located(_ error: DecodingError, root: Node, path: String) -> KeylessError {
        let (context, what): (DecodingError.Context, String)
        switch error {
        case .keyNotFound(let key, let c): (context, what) = (c, "the key '\(key.stringValue)' is missing")
        case .typeMismatch(let type, let c): (context, what) = (c, "expected \(type)")
        case .valueNotFound(let type, let c): (context, what) = (c, "expected a value of type \(type)")
        case .dataCorrupted(let c): (context, what) = (c, c.debugDescription)
        @unknown default: return KeylessError(.configInvalid, "\(path): \(error)", hint: "Fix the value shown.")
        }
        let keys: [Any] = context.codingPath.map { key -> Any in key.intValue.map { $0 as Any } ?? key.stringValue }
        let location = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return YAMLFile.error(
            node(at: keys, in: root), in: path, "at \(location.isEmpty ? "the top" : location): \(what).",
            hint: "Fix that entry; see README, \"The identity provider\", for the format.")
    }

    /// The deepest node along `keys` (strings index mappings, ints sequences).
    static func node(at keys: [Any], in root: Node) -> Node? {
        var current = root
        for key in keys {
            if let name = key as? String, let next = current.mapping?[Node(name)] {
                current = next
            } else if let index = key as? Int, let sequence = current.sequence, index < sequence.count {
                current = sequence[index]
            } else {
                break
            }
        }
        return current
    }
}
