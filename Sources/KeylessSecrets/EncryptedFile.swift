#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import Crypto
import _CryptoExtras
import KeylessCore

/// Seals secrets with AES-256-GCM; the header line is the additional authenticated data.
public struct AESGCMSealer: Sealer {
    let keyProvider: FileKeyProvider

    /// Creates a sealer whose key comes from `keyProvider` (resolved on first use).
    public init(keyProvider: FileKeyProvider) { self.keyProvider = keyProvider }

    public var backendName: String { "file" }

    public func seal(_ secret: [UInt8], header: [UInt8], name: String) throws -> String {
        let key = try keyProvider.key(creating: true)
        let box = try AES.GCM.seal(secret, using: key, authenticating: header)
        guard let combined = box.combined else {
            throw KeylessError(.io, "AES-GCM produced no combined box.", hint: "This is a bug; please report it.")
        }
        return combined.base64EncodedString()
    }

    public func open(_ sealed: String, header: [UInt8], name: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: sealed), data.count >= 28 else {
            throw KeylessError(
                .cacheCorrupt, "The encrypted entry \(name) is truncated or not base64.",
                hint: "keyless will replace it on the next login; run keyless logout to remove it now.")
        }
        let key = try keyProvider.key(creating: false)
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            return Array(try AES.GCM.open(box, using: key, authenticating: header))
        } catch {
            throw KeylessError(
                .cacheCorrupt,
                "The encrypted entry \(name) failed its integrity check (tampered, truncated, or sealed with another key).",
                hint: "keyless will replace it on the next login; run keyless logout to remove it now.")
        }
    }

    public func forget(name: String) throws {}
}

/// Where the encrypted file store's key comes from.
public enum FileKeySource: String, Codable, Sendable {
    /// A random key kept in the Secret Service (or the macOS Keychain).
    case osStore = "os-store"
    /// A key derived from a passphrase with scrypt.
    case passphrase
}

/// `key.json` beside the entries: how to get the key back, and a check value to recognise it.
struct FileKeyRecord: Codable {
    var v = 1
    var source: FileKeySource
    var salt: String?
    var n: Int?
    var r: Int?
    var p: Int?
    /// HMAC-SHA256(key, "keyless-file-key-check"), base64: tells a wrong passphrase from a corrupt entry.
    var check: String
}

extension FileKeyRecord {
    /// Reads `key.json` without JSONDecoder (it is on the cached credential_process path).
    static func parse(_ bytes: [UInt8]) -> FileKeyRecord? {
        guard let fields = FlatJSON.parse(bytes), fields["v"]?.number == 1,
            let source = fields["source"]?.string.flatMap(FileKeySource.init(rawValue:)),
            let check = fields["check"]?.string
        else { return nil }
        // scrypt's parameters must be whole numbers an Int holds (1e300 trapped in Int(_:)), and no more than a few hundred
        // MiB of work (a tampered n = 2^40 would hang every later command); present but not so is corrupt.
        var costs: [Int?] = []
        for (name, range) in [("n", 2...(1 << 18)), ("r", 1...16), ("p", 1...4)] {
            guard let number = fields[name]?.number else { costs.append(nil); continue }
            guard let whole = Int(exactly: number), range.contains(whole), name != "n" || whole & (whole - 1) == 0
            else { return nil }
            costs.append(whole)
        }
        return FileKeyRecord(
            source: source, salt: fields["salt"]?.string, n: costs[0], r: costs[1], p: costs[2], check: check)
    }
}

/// Resolves the file store's 256-bit key: first from the kernel keyring (a cache of it for this login
/// session), then from the OS secret store or the passphrase that `key.json` names; caches it in the
/// kernel keyring so that later processes skip the slow KDF.
public final class FileKeyProvider: @unchecked Sendable {
    // @unchecked: `cached` is guarded by `lock`; everything else is immutable.
    let directory: String
    let environment: Environment
    let terminal: Terminal?
    let osStore: OSKeyStore?
    let keyring: KernelKeyring?
    let scrypt: (n: Int, r: Int, p: Int)
    private var cached: SymmetricKey?
    private let lock = PThreadMutex()

    /// Creates a provider for the store in `directory`.
    /// - Parameters:
    ///   - terminal: where to prompt for a passphrase; `nil` never prompts.
    ///   - osStore: the OS secret store to keep a random key in, when one is reachable.
    ///   - keyring: the kernel keyring cache; `nil` disables it.
    ///   - scrypt: cost parameters for new passphrase-derived keys (N=2^15, r=8, p=1 by default: ~32 MiB).
    public init(
        directory: String, environment: Environment, terminal: Terminal?, osStore: OSKeyStore?,
        keyring: KernelKeyring?, scrypt: (n: Int, r: Int, p: Int) = (1 << 15, 8, 1)
    ) {
        self.directory = directory
        self.environment = environment
        self.terminal = terminal
        self.osStore = osStore
        self.keyring = keyring
        self.scrypt = scrypt
    }

    var recordPath: String { directory + "/key.json" }
    var keyringDescription: String {
        "keyless:file-key:" + Hex.encode(SHA256.hash(data: Array(directory.utf8)).prefix(8))
    }
    var osStoreAccount: String { "file-key:" + directory }

    /// The key; with `creating`, sets one up when the store has none yet.
    public func key(creating: Bool) throws -> SymmetricKey {
        try lock.with {
            if let cached { return cached }
            let key = try resolve(creating: creating)
            cached = key
            return key
        }
    }

    private func resolve(creating: Bool) throws -> SymmetricKey {
        guard let recordBytes = try Files.read(recordPath, requirePrivate: true) else {
            guard creating else {
                throw KeylessError(
                    .cacheCorrupt, "The encrypted store in \(directory) has no key.json.",
                    hint: "Run keyless logout, then log in again to start a new store.")
            }
            return try create()
        }
        guard let record = FileKeyRecord.parse(recordBytes) else {
            throw KeylessError(
                .cacheCorrupt, "\(recordPath) is not a valid key record.",
                hint: "Remove the directory \(directory) (tokens in it are lost; log in again).")
        }
        if let keyring, let bytes = keyring.read(keyringDescription) {
            let key = SymmetricKey(data: bytes)
            if Self.check(key) == record.check { return key }
        }
        let key: SymmetricKey
        switch record.source {
        case .osStore:
            guard let osStore else {
                throw KeylessError(
                    .secretStoreUnavailable,
                    "The key of \(directory) is kept in the OS secret store, which is not reachable now.",
                    hint: "Unlock your keyring (or start a desktop session), or run keyless logout to start over.")
            }
            guard let stored = try osStore.lookup(account: osStoreAccount), let bytes = Data(base64Encoded: stored)
            else {
                throw KeylessError(
                    .secretStoreUnavailable, "The OS secret store no longer has the key of \(directory).",
                    hint: "Run keyless logout, then log in again.")
            }
            key = SymmetricKey(data: bytes)
        case .passphrase:
            guard let saltText = record.salt, let salt = Data(base64Encoded: saltText), let n = record.n,
                let r = record.r, let p = record.p
            else {
                throw KeylessError(
                    .cacheCorrupt, "\(recordPath) lacks its scrypt parameters.",
                    hint: "Remove \(directory) and log in again.")
            }
            let passphrase = try obtainPassphrase(confirm: false)
            key = try Self.derive(passphrase: passphrase, salt: Array(salt), n: n, r: r, p: p)
        }
        guard Self.check(key) == record.check else {
            throw KeylessError(
                .passphraseRequired, "The passphrase does not unlock the encrypted store in \(directory).",
                hint: "Check KEYLESS_FILE_PASSPHRASE, or run keyless logout to start over with a new passphrase.")
        }
        keyring?.write(keyringDescription, Array(key.withUnsafeBytes { Data($0) }))
        return key
    }

    private func create() throws -> SymmetricKey {
        try Files.ensurePrivateDirectory(directory)
        let key: SymmetricKey
        let record: FileKeyRecord
        if let osStore, environment["KEYLESS_FILE_PASSPHRASE"] == nil, osStore.isReachable() {
            key = SymmetricKey(size: .bits256)
            try osStore.store(
                account: osStoreAccount, label: "keyless file-store key (\(directory))",
                secret: key.withUnsafeBytes { Data($0) }.base64EncodedString())
            record = FileKeyRecord(source: .osStore, check: Self.check(key))
        } else {
            let passphrase = try obtainPassphrase(confirm: true)
            var salt = [UInt8](repeating: 0, count: 16)
            var rng = SystemRandomNumberGenerator()
            for i in salt.indices { salt[i] = rng.next() }
            key = try Self.derive(passphrase: passphrase, salt: salt, n: scrypt.n, r: scrypt.r, p: scrypt.p)
            record = FileKeyRecord(
                source: .passphrase, salt: Data(salt).base64EncodedString(),
                n: scrypt.n, r: scrypt.r, p: scrypt.p, check: Self.check(key))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try Files.writeAtomically(Array(try encoder.encode(record)), to: recordPath)
        keyring?.write(keyringDescription, Array(key.withUnsafeBytes { Data($0) }))
        return key
    }

    private func obtainPassphrase(confirm: Bool) throws -> String {
        if let passphrase = environment["KEYLESS_FILE_PASSPHRASE"] { return passphrase }
        guard let terminal, terminal.isInteractive else {
            throw KeylessError(
                .passphraseRequired,
                "The encrypted credential store needs its passphrase and there is no terminal to ask on.",
                hint:
                    "Run `keyless login` in a terminal once (the key is then kept in the kernel keyring for this session), set KEYLESS_FILE_PASSPHRASE, or choose another --secret-store."
            )
        }
        terminal.say(
            confirm
                ? "keyless encrypts cached tokens and credentials in \(directory). Choose a passphrase for it."
                : "keyless needs the passphrase of its encrypted store (\(directory)).")
        while true {
            guard let first = terminal.readSecret(prompt: "Passphrase: "), !first.isEmpty else {
                throw KeylessError(
                    .passphraseRequired, "No passphrase was entered.",
                    hint: "Run the command again and enter the passphrase.")
            }
            if !confirm { return first }
            if first.count < 8 { terminal.say("Use at least 8 characters."); continue }
            guard let second = terminal.readSecret(prompt: "Repeat: ") else { continue }
            if first == second { return first }
            terminal.say("The two passphrases differ; try again.")
        }
    }

    static func derive(passphrase: String, salt: [UInt8], n: Int, r: Int, p: Int) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(
            from: Array(passphrase.utf8), salt: salt, outputByteCount: 32, rounds: n, blockSize: r, parallelism: p)
    }

    static func check(_ key: SymmetricKey) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Array("keyless-file-key-check".utf8), using: key))
            .base64EncodedString()
    }
}
