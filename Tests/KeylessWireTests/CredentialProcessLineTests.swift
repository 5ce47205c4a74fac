import Foundation
import KeylessTestSupport
import KeylessWire
import Testing

@Suite("The credential_process line splits back into its words as botocore splits it")
struct CredentialProcessLineTests {
    /// Python's shlex.split, which botocore uses for credential_process (with posix=True on POSIX systems).
    static func shlexSplit(_ line: String) throws -> [String] {
        let script = "import json, shlex, sys; print(json.dumps(shlex.split(sys.argv[1])))"
        let result = try PartnerProcess.run("/usr/bin/env", ["python3", "-c", script, line], timeout: 30)
        try #require(result.status == 0, "python3 failed: \(result.output)")
        return try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String])
    }

    @Test("roles, issuers and regions with quotes, spaces, shell characters and non-ASCII text come back whole")
    func roundTrip() throws {
        let arns = [
            "arn:aws:iam::123456789012:role/plain", "arn:aws:iam::123456789012:role/it's", "arn:aws:iam::1:role/a b\tc",
            "arn:aws:iam::1:role/$(touch x);`y`|&<>*?\"\\", "arn:aws:iam::1:role/zoë-東京", "''", "'",
        ]
        for arn in arns {
            let line = CredentialProcessLine.make(
                server: "https://keyless.example.com/a b", issuer: "https://idp.example.com/t'x",
                clientID: "cli ent", roleArn: arn, region: "eu-west-1")
            #expect(
                try Self.shlexSplit(line) == [
                    "keyless", "creds-process", "--server", "https://keyless.example.com/a b", "--issuer-url",
                    "https://idp.example.com/t'x", "--client-id", "cli ent", "--role-arn", arn, "--region", "eu-west-1",
                ])
        }
    }

    @Test("safe words stay unquoted and the empty word is quoted")
    func quoting() {
        #expect(
            CredentialProcessLine.quoted("arn:aws:iam::123456789012:role/a-b_c.d/e=f@g+h,i%j")
                == "arn:aws:iam::123456789012:role/a-b_c.d/e=f@g+h,i%j")
        #expect(CredentialProcessLine.quoted("") == "''")
        #expect(CredentialProcessLine.quoted("it's") == #"'it'\''s'"#)
        #expect(CredentialProcessLine.quoted("zoë") == "'zoë'")
    }
}
