import Foundation
@testable import KeylessAWS
import KeylessCore
import KeylessTestSupport
import Testing

/// What STS, IMDS and the container endpoint send the CLI (and STS the access server), mutated.
@Suite("fuzz: AWS answers the CLI and the server parse")
struct AWSAnswerFuzzTests {
    static let stsAnswer = """
        <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
          <AssumeRoleWithWebIdentityResult>
            <Credentials>
              <AccessKeyId>ASIAEXAMPLEEXAMPLE12</AccessKeyId>
              <SecretAccessKey>secret/with+chars=</SecretAccessKey>
              <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>
              <Expiration>2026-12-06T13:00:00.123Z</Expiration>
            </Credentials>
            <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/dev/alice</Arn></AssumedRoleUser>
          </AssumeRoleWithWebIdentityResult>
        </AssumeRoleWithWebIdentityResponse>
        """
    static let stsError = """
        <ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized &amp; &lt;no&gt;</Message></Error></ErrorResponse>
        """
    static let metadata = """
        {"Code":"Success","LastUpdated":"2026-12-06T12:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-06T18:00:00Z"}
        """

    @Test(
        "STS answers, error answers and dates never crash the parsers; whatever they accept has an expiry in the date range"
    )
    func stsAnswers() throws {
        let count = Fuzzer.run(
            "STS XML", seeds: [Self.stsAnswer, Self.stsError],
            tokens: ["<Expiration>", "</Expiration>", "<AccessKeyId>", "<Code>", "]]>", "<?xml version=\"1.0\"?>"]
        ) { bytes in
            let fields = XMLFields.parse(bytes)
            if let credentials = try? STSClient.credentials(fields) {
                #expect(credentials.expiration.timeIntervalSince1970.isFinite)
            }
        }
        #expect(count >= Fuzzer.cases)
    }

    @Test("IMDS and container-endpoint JSON never crash the parser")
    func metadataAnswers() {
        Fuzzer.run(
            "IMDS/container JSON", seeds: [Self.metadata],
            tokens: ["\"Expiration\":", "\"Token\":", "{\"a\":{\"b\":[[[[[["]
        ) { bytes in
            if let found = MetadataCredentials.parse(bytes, source: "container") {
                #expect(found.expiration.map { $0.timeIntervalSince1970.isFinite } ?? true)
            }
        }
    }

    @Test("RFC 3339 dates: any text gives a finite date or nil")
    func dates() {
        Fuzzer.run(
            "RFC 3339 dates",
            seeds: ["2026-12-06T12:00:00Z", "2026-12-06T12:00:00.123456789+05:30", "1970-01-01T00:00:00-00:00"]
        ) { bytes in
            if let seconds = FlatJSON.parseRFC3339(String(decoding: bytes, as: UTF8.self)) { #expect(seconds.isFinite) }
        }
    }
}
