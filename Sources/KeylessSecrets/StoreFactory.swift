#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import KeylessCore

/// The secret-store backends a user can choose with `--secret-store` or `KEYLESS_SECRET_STORE`.
public enum SecretStoreKind: String, CaseIterable, Sendable {
    /// AES-GCM encrypted files; key in the OS store when reachable, else from a passphrase (the default).
    case file
    /// Each secret in the freedesktop Secret Service.
    case secretService = "secret-service"
    /// Each secret in the macOS Keychain.
    case keychain
    /// Base64 in 0600 files: only when asked for by name.
    case plaintext

    /// Parses a backend name, with a clear error for unknown ones.
    public static func parse(_ name: String?) throws -> SecretStoreKind {
        guard let name else { return .file }
        guard let kind = SecretStoreKind(rawValue: name) else {
            throw KeylessError(
                .usage, "Unknown secret store '\(name)'.",
                hint: "Choose one of: \(allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        return kind
    }
}

/// Builds the store a command uses.
public enum SecretStoreFactory {
    /// The OS secret store of this platform, if any.
    public static func osKeyStore(_ environment: Environment) -> (any OSKeyStore)? {
        #if canImport(Security)
            return KeychainKeyStore()
        #else
            return SecretServiceKeyStore(
                collection: environment["KEYLESS_SECRET_SERVICE_COLLECTION"], environment: environment)
        #endif
    }

    /// The directory of a backend's entries: `store` for the encrypted file, `store-NAME` for the others,
    /// so that switching backends never makes one read the other's entries.
    public static func directory(_ kind: SecretStoreKind, paths: KeylessPaths) -> String {
        kind == .file ? paths.state + "/store" : paths.state + "/store-" + kind.rawValue
    }

    /// The store of `kind` under `directory(kind, paths:)`.
    public static func make(_ kind: SecretStoreKind, paths: KeylessPaths, environment: Environment, terminal: Terminal?)
        throws -> any SecretStore
    {
        let directory = directory(kind, paths: paths)
        switch kind {
        case .file:
            let os = osKeyStore(environment)
            let ttl = environment["KEYLESS_KEYRING_TTL"].flatMap(UInt32.init) ?? 12 * 3600
            let keyring: KernelKeyring? = ttl == 0 ? nil : KernelKeyring(timeout: ttl)
            let provider = FileKeyProvider(
                directory: directory, environment: environment, terminal: terminal,
                osStore: os, keyring: keyring)
            return FileBackedStore(directory: directory, sealer: AESGCMSealer(keyProvider: provider))
        case .secretService:
            let store = SecretServiceKeyStore(
                collection: environment["KEYLESS_SECRET_SERVICE_COLLECTION"], environment: environment)
            guard store.isReachable() else {
                throw KeylessError(
                    .secretStoreUnavailable, "No Secret Service answers on the session bus.",
                    hint: "Start gnome-keyring or KeePassXC's Secret Service, or choose --secret-store file.")
            }
            return FileBackedStore(
                directory: directory, sealer: OSStoreSealer(store: store, scope: directory, backendName: kind.rawValue))
        case .keychain:
            #if canImport(Security)
                return FileBackedStore(
                    directory: directory,
                    sealer: OSStoreSealer(store: KeychainKeyStore(), scope: directory, backendName: kind.rawValue))
            #else
                throw KeylessError(
                    .secretStoreUnavailable, "The Keychain exists only on macOS.",
                    hint: "Choose --secret-store file or secret-service.")
            #endif
        case .plaintext:
            return FileBackedStore(directory: directory, sealer: PlaintextSealer())
        }
    }
}

/// Whether a backend can be used on this machine now, and why not (for `keyless version --json` and bug reports).
public struct SecretStoreAvailability: Sendable, Equatable {
    public let kind: SecretStoreKind
    public let available: Bool
    public let detail: String
}

extension SecretStoreFactory {
    /// Each backend's availability here: the encrypted file always (its key in the OS store when one answers, else
    /// from a passphrase), the Secret Service when one answers on the session bus, the Keychain on macOS, plaintext
    /// always (by name only).
    public static func availability(_ environment: Environment) -> [SecretStoreAvailability] {
        let osReachable = osKeyStore(environment)?.isReachable() ?? false
        var serviceReachable = false
        #if !canImport(Security)
            serviceReachable = osReachable
        #endif
        var keychain = false
        #if canImport(Security)
            keychain = true
        #endif
        return SecretStoreKind.allCases.map { kind in
            switch kind {
            case .file:
                return .init(
                    kind: kind, available: true,
                    detail: osReachable ? "key kept in the OS secret store" : "key derived from a passphrase")
            case .secretService:
                return .init(
                    kind: kind, available: serviceReachable,
                    detail: serviceReachable ? "answers on the session bus" : "no Secret Service on the session bus")
            case .keychain:
                return .init(kind: kind, available: keychain, detail: keychain ? "macOS Keychain" : "macOS only")
            case .plaintext:
                return .init(kind: kind, available: true, detail: "unencrypted; only when asked for by name")
            }
        }
    }
}
