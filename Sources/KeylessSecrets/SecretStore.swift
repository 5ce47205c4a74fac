#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import KeylessCore

/// What is known about an entry without decrypting it.
public struct EntryHeader: Codable, Sendable, Equatable {
    /// Format version.
    public var v: Int = 1
    /// The entry's name, e.g. `sts/3f2a…`.
    public var name: String
    /// When the secret stops being useful; readable without the key.
    public var expiresAt: Date?
    /// When it was written.
    public var updatedAt: Date
    /// Non-secret labels for `status` (issuer, client, role, subject).
    public var labels: [String: String]
    /// Which backend holds the secret (`file`, `secret-service`, `keychain`, `plaintext`).
    public var backend: String

    public init(name: String, expiresAt: Date?, updatedAt: Date, labels: [String: String], backend: String) {
        self.name = name
        self.expiresAt = expiresAt
        self.updatedAt = updatedAt
        self.labels = labels
        self.backend = backend
    }
}

extension EntryHeader {
    /// Reads a header line without JSONDecoder (see `FlatJSON`); `nil` when it is not a valid header.
    public static func parse(_ bytes: some Collection<UInt8>) -> EntryHeader? {
        // The version must be a whole number an Int holds: "1e300" would trap in Int(_:), "1.5" names no version.
        guard let fields = FlatJSON.parse(bytes), let version = fields["v"]?.number.flatMap({ Int(exactly: $0) }),
            let name = fields["name"]?.string,
            let updated = fields["updatedAt"]?.string.flatMap(FlatJSON.parseRFC3339),
            let backend = fields["backend"]?.string
        else { return nil }
        var expiresAt: Date?
        if let expiry = fields["expiresAt"], expiry != .null {
            guard let seconds = expiry.string.flatMap(FlatJSON.parseRFC3339) else { return nil }
            expiresAt = Date(timeIntervalSince1970: seconds)
        }
        var header = EntryHeader(
            name: name, expiresAt: expiresAt, updatedAt: Date(timeIntervalSince1970: updated),
            labels: fields["labels"]?.object ?? [:], backend: backend)
        header.v = version
        return header
    }
}

/// A secret and its header.
public struct SecretEntry: Sendable, Equatable {
    /// The non-secret header.
    public var header: EntryHeader
    /// The secret bytes.
    public var secret: [UInt8]

    public init(header: EntryHeader, secret: [UInt8]) {
        self.header = header
        self.secret = secret
    }
}

/// Where tokens and credentials are kept. Synchronous on purpose: every backend is a local file
/// or a local IPC call, and the cached `credential_process` path must not start a concurrency runtime.
public protocol SecretStore: Sendable {
    /// The backend's name, as chosen with `--secret-store`.
    var backendName: String { get }
    /// The entry, or `nil` when there is none. Corrupt entries throw `cacheCorrupt`.
    func read(_ name: String) throws -> SecretEntry?
    /// The entry, only if `accept` takes its header; a refused entry is never decrypted.
    func read(_ name: String, if accept: (EntryHeader) -> Bool) throws -> SecretEntry?
    /// The header only; never needs a key or a passphrase.
    func header(_ name: String) throws -> EntryHeader?
    /// Stores an entry, replacing any previous one atomically.
    func write(_ entry: SecretEntry) throws
    /// Removes an entry; a missing entry is not an error.
    func delete(_ name: String) throws
    /// Every entry's header.
    func headers() throws -> [EntryHeader]
}

extension SecretStore {
    /// Header first, then the entry: right for stores where both are cheap to reach.
    public func read(_ name: String, if accept: (EntryHeader) -> Bool) throws -> SecretEntry? {
        guard let header = try header(name), accept(header) else { return nil }
        return try read(name)
    }
}

/// Keeps entries in memory; for tests.
public final class MemorySecretStore: SecretStore, @unchecked Sendable {
    // @unchecked: all access to `entries` goes through `lock`.
    private var entries: [String: SecretEntry] = [:]
    private let lock = PThreadMutex()

    public init() {}

    public var backendName: String { "memory" }
    public func read(_ name: String) throws -> SecretEntry? { lock.with { entries[name] } }
    public func header(_ name: String) throws -> EntryHeader? { lock.with { entries[name]?.header } }
    public func write(_ entry: SecretEntry) throws { lock.with { entries[entry.header.name] = entry } }
    public func delete(_ name: String) throws { _ = lock.with { entries.removeValue(forKey: name) } }
    public func headers() throws -> [EntryHeader] {
        lock.with { entries.values.map(\.header).sorted { $0.name < $1.name } }
    }
}

/// A pthread mutex, so that the store needs neither Foundation's locks nor an actor.
final class PThreadMutex: @unchecked Sendable {
    // @unchecked: pthread_mutex_t is used only through lock/unlock.
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func with<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
