import Crypto
import Foundation

/// AWS credentials for signing.
public struct SigV4Credentials: Sendable, Equatable {
    /// The access key id.
    public var accessKeyID: String
    /// The secret access key.
    public var secretAccessKey: String
    /// The session token of temporary credentials.
    public var sessionToken: String?

    /// Credentials.
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID; self.secretAccessKey = secretAccessKey; self.sessionToken = sessionToken
    }
}

/// A request to sign: the URL as it will be sent (percent-encoded path and query), headers in order, the body.
public struct SigV4Request: Sendable, Equatable {
    /// GET, POST, ...
    public var method: String
    /// `scheme://host[:port]/path?query`, percent-encoded as sent.
    public var url: String
    /// Header names and values (names in any case; repeated names are joined with commas).
    public var headers: [(String, String)]
    public var body: [UInt8]

    /// A request.
    public init(method: String, url: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method; self.url = url; self.headers = headers; self.body = body
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.method == b.method && a.url == b.url && a.body == b.body && a.headers.elementsEqual(b.headers) { $0 == $1 }
    }
}

/// AWS Signature Version 4, header form: pure and deterministic (the time is a parameter). Written by hand because
/// no AWS SDK is available here; checked against AWS's published example and against botocore's signer.
public enum SigV4 {
    /// Headers a signature never covers (botocore's list: hop-by-hop headers and ones proxies change).
    static let unsigned: Set<String> = [
        "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    /// The headers to add to the request: `X-Amz-Date`, `X-Amz-Security-Token` (temporary credentials) and
    /// `Authorization`. Returns nil when the URL has no host.
    public static func sign(
        _ request: SigV4Request, credentials: SigV4Credentials, region: String, service: String, date: Date
    ) -> [(String, String)]? {
        let amzDate = timestamp(date)
        var headers = request.headers.filter {
            !["authorization", "x-amz-date", "x-amz-security-token"].contains($0.0.lowercased())
        }
        headers.append(("X-Amz-Date", amzDate))
        if let token = credentials.sessionToken { headers.append(("X-Amz-Security-Token", token)) }
        guard
            let (canonical, signedHeaders) = canonicalRequest(
                SigV4Request(method: request.method, url: request.url, headers: headers, body: request.body))
        else {
            return nil
        }
        let scope = "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
        let stringToSign = "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n\(hex(SHA256.hash(data: Array(canonical.utf8))))"
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [String(amzDate.prefix(8)), region, service, "aws4_request"] {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        let signature = hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        var added = [("X-Amz-Date", amzDate)]
        if let token = credentials.sessionToken { added.append(("X-Amz-Security-Token", token)) }
        added.append(
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
            ))
        return added
    }

    /// The canonical request and the signed-headers list (exposed for tests and for explaining signature mismatches).
    public static func canonicalRequest(_ request: SigV4Request) -> (String, signedHeaders: String)? {
        guard let parts = URLParts(request.url) else { return nil }
        var byName: [String: [String]] = [:]
        for (name, value) in request.headers {
            let lower = name.lowercased()
            guard !unsigned.contains(lower) else { continue }
            byName[lower, default: []].append(
                value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(
                    separator: " "))
        }
        if byName["host"] == nil { byName["host"] = [parts.hostHeader] }
        let names = byName.keys.sorted()
        let canonicalHeaders = names.map { "\($0):\(byName[$0]!.joined(separator: ","))" }.joined(separator: "\n")
        let signedHeaders = names.joined(separator: ";")
        let canonical = [
            request.method.uppercased(), canonicalPath(parts.path), canonicalQuery(parts.query),
            canonicalHeaders + "\n", signedHeaders, hex(SHA256.hash(data: request.body)),
        ].joined(separator: "\n")
        return (canonical, signedHeaders)
    }

    /// The path with dot segments and empty segments removed, then percent-encoded again (botocore's
    /// normalisation: services other than S3 expect the already-encoded path to be encoded once more).
    static func canonicalPath(_ path: String) -> String {
        guard !path.isEmpty else { return "/" }
        var output: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: false)
        where !segment.isEmpty && segment != "." {
            if segment == ".." { if !output.isEmpty { output.removeLast() } } else { output.append(segment) }
        }
        let normalised =
            (path.hasPrefix("/") ? "/" : "") + output.joined(separator: "/")
            + (path.hasSuffix("/") && !output.isEmpty ? "/" : "")
        return encode(normalised, keepSlash: true)
    }

    /// Query pairs as sent, sorted by name then value (they are already encoded by the sender).
    static func canonicalQuery(_ query: String) -> String {
        guard !query.isEmpty else { return "" }
        let pairs = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> (String, String) in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(kv[0]), kv.count > 1 ? String(kv[1]) : "")
        }
        return pairs.sorted {
            ($0.0.utf8.lexicographicallyPrecedes($1.0.utf8))
                || ($0.0 == $1.0 && $0.1.utf8.lexicographicallyPrecedes($1.1.utf8))
        }
        .map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// RFC 3986 percent-encoding of everything but unreserved characters (and `/` when asked).
    public static func encode(_ text: String, keepSlash: Bool = false) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out += "/"
            default:
                out +=
                    "%" + String(byte >> 4, radix: 16, uppercase: true)
                    + String(byte & 0x0f, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    public static func timestamp(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ value: Int?, _ width: Int = 2) -> String {
            let text = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return pad(c.year, 4) + pad(c.month) + pad(c.day) + "T" + pad(c.hour) + pad(c.minute) + pad(c.second) + "Z"
    }

    static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The parts of an absolute URL SigV4 needs, taken from the text as sent (no re-encoding).
struct URLParts {
    var hostHeader: String
    var path: String
    var query: String

    init?(_ url: String) {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = url[schemeEnd.upperBound...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty else { return nil }
        // botocore leaves the default port out of the Host it signs.
        if scheme == "https", authority.hasSuffix(":443") { authority = authority.dropLast(4) }
        if scheme == "http", authority.hasSuffix(":80") { authority = authority.dropLast(3) }
        hostHeader = String(authority)
        let afterAuthority = rest[authorityEnd...]
        if let question = afterAuthority.firstIndex(of: "?") {
            path = String(afterAuthority[..<question])
            query = String(afterAuthority[afterAuthority.index(after: question)...])
        } else {
            path = String(afterAuthority)
            query = ""
        }
    }
}
