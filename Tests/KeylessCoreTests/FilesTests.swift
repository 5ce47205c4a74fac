import Foundation
import KeylessCore
import KeylessTestFakes
import Testing
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@Suite("Files: atomic writes, private reads and private directories")
struct FilesTests {
    @Test("writeAtomically creates a 0600 file holding exactly the bytes given")
    func createsPrivateFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        let bytes: [UInt8] = Array("first line\n".utf8) + [0, 255, 10]

        try Files.writeAtomically(bytes, to: path)

        #expect(contents(path) == bytes)
        #expect(permissions(path) == 0o600)
    }

    @Test("writeAtomically honours an explicit mode")
    func honoursMode() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("public")

        try Files.writeAtomically(Array("x".utf8), to: path, mode: 0o640)

        #expect(permissions(path) == 0o640)
    }

    @Test("writeAtomically replaces a longer file with a shorter one and leaves no temporary file behind")
    func replacesContent() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")

        try Files.writeAtomically(Array(String(repeating: "old content ", count: 100).utf8), to: path)
        try Files.writeAtomically(Array("new".utf8), to: path)

        #expect(contents(path) == Array("new".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["entry"])
    }

    @Test("writeAtomically over a world-readable file leaves a 0600 file")
    func replacesLooseFileWithPrivateOne() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        try plant("old", at: path, mode: 0o644)

        try Files.writeAtomically(Array("new".utf8), to: path)

        #expect(permissions(path) == 0o600)
        #expect(contents(path) == Array("new".utf8))
    }

    @Test("a write whose rename fails throws io, keeps what was at the path and leaves no temporary file")
    func failedRenameKeepsOldContent() throws {
        // Renaming a file onto a non-empty directory fails for every user, root included.
        let scratch = try Scratch()
        defer { scratch.remove() }
        let target = scratch.file("entry")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        try plant("old", at: target + "/kept", mode: 0o600)

        #expect(throws: KeylessError(.io, "")) {
            try Files.writeAtomically(Array("new".utf8), to: target)
        }

        #expect(contents(target + "/kept") == Array("old".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["entry"])
    }

    @Test(
        "a write into a read-only directory throws io and leaves the old file intact",
        .enabled(
            if: !runningAsRoot,
            "root bypasses directory permissions; the rename-onto-a-directory test covers the failure path"))
    func readOnlyDirectoryKeepsOldFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        try Files.writeAtomically(Array("old".utf8), to: path)
        #expect(chmod(scratch.path, 0o500) == 0)

        #expect(throws: KeylessError(.io, "")) {
            try Files.writeAtomically(Array("new".utf8), to: path)
        }

        #expect(contents(path) == Array("old".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path) == ["entry"])
    }

    @Test("a write into a missing directory throws io")
    func missingDirectory() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }

        #expect(throws: KeylessError(.io, "")) {
            try Files.writeAtomically(Array("x".utf8), to: scratch.file("absent/entry"))
        }
    }

    @Test("read returns nil for a missing file and the exact bytes of an existing one")
    func readMissingAndPresent() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        #expect(try Files.read(path) == nil)
        #expect(try Files.read(path, requirePrivate: true) == nil)

        let bytes = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        try Files.writeAtomically(bytes, to: path)

        #expect(try Files.read(path, requirePrivate: true) == bytes)
    }

    @Test("read of an empty file returns no bytes rather than nil")
    func readEmptyFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("empty")
        try plant("", at: path, mode: 0o600)

        #expect(try Files.read(path, requirePrivate: true) == [])
    }

    @Test(
        "read with requirePrivate rejects files others can read or write with cacheInsecure",
        arguments: [0o644, 0o640, 0o604, 0o620, 0o602] as [mode_t])
    func readRejectsLooseModes(mode: mode_t) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        try plant("secret", at: path, mode: mode)

        #expect(throws: KeylessError(.cacheInsecure, "")) {
            try Files.read(path, requirePrivate: true)
        }
        // Without the requirement the same file reads fine, so it is the mode that was refused.
        #expect(try Files.read(path) == Array("secret".utf8))
    }

    @Test("read with requirePrivate accepts owner-only modes", arguments: [0o600, 0o400, 0o700] as [mode_t])
    func readAcceptsPrivateModes(mode: mode_t) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        try plant("secret", at: path, mode: mode)

        #expect(try Files.read(path, requirePrivate: true) == Array("secret".utf8))
    }

    @Test("read of a directory throws io rather than returning nil or empty bytes")
    func readDirectoryThrows() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }

        // open(O_RDONLY) of a directory succeeds; read(2) then fails with EISDIR.
        #expect(throws: KeylessError(.io, "")) {
            try Files.read(scratch.path)
        }
    }

    @Test("ensurePrivateDirectory creates every missing level with mode 0700")
    func createsNestedPrivateDirectories() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let deepest = scratch.file("a/b/c")

        try Files.ensurePrivateDirectory(deepest)

        #expect(permissions(scratch.file("a")) == 0o700)
        #expect(permissions(scratch.file("a/b")) == 0o700)
        #expect(permissions(deepest) == 0o700)
        // A second call on the now-existing directory is accepted.
        try Files.ensurePrivateDirectory(deepest)
    }

    @Test("ensurePrivateDirectory accepts a private directory under a world-readable parent")
    func privateUnderPublicParent() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        #expect(chmod(scratch.path, 0o755) == 0)

        try Files.ensurePrivateDirectory(scratch.file("store"))

        #expect(permissions(scratch.file("store")) == 0o700)
    }

    @Test(
        "ensurePrivateDirectory rejects an existing directory others can enter with cacheInsecure",
        arguments: [0o755, 0o750, 0o711, 0o777] as [mode_t])
    func rejectsLooseDirectory(mode: mode_t) throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let directory = scratch.file("store")
        #expect(mkdir(directory, 0o700) == 0)
        #expect(chmod(directory, mode) == 0)

        #expect(throws: KeylessError(.cacheInsecure, "")) {
            try Files.ensurePrivateDirectory(directory)
        }
        // The directory is reported, not silently repaired.
        #expect(permissions(directory) == mode)
    }

    @Test("ensurePrivateDirectory fails with io when a path component is a file")
    func componentIsFile() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        try plant("", at: scratch.file("file"), mode: 0o600)

        #expect(throws: KeylessError(.io, "")) {
            try Files.ensurePrivateDirectory(scratch.file("file/store"))
        }
    }

    @Test("remove deletes a file and accepts one that is already gone")
    func removeIsIdempotent() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let path = scratch.file("entry")
        try Files.writeAtomically(Array("x".utf8), to: path)
        #expect(Files.exists(path))

        try Files.remove(path)
        #expect(!Files.exists(path))
        try Files.remove(path)
    }

    @Test("list returns the entries sorted, without . and .., and nothing for a missing directory")
    func listSorted() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        for name in ["b.entry", "a.entry", ".hidden", "key.json"] {
            try plant("", at: scratch.file(name), mode: 0o600)
        }

        #expect(Files.list(scratch.path) == [".hidden", "a.entry", "b.entry", "key.json"])
        #expect(Files.list(scratch.file("absent")) == [])
    }

    @Test(
        "parentDirectory and baseName split paths the way dirname and basename do",
        arguments: [
            ("/a/b/c", "/a/b", "c"),
            ("/c", "/", "c"),
            ("c", ".", "c"),
            ("a/c", "a", "c"),
        ])
    func pathParts(path: String, parent: String, base: String) {
        #expect(Files.parentDirectory(path) == parent)
        #expect(Files.baseName(path) == base)
    }
}
