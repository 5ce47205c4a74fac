import Foundation
import KeylessCore
import KeylessSecrets
import KeylessTestSupport
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The reference time every fixture is built around: 2027-01-15T08:00:00Z.
let reference = Date(timeIntervalSince1970: 1_800_000_000)

/// scrypt parameters small enough for tests (the default N=2^15 costs ~32 MiB and a noticeable pause).
let fastScrypt = (n: 1024, r: 8, p: 1)

/// The passphrase the fixture stores are created with.
let passphrase = "correct horse battery staple"

/// A secret that is easy to find in a file if it was ever written in the clear.
let secretText = "SECRET-MARKER-wJalrXUtnFEMI/K7MDENG/bPxRfiCY"

/// A fresh temporary directory holding one store in `store/`; `remove()` deletes it all.
struct StoreFixture {
    let root: String

    init() throws { root = try makeTemporaryDirectory(prefix: "keyless-secrets") }

    /// The store directory (created by the first write).
    var directory: String { root + "/store" }
    /// The key record of the encrypted store.
    var keyRecord: String { directory + "/key.json" }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    /// An environment built in code: HOME in the fixture, and the passphrase when given.
    func environment(passphrase: String?) -> Environment {
        var environment = Environment(["HOME": root])
        environment["KEYLESS_FILE_PASSPHRASE"] = passphrase
        return environment
    }

    /// A key provider that never prompts and has no OS store.
    func provider(passphrase: String?, keyring: KernelKeyring? = nil) -> FileKeyProvider {
        FileKeyProvider(
            directory: directory, environment: environment(passphrase: passphrase), terminal: nil,
            osStore: nil, keyring: keyring, scrypt: fastScrypt)
    }

    /// An AES-GCM store over the directory; each call is a new provider, as a new process would have.
    func encrypted(passphrase: String? = passphrase, keyring: KernelKeyring? = nil) -> FileBackedStore {
        FileBackedStore(
            directory: directory, sealer: AESGCMSealer(keyProvider: provider(passphrase: passphrase, keyring: keyring)))
    }

    /// A plaintext store over the same directory.
    func plaintext() -> FileBackedStore { FileBackedStore(directory: directory, sealer: PlaintextSealer()) }

    /// Where the entry `name` lives: the slash becomes a dot, plus `.entry`.
    func entryPath(_ name: String) -> String {
        directory + "/" + name.replacingOccurrences(of: "/", with: ".") + ".entry"
    }

    /// The raw bytes of the entry file.
    func raw(_ name: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: entryPath(name)) else {
            throw TestSupportError("no file at \(entryPath(name))")
        }
        return Array(data)
    }

    /// Replaces the entry file's bytes, keeping it private so that only the content is under test.
    func overwrite(_ name: String, with bytes: [UInt8]) throws {
        try Files.writeAtomically(bytes, to: entryPath(name))
    }

    /// The entry file split into its header line and the sealed text after it (without the final newline).
    func parts(_ name: String) throws -> (header: [UInt8], body: [UInt8]) {
        let bytes = try raw(name)
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else { throw TestSupportError("no header line") }
        var body = Array(bytes[(newline + 1)...])
        if body.last == UInt8(ascii: "\n") { body.removeLast() }
        return (Array(bytes[..<newline]), body)
    }
}

/// An entry named `name` expiring an hour after the reference time.
func sampleEntry(_ name: String = "sts/0123456789abcdef", secret: String = secretText) -> SecretEntry {
    SecretEntry(
        header: EntryHeader(
            name: name, expiresAt: reference.addingTimeInterval(3600), updatedAt: reference,
            labels: ["role": "arn:aws:iam::123456789012:role/Dev", "issuer": "https://idp.example.com"],
            backend: "unset"),
        secret: Array(secret.utf8))
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs anywhere in these bytes.
    func contains(bytes needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return needle.isEmpty }
        return (0...(count - needle.count)).contains { start in
            self[start..<(start + needle.count)].elementsEqual(needle)
        }
    }
}
