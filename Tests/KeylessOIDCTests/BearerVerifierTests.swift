import Crypto
import Foundation
import JWTKit
import KeylessCore
import KeylessHTTP
@testable import KeylessOIDC
import KeylessTestFakes
import Testing

// Bearer-token verification for the access server, against an in-memory provider that serves discovery and JWKS
// for several issuers, counts its fetches, can be taken down and can hold requests to force concurrency.

/// The second trusted issuer.
let bearerOtherIssuer = "https://other-idp.example.test"
/// The audience the other issuer's tokens carry.
let bearerOtherAudience = "keyless-server"

/// Identity providers behind one transport: discovery and JWKS per issuer, with counters.
actor BearerStubIdPs: HTTPTransport {
    struct Site {
        var jwks: String
        var status = 200
        var down = false
        var discoveryFetches = 0
        var jwksFetches = 0
    }

    private var sites: [String: Site]
    private var holding = false
    private var held: [CheckedContinuation<Void, Never>] = []

    init(_ sites: [String: String]) {
        self.sites = sites.mapValues { Site(jwks: $0) }
    }

    nonisolated static func jwksURI(_ issuer: String) -> String { issuer + "/keys" }

    func send(method: String, url: String, headers: [String: String], body: [UInt8]?) async throws -> HTTPResponseData {
        if holding { await withCheckedContinuation { held.append($0) } }
        for (issuer, site) in sites {
            switch url {
            case issuer + "/.well-known/openid-configuration":
                sites[issuer]!.discoveryFetches += 1
                if site.down { throw ConnectionRefused() }
                return jsonResponse([
                    "issuer": issuer, "authorization_endpoint": issuer + "/authorize",
                    "token_endpoint": issuer + "/token", "jwks_uri": Self.jwksURI(issuer),
                ])
            case Self.jwksURI(issuer):
                sites[issuer]!.jwksFetches += 1
                if site.down { throw ConnectionRefused() }
                return HTTPResponseData(
                    status: site.status, headers: ["content-type": "application/json"], body: Array(site.jwks.utf8))
            default:
                continue
            }
        }
        return jsonResponse(404, ["error": "not_found"])
    }

    func serve(_ jwks: String, for issuer: String = testIssuer) { sites[issuer]!.jwks = jwks }
    func setDown(_ down: Bool, for issuer: String = testIssuer) { sites[issuer]!.down = down }
    func setStatus(_ status: Int, for issuer: String = testIssuer) { sites[issuer]!.status = status }
    func jwksFetches(_ issuer: String = testIssuer) -> Int { sites[issuer]!.jwksFetches }
    func discoveryFetches(_ issuer: String = testIssuer) -> Int { sites[issuer]!.discoveryFetches }
    var heldCount: Int { held.count }

    /// Makes every request wait until `release()`.
    func hold() { holding = true }

    func release() {
        holding = false
        for continuation in held { continuation.resume() }
        held = []
    }

    /// Waits (without sleeping) until `count` requests are held, then lets other tasks run a while so they pile up.
    func waitUntilHeld(_ count: Int) async {
        var spins = 0
        while held.count < count, spins < 100_000 {
            await Task.yield()
            spins += 1
        }
        for _ in 0..<1_000 { await Task.yield() }
    }
}

/// A stub serving `keys` for the test issuer.
func bearerStub(_ keys: [any TestSigningKey]) throws -> BearerStubIdPs {
    BearerStubIdPs([testIssuer: try jwksJSON(keys)])
}

/// A verifier trusting the test issuer for the test client (and whatever else `issuers` says).
func makeBearerVerifier(
    _ http: BearerStubIdPs, clock: ManualClock, issuers: [TrustedIssuer]? = nil, cacheLimit: Int = 10_000
) -> BearerVerifier {
    BearerVerifier(
        issuers: issuers ?? [TrustedIssuer(issuer: testIssuer, audiences: [testClientID])],
        http: http, clock: clock.wallClock, logger: quietLogger, cacheLimit: cacheLimit)
}

/// Runs `body` and returns the `BearerRejection` it throws; records an issue for anything else.
func bearerRejection<T>(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async
    -> String?
{
    do {
        let value = try await body()
        Issue.record("expected a BearerRejection, got \(value)", sourceLocation: sourceLocation)
    } catch let rejection as BearerRejection {
        return rejection.reason
    } catch {
        Issue.record("expected a BearerRejection, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A token with the given header and payload JSON, ES256-signed by `key` (for shapes `TestClaims` cannot express).
func es256Token(header: String, payload: String, key: ECTestKey) throws -> String {
    let signingInput = base64url(Data(header.utf8)) + "." + base64url(Data(payload.utf8))
    let signature = try key.privateKey.signature(for: Data(signingInput.utf8))
    return signingInput + "." + base64url(signature.rawRepresentation)
}

@Suite("Bearer-token verification")
struct BearerVerifierTests {
    // MARK: accepted tokens

    @Test("an RS256 token from a trusted issuer is accepted with its subject, expiry and claims")
    func acceptsRS256() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = try bearerStub([key])
        let token = try await mint(claims { $0.preferredUsername = "alice" }, with: key)

        let bearer = try await makeBearerVerifier(idp, clock: ManualClock()).verify(token)

        #expect(bearer.issuer == testIssuer)
        #expect(bearer.subject == "user-123")
        #expect(bearer.expiresAt == Date(timeIntervalSince1970: TimeInterval(at(3600))))
        #expect(bearer.claims["email"] == .string("alice@example.com"))
        #expect(bearer.claims["preferred_username"] == .string("alice"))
        #expect(bearer.claims["aud"] == .string(testClientID))
        #expect(await idp.discoveryFetches() == 1)
        #expect(await idp.jwksFetches() == 1)
    }

    @Test("an ES256 token from a trusted issuer is accepted with its claims")
    func acceptsES256() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let token = try await mint(
            claims {
                $0.sub = "ec-user"; $0.aud = ["someone-else", testClientID]
            }, with: key)

        let bearer = try await makeBearerVerifier(idp, clock: ManualClock()).verify(token)

        #expect(bearer.subject == "ec-user")
        #expect(bearer.claims["aud"] == .array([.string("someone-else"), .string(testClientID)]))
    }

    @Test("a configured jwks_uri is used without fetching the discovery document")
    func configuredJWKSURISkipsDiscovery() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(
            idp, clock: ManualClock(),
            issuers: [
                TrustedIssuer(
                    issuer: testIssuer + "/", audiences: [testClientID], jwksURI: BearerStubIdPs.jwksURI(testIssuer))
            ])

        #expect(try await verifier.verify(try await mint(claims(), with: key)).issuer == testIssuer)
        #expect(await idp.discoveryFetches() == 0)
        #expect(await idp.jwksFetches() == 1)
    }

    @Test("a token without kid is accepted when the JWKS holds a single key, and rejected when it holds several")
    func kidlessTokens() async throws {
        let key = ECTestKey(kid: "ec-1")
        let token = try await mint(claims(), with: key, withKid: false)

        let single = try bearerStub([key])
        #expect(try await makeBearerVerifier(single, clock: ManualClock()).verify(token).subject == "user-123")

        let several = try bearerStub([key, ECTestKey(kid: "ec-2")])
        #expect(
            await bearerRejection { try await makeBearerVerifier(several, clock: ManualClock()).verify(token) }
                == "missing key id")
    }

    @Test("clock skew within the leeway is tolerated on exp, nbf and iat")
    func leewayIsTolerated() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let token = try await mint(
            claims {
                $0.exp = at(-30); $0.nbf = at(30); $0.iat = at(30)
            }, with: key)

        #expect(try await verifier.verify(token).subject == "user-123")
    }

    // MARK: algorithm attacks

    @Test("an unsigned token (alg none) is rejected, whatever the spelling")
    func rejectsAlgNone() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())

        let none = try handMadeToken(header: ["alg": "none", "typ": "JWT"], claims: claims())
        #expect(none.hasSuffix("."))
        #expect(await bearerRejection { try await verifier.verify(none) } == "algorithm none is not accepted")
        let shouting = try handMadeToken(header: ["alg": "NONE", "kid": "ec-1"], claims: claims())
        #expect(await bearerRejection { try await verifier.verify(shouting) } == "algorithm is not accepted")
        #expect(await idp.jwksFetches() == 0)
    }

    @Test("HS256 signed with the RSA public key's PEM or DER bytes as the HMAC secret is rejected")
    func rejectsHMACWithPublicKey() async throws {
        let rsa = try RSATestKey(kid: "rsa-1")
        let idp = try bearerStub([rsa])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())
        // Warm the JWKS so the attack meets a verifier that holds the RSA key.
        _ = try await verifier.verify(try await mint(claims(), with: rsa))

        for secret in [Data(rsa.publicKeyPEM.utf8), rsa.privateKey.publicKey.derRepresentation] {
            let forged = try handMadeToken(
                header: ["alg": "HS256", "typ": "JWT", "kid": "rsa-1"], claims: claims { $0.sub = "admin" }
            ) {
                Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: secret)))
            }
            #expect(await bearerRejection { try await verifier.verify(forged) } == "algorithm HS256 is not accepted")
        }
        #expect(verifier.signatureCheckCount == 1)
    }

    @Test("HS256 stays rejected even when an issuer is misconfigured to pin it")
    func rejectsHMACEvenWhenPinned() async throws {
        let rsa = try RSATestKey(kid: "rsa-1")
        let idp = try bearerStub([rsa])
        let verifier = makeBearerVerifier(
            idp, clock: ManualClock(),
            issuers: [
                TrustedIssuer(issuer: testIssuer, audiences: [testClientID], algorithms: ["HS256", "none", "RS256"])
            ])
        let forged = try handMadeToken(header: ["alg": "HS256", "kid": "rsa-1"], claims: claims()) {
            Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: Data(rsa.publicKeyPEM.utf8))))
        }

        #expect(await bearerRejection { try await verifier.verify(forged) } == "algorithm HS256 is not accepted")
        #expect(try await verifier.verify(try await mint(claims(), with: rsa)).subject == "user-123")
    }

    @Test("an algorithm the issuer does not pin is rejected even when the key could verify it")
    func rejectsUnpinnedAlgorithm() async throws {
        let ec = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(
            try bearerStub([ec]), clock: ManualClock(),
            issuers: [
                TrustedIssuer(issuer: testIssuer, audiences: [testClientID], algorithms: ["RS256"])
            ])

        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims(), with: ec)) }
                == "algorithm ES256 is not accepted")
    }

    @Test("a key whose type or JWK alg does not fit the token's algorithm is not used")
    func rejectsKeyOfWrongType() async throws {
        let rsa = try RSATestKey(kid: "rsa-1")
        let idp = try bearerStub([rsa])
        let verifier = makeBearerVerifier(
            idp, clock: ManualClock(),
            issuers: [
                TrustedIssuer(issuer: testIssuer, audiences: [testClientID], algorithms: ["RS256", "RS384", "ES256"])
            ])
        // An EC signature presented under the RSA key's kid.
        let attacker = ECTestKey(kid: "rsa-1")
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims(), with: attacker)) }
                == "key does not fit algorithm")
        // The JWK says alg RS256, so an RS384 token under its kid is refused before any signature check.
        let rs384 = try handMadeToken(header: ["alg": "RS384", "kid": "rsa-1"], claims: claims()) { _ in
            Data(repeating: 1, count: 256)
        }
        #expect(await bearerRejection { try await verifier.verify(rs384) } == "key does not fit algorithm")
        #expect(verifier.signatureCheckCount == 0)
    }

    @Test("keys named in the token header (jku, x5u) are ignored: a self-signed token under a known kid fails")
    func ignoresHeaderKeys() async throws {
        let real = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([real]), clock: ManualClock())
        let attacker = ECTestKey(kid: "ec-1")
        let header =
            #"{"alg":"ES256","kid":"ec-1","jku":"https://evil.example.test/keys","x5u":"https://evil.example.test/cert"}"#
        let forged = try es256Token(
            header: header, payload: String(decoding: try claims().json(), as: UTF8.self), key: attacker)

        #expect(await bearerRejection { try await verifier.verify(forged) } == "bad signature")
    }

    @Test("a critical header extension is rejected")
    func rejectsCriticalHeader() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let token = try es256Token(
            header: #"{"alg":"ES256","kid":"ec-1","crit":["b64"],"b64":false}"#,
            payload: String(decoding: try claims().json(), as: UTF8.self), key: key)

        #expect(await bearerRejection { try await verifier.verify(token) } == "unsupported critical header")
    }

    // MARK: signature and shape

    @Test("a payload changed after signing (a flipped claim, same signature) is rejected")
    func rejectsTamperedPayload() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let token = try await mint(claims(), with: key)

        let tampered = try replacingPayload(of: token, with: claims { $0.sub = "admin" })
        #expect(await bearerRejection { try await verifier.verify(tampered) } == "bad signature")
    }

    @Test("a changed signature is rejected")
    func rejectsTamperedSignature() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let token = try await mint(claims(), with: key)
        let parts = token.split(separator: ".").map(String.init)
        var signature = Base64URL.decode(parts[2])!
        signature[10] ^= 0x01

        let tampered = parts[0] + "." + parts[1] + "." + base64url(signature)
        #expect(await bearerRejection { try await verifier.verify(tampered) } == "bad signature")
        let truncated = parts[0] + "." + parts[1] + "." + base64url(signature.prefix(32))
        #expect(await bearerRejection { try await verifier.verify(truncated) } == "bad signature")
        let empty = parts[0] + "." + parts[1] + "."
        #expect(await bearerRejection { try await verifier.verify(empty) } == "bad signature")
    }

    @Test("a 64 KB token is rejected as too large without being decoded or fetching keys")
    func rejectsOversizedToken() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())
        let big = try await mint(claims { $0.padding = String(repeating: "A", count: 64 * 1024) }, with: key)

        #expect(await bearerRejection { try await verifier.verify(big) } == "token too large")
        #expect(
            await bearerRejection { try await verifier.verify(String(repeating: ".", count: 64 * 1024)) }
                == "token too large")
        #expect(await idp.jwksFetches() == 0)
        #expect(await idp.discoveryFetches() == 0)
    }

    @Test("tokens that are not three strict base64url parts of JSON are malformed")
    func rejectsMalformedTokens() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())
        let good = try await mint(claims(), with: key)
        let parts = good.split(separator: ".").map(String.init)
        let json = base64url(Data(#"{"alg":"ES256"}"#.utf8))

        let cases = [
            "", "abc", parts[0] + "." + parts[1], good + "." + parts[2], "..",
            "!!!." + parts[1] + "." + parts[2],
            parts[0] + "=." + parts[1] + "." + parts[2],
            parts[0].replacingOccurrences(of: "e", with: "+") + "." + parts[1] + "." + parts[2],
            base64url(Data("not json".utf8)) + "." + parts[1] + "." + parts[2],
            json + "." + base64url(Data("[1,2]".utf8)) + "." + parts[2],
            base64url(Data(#"{"kid":"ec-1"}"#.utf8)) + "." + parts[1] + "." + parts[2],
        ]
        for token in cases {
            #expect(
                await bearerRejection { try await verifier.verify(token) } == "malformed token", "\(token.prefix(40))")
        }
        #expect(await idp.jwksFetches() == 0)
    }

    @Test("a rejection reason never repeats the token or its claims")
    func reasonsDoNotLeakTokenContent() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let token = try await mint(
            claims {
                $0.iss = "https://secret-issuer.example.test"; $0.sub = "secret-subject"
            }, with: key)
        let weirdAlg = try handMadeToken(header: ["alg": "secret-alg-\u{1b}[31m"], claims: claims())

        for candidate in [token, weirdAlg] {
            do {
                _ = try await verifier.verify(candidate)
                Issue.record("accepted")
            } catch {
                let text = "\(error)"
                #expect(!text.contains("secret"))
                #expect(!text.contains(candidate.prefix(20)))
            }
        }
    }

    // MARK: claims

    @Test("an expired token is rejected")
    func rejectsExpired() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())

        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims { $0.exp = at(-61) }, with: key)) }
                == "expired")
    }

    @Test("an exp more than a year ahead, or beyond any integer (1e19, 1e300), is refused, not trusted or cached")
    func rejectsAbsurdExpiry() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        for exp in [Double(at(367 * 86_400)), 1e19, 1e300] {
            #expect(
                await bearerRejection {
                    try await verifier.verify(try await mint(claims { $0.expOverride = exp }, with: key))
                } == "expires too far in the future")
        }
        #expect(
            try await verifier.verify(try await mint(claims { $0.exp = at(364 * 86_400) }, with: key)).subject
                == "user-123")
    }

    @Test("a token whose nbf is in the future is not yet valid")
    func rejectsNotYetValid() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())

        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims { $0.nbf = at(300) }, with: key)) }
                == "not yet valid")
    }

    @Test("a token issued in the future (iat) is rejected")
    func rejectsIssuedInFuture() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())

        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims { $0.iat = at(300) }, with: key)) }
                == "issued in the future")
    }

    @Test("a token from an issuer that is not trusted is rejected without fetching anything for it")
    func rejectsUnknownIssuer() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())

        for issuer in [
            "https://evil.example.test", testIssuer + ".evil.example.test", "https://IDP.example.test",
            "http://idp.example.test",
        ] {
            let token = try await mint(claims { $0.iss = issuer }, with: key)
            #expect(await bearerRejection { try await verifier.verify(token) } == "unknown issuer", "\(issuer)")
        }
        let noIssuer = try es256Token(
            header: #"{"alg":"ES256","kid":"ec-1"}"#, payload: #"{"sub":"x","aud":"keyless-cli","exp":1767229200}"#,
            key: key)
        #expect(await bearerRejection { try await verifier.verify(noIssuer) } == "unknown issuer")
        #expect(await idp.jwksFetches() == 0)
    }

    @Test("a token for another audience is rejected")
    func rejectsWrongAudience() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())

        #expect(
            await bearerRejection {
                try await verifier.verify(try await mint(claims { $0.aud = ["other-app"] }, with: key))
            } == "wrong audience")
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims { $0.aud = [] }, with: key)) }
                == "wrong audience")
    }

    @Test("sub and exp are required")
    func requiresSubjectAndExpiry() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let header = #"{"alg":"ES256","kid":"ec-1"}"#

        let noSubject = try es256Token(
            header: header, payload: #"{"iss":"\#(testIssuer)","aud":"keyless-cli","exp":\#(at(3600))}"#, key: key)
        #expect(await bearerRejection { try await verifier.verify(noSubject) } == "missing subject")
        let emptySubject = try await mint(claims { $0.sub = "" }, with: key)
        #expect(await bearerRejection { try await verifier.verify(emptySubject) } == "missing subject")
        let noExpiry = try es256Token(
            header: header, payload: #"{"iss":"\#(testIssuer)","aud":"keyless-cli","sub":"x"}"#, key: key)
        #expect(await bearerRejection { try await verifier.verify(noExpiry) } == "missing expiry")
        let textExpiry = try es256Token(
            header: header, payload: #"{"iss":"\#(testIssuer)","aud":"keyless-cli","sub":"x","exp":"never"}"#, key: key)
        #expect(await bearerRejection { try await verifier.verify(textExpiry) } == "malformed token")
    }

    // MARK: issuers and keys

    @Test("two trusted issuers each accept only tokens signed with their own keys")
    func issuersAreIsolated() async throws {
        let keyA = ECTestKey(kid: "a-1")
        let sharedA = ECTestKey(kid: "shared")
        let keyB = ECTestKey(kid: "b-1")
        let sharedB = ECTestKey(kid: "shared")
        let idp = BearerStubIdPs([
            testIssuer: try jwksJSON([keyA, sharedA]), bearerOtherIssuer: try jwksJSON([keyB, sharedB]),
        ])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(
            idp, clock: clock,
            issuers: [
                TrustedIssuer(issuer: testIssuer, audiences: [testClientID]),
                TrustedIssuer(issuer: bearerOtherIssuer, audiences: [bearerOtherAudience]),
            ])
        let forB = claims {
            $0.iss = bearerOtherIssuer; $0.aud = [bearerOtherAudience]
        }

        #expect(try await verifier.verify(try await mint(claims(), with: keyA)).issuer == testIssuer)
        #expect(try await verifier.verify(try await mint(forB, with: keyB)).issuer == bearerOtherIssuer)
        clock.advance(by: 11)
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims(), with: keyB)) }
                == "unknown key id")
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(forB, with: keyA)) } == "unknown key id")
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims(), with: sharedB)) }
                == "bad signature")
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(forB, with: sharedA)) } == "bad signature")
        // Each issuer's audience is its own.
        #expect(
            await bearerRejection {
                try await verifier.verify(try await mint(claims { $0.iss = bearerOtherIssuer }, with: keyB))
            } == "wrong audience")
    }

    @Test("an unknown kid triggers exactly one JWKS refetch, then the token is rejected")
    func unknownKidRefetchesOnce() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(idp, clock: clock)
        await verifier.prefetch()
        #expect(await idp.jwksFetches() == 1)
        clock.advance(by: 11)

        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims(), with: ECTestKey(kid: "ghost"))) }
                == "unknown key id")
        #expect(await idp.jwksFetches() == 2)
        #expect(await idp.discoveryFetches() == 1)
    }

    @Test("key rotation: a new kid is accepted after one refetch, and old-kid tokens while the old key is published")
    func keyRotation() async throws {
        let old = try RSATestKey(kid: "2026-01")
        let new = ECTestKey(kid: "2026-02")
        let idp = try bearerStub([old])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(idp, clock: clock)
        #expect(try await verifier.verify(try await mint(claims { $0.sub = "before" }, with: old)).subject == "before")

        await idp.serve(try jwksJSON([old, new] as [any TestSigningKey]))
        clock.advance(by: 11)
        #expect(try await verifier.verify(try await mint(claims { $0.sub = "new" }, with: new)).subject == "new")
        #expect(await idp.jwksFetches() == 2)
        #expect(try await verifier.verify(try await mint(claims { $0.sub = "old" }, with: old)).subject == "old")
        #expect(try await verifier.verify(try await mint(claims { $0.sub = "new-2" }, with: new)).subject == "new-2")
        #expect(await idp.jwksFetches() == 2)

        // Once the old key is withdrawn, a refetch (triggered by yet another kid) drops it.
        await idp.serve(try jwksJSON([new]))
        clock.advance(by: 11)
        #expect(
            await bearerRejection {
                try await verifier.verify(try await mint(claims(), with: ECTestKey(kid: "2026-03")))
            } == "unknown key id")
        #expect(await idp.jwksFetches() == 3)
        clock.advance(by: 1)
        #expect(
            await bearerRejection { try await verifier.verify(try await mint(claims { $0.sub = "late" }, with: old)) }
                == "unknown key id")
    }

    @Test("unknown-kid refetches are rate-limited: a burst of 50 new-kid tokens causes one fetch")
    func unknownKidBurstFetchesOnce() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(idp, clock: clock)
        await verifier.prefetch()
        clock.advance(by: 11)
        var tokens: [String] = []
        for index in 0..<50 { tokens.append(try await mint(claims(), with: ECTestKey(kid: "ghost-\(index)"))) }

        await idp.hold()
        let reasons = await withTaskGroup(of: String?.self) { group in
            for token in tokens { group.addTask { await bearerRejection { try await verifier.verify(token) } } }
            await idp.waitUntilHeld(1)
            await idp.release()
            return await group.reduce(into: [String?]()) { $0.append($1) }
        }

        #expect(reasons.count == 50)
        #expect(reasons.allSatisfy { $0 == "unknown key id" })
        #expect(await idp.jwksFetches() == 2)
        // Sequential new-kid tokens inside the interval do not fetch either; after it, one does.
        #expect(await bearerRejection { try await verifier.verify(tokens[0]) } == "unknown key id")
        #expect(await idp.jwksFetches() == 2)
        clock.advance(by: 10)
        #expect(await bearerRejection { try await verifier.verify(tokens[1]) } == "unknown key id")
        #expect(await idp.jwksFetches() == 3)
    }

    @Test("20 concurrent first verifications share one discovery and one JWKS fetch")
    func concurrentFirstVerificationsShareOneFetch() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let verifier = makeBearerVerifier(idp, clock: ManualClock())
        var tokens: [String] = []
        for index in 0..<20 { tokens.append(try await mint(claims { $0.sub = "user-\(index)" }, with: key)) }

        await idp.hold()
        let subjects = try await withThrowingTaskGroup(of: String.self) { group in
            for token in tokens { group.addTask { try await verifier.verify(token).subject } }
            await idp.waitUntilHeld(1)
            await idp.release()
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }

        #expect(subjects.count == 20)
        #expect(await idp.discoveryFetches() == 1)
        #expect(await idp.jwksFetches() == 1)
    }

    @Test("a JWKS older than an hour is refreshed in the background, and kept when the refresh fails")
    func staleJWKSIsRefreshed() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(idp, clock: clock)
        let longLived = { (sub: String) in
            claims {
                $0.sub = sub; $0.exp = at(4 * 3600)
            }
        }
        #expect(try await verifier.verify(try await mint(longLived("a"), with: key)).subject == "a")

        clock.advance(by: 3601)
        #expect(try await verifier.verify(try await mint(longLived("b"), with: key)).subject == "b")
        await verifier.settle()
        #expect(await idp.jwksFetches() == 2)

        await idp.setDown(true)
        clock.advance(by: 3601)
        #expect(try await verifier.verify(try await mint(longLived("c"), with: key)).subject == "c")
        await verifier.settle()
        #expect(await idp.jwksFetches() == 3)
        #expect(try await verifier.verify(try await mint(longLived("d"), with: key)).subject == "d")
    }

    @Test(
        "an unreachable JWKS is reported as idpUnreachable, not retried within the interval, and a later success works")
    func fetchFailureThenRecovery() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(
            idp, clock: clock,
            issuers: [
                TrustedIssuer(
                    issuer: testIssuer, audiences: [testClientID], jwksURI: BearerStubIdPs.jwksURI(testIssuer))
            ])
        let token = try await mint(claims(), with: key)
        await idp.setDown(true)

        #expect(await keylessError { try await verifier.verify(token) }?.code == .idpUnreachable)
        #expect(await keylessError { try await verifier.verify(token) }?.code == .idpUnreachable)
        #expect(await idp.jwksFetches() == 1)

        await idp.setDown(false)
        clock.advance(by: 10)
        #expect(try await verifier.verify(token).subject == "user-123")
        #expect(await idp.jwksFetches() == 2)
    }

    @Test("a JWKS endpoint answering an HTTP error is reported as idpError; unreachable discovery as idpUnreachable")
    func providerErrors() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        await idp.setStatus(500)
        let token = try await mint(claims(), with: key)

        #expect(
            await keylessError { try await makeBearerVerifier(idp, clock: ManualClock()).verify(token) }?.code
                == .idpError)
        await idp.setDown(true)
        #expect(
            await keylessError { try await makeBearerVerifier(idp, clock: ManualClock()).verify(token) }?.code
                == .idpUnreachable)
    }

    @Test("prefetch loads every issuer's keys and only logs failures")
    func prefetchLoadsAllIssuers() async throws {
        let idp = BearerStubIdPs([
            testIssuer: try jwksJSON([ECTestKey(kid: "a")]), bearerOtherIssuer: try jwksJSON([ECTestKey(kid: "b")]),
        ])
        await idp.setDown(true, for: bearerOtherIssuer)
        let verifier = makeBearerVerifier(
            idp, clock: ManualClock(),
            issuers: [
                TrustedIssuer(issuer: testIssuer, audiences: [testClientID]),
                TrustedIssuer(issuer: bearerOtherIssuer, audiences: [bearerOtherAudience]),
            ])

        await verifier.prefetch()

        #expect(await idp.jwksFetches(testIssuer) == 1)
        #expect(await idp.discoveryFetches(bearerOtherIssuer) == 1)
    }

    // MARK: cache

    @Test("a repeated token is answered from the cache without signature work, and rejected once expired")
    func cachedTokens() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = try bearerStub([key])
        let clock = ManualClock()
        let verifier = makeBearerVerifier(idp, clock: clock)
        let token = try await mint(claims { $0.exp = at(600) }, with: key)

        let first = try await verifier.verify(token)
        let second = try await verifier.verify(token)
        #expect(first == second)
        #expect(verifier.signatureCheckCount == 1)
        #expect(verifier.cachedTokenCount == 1)

        clock.advance(by: 600 + 59)
        #expect(try await verifier.verify(token) == first)
        clock.advance(by: 1)
        #expect(await bearerRejection { try await verifier.verify(token) } == "expired")
        #expect(await bearerRejection { try await verifier.verify(token) } == "expired")
        #expect(verifier.signatureCheckCount == 2)
        #expect(await idp.jwksFetches() == 1)
    }

    @Test("rejected tokens are never cached")
    func rejectionsAreNotCached() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock())
        let wrong = try await mint(claims { $0.aud = ["other-app"] }, with: key)

        #expect(await bearerRejection { try await verifier.verify(wrong) } == "wrong audience")
        #expect(verifier.cachedTokenCount == 0)
    }

    @Test("the cache stays within its limit and evicted tokens still verify")
    func cacheIsBounded() async throws {
        let key = ECTestKey(kid: "ec-1")
        let verifier = makeBearerVerifier(try bearerStub([key]), clock: ManualClock(), cacheLimit: 3)
        var tokens: [String] = []
        for index in 0..<8 { tokens.append(try await mint(claims { $0.sub = "user-\(index)" }, with: key)) }

        for token in tokens {
            _ = try await verifier.verify(token)
            #expect(verifier.cachedTokenCount <= 3)
        }
        for (index, token) in tokens.enumerated() {
            #expect(try await verifier.verify(token).subject == "user-\(index)")
        }
        #expect(verifier.cachedTokenCount <= 3)
    }
}
