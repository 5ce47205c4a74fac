import Foundation
import KeylessCore
@testable import KeylessIdP
import Testing

@Suite("password hashes for idp.yaml")
struct PasswordHashTests {
    // Cheap parameters keep the tests fast; the format and the check are the same at any cost.
    func cheap(_ password: String) throws -> PasswordHash { try PasswordHash.make(password, logN: 10, r: 8, p: 1) }

    @Test("a hash verifies its own password and no other, and survives its stored form")
    func roundTrip() throws {
        let hash = try cheap("correct horse battery")
        #expect(hash.verify("correct horse battery"))
        #expect(!hash.verify("correct horse batterY"))
        #expect(!hash.verify(""))
        let stored = hash.description
        #expect(stored.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        let parsed = try #require(PasswordHash(stored))
        #expect(parsed == hash)
        #expect(parsed.verify("correct horse battery"))
    }

    @Test("two hashes of one password differ (random salt)")
    func saltsDiffer() throws {
        #expect(try cheap("same password").description != (try cheap("same password")).description)
    }

    @Test("the derived key equals Python's hashlib.scrypt for the same salt and cost")
    func matchesPythonScrypt() throws {
        let hash = try cheap("pässword with ünïcode")
        let salt = Data(hash.salt).base64EncodedString()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import base64, hashlib, sys
            print(hashlib.scrypt(sys.argv[1].encode(), salt=base64.b64decode(sys.argv[2]), n=1024, r=8, p=1, dklen=32).hex())
            """, "pässword with ünïcode", salt,
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(
            output.trimmingCharacters(in: .whitespacesAndNewlines)
                == hash.hash.map { String(format: "%02x", $0) }.joined())
    }

    @Test(
        "strings that are not keyless scrypt hashes are refused",
        arguments: [
            "plaintext-password", "$2b$12$abcdefghijklmnopqrstuv",
            "$scrypt$ln=15,r=8$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=40,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=15,r=8,p=1$c2Fs$aGFzaGhhc2hoYXNoaGFzaA",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaA", "$scrypt$ln=15,r=8,p=1$!!!$aGFzaGhhc2hoYXNoaGFzaA",
        ])
    func refusesOtherStrings(_ text: String) {
        #expect(PasswordHash(text) == nil)
    }
}
