import Foundation
import KeylessTestSupport
import Testing

@Suite("Built binaries are found where this build put them, never at a hard-coded path")
struct BuiltBinaryTests {
    @Test("the running tests find keyless and keyless-cli beside their own executable, and both run")
    func besideTheTests() throws {
        for name in ["keyless", "keyless-cli"] {
            let path = try builtBinary(name, environment: [:])
            let running = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            #expect((path as NSString).deletingLastPathComponent == (running as NSString).deletingLastPathComponent)
        }
        let result = try PartnerProcess.run(try builtBinary("keyless", environment: [:]), ["--help"], timeout: 60)
        #expect(result.status == 0 && result.output.contains("creds-process"))
    }

    @Test("KEYLESS_BIN_DIR wins, and one that lacks the binary is an error naming it, not a fall-back to another build")
    func fromTheEnvironment() throws {
        let directory = NSTemporaryDirectory() + "keyless-bin-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        FileManager.default.createFile(
            atPath: directory + "/keyless", contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
        #expect(try builtBinary("keyless", environment: ["KEYLESS_BIN_DIR": directory]) == directory + "/keyless")
        #expect {
            try builtBinary("keyless-cli", environment: ["KEYLESS_BIN_DIR": directory])
        } throws: { error in
            "\(error)".contains("KEYLESS_BIN_DIR is \(directory)") && "\(error)".contains("keyless-cli")
        }
        #expect(throws: TestSupportError.self) {
            try builtBinary("keyless", environment: [:], executable: directory + "/nowhere/tests")
        }
    }
}
