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
        Fuzzer.run(
            "store entry header",
            seeds: [#"{"v":1,"name":"tokens/abc","updatedAt":"2026-12-06T12:00:00Z","backend":"file"}"#],
            tokens: ["\"v\":", "1e300", "\"updatedAt\":"]
        ) { bytes in
            _ = EntryHeader.parse(bytes)
        }
        Fuzzer.run(
            "cached credentials",
            seeds: [
                #"{"accessKeyId":"ASIA","secretAccessKey":"s","sessionToken":"t","expiration":1765026000.5,"assumedRoleArn":"arn:aws:sts::1:x"}"#
            ], tokens: ["\"expiration\":", "\"accessKeyId\":"]
        ) { bytes in
            // What the fast path does with what it read: the credential_process line.
            if let cached = CachedCredentials.parse(bytes) { _ = cached.credentialProcessJSON }
        }
        Fuzzer.run(
            "file key record",
            seeds: [
                #"{"v":1,"source":"passphrase","check":"abc=","salt":"AAAA","n":32768,"r":8,"p":1}"#,
                #"{"v":1,"source":"os-store","check":"abc="}"#,
            ],
            tokens: ["\"n\":", "\"r\":", "\"p\":", "1099511627776"]
        ) { bytes in
            if let record = FileKeyRecord.parse(bytes), let n = record.n {
                #expect(n <= 1 << 18, "a scrypt cost that would hang: \(n)")
            }
        }
    }
}

@Suite("what the fuzzer found in files read back from disk")
struct StoredFileRegressionTests {
    @Test(
        "a cached credential whose expiration is 1e300, negative or past year 9999 is corrupt (nil), not a trap in the fast path"
    )
    func absurdExpiration() {
        for expiration in ["1e300", "-1", "253402300800", "1e19"] {
            let text = #"{"accessKeyId":"A","secretAccessKey":"s","sessionToken":"t","expiration":"# + expiration + "}"
            #expect(CachedCredentials.parse(Array(text.utf8)) == nil, "\(expiration)")
        }
        #expect(
            CachedCredentials.parse(
                Array(#"{"accessKeyId":"A","secretAccessKey":"s","sessionToken":"t","expiration":1765026000}"#.utf8))
                != nil)
        #expect(rfc3339(1e300) == "9999-12-31T23:59:59Z" && rfc3339(-.infinity) == "1970-01-01T00:00:00Z")
    }

    @Test(
        "a key.json whose scrypt cost is 1e300, 2^40, not a power of two, or r/p out of range is corrupt (nil), not a trap or a hang"
    )
    func absurdScryptCost() {
        func record(_ n: String, r: String = "8", p: String = "1") -> FileKeyRecord? {
            FileKeyRecord.parse(
                Array(#"{"v":1,"source":"passphrase","check":"c","salt":"AAAA","n":\#(n),"r":\#(r),"p":\#(p)}"#.utf8))
        }
        for bad in [
            record("1e300"), record("1099511627776"), record("30000"), record("32768", r: "1e300"),
            record("32768", p: "64"),
        ] {
            #expect(bad == nil)
        }
        #expect(record("32768")?.n == 32768)
    }
}
