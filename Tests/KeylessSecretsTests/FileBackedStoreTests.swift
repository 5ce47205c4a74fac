import Foundation
import KeylessCore
import KeylessSecrets
import KeylessTestFakes
import Testing
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("Encrypted file store: AES-GCM entries with a passphrase-derived key")
struct EncryptedFileStoreTests {
    @Test("a secret written by one store is read back by a new store with the same passphrase")
    func roundTrip() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let entry = sampleEntry()

        try fixture.encrypted().write(entry)
        let read = try #require(try fixture.encrypted().read(entry.header.name))

        #expect(read.secret == entry.secret)
        #expect(read.header.name == entry.header.name)
        #expect(read.header.expiresAt == entry.header.expiresAt)
        #expect(read.header.updatedAt == entry.header.updatedAt)
        #expect(read.header.labels == entry.header.labels)
        #expect(read.header.backend == "file")
        #expect(fixture.encrypted().backendName == "file")
    }

    @Test("a second write replaces the entry")
    func writeReplaces() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.encrypted()

        try store.write(sampleEntry(secret: "first"))
        try store.write(sampleEntry(secret: "second, longer than the first"))

        #expect(try store.read(sampleEntry().header.name)?.secret == Array("second, longer than the first".utf8))
        #expect(Files.list(fixture.directory) == ["key.json", "sts.0123456789abcdef.entry"])
    }

    @Test("a secret of zero bytes round-trips")
    func emptySecret() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }

        try fixture.encrypted().write(sampleEntry(secret: ""))

        #expect(try fixture.encrypted().read(sampleEntry().header.name)?.secret == [])
    }

    @Test("read and header return nil for an entry that does not exist, without needing the key")
    func missingEntry() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.encrypted(passphrase: nil)

        #expect(try store.read("sts/absent") == nil)
        #expect(try store.header("sts/absent") == nil)
        #expect(try store.headers() == [])
    }

    @Test("the header reads without the passphrase while the secret needs it")
    func headerWithoutKey() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let entry = sampleEntry()
        try fixture.encrypted().write(entry)

        let locked = fixture.encrypted(passphrase: nil)
        let header = try #require(try locked.header(entry.header.name))

        #expect(header.expiresAt == entry.header.expiresAt)
        #expect(header.labels == entry.header.labels)
        #expect(header.backend == "file")
        #expect(try locked.headers().map(\.name) == [entry.header.name])
        #expect(throws: KeylessError(.passphraseRequired, "")) {
            try locked.read(entry.header.name)
        }
    }

    @Test("a wrong passphrase is reported as passphraseRequired, not as a corrupt entry")
    func wrongPassphrase() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())

        #expect(throws: KeylessError(.passphraseRequired, "")) {
            try fixture.encrypted(passphrase: "not the passphrase").read(sampleEntry().header.name)
        }
    }

    @Test("neither the secret nor its base64 nor the passphrase appear in the files on disk")
    func noPlaintextOnDisk() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())

        let entryBytes = try fixture.raw(sampleEntry().header.name)
        let keyBytes = try #require(FileManager.default.contents(atPath: fixture.keyRecord)).map { $0 }

        #expect(!entryBytes.contains(bytes: Array(secretText.utf8)))
        #expect(!entryBytes.contains(bytes: Array(Data(secretText.utf8).base64EncodedString().utf8)))
        #expect(!keyBytes.contains(bytes: Array(passphrase.utf8)))
        #expect(!keyBytes.contains(bytes: Array(secretText.utf8)))
    }

    @Test("entries and key.json are 0600 and the store directory is 0700")
    func filePermissions() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())

        #expect(permissions(fixture.directory) == 0o700)
        #expect(permissions(fixture.entryPath(sampleEntry().header.name)) == 0o600)
        #expect(permissions(fixture.keyRecord) == 0o600)
    }

    @Test("key.json records a passphrase source, its scrypt parameters, a 16-byte salt and a 32-byte check value")
    func keyRecord() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())

        let data = try #require(FileManager.default.contents(atPath: fixture.keyRecord))
        let record = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])

        #expect(record["v"] as? Int == 1)
        #expect(record["source"] as? String == "passphrase")
        #expect(record["n"] as? Int == 1024)
        #expect(record["r"] as? Int == 8)
        #expect(record["p"] as? Int == 1)
        let salt = try #require((record["salt"] as? String).flatMap { Data(base64Encoded: $0) })
        #expect(salt.count == 16)
        let check = try #require((record["check"] as? String).flatMap { Data(base64Encoded: $0) })
        #expect(check.count == 32)
    }

    @Test("two stores created with the same passphrase get different salts and check values")
    func saltsDiffer() throws {
        let first = try StoreFixture()
        let second = try StoreFixture()
        defer { first.remove(); second.remove() }
        try first.encrypted().write(sampleEntry())
        try second.encrypted().write(sampleEntry())

        let a = try #require(FileManager.default.contents(atPath: first.keyRecord))
        let b = try #require(FileManager.default.contents(atPath: second.keyRecord))
        #expect(a != b)
        // Nor can one store's entry be opened with the other's key.
        try second.overwrite(sampleEntry().header.name, with: try first.raw(sampleEntry().header.name))
        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try second.encrypted().read(sampleEntry().header.name)
        }
    }

    @Test("a later expiresAt written into the header is detected as corruption (the header is authenticated)")
    func editedExpiry() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let original = String(decoding: try fixture.raw(name), as: UTF8.self)
        #expect(original.contains("\"expiresAt\":\"2027-01-15T09:00:00Z\""))

        let edited = original.replacingOccurrences(
            of: "\"expiresAt\":\"2027-01-15T09:00:00Z\"",
            with: "\"expiresAt\":\"2099-01-15T09:00:00Z\"")
        try fixture.overwrite(name, with: Array(edited.utf8))

        // The edited header still parses, so it is the authentication that refuses it.
        #expect(try fixture.encrypted().header(name)?.expiresAt == Date(timeIntervalSince1970: 4_072_150_800))
        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(name)
        }
    }

    @Test("an edited label in the header is detected as corruption")
    func editedLabel() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let original = String(decoding: try fixture.raw(name), as: UTF8.self)

        let edited = original.replacingOccurrences(of: "Dev\"", with: "Adm\"")
        #expect(edited != original)
        try fixture.overwrite(name, with: Array(edited.utf8))

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(name)
        }
    }

    @Test("an entry file copied under another entry's name is refused")
    func entryUnderWrongName() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry("sts/aaaa"))
        try fixture.encrypted().write(sampleEntry("sts/bbbb", secret: "other"))

        try fixture.overwrite("sts/bbbb", with: try fixture.raw("sts/aaaa"))

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read("sts/bbbb")
        }
        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().header("sts/bbbb")
        }
    }

    /// Where a truncated copy of an entry file ends.
    enum Cut: String, CaseIterable, CustomTestStringConvertible {
        case empty, midHeader, headerWithoutNewline, afterNewline, oneBodyCharacter, midBody, bodyLessOneCharacter,
            bodyLessFourCharacters
        var testDescription: String { rawValue }

        func length(header: Int, body: Int) -> Int {
            switch self {
            case .empty: return 0
            case .midHeader: return header / 2
            case .headerWithoutNewline: return header
            case .afterNewline: return header + 1
            case .oneBodyCharacter: return header + 2
            case .midBody: return header + 1 + body / 2
            case .bodyLessOneCharacter: return header + body
            case .bodyLessFourCharacters: return header + body - 3
            }
        }
    }

    @Test("a truncated entry is reported as cacheCorrupt", arguments: Cut.allCases)
    func truncated(cut: Cut) throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let (header, body) = try fixture.parts(name)
        let bytes = try fixture.raw(name)

        try fixture.overwrite(name, with: Array(bytes.prefix(cut.length(header: header.count, body: body.count))))

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(name)
        }
    }

    @Test("dropping only the final newline leaves a readable entry")
    func finalNewlineOptional() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())

        try fixture.overwrite(name, with: Array(try fixture.raw(name).dropLast()))

        #expect(try fixture.encrypted().read(name)?.secret == Array(secretText.utf8))
    }

    /// Which part of the AES-GCM combined box (nonce, ciphertext, tag) gets a flipped bit.
    enum Flip: String, CaseIterable, CustomTestStringConvertible {
        case nonce, ciphertext, tag
        var testDescription: String { rawValue }

        func index(count: Int) -> Int {
            switch self {
            case .nonce: return 3
            case .ciphertext: return 12 + 5
            case .tag: return count - 2
            }
        }
    }

    @Test("flipping one bit of the sealed box is reported as cacheCorrupt", arguments: Flip.allCases)
    func flippedBit(flip: Flip) throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let (header, body) = try fixture.parts(name)
        var box = try #require(Data(base64Encoded: Data(body)))
        #expect(box.count == 12 + secretText.utf8.count + 16)

        box[flip.index(count: box.count)] ^= 0x01
        try fixture.overwrite(
            name, with: header + [UInt8(ascii: "\n")] + Array(box.base64EncodedString().utf8) + [UInt8(ascii: "\n")])

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(name)
        }
    }

    @Test("a body that is not base64 is reported as cacheCorrupt")
    func bodyNotBase64() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let (header, _) = try fixture.parts(name)

        try fixture.overwrite(name, with: header + Array("\n%%%% not base64 %%%%\n".utf8))

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(name)
        }
    }

    @Test("a header that is not JSON is reported as cacheCorrupt by read and header")
    func headerNotJSON() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let (_, body) = try fixture.parts(name)

        try fixture.overwrite(name, with: Array("{not json\n".utf8) + body)

        #expect(throws: KeylessError(.cacheCorrupt, "")) { try fixture.encrypted().read(name) }
        #expect(throws: KeylessError(.cacheCorrupt, "")) { try fixture.encrypted(passphrase: nil).header(name) }
    }

    @Test(
        "a header whose version is no integer (1e300, 1.5, -1e19) is cacheCorrupt, not a crash, for read, header and headers"
    )
    func headerVersionOutOfRange() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let (header, body) = try fixture.parts(name)
        let text = String(decoding: header, as: UTF8.self)
        let version = try #require(text.range(of: #""v":[0-9]+"#, options: .regularExpression), "\(text)")
        for bad in ["1e300", "1.5", "-1e19"] {
            let edited = text.replacingCharacters(in: version, with: "\"v\":\(bad)")
            try fixture.overwrite(name, with: Array(edited.utf8) + [UInt8(ascii: "\n")] + body)
            #expect(throws: KeylessError(.cacheCorrupt, "")) { try fixture.encrypted().read(name) }
            #expect(throws: KeylessError(.cacheCorrupt, "")) { try fixture.encrypted(passphrase: nil).header(name) }
            #expect(EntryHeader.parse(Array(edited.utf8)) == nil)
        }
    }

    @Test("an entry file others can read is refused with cacheInsecure by read and header")
    func looseEntryPermissions() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        #expect(chmod(fixture.entryPath(name), 0o644) == 0)

        #expect(throws: KeylessError(.cacheInsecure, "")) { try fixture.encrypted().read(name) }
        #expect(throws: KeylessError(.cacheInsecure, "")) { try fixture.encrypted().header(name) }
    }

    @Test("a key.json others can read is refused with cacheInsecure")
    func looseKeyRecord() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())
        #expect(chmod(fixture.keyRecord, 0o644) == 0)

        #expect(throws: KeylessError(.cacheInsecure, "")) {
            try fixture.encrypted().read(sampleEntry().header.name)
        }
    }

    @Test("writing into a store directory others can enter is refused with cacheInsecure")
    func looseStoreDirectory() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        #expect(mkdir(fixture.directory, 0o755) == 0)
        #expect(chmod(fixture.directory, 0o755) == 0)

        #expect(throws: KeylessError(.cacheInsecure, "")) {
            try fixture.encrypted().write(sampleEntry())
        }
        #expect(Files.list(fixture.directory) == [])
    }

    @Test("entries without key.json are reported as cacheCorrupt, not decrypted with a new key")
    func missingKeyRecord() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())
        try Files.remove(fixture.keyRecord)

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(sampleEntry().header.name)
        }
    }

    @Test("a key.json that is not a key record is reported as cacheCorrupt")
    func garbledKeyRecord() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())
        try Files.writeAtomically(Array("{\"v\":1}".utf8), to: fixture.keyRecord)

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(sampleEntry().header.name)
        }
    }

    @Test("delete removes one entry, headers lists the rest sorted, and deleting a missing entry is not an error")
    func deleteAndHeaders() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.encrypted()
        try store.write(sampleEntry("sts/bbbb"))
        try store.write(sampleEntry("oidc/aaaa"))
        try store.write(sampleEntry("sts/cccc"))

        #expect(try store.headers().map(\.name) == ["oidc/aaaa", "sts/bbbb", "sts/cccc"])
        #expect(
            try store.headers().allSatisfy {
                $0.backend == "file" && $0.expiresAt == reference.addingTimeInterval(3600)
            })

        try store.delete("sts/bbbb")
        try store.delete("sts/bbbb")
        try store.delete("sts/never-written")

        #expect(try store.read("sts/bbbb") == nil)
        #expect(try store.header("sts/bbbb") == nil)
        #expect(try store.headers().map(\.name) == ["oidc/aaaa", "sts/cccc"])
        #expect(try store.read("sts/cccc")?.secret == Array(secretText.utf8))
    }

    @Test("headers ignores key.json and files that are not entries")
    func headersIgnoresOtherFiles() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.encrypted()
        try store.write(sampleEntry("sts/aaaa"))
        try Files.writeAtomically(Array("x".utf8), to: fixture.directory + "/aaaa.lock")
        try Files.writeAtomically(Array("x".utf8), to: fixture.directory + "/notes.txt")

        #expect(try store.headers().map(\.name) == ["sts/aaaa"])
    }
}

@Suite("Plaintext file store")
struct PlaintextStoreTests {
    @Test("the plaintext store round-trips a secret and names its backend plaintext")
    func roundTrip() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let store = fixture.plaintext()

        try store.write(sampleEntry())
        let read = try #require(try fixture.plaintext().read(sampleEntry().header.name))

        #expect(store.backendName == "plaintext")
        #expect(read.secret == Array(secretText.utf8))
        #expect(read.header.backend == "plaintext")
        #expect(permissions(fixture.entryPath(sampleEntry().header.name)) == 0o600)
        #expect(permissions(fixture.directory) == 0o700)
        #expect(!Files.exists(fixture.keyRecord))
    }

    @Test("the plaintext store keeps the secret as base64 after the header line")
    func format() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.plaintext().write(sampleEntry())

        let (_, body) = try fixture.parts(sampleEntry().header.name)

        #expect(String(decoding: body, as: UTF8.self) == Data(secretText.utf8).base64EncodedString())
    }

    @Test("an entry written by the plaintext store is refused by the encrypted store as cacheCorrupt")
    func plaintextReadByEncrypted() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.plaintext().write(sampleEntry())

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.encrypted().read(sampleEntry().header.name)
        }
        // The header still says where it came from.
        #expect(try fixture.encrypted().header(sampleEntry().header.name)?.backend == "plaintext")
    }

    @Test("an entry written by the encrypted store is refused by the plaintext store as cacheCorrupt")
    func encryptedReadByPlaintext() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try fixture.encrypted().write(sampleEntry())

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try fixture.plaintext().read(sampleEntry().header.name)
        }
    }

    @Test("a header relabelled as plaintext does not make an encrypted body readable")
    func relabelledBackend() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let name = sampleEntry().header.name
        try fixture.encrypted().write(sampleEntry())
        let original = String(decoding: try fixture.raw(name), as: UTF8.self)
        try fixture.overwrite(
            name,
            with: Array(
                original.replacingOccurrences(of: "\"backend\":\"file\"", with: "\"backend\":\"plaintext\"").utf8))

        // Decoding the base64 box as if it were plaintext must not yield the secret.
        let read = try? fixture.plaintext().read(name)
        #expect(read?.secret != Array(secretText.utf8))
    }
}

@Suite("MemorySecretStore")
struct MemorySecretStoreTests {
    @Test("the memory store keeps, replaces, lists and deletes entries")
    func basics() throws {
        let store = MemorySecretStore()
        #expect(store.backendName == "memory")
        #expect(try store.read("sts/a") == nil)
        #expect(try store.header("sts/a") == nil)

        try store.write(sampleEntry("sts/b", secret: "b"))
        try store.write(sampleEntry("oidc/a", secret: "a"))
        try store.write(sampleEntry("sts/b", secret: "b2"))

        #expect(try store.read("sts/b")?.secret == Array("b2".utf8))
        #expect(try store.header("oidc/a") == sampleEntry("oidc/a").header)
        #expect(try store.headers().map(\.name) == ["oidc/a", "sts/b"])

        try store.delete("sts/b")
        try store.delete("sts/missing")
        #expect(try store.read("sts/b") == nil)
        #expect(try store.headers().map(\.name) == ["oidc/a"])
    }
}
