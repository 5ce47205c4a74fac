#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import KeylessCore

/// Turns a secret into what is written after the header, and back. The header's exact bytes are
/// the additional authenticated data, so a changed expiry or label is detected.
public protocol Sealer: Sendable {
    /// The backend name written into headers.
    var backendName: String { get }
    /// Protects `secret`; the result is one line of ASCII.
    func seal(_ secret: [UInt8], header: [UInt8], name: String) throws -> String
    /// Recovers the secret from what `seal` returned.
    func open(_ sealed: String, header: [UInt8], name: String) throws -> [UInt8]
    /// Forgets anything kept outside the file for `name`.
    func forget(name: String) throws
}

/// A store of one file per entry in a private directory: a JSON header line, then the sealed secret.
/// Writes are atomic (temporary file, fsync, rename), so a crash never leaves half an entry.
public struct FileBackedStore: SecretStore {
    /// The directory holding the entries (mode 0700).
    public let directory: String
    let sealer: any Sealer

    /// Creates a store in `directory` that seals with `sealer`.
    public init(directory: String, sealer: any Sealer) {
        self.directory = directory
        self.sealer = sealer
    }

    public var backendName: String { sealer.backendName }

    func path(_ name: String) -> String { directory + "/" + Self.fileName(name) }

    /// Entry names are `kind/hex`; the slash becomes a dot so all entries share one directory.
    static func fileName(_ name: String) -> String { String(name.map { $0 == "/" ? "." : $0 }) + ".entry" }

    public func read(_ name: String) throws -> SecretEntry? { try read(name, if: { _ in true }) }

    /// Reads the file once, and decrypts only when `accept` takes the header.
    public func read(_ name: String, if accept: (EntryHeader) -> Bool) throws -> SecretEntry? {
        guard let (header, headerBytes, sealed) = try load(name), accept(header) else { return nil }
        guard header.backend == sealer.backendName else {
            throw KeylessError(
                .cacheCorrupt,
                "The cached entry \(name) was written by the \(header.backend) store, not \(sealer.backendName).",
                hint: "Run keyless logout to clear it, or choose --secret-store \(header.backend).")
        }
        let secret = try sealer.open(sealed, header: headerBytes, name: name)
        return SecretEntry(header: header, secret: secret)
    }

    public func header(_ name: String) throws -> EntryHeader? { try load(name)?.0 }

    func load(_ name: String) throws -> (EntryHeader, [UInt8], String)? {
        guard let bytes = try Files.read(path(name), requirePrivate: true) else { return nil }
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            throw corrupt(name, "it has no header line (truncated?)")
        }
        let headerBytes = Array(bytes[..<newline])
        var sealedBytes = bytes[(newline + 1)...]
        while sealedBytes.last == UInt8(ascii: "\n") { sealedBytes = sealedBytes.dropLast() }
        guard let header = EntryHeader.parse(headerBytes) else { throw corrupt(name, "its header is not valid JSON") }
        guard header.name == name, header.v == 1 else {
            throw corrupt(name, "its header names another entry or version")
        }
        return (header, headerBytes, String(decoding: sealedBytes, as: UTF8.self))
    }

    func corrupt(_ name: String, _ why: String) -> KeylessError {
        KeylessError(
            .cacheCorrupt, "The cached entry \(path(name)) is unreadable: \(why).",
            hint: "keyless will replace it on the next login; run keyless logout to remove it now.")
    }

    public func write(_ entry: SecretEntry) throws {
        try Files.ensurePrivateDirectory(directory)
        var header = entry.header
        header.backend = sealer.backendName
        let headerBytes = Array(try Self.encoder.encode(header))
        let sealed = try sealer.seal(entry.secret, header: headerBytes, name: header.name)
        try Files.writeAtomically(
            headerBytes + [UInt8(ascii: "\n")] + Array(sealed.utf8) + [UInt8(ascii: "\n")], to: path(header.name))
    }

    public func delete(_ name: String) throws {
        try sealer.forget(name: name)
        try Files.remove(path(name))
    }

    public func headers() throws -> [EntryHeader] {
        try Files.list(directory).filter { $0.hasSuffix(".entry") }.compactMap { file in
            let name = String(file.dropLast(".entry".count).map { $0 == "." ? "/" : $0 })
            return try? header(name)
        }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()
}

/// Writes the secret base64-encoded in a 0600 file; only when chosen by name (`--secret-store plaintext`).
public struct PlaintextSealer: Sealer {
    public init() {}
    public var backendName: String { "plaintext" }
    public func seal(_ secret: [UInt8], header: [UInt8], name: String) throws -> String {
        Data(secret).base64EncodedString()
    }
    public func open(_ sealed: String, header: [UInt8], name: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: sealed) else {
            throw KeylessError(
                .cacheCorrupt, "The plaintext entry \(name) is not valid base64.",
                hint: "Run keyless logout to clear it.")
        }
        return Array(data)
    }
    public func forget(name: String) throws {}
}
