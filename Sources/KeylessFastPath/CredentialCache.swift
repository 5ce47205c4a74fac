#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import Crypto
import KeylessCore
import KeylessSecrets
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What identifies cached tokens and credentials: the provider, the client, the role and the duration.
public struct CacheKey: Sendable, Equatable {
    /// Issuer URL (normalised, no trailing slash).
    public var issuer: String
    /// OIDC client id.
    public var clientID: String
    /// Role ARN (nil for token-only entries).
    public var roleArn: String?
    /// Requested duration, part of the key so that different durations do not share an entry.
    public var durationSeconds: Int?
    /// The keyless server that issued them (nil: STS directly); part of the key, since the sessions differ.
    public var server: String?
    /// The workload token source (see `workloadSource`); nil for a person's login. Part of every name, so a
    /// service's entries and lock never collide with a person's, while a person's names stay what they were.
    public var workload: String?
    /// A narrowed session's identity (`SessionScope.cacheIdentity`); nil for the role's full permissions. Part of the
    /// credentials entry only when present, so a narrowed session is never served for a full one or the other way.
    public var scope: String?

    public init(
        issuer: String, clientID: String, roleArn: String? = nil, durationSeconds: Int? = nil, server: String? = nil,
        workload: String? = nil, scope: String? = nil
    ) {
        var issuer = issuer
        while issuer.hasSuffix("/") { issuer.removeLast() }
        self.issuer = issuer
        self.clientID = clientID
        self.roleArn = roleArn
        self.durationSeconds = durationSeconds
        self.server = server.map {
            var url = $0; while url.hasSuffix("/") { url.removeLast() }; return url
        }
        self.workload = workload
        self.scope = scope
    }

    /// The token entry: one per provider and client, shared by all roles.
    public var tokenEntry: String { "oidc/" + Self.digest([issuer, clientID] + workloadParts) }
    /// The credentials entry for the role.
    public var credentialsEntry: String {
        var parts = [issuer, clientID, roleArn ?? "", durationSeconds.map(String.init) ?? ""]
        if let server { parts.append(server) }
        if let scope { parts.append(scope) }
        return "sts/" + Self.digest(parts + workloadParts)
    }
    /// The lock that serialises refreshes and logins for this provider and client.
    public var lockName: String { Self.digest([issuer, clientID] + workloadParts) + ".lock" }

    /// Appended only for workloads: a person's names are the digests they always were.
    var workloadParts: [String] { workload.map { ["workload:" + $0] } ?? [] }

    /// The `workload` of a key for the workload flags of `creds-process`, computed the same way by the fast path and
    /// the full command. No secret goes in: the client id is already in the key, and a token file is named by its
    /// absolute path (relative paths resolve against the working directory).
    public static func workloadSource(clientCredentials: Bool, tokenFile: String?, tokenCommand: String?) -> String? {
        if clientCredentials { return "client-credentials" }
        if let tokenFile { return "token-file:" + absolutePath(tokenFile) }
        if let tokenCommand { return "token-command:" + tokenCommand }
        return nil
    }

    /// `path` made absolute against the working directory.
    public static func absolutePath(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let directory = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (directory == "/" ? "" : directory) + "/" + path
    }

    static func digest(_ parts: [String]) -> String {
        Hex.encode(SHA256.hash(data: Array(parts.joined(separator: "\u{0}").utf8)).prefix(16))
    }
}

/// The credentials payload kept (sealed) in a `sts/…` entry.
public struct CachedCredentials: Codable, Sendable, Equatable {
    /// Access key id.
    public var accessKeyId: String
    /// Secret access key.
    public var secretAccessKey: String
    /// Session token.
    public var sessionToken: String
    /// Expiry, seconds since 1970.
    public var expiration: Double
    /// The assumed-role ARN, when STS reported it.
    public var assumedRoleArn: String?

    public init(
        accessKeyId: String, secretAccessKey: String, sessionToken: String, expiration: Double, assumedRoleArn: String?
    ) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.assumedRoleArn = assumedRoleArn
    }

    /// Reads the payload as `JSONEncoder` wrote it, without JSONDecoder (see `FlatJSON`).
    public static func parse(_ bytes: [UInt8]) -> CachedCredentials? {
        guard let fields = FlatJSON.parse(bytes), let id = fields["accessKeyId"]?.string,
            let secret = fields["secretAccessKey"]?.string,
            let token = fields["sessionToken"]?.string, let expiration = fields["expiration"]?.number,
            // An expiry outside years 1970...9999 is no expiry AWS gives: a corrupt or tampered entry (1e300 trapped).
            (0...latestExpiration).contains(expiration)
        else { return nil }
        return CachedCredentials(
            accessKeyId: id, secretAccessKey: secret, sessionToken: token, expiration: expiration,
            assumedRoleArn: fields["assumedRoleArn"]?.string)
    }

    /// The `credential_process` JSON (Version 1), one line, written by hand: the cached answer avoids JSONEncoder and
    /// JSONDecoder (bench/creds-process measured them on its start-up path).
    public var credentialProcessJSON: String {
        "{\"Version\":1,\"AccessKeyId\":\(jsonString(accessKeyId)),\"SecretAccessKey\":\(jsonString(secretAccessKey)),"
            + "\"SessionToken\":\(jsonString(sessionToken)),\"Expiration\":\"\(rfc3339(expiration))\"}"
    }
}

/// Credentials are served from the cache while more than this many seconds remain: botocore
/// refreshes at 15 and 10 minutes before expiry, so anything closer would make it call us in a loop.
public let minimumRemainingSeconds: Double = 15 * 60

/// Reads cached credentials for `key` if they have more than the minimum time left; `nil` otherwise.
public func freshCredentials(store: any SecretStore, key: CacheKey, now: Date) throws -> CachedCredentials? {
    // The expiry sits outside the ciphertext: stale credentials are never decrypted.
    guard
        let entry = try store.read(
            key.credentialsEntry,
            if: { header in
                header.expiresAt.map { $0.timeIntervalSince(now) > minimumRemainingSeconds } ?? false
            })
    else { return nil }
    guard let credentials = CachedCredentials.parse(entry.secret) else {
        throw KeylessError(
            .cacheCorrupt, "The cached credentials \(key.credentialsEntry) do not decode.",
            hint: "They will be replaced; run keyless logout to clear them now.")
    }
    return credentials.expiration - now.timeIntervalSince1970 > minimumRemainingSeconds ? credentials : nil
}

/// Caches `credentials` for `key` (the one writer of what `freshCredentials` reads): the expiry in the entry's header, so
/// that stale credentials are never decrypted, and `labels` for `keyless cache list`.
public func storeCredentials(
    _ credentials: CachedCredentials, store: any SecretStore, key: CacheKey, updatedAt: Date, labels: [String: String]
) throws {
    let header = EntryHeader(
        name: key.credentialsEntry, expiresAt: Date(timeIntervalSince1970: credentials.expiration),
        updatedAt: updatedAt, labels: labels, backend: store.backendName)
    try store.write(SecretEntry(header: header, secret: Array(try JSONEncoder().encode(credentials))))
}

/// The last second of year 9999, the latest expiry keyless reads or writes.
public let latestExpiration: Double = 253_402_300_799

/// `seconds` since 1970 as RFC 3339 in UTC, clamped to years 1970...9999.
public func rfc3339(_ seconds: Double) -> String {
    var time = time_t((seconds.isFinite ? min(max(seconds, 0), latestExpiration) : 0).rounded(.down))
    var parts = tm()
    gmtime_r(&time, &parts)
    func pad(_ value: Int32, _ width: Int = 2) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
    return
        "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1))-\(pad(parts.tm_mday))T\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec))Z"
}
