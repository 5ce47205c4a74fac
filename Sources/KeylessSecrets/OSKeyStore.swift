#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import CKeylessSys
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import KeylessCore
import Crypto

/// The operating system's secret store, holding short strings by account name.
public protocol OSKeyStore: Sendable {
    /// Whether the store answers now (a session bus with a Secret Service, an unlocked keychain).
    func isReachable() -> Bool
    /// Stores `secret` for `account`, replacing any previous value.
    func store(account: String, label: String, secret: String) throws
    /// The secret for `account`, or `nil`.
    func lookup(account: String) throws -> String?
    /// Removes the secret for `account`.
    func remove(account: String) throws
}

/// The freedesktop Secret Service (gnome-keyring, KWallet, KeePassXC) through libsecret, loaded at
/// run time so that building keyless needs no libsecret headers and running it needs none installed.
public struct SecretServiceKeyStore: OSKeyStore {
    /// The collection new secrets go to (`nil`: the default collection; `session`: in memory only).
    public let collection: String?
    let environment: Environment

    public init(collection: String? = nil, environment: Environment) {
        self.collection = collection
        self.environment = environment
    }

    public func isReachable() -> Bool {
        // Without a session bus libsecret would try to autolaunch one; that is never what we want.
        guard environment["DBUS_SESSION_BUS_ADDRESS"] != nil else { return false }
        var error: UnsafeMutablePointer<CChar>?
        guard keyless_secret_load(&error) == 0 else { free(error); return false }
        var secret: UnsafeMutablePointer<CChar>?
        let status = keyless_secret_lookup("keyless-probe", &secret, &error)
        keyless_secret_free(secret)
        free(error)
        return status >= 0
    }

    public func store(account: String, label: String, secret: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard keyless_secret_store(collection, account, label, secret, &error) == 0 else {
            throw Self.failure(error, "store a secret")
        }
    }

    public func lookup(account: String) throws -> String? {
        var error: UnsafeMutablePointer<CChar>?
        var secret: UnsafeMutablePointer<CChar>?
        switch keyless_secret_lookup(account, &secret, &error) {
        case 0:
            defer { keyless_secret_free(secret) }
            return secret.map { String(cString: $0) }
        case 1: return nil
        default: throw Self.failure(error, "read a secret")
        }
    }

    public func remove(account: String) throws {
        var error: UnsafeMutablePointer<CChar>?
        guard keyless_secret_clear(account, &error) == 0 else { throw Self.failure(error, "remove a secret") }
    }

    static func failure(_ error: UnsafeMutablePointer<CChar>?, _ what: String) -> KeylessError {
        let message = error.map { String(cString: $0) } ?? "unknown error"
        free(error)
        return KeylessError(
            .secretStoreUnavailable, "The Secret Service could not \(what): \(message).",
            hint: "Unlock your keyring (gnome-keyring, KWallet, KeePassXC), or choose --secret-store file.")
    }
}

/// Keeps each entry's secret in the OS store and only its header in the file.
public struct OSStoreSealer: Sealer {
    let store: any OSKeyStore
    let scope: String
    public let backendName: String

    /// Creates a sealer that keeps secrets in `store`, with accounts prefixed by `scope` (the store directory).
    public init(store: any OSKeyStore, scope: String, backendName: String) {
        self.store = store
        self.scope = scope
        self.backendName = backendName
    }

    func account(_ name: String) -> String { "entry:\(scope):\(name)" }

    public func seal(_ secret: [UInt8], header: [UInt8], name: String) throws -> String {
        // The header's digest travels with the secret so that an edited header is detected on read.
        let digest = Data(Crypto.SHA256.hash(data: header)).base64EncodedString()
        try store.store(
            account: account(name), label: "keyless \(name)", secret: digest + "." + Data(secret).base64EncodedString())
        return "os-store"
    }

    public func open(_ sealed: String, header: [UInt8], name: String) throws -> [UInt8] {
        guard let value = try store.lookup(account: account(name)) else {
            throw KeylessError(
                .cacheCorrupt, "The OS secret store no longer holds \(name).",
                hint: "Log in again; keyless will store it anew.")
        }
        let parts = value.split(separator: ".", maxSplits: 1).map(String.init)
        let digest = Data(Crypto.SHA256.hash(data: header)).base64EncodedString()
        guard parts.count == 2, parts[0] == digest, let data = Data(base64Encoded: parts[1]) else {
            throw KeylessError(
                .cacheCorrupt, "The entry \(name) does not match what the OS secret store holds (edited header?).",
                hint: "Run keyless logout, then log in again.")
        }
        return Array(data)
    }

    public func forget(name: String) throws { try store.remove(account: account(name)) }
}
