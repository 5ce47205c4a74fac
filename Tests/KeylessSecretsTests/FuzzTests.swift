import Foundation
import KeylessCore
@testable import KeylessFastPath
@testable import KeylessSecrets
import KeylessTestSupport
import Testing

/// The files keyless reads back from disk (another process, a crash or a person may have written them), mutated.
@Suite("fuzz: store headers, cached credentials and key records")
struct StoredFileFuzzTests {
    @Test("store entry headers, cached credentials and file-key records never crash their parsers")
    func storedFiles() {
        Fuzzer.run("store entry header", seeds: [#"{"v":1,"name":"tokens/abc","updatedAt":"2026-12-06T12:00:00Z","backend":"file"}"#],
                   tokens: ["\"v\":", "1e300", "\"updatedAt\":"]) { bytes in
            _ = EntryHeader.parse(bytes)
        }
        Fuzzer.run("cached credentials", seeds: [
            #"{"accessKeyId":"ASIA","secretAccessKey":"s","sessionToken":"t","expiration":1765026000.5,"assumedRoleArn":"arn:aws:sts::1:x"}"#,
        ], tokens: ["\"expiration\":", "\"accessKeyId\":"]) { bytes in
            // What the fast path does with what it read: the credential_process line.
            if let cached = CachedCredentials.parse(bytes) { _ = cached.credentialProcessJSON }
        }
        Fuzzer.run("file key record", seeds: [#"{"v":1,"source":"passphrase","check":"abc=","salt":"AAAA","n":32768,"r":8,"p":1}"#, #"{"v":1,"source":"os-store","check":"abc="}"#],
                   tokens: ["\"n\":", "\"r\":", "\"p\":", "1099511627776"]) { bytes in
            if let record = FileKeyRecord.parse(bytes), let n = record.n {
                #expect(n <= 1 << 18, "a scrypt cost that would hang: \(n)")
            }
        }
    }
}
