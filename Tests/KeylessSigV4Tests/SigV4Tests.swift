import Foundation
import KeylessSigV4
import KeylessTestSupport
import Testing

@Suite("SigV4")
struct SigV4Tests {
    static let example = SigV4Credentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    /// 2015-08-30T12:36:00Z, the time of AWS's published examples.
    static let exampleDate = Date(timeIntervalSince1970: 1_440_938_160)

    static func authorization(_ request: SigV4Request, service: String, credentials: SigV4Credentials = example) throws
        -> String
    {
        let headers = try #require(
            SigV4.sign(request, credentials: credentials, region: "us-east-1", service: service, date: exampleDate))
        return try #require(headers.first { $0.0 == "Authorization" }?.1)
    }

    // Vectors: AWS General Reference, "Examples of the complete Signature Version 4 signing process" (IAM ListUsers),
    // and the aws-sig-v4-test-suite's get-vanilla and post-vanilla.
    @Test("AWS's published IAM ListUsers example gives signature 5d672d79…")
    func iamExample() throws {
        let request = SigV4Request(
            method: "GET", url: "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")])
        #expect(
            try Self.authorization(request, service: "iam")
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
                + "SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        )
    }

    @Test("the test suite's get-vanilla and post-vanilla vectors")
    func vanilla() throws {
        let prefix =
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="
        #expect(
            try Self.authorization(
                SigV4Request(method: "GET", url: "https://example.amazonaws.com/"), service: "service")
                == prefix + "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        #expect(
            try Self.authorization(
                SigV4Request(method: "POST", url: "https://example.amazonaws.com/"), service: "service")
                == prefix + "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
    }

    @Test(
        "temporary credentials add and sign X-Amz-Security-Token; old signing headers are replaced, unsigned ones left out"
    )
    func sessionTokenAndReplacedHeaders() throws {
        let credentials = SigV4Credentials(
            accessKeyID: "ASIAEXAMPLE", secretAccessKey: "secret", sessionToken: "token/with+chars=")
        let request = SigV4Request(
            method: "POST", url: "https://sts.amazonaws.com/",
            headers: [
                ("Authorization", "stale"), ("X-Amz-Date", "19990101T000000Z"), ("User-Agent", "keyless"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ], body: Array("Action=GetCallerIdentity&Version=2011-06-15".utf8))
        let added = try #require(
            SigV4.sign(request, credentials: credentials, region: "us-east-1", service: "sts", date: Self.exampleDate))
        #expect(added.map(\.0) == ["X-Amz-Date", "X-Amz-Security-Token", "Authorization"])
        #expect(added[0].1 == "20150830T123600Z")
        #expect(added[1].1 == "token/with+chars=")
        #expect(added[2].1.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"))
        #expect(
            SigV4.sign(
                SigV4Request(method: "GET", url: "not a url"), credentials: credentials, region: "us-east-1",
                service: "sts", date: Self.exampleDate) == nil)
    }

    /// A small deterministic generator, so a failing case can be reproduced from its index.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
        mutating func pick<T>(_ items: [T]) -> T { items[int(0...(items.count - 1))] }
        mutating func text(_ alphabet: [String], _ length: ClosedRange<Int>) -> String {
            (0..<int(length)).map { _ in pick(alphabet) }.joined()
        }
    }

    @Test(
        "300 generated requests: the same Authorization, X-Amz-Date and token header as botocore's SigV4Auth, and the same canonical request"
    )
    func matchesBotocore() throws {
        var g = Generator(state: 0x9E37_79B9_7F4A_7C15)
        let pieces = [
            "a", "Z", "0", "-", "_", ".", "~", " ", "é", "+", "=", "&", "/", "%", "!", "*", "'", "(", ")", ":", "@",
            "中",
        ]
        var cases: [[String: Any]] = []
        var requests: [(SigV4Request, SigV4Credentials, String, String, Date)] = []
        for _ in 0..<300 {
            let scheme = g.pick(["https", "http"])
            let host =
                g.pick(["sts.amazonaws.com", "iam.amazonaws.com", "example.amazonaws.com", "127.0.0.1"])
                + g.pick(["", "", ":443", ":80", ":8443", ":5000"])
            let segments = (0..<g.int(0...4)).map { _ -> String in
                g.pick(["", ".", "..", g.text(pieces, 1...6)]).split(separator: "/").map { SigV4.encode(String($0)) }
                    .joined(separator: "%2F")
            }
            let path =
                segments.isEmpty && g.int(0...1) == 0
                ? "" : "/" + segments.joined(separator: "/") + (g.int(0...3) == 0 ? "/" : "")
            let query = (0..<g.int(0...4)).map { _ in
                SigV4.encode(g.text(pieces, 1...5)) + "=" + SigV4.encode(g.text(pieces, 0...6))
            }.joined(separator: "&")
            let url = scheme + "://" + host + path + (query.isEmpty ? "" : "?" + query)
            var headers: [(String, String)] = []
            var names = Set<String>()
            for _ in 0..<g.int(0...5) {
                let name = g.pick([
                    "Content-Type", "X-Amz-Target", "x-custom-Header", "User-Agent", "Accept", "X-Amz-Meta-Thing",
                    "Expect", "Connection",
                ])
                guard names.insert(name.lowercased()).inserted else { continue }
                let value =
                    g.pick(["", " ", "  lead", "trail  ", "a  b\t c", "application/json", "v=1; q=\"x  y\""])
                    + g.text(["a", "1", " "], 0...3)
                headers.append((name, value))
            }
            let body = (0..<g.int(0...40)).map { _ in UInt8(g.int(0...255)) }
            let credentials = SigV4Credentials(
                accessKeyID: "AKID" + g.text(["A", "B", "7"], 8...8),
                secretAccessKey: g.text(["x", "Y", "/", "+", "9"], 20...40),
                sessionToken: g.int(0...2) == 0 ? g.text(["t", "/", "+", "="], 10...30) : nil)
            let region = g.pick(["us-east-1", "eu-west-2", "ap-southeast-1"])
            let service = g.pick(["sts", "iam", "execute-api", "service"])
            let date = Date(timeIntervalSince1970: TimeInterval(1_400_000_000 + g.int(0...400_000_000)))
            requests.append(
                (
                    SigV4Request(
                        method: g.pick(["GET", "POST", "PUT", "DELETE"]), url: url, headers: headers, body: body),
                    credentials, region, service, date
                ))
            cases.append([
                "method": requests.last!.0.method, "url": url, "headers": headers.map { [$0.0, $0.1] },
                "body_hex": body.map { String(format: "%02x", $0) }.joined(), "access_key": credentials.accessKeyID,
                "secret_key": credentials.secretAccessKey, "token": credentials.sessionToken as Any? ?? NSNull(),
                "region": region, "service": service, "epoch": Int(date.timeIntervalSince1970),
            ])
        }
        let input = try makeTemporaryDirectory(prefix: "keyless-sigv4") + "/cases.json"
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: input))
        let script = repositoryRoot() + "/scripts/partners/sigv4_botocore.py"
        let result = try PartnerProcess.run(
            "/bin/sh", ["-c", "\"$0\" \"$1\" < \"$2\"", Tooling.python(), script, input], timeout: 120)
        #expect(result.status == 0, "\(result.output.prefix(2000))")
        let answers = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [[String: Any]])
        #expect(answers.count == requests.count)
        var mismatches = 0
        for (index, (request, credentials, region, service, date)) in requests.enumerated() where index < answers.count
        {
            let ours = try #require(
                SigV4.sign(request, credentials: credentials, region: region, service: service, date: date))
            let theirs = answers[index]
            let same =
                ours.first { $0.0 == "Authorization" }?.1 == theirs["authorization"] as? String
                && ours.first { $0.0 == "X-Amz-Date" }?.1 == theirs["amz_date"] as? String
                && ours.first { $0.0 == "X-Amz-Security-Token" }?.1 == theirs["token"] as? String
            if !same {
                mismatches += 1
                var withDate = request
                withDate.headers += ours.filter { $0.0 != "Authorization" }
                Issue.record(
                    "case \(index) \(request.method) \(request.url)\nours:\n\(SigV4.canonicalRequest(withDate)?.0 ?? "nil")\nbotocore:\n\(theirs["canonical_request"] ?? "")"
                )
                if mismatches > 3 { break }
            }
        }
        #expect(mismatches == 0)
    }
}
