import Foundation
import Testing
import KeylessCore
@testable import KeylessSecrets

/// Whether add_key/keyctl work here (a seccomp profile may block them); probes with a throw-away key.
func kernelKeyringWorks() -> Bool {
    let keyring = KernelKeyring(timeout: 60)
    let description = "keyless-test:probe:" + UUID().uuidString
    keyring.write(description, [1, 2, 3])
    defer { keyring.remove(description) }
    return keyring.read(description) == [1, 2, 3]
}

/// A fresh description so that parallel tests and earlier runs never meet.
func uniqueDescription() -> String { "keyless-test:" + UUID().uuidString }

/// 32 random bytes, the size of a file-store key.
func randomKey() -> [UInt8] {
    var generator = SystemRandomNumberGenerator()
    return (0..<32).map { _ in generator.next() }
}

@Suite("KernelKeyring: the per-user cache of the file-store key")
struct KernelKeyringTests {
    @Test("a written key reads back byte for byte and is gone after remove")
    func writeReadRemove() {
        let keyring = KernelKeyring(timeout: 60)
        let description = uniqueDescription()
        defer { keyring.remove(description) }
        let key = randomKey()

        keyring.write(description, key)
        guard kernelKeyringWorks() else {
            print(
                "KernelKeyring: add_key/keyctl are blocked on this machine; checking the documented no-op behaviour instead"
            )
            #expect(keyring.read(description) == nil)
            keyring.remove(description)
            return
        }

        #expect(keyring.read(description) == key)
        keyring.remove(description)
        #expect(keyring.read(description) == nil)
    }

    @Test(
        "writing again under the same description replaces the key",
        .enabled(if: kernelKeyringWorks(), "add_key/keyctl are blocked on this machine"))
    func writeReplaces() {
        let keyring = KernelKeyring(timeout: 60)
        let description = uniqueDescription()
        defer { keyring.remove(description) }
        let first = randomKey()
        let second = randomKey()

        keyring.write(description, first)
        keyring.write(description, second)

        #expect(keyring.read(description) == second)
    }

    @Test("reading or removing a description that was never written is harmless")
    func unknownDescription() {
        let keyring = KernelKeyring(timeout: 60)
        let description = uniqueDescription()

        #expect(keyring.read(description) == nil)
        keyring.remove(description)
        #expect(keyring.read(description) == nil)
    }
}

@Suite(
    "FileKeyProvider with the kernel keyring",
    .enabled(if: kernelKeyringWorks(), "add_key/keyctl are blocked on this machine"))
struct FileKeyProviderKeyringTests {
    @Test("after one unlock with the passphrase, a provider without it gets the key from the keyring")
    func keyFromKeyring() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let keyring = KernelKeyring(timeout: 60)
        let description = fixture.provider(passphrase: nil).keyringDescription
        defer { keyring.remove(description) }

        try fixture.encrypted(keyring: keyring).write(sampleEntry())
        #expect(keyring.read(description)?.count == 32)

        let read = try fixture.encrypted(passphrase: nil, keyring: keyring).read(sampleEntry().header.name)
        #expect(read?.secret == Array(secretText.utf8))
        // Without the keyring the same passphrase-less store cannot open the entry, so the key came from there.
        #expect(throws: KeylessError(.passphraseRequired, "")) {
            try fixture.encrypted(passphrase: nil).read(sampleEntry().header.name)
        }
    }

    @Test("the keyring description depends on the store directory")
    func descriptionPerDirectory() throws {
        let first = try StoreFixture()
        let second = try StoreFixture()
        defer { first.remove(); second.remove() }

        let a = first.provider(passphrase: nil).keyringDescription
        let b = second.provider(passphrase: nil).keyringDescription

        #expect(a != b)
        #expect(a.hasPrefix("keyless:file-key:"))
        #expect(a == first.provider(passphrase: "other").keyringDescription)
    }

    @Test("a wrong key in the keyring is ignored: without the passphrase the store reports passphraseRequired")
    func wrongKeyInKeyring() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let keyring = KernelKeyring(timeout: 60)
        let description = fixture.provider(passphrase: nil).keyringDescription
        defer { keyring.remove(description) }
        try fixture.encrypted().write(sampleEntry())

        keyring.write(description, randomKey())

        #expect(throws: KeylessError(.passphraseRequired, "")) {
            try fixture.encrypted(passphrase: nil, keyring: keyring).read(sampleEntry().header.name)
        }
    }

    @Test("a wrong key in the keyring is replaced once the passphrase unlocks the store")
    func wrongKeyRepaired() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let keyring = KernelKeyring(timeout: 60)
        let description = fixture.provider(passphrase: nil).keyringDescription
        defer { keyring.remove(description) }
        try fixture.encrypted().write(sampleEntry())
        let wrong = randomKey()
        keyring.write(description, wrong)

        #expect(
            try fixture.encrypted(keyring: keyring).read(sampleEntry().header.name)?.secret == Array(secretText.utf8))

        #expect(keyring.read(description) != wrong)
        #expect(
            try fixture.encrypted(passphrase: nil, keyring: keyring).read(sampleEntry().header.name)?.secret
                == Array(secretText.utf8))
    }

    @Test("a removed keyring entry sends the provider back to the passphrase")
    func removedKeyringEntry() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let keyring = KernelKeyring(timeout: 60)
        let description = fixture.provider(passphrase: nil).keyringDescription
        defer { keyring.remove(description) }
        try fixture.encrypted(keyring: keyring).write(sampleEntry())

        keyring.remove(description)

        #expect(throws: KeylessError(.passphraseRequired, "")) {
            try fixture.encrypted(passphrase: nil, keyring: keyring).read(sampleEntry().header.name)
        }
    }
}
