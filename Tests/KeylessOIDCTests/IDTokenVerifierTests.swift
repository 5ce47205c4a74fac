import Crypto
import Foundation
import JWTKit
import KeylessCore
import KeylessOIDC
import KeylessTestFakes
import Testing

@Suite("ID-token verification")
struct IDTokenVerifierTests {
    // MARK: accepted tokens

    @Test("an RS256 token signed by a JWKS key is accepted and its claims are returned")
    func acceptsRS256() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(
            claims {
                $0.nonce = "n-1"; $0.preferredUsername = "alice"
            }, with: key)

        let verified = try await makeVerifier(idp).verify(token, nonce: "n-1")

        #expect(verified.iss == testIssuer)
        #expect(verified.sub == "user-123")
        #expect(verified.aud.values == [testClientID])
        #expect(verified.exp == Double(at(3600)))
        #expect(verified.iat == Double(at(0)))
        #expect(verified.nonce == "n-1")
        #expect(verified.email == "alice@example.com")
        #expect(verified.preferredUsername == "alice")
        #expect(await idp.jwksFetches == 1)
    }

    @Test("an ES256 token signed by a JWKS key is accepted and its claims are returned")
    func acceptsES256() async throws {
        let key = ECTestKey(kid: "ec-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims { $0.sub = "ec-user" }, with: key)

        let verified = try await makeVerifier(idp).verify(token, nonce: nil)

        #expect(verified.sub == "ec-user")
        #expect(verified.email == "alice@example.com")
    }

    @Test("the right key is chosen by kid from a JWKS holding an RSA and an EC key")
    func choosesKeyByKid() async throws {
        let rsa = try RSATestKey(kid: "rsa-1")
        let ec = ECTestKey(kid: "ec-1")
        let idp = StubIdP(jwks: [try jwksJSON([rsa, ec] as [any TestSigningKey])])
        let verifier = makeVerifier(idp)

        #expect(
            try await verifier.verify(try await mint(claims { $0.sub = "via-rsa" }, with: rsa), nonce: nil).sub
                == "via-rsa")
        #expect(
            try await verifier.verify(try await mint(claims { $0.sub = "via-ec" }, with: ec), nonce: nil).sub
                == "via-ec")
    }

    @Test("a second token is verified from the cached JWKS without fetching it again")
    func cachesJWKS() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let verifier = makeVerifier(idp)

        _ = try await verifier.verify(try await mint(claims(), with: key), nonce: nil)
        _ = try await verifier.verify(try await mint(claims { $0.sub = "other" }, with: key), nonce: nil)

        #expect(await idp.jwksFetches == 1)
    }

    @Test("a token without kid is accepted when the JWKS holds exactly one key")
    func acceptsNoKidWithSingleKey() async throws {
        let key = try RSATestKey(kid: "only")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims(), with: key, withKid: false)

        #expect(try await makeVerifier(idp).verify(token, nonce: nil).sub == "user-123")
    }

    @Test("a token without kid is accepted when the JWKS holds exactly one key that has no kid either")
    func acceptsNoKidWithSingleKidlessKey() async throws {
        // RFC 7517 makes `kid` optional and OIDC Core §10.1 requires it only when the JWKS has several keys.
        let key = try RSATestKey(kid: "unused")
        let idp = StubIdP(jwks: [try jwksJSON([try key.jwk(withoutKid: true)])])
        let token = try await mint(claims(), with: key, withKid: false)

        let verified = try await makeVerifier(idp).verify(token, nonce: nil)
        #expect(verified.sub == "user-123")
    }

    /// Keys a provider may publish next to its signing keys that keyless cannot use.
    static let foreignKeys: [[String: String]] = [
        ["kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"],
        [
            "kty": "RSA", "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP-256", "e": "AQAB",
            "n":
                "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
        ],
        [
            "kty": "OKP", "kid": "ecdh-1", "use": "enc", "crv": "X25519",
            "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo",
        ],
    ]

    @Test(
        "keys of types, algorithms or curves keyless does not understand are skipped, not fatal (RFC 7517 §5)",
        arguments: foreignKeys)
    func ignoresUnknownKeysInJWKS(foreign: [String: String]) async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([try key.jwk(), foreign])])
        let token = try await mint(claims(), with: key)

        let verified = try await makeVerifier(idp).verify(token, nonce: nil)
        #expect(verified.sub == "user-123")
    }

    // MARK: signature and algorithm

    @Test("a token whose payload was changed after signing is rejected")
    func rejectsTamperedPayload() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let genuine = try await mint(claims(), with: key)
        let tampered = try replacingPayload(of: genuine, with: claims { $0.sub = "admin" })

        let error = await keylessError { try await makeVerifier(idp).verify(tampered, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token signed by another key under a published kid is rejected")
    func rejectsForeignSignature() async throws {
        let published = try RSATestKey(kid: "rsa-1")
        let attacker = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([published])])
        let token = try await mint(claims(), with: attacker)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("an unsigned token (alg none, any casing) is rejected", arguments: ["none", "None", "NONE"])
    func rejectsAlgNone(alg: String) async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try handMadeToken(header: ["alg": alg, "typ": "JWT", "kid": "rsa-1"], claims: claims())

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("an HS256 token keyed with the provider's RSA public key (algorithm confusion) is rejected")
    func rejectsAlgorithmConfusion() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        // The attacker knows the public key and uses its PEM text as the HMAC secret.
        let secret = SymmetricKey(data: Data(key.publicKeyPEM.utf8))
        let token = try handMadeToken(header: ["alg": "HS256", "typ": "JWT", "kid": "rsa-1"], claims: claims()) {
            input in
            Data(HMAC<SHA256>.authenticationCode(for: input, using: secret))
        }

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token whose header names RS256 while its kid names an EC key is rejected")
    func rejectsAlgorithmKeyMismatch() async throws {
        let rsa = try RSATestKey(kid: "rsa-1")
        let ec = ECTestKey(kid: "ec-1")
        let idp = StubIdP(jwks: [try jwksJSON([ec] as [any TestSigningKey])])
        let token = try handMadeToken(header: ["alg": "RS256", "typ": "JWT", "kid": "ec-1"], claims: claims()) {
            input in
            try rsa.privateKey.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation
        }

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token of 16 KiB or more is rejected even when its signature is valid")
    func rejectsOversizedToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims { $0.padding = String(repeating: "x", count: 16_384) }, with: key)
        #expect(token.utf8.count > 16_384)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("text that is not a three-part JWT is rejected", arguments: ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig"])
    func rejectsMalformed(text: String) async throws {
        let idp = StubIdP(jwks: [try jwksJSON([try RSATestKey(kid: "rsa-1")])])
        let error = await keylessError { try await makeVerifier(idp).verify(text, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    // MARK: claims

    @Test("a token for another audience is rejected")
    func rejectsWrongAudience() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims { $0.aud = ["someone-else"] }, with: key)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("with several audiences, an azp naming another client is rejected and azp naming this client accepted")
    func checksAuthorizedParty() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let verifier = makeVerifier(idp)
        let foreign = try await mint(
            claims {
                $0.aud = [testClientID, "other"]; $0.azp = "other"
            }, with: key)
        let own = try await mint(
            claims {
                $0.aud = [testClientID, "other"]; $0.azp = testClientID
            }, with: key)

        let error = await keylessError { try await verifier.verify(foreign, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
        #expect(try await verifier.verify(own, nonce: nil).aud.values == [testClientID, "other"])
    }

    @Test("a token from another issuer is rejected")
    func rejectsWrongIssuer() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims { $0.iss = "https://evil.example.test" }, with: key)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token that expired more than the 60 s leeway ago is rejected")
    func rejectsExpired() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(
            claims {
                $0.iat = at(-3600); $0.exp = at(-61)
            }, with: key)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token that expired within the 60 s leeway is accepted")
    func acceptsExpiredWithinLeeway() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(
            claims {
                $0.iat = at(-3600); $0.exp = at(-59)
            }, with: key)

        #expect(try await makeVerifier(idp).verify(token, nonce: nil).exp == Double(at(-59)))
    }

    @Test("an ID token whose exp is more than a year ahead, or beyond any integer, is rejected without trapping")
    func rejectsAbsurdExpiry() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        for exp in [Double(at(367 * 86_400)), 1e19, 1e300] {
            let error = await keylessError {
                try await makeVerifier(idp).verify(
                    try await mint(claims { $0.expOverride = exp }, with: key), nonce: nil)
            }
            #expect(error?.code == .tokenInvalid)
            #expect(error?.reason.contains("more than a year") == true, "\(String(describing: error))")
        }
    }

    @Test("a token whose nbf is beyond the leeway in the future is rejected, within it accepted")
    func checksNotBefore() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let verifier = makeVerifier(idp)
        let early = try await mint(claims { $0.nbf = at(120) }, with: key)
        let skewed = try await mint(claims { $0.nbf = at(30) }, with: key)

        let error = await keylessError { try await verifier.verify(early, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
        #expect(try await verifier.verify(skewed, nonce: nil).nbf == Double(at(30)))
    }

    @Test("a token issued (iat) beyond the leeway in the future is rejected")
    func rejectsFutureIssuedAt() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let token = try await mint(claims { $0.iat = at(300) }, with: key)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token whose nonce differs from, or lacks, the expected nonce is rejected")
    func rejectsNonceMismatch() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(jwks: [try jwksJSON([key])])
        let verifier = makeVerifier(idp)
        let other = try await mint(claims { $0.nonce = "other-nonce" }, with: key)
        let none = try await mint(claims(), with: key)

        #expect(await keylessError { try await verifier.verify(other, nonce: "expected-nonce") }?.code == .tokenInvalid)
        #expect(await keylessError { try await verifier.verify(none, nonce: "expected-nonce") }?.code == .tokenInvalid)
        #expect(try await verifier.verify(other, nonce: "other-nonce").nonce == "other-nonce")
    }

    // MARK: key rotation

    @Test("an unknown kid on a warm cache triggers exactly one JWKS refetch, then rejection")
    func unknownKidRefetchesOnce() async throws {
        let known = try RSATestKey(kid: "rsa-1")
        let stranger = try RSATestKey(kid: "rsa-unknown")
        let idp = StubIdP(jwks: [try jwksJSON([known])])
        let clock = ManualClock()
        let verifier = makeVerifier(idp, clock: clock.wallClock)
        _ = try await verifier.verify(try await mint(claims(), with: known), nonce: nil)
        #expect(await idp.jwksFetches == 1)

        clock.advance(by: 60)
        let token = try await mint(claims { $0.iat = at(60) }, with: stranger)
        let first = await keylessError { try await verifier.verify(token, nonce: nil) }
        #expect(first?.code == .tokenInvalid)
        #expect(await idp.jwksFetches == 2)

        // The same unknown kid again at the same moment does not hammer the provider.
        let second = await keylessError { try await verifier.verify(token, nonce: nil) }
        #expect(second?.code == .tokenInvalid)
        #expect(await idp.jwksFetches == 2)
    }

    @Test("an unknown kid on a fresh verifier is rejected after the one initial JWKS fetch")
    func unknownKidOnColdCache() async throws {
        let idp = StubIdP(jwks: [try jwksJSON([try RSATestKey(kid: "rsa-1")])])
        let token = try await mint(claims(), with: try RSATestKey(kid: "rsa-unknown"))

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
        #expect(await idp.jwksFetches == 1)
    }

    @Test("a rotated key that appears in the JWKS on the second fetch is accepted after one refetch")
    func acceptsRotatedKey() async throws {
        let old = try RSATestKey(kid: "2025")
        let new = ECTestKey(kid: "2026")
        let idp = StubIdP(jwks: [try jwksJSON([old]), try jwksJSON([old, new] as [any TestSigningKey])])
        let clock = ManualClock()
        let verifier = makeVerifier(idp, clock: clock.wallClock)
        _ = try await verifier.verify(try await mint(claims(), with: old), nonce: nil)

        clock.advance(by: 60)
        let rotated = try await mint(
            claims {
                $0.sub = "after-rotation"; $0.iat = at(60)
            }, with: new)
        #expect(try await verifier.verify(rotated, nonce: nil).sub == "after-rotation")
        #expect(await idp.jwksFetches == 2)
        // Both keys now verify from the cache.
        _ = try await verifier.verify(try await mint(claims(), with: old), nonce: nil)
        #expect(await idp.jwksFetches == 2)
    }

    @Test("a token without kid is rejected when the JWKS holds two keys")
    func rejectsNoKidWithSeveralKeys() async throws {
        let first = try RSATestKey(kid: "rsa-1")
        let second = try RSATestKey(kid: "rsa-2")
        let idp = StubIdP(jwks: [try jwksJSON([first, second])])
        let token = try await mint(claims(), with: first, withKid: false)

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .tokenInvalid)
    }

    // MARK: provider failures

    @Test("a JWKS endpoint that cannot be reached gives idpUnreachable")
    func jwksUnreachable() async throws {
        let idp = StubIdP(unreachable: true)
        let token = try await mint(claims(), with: try RSATestKey(kid: "rsa-1"))

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .idpUnreachable)
    }

    @Test("a JWKS endpoint that answers garbage gives idpError")
    func jwksGarbage() async throws {
        let idp = StubIdP(jwks: ["<html>not json</html>"])
        let token = try await mint(claims(), with: try RSATestKey(kid: "rsa-1"))

        let error = await keylessError { try await makeVerifier(idp).verify(token, nonce: nil) }
        #expect(error?.code == .idpError)
    }
}
