import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessHTTP
import KeylessAccessServer
import KeylessTestFakes
import Testing

/// Forged, stale and malformed bearer tokens sent through the API over a real socket.
@Suite("Access server: token attacks")
struct TokenAttackTests {
    static let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"], amr: ["pwd", "otp"])

    struct Attack: Sendable, CustomStringConvertible {
        let name: String
        /// The whole Authorization header, or nil for none.
        let authorization: String?
        /// The error code expected in the body.
        let code: String
        var description: String { name }
    }

    static func attacks() throws -> [Attack] {
        let valid = try alice.token()
        let claims = alice.claims()
        let pem = Keys.mainRSA.publicKeyPEM
        func bearer(_ token: String) -> String { "Bearer " + token }
        let tampered: String = {
            let parts = valid.split(separator: ".", omittingEmptySubsequences: false)
            var escalated = claims
            escalated["groups"] = ["platform-admins", "developers"]
            escalated["sub"] = "sub-root"
            let payload = base64url(try! JSONSerialization.data(withJSONObject: escalated, options: [.sortedKeys]))
            return [String(parts[0]), payload, String(parts[2])].joined(separator: ".")
        }()
        return [
            Attack(
                name: "alg none",
                authorization: bearer(
                    makeJWT(header: ["alg": "none", "typ": "JWT", "kid": Keys.mainRSA.kid], claims: claims) { _ in
                        Data()
                    }),
                code: "invalid_token"),
            Attack(
                name: "alg none with a signature",
                authorization: bearer(
                    makeJWT(header: ["alg": "none", "typ": "JWT"], claims: claims) { _ in Data("x".utf8) }),
                code: "invalid_token"),
            Attack(
                name: "HS256 keyed with the RSA public key PEM",
                authorization: bearer(
                    makeJWT(header: ["alg": "HS256", "typ": "JWT", "kid": Keys.mainRSA.kid], claims: claims) { input in
                        Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: Data(pem.utf8))))
                    }), code: "invalid_token"),
            Attack(
                name: "HS256 keyed with the RSA public key DER",
                authorization: bearer(
                    makeJWT(header: ["alg": "HS256", "typ": "JWT", "kid": Keys.mainRSA.kid], claims: claims) { input in
                        Data(
                            HMAC<SHA256>.authenticationCode(
                                for: input, using: SymmetricKey(data: Keys.mainRSA.publicKeyDER)))
                    }), code: "invalid_token"),
            Attack(
                name: "RS256 header on an ES256 key id",
                authorization: bearer(
                    try makeJWT(
                        header: ["alg": "RS256", "typ": "JWT", "kid": Keys.mainEC.kid],
                        claims: claims, signature: Keys.mainRSA.sign)),
                code: "invalid_token"),
            Attack(
                name: "unknown kid", authorization: bearer(try signedToken(claims, key: Keys.rogueRSA)),
                code: "invalid_token"),
            Attack(
                name: "a published kid, signed by another key",
                authorization: bearer(
                    try makeJWT(
                        header: ["alg": "RS256", "typ": "JWT", "kid": Keys.mainRSA.kid], claims: claims,
                        signature: Keys.rogueRSA.sign)),
                code: "invalid_token"),
            Attack(
                name: "the partner issuer's key claiming the main issuer",
                authorization: bearer(try signedToken(claims, key: Keys.partnerEC)), code: "invalid_token"),
            Attack(
                name: "expired",
                authorization: bearer(
                    try alice.token {
                        $0["exp"] = at(-3600); $0["iat"] = at(-7200)
                    }), code: "invalid_token"),
            Attack(
                name: "not yet valid", authorization: bearer(try alice.token { $0["nbf"] = at(3000) }),
                code: "invalid_token"),
            Attack(
                name: "issued in the future",
                authorization: bearer(
                    try alice.token {
                        $0["iat"] = at(3000); $0["exp"] = at(7200)
                    }), code: "invalid_token"),
            Attack(name: "no exp", authorization: bearer(try alice.token { $0["exp"] = nil }), code: "invalid_token"),
            Attack(
                name: "wrong issuer",
                authorization: bearer(try alice.token { $0["iss"] = "https://evil.example.test" }),
                code: "invalid_token"),
            Attack(
                name: "wrong audience", authorization: bearer(try alice.token { $0["aud"] = "someone-else" }),
                code: "invalid_token"),
            Attack(
                name: "another issuer's audience", authorization: bearer(try alice.token { $0["aud"] = "partner-cli" }),
                code: "invalid_token"),
            Attack(name: "tampered payload", authorization: bearer(tampered), code: "invalid_token"),
            // 48 KiB of claim is a 64 KiB token: under the HTTP parser's header limit, far over the verifier's.
            Attack(
                name: "oversized token (64 KB header)",
                authorization: bearer(try alice.token { $0["padding"] = String(repeating: "A", count: 48 * 1024) }),
                code: "invalid_token"),
            Attack(name: "missing Authorization header", authorization: nil, code: "missing_token"),
            Attack(name: "Basic scheme", authorization: "Basic YWxpY2U6cGFzc3dvcmQ=", code: "invalid_token"),
            Attack(name: "token without a scheme", authorization: valid, code: "invalid_token"),
            Attack(name: "Bearer and nothing", authorization: "Bearer ", code: "invalid_token"),
            Attack(name: "garbage", authorization: "Bearer not.a.jwt", code: "invalid_token"),
            Attack(name: "garbage base64", authorization: "Bearer !!!!.????.####", code: "invalid_token"),
            Attack(name: "two dots only", authorization: "Bearer ..", code: "invalid_token"),
        ]
    }

    @Test(
        "every forged, expired, misaddressed or malformed token gets 401 with a WWW-Authenticate challenge, no credentials, no echo of the token, and the server keeps serving"
    )
    func attacksAreRefused() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let attacks = try Self.attacks()
        #expect(try #require(attacks.first { $0.name.hasPrefix("oversized") }?.authorization).utf8.count >= 64 * 1024)
        try await fixture.application().test(.live) { client in
            for attack in attacks {
                for path in ["/api/v1/credentials", "/api/v1/config"] {
                    var headers: HTTPFields = [.contentType: "application/json"]
                    if let authorization = attack.authorization { headers[.authorization] = authorization }
                    let response = try await client.execute(
                        uri: path, method: path.hasSuffix("config") ? .get : .post, headers: headers,
                        body: ByteBuffer(string: #"{"role_arn":"prod/readonly"}"#))
                    #expect(response.status == .unauthorized, "\(attack) \(path): \(response.status) \(text(response))")
                    let challenge = response.headers[.wwwAuthenticate] ?? ""
                    #expect(challenge.hasPrefix("Bearer realm=\"keyless\""), "\(attack): \(challenge)")
                    if attack.code == "invalid_token" {
                        #expect(challenge.contains("error=\"invalid_token\""), "\(attack): \(challenge)")
                    }
                    let body = try json(response)
                    #expect(body["error"] as? String == attack.code, "\(attack): \(text(response))")
                    #expect(body["AccessKeyId"] == nil && body["accounts"] == nil)
                    if let token = attack.authorization?.split(separator: " ").last, token.count > 8 {
                        #expect(!text(response).contains(token), "\(attack): the answer echoes the token")
                    }
                }
            }
            let health = try await client.get("/healthz")
            #expect(health.status == .ok)
            // And a genuine token still works on the same server.
            let config = try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token()))
            #expect(config.status == .ok, "\(text(config))")
        }
        // Refused tokens never reach a decision, so nothing is audited, and no log line carries a token.
        #expect(try fixture.auditRecords().isEmpty)
        let tokens = attacks.compactMap { $0.authorization?.split(separator: " ").last.map(String.init) }.filter {
            $0.count > 20
        }
        for record in fixture.logs.records {
            for token in tokens {
                #expect(!record.jsonLine.contains(token), "a log line carries a token: \(record.message)")
            }
        }
    }

    @Test(
        "a header beyond the HTTP parser's limit (160 KB) is refused by the HTTP layer without reaching the API, and the server keeps serving"
    )
    func headerBeyondParserLimit() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        let huge = try Self.alice.token { $0["padding"] = String(repeating: "A", count: 120 * 1024) }
        try await fixture.application().test(.live) { client in
            // The server answers and closes that connection, so each request here opens its own.
            let base = "http://localhost:\(try #require(client.port))"
            let http = AsyncHTTPTransport()
            let response = try await http.send(
                method: "GET", url: base + "/api/v1/config", headers: ["authorization": "Bearer " + huge], body: nil)
            #expect((400..<500).contains(response.status), "\(response.status)")
            #expect(try await http.send(method: "GET", url: base + "/healthz", headers: [:], body: nil).status == 200)
            let good = try await http.send(
                method: "GET", url: base + "/api/v1/config",
                headers: ["authorization": "Bearer " + (try Self.alice.token())], body: nil)
            #expect(good.status == 200)
        }
        #expect(try fixture.auditRecords().isEmpty)
    }

    @Test(
        "a forged token costs no JWKS fetch beyond the first: unknown kids within the refetch interval do not hammer the issuer"
    )
    func unknownKidsAreRateLimited() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            let good = try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token()))
            #expect(good.status == .ok)
            #expect(fixture.jwks.fetches() == 1)
            for index in 0..<20 {
                let forged = try signedToken(Self.alice.claims { $0["jti"] = "forged-\(index)" }, key: Keys.rogueRSA)
                let response = try await client.get("/api/v1/config", authorization: "Bearer " + forged)
                #expect(response.status == .unauthorized)
            }
            #expect(fixture.jwks.fetches() == 1, "unknown kids within jwks_refetch_interval must not refetch")
        }
    }
}
