import Crypto
import _CryptoExtras
import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessJOSE
import KeylessTestFakes
import Testing

// MARK: - TOTP

@Suite("one-time codes: RFC 6238 TOTP, RFC 4226 HOTP and RFC 4648 base32")
struct TOTPTests {
    static let rfcSecret = Array("12345678901234567890".utf8)

    @Test(
        "RFC 6238 Appendix B SHA-1 vectors, 8 digits",
        arguments: [
            (59, "94287082"), (1_111_111_109, "07081804"), (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"), (2_000_000_000, "69279037"), (20_000_000_000, "65353130"),
        ])
    func rfc6238(seconds: Int, expected: String) {
        #expect(
            TOTP.code(secret: Self.rfcSecret, at: Date(timeIntervalSince1970: TimeInterval(seconds)), digits: 8)
                == expected)
    }

    @Test(
        "RFC 4226 Appendix D HOTP vectors, 6 digits",
        arguments: Array(
            zip(
                0..<10,
                [
                    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489",
                ])))
    func rfc4226(counter: Int, expected: String) {
        #expect(TOTP.code(secret: Self.rfcSecret, counter: UInt64(counter)) == expected)
    }

    @Test(
        "RFC 4648 §10 base32 vectors decode, in any case, with padding and spaces ignored",
        arguments: [
            ("", ""), ("MY======", "f"), ("MZXQ====", "fo"), ("MZXW6===", "foo"), ("MZXW6YQ=", "foob"),
            ("MZXW6YTB", "fooba"),
            ("MZXW6YTBOI======", "foobar"), ("mzxw6ytboi", "foobar"), ("MZXW 6YTB OI", "foobar"),
        ])
    func base32(encoded: String, plain: String) {
        #expect(TOTP.base32Decode(encoded) == Array(plain.utf8))
    }

    @Test("text outside the base32 alphabet is refused", arguments: ["MZXW1", "MZ!W", "MZXW6YTB0I", "ÄBCD"])
    func base32Refused(_ text: String) {
        #expect(TOTP.base32Decode(text) == nil)
    }

    @Test("the fixture's base32 TOTP secret is the RFC 6238 secret")
    func fixtureSecret() {
        #expect(TOTP.base32Decode(Fixture.bobTOTPBase32) == Self.rfcSecret)
    }

    @Test("matchingCounter accepts the codes one step either side and refuses two steps away")
    func window() {
        let now = Fixture.reference.addingTimeInterval(15)
        let counter = UInt64(now.timeIntervalSince1970) / 30
        for offset in [-1, 0, 1] {
            let code = TOTP.code(secret: Self.rfcSecret, counter: UInt64(Int(counter) + offset))
            #expect(
                TOTP.matchingCounter(secret: Self.rfcSecret, candidate: code, at: now) == UInt64(Int(counter) + offset),
                "offset \(offset)")
        }
        for offset in [-2, 2] {
            let code = TOTP.code(secret: Self.rfcSecret, counter: UInt64(Int(counter) + offset))
            let nearby = [-1, 0, 1].map { TOTP.code(secret: Self.rfcSecret, counter: UInt64(Int(counter) + $0)) }
            #expect(!nearby.contains(code), "the vectors must differ for the test to mean anything")
            #expect(TOTP.matchingCounter(secret: Self.rfcSecret, candidate: code, at: now) == nil, "offset \(offset)")
        }
    }

    @Test("a code of the wrong length or with other characters never matches; spaces inside are ignored")
    func candidateForm() {
        let now = Fixture.reference
        let code = TOTP.code(secret: Self.rfcSecret, at: now)
        #expect(
            TOTP.matchingCounter(
                secret: Self.rfcSecret, candidate: String(code.prefix(3)) + " " + String(code.suffix(3)), at: now)
                != nil)
        #expect(TOTP.matchingCounter(secret: Self.rfcSecret, candidate: String(code.dropLast()), at: now) == nil)
        #expect(TOTP.matchingCounter(secret: Self.rfcSecret, candidate: code + "0", at: now) == nil)
        #expect(TOTP.matchingCounter(secret: Self.rfcSecret, candidate: "", at: now) == nil)
        let eightDigit = TOTP.code(secret: Self.rfcSecret, at: now, digits: 8)
        #expect(TOTP.matchingCounter(secret: Self.rfcSecret, candidate: eightDigit, at: now) == nil)
    }
}

// MARK: - JOSE

@Suite("JOSE: RFC 7638 thumbprints, JWS signing and parsing, JWK import")
struct JOSETests {
    /// RFC 7638 §3.1: the example RSA key and its thumbprint.
    static let rfcN =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    static let rfcThumbprint = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

    /// RFC 7638 computed here, independently: the required members only, JSON with sorted keys and no whitespace.
    static func thumbprint(_ jwk: [String: String]) throws -> String {
        let required: [String] =
            switch jwk["kty"] {
            case "RSA": ["e", "kty", "n"]
            case "EC": ["crv", "kty", "x", "y"]
            default: []
            }
        var members: [String: String] = [:]
        for name in required {
            let value = try #require(jwk[name], "RFC 7638 requires \(name)")
            members[name] = value
        }
        let json = try JSONSerialization.data(withJSONObject: members, options: [.sortedKeys, .withoutEscapingSlashes])
        return base64url(Array(SHA256.hash(data: json)))
    }

    /// The public JWK members of a key, computed from the key itself (not with `publicJWKMembers`).
    static func members(_ key: SigningKey) throws -> [String: String] {
        switch key {
        case .rsaOpenSSL(let fast):
            return try members(.rsa(fast.key))
        case .rsa(let rsa):
            let primitives = try rsa.publicKey.getKeyPrimitives()
            return ["kty": "RSA", "n": base64url(primitives.modulus), "e": base64url(primitives.publicExponent)]
        case .ec(let ec):
            let point = ec.publicKey.x963Representation
            return [
                "kty": "EC", "crv": "P-256", "x": base64url(point.dropFirst().prefix(32)),
                "y": base64url(point.suffix(32)),
            ]
        }
    }

    @Test("the independent RFC 7638 computation reproduces the RFC's example thumbprint, extra members ignored")
    func rfcExample() throws {
        #expect(try Self.thumbprint(["kty": "RSA", "n": Self.rfcN, "e": "AQAB"]) == Self.rfcThumbprint)
        #expect(
            try Self.thumbprint(["kty": "RSA", "n": Self.rfcN, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"])
                == Self.rfcThumbprint)
    }

    @Test(
        "SigningKey.thumbprint equals RFC 7638 computed from the key's own public numbers",
        arguments: ["RS256", "ES256"])
    func thumbprintMatches(algorithm: String) throws {
        let key = try SigningKey.generate(algorithm: algorithm)
        let members = try Self.members(key)
        #expect(try key.publicJWKMembers() == members)
        #expect(try key.thumbprint() == Self.thumbprint(members))
        // The DER the store seals gives back the same key.
        #expect(try SigningKey(algorithm: algorithm, der: key.der).thumbprint() == key.thumbprint())
        #expect(try SigningKey.generate(algorithm: algorithm).thumbprint() != key.thumbprint())
    }

    @Test("the RFC 7638 example key imports as an RS256 verification key")
    func importRFCKey() {
        let key = VerificationKey(jwk: ["kty": "RSA", "n": Self.rfcN, "e": "AQAB"])
        #expect(key?.algorithm == "RS256")
        #expect(VerificationKey(jwk: ["kty": "EC", "crv": "P-384", "x": "AAAA", "y": "AAAA"]) == nil)
        #expect(VerificationKey(jwk: ["kty": "oct", "k": "c2VjcmV0"]) == nil)
    }

    @Test(
        "JWS.sign and JWS.parse round-trip; the public JWK verifies the signature and no other key or input does",
        arguments: ["RS256", "ES256"])
    func signAndParse(algorithm: String) throws {
        let key = try SigningKey.generate(algorithm: algorithm)
        let header = Array(#"{"alg":"\#(algorithm)","kid":"k1","typ":"JWT"}"#.utf8)
        let payload = Array(#"{"sub":"alice","n":1}"#.utf8)
        let token = try JWS.sign(header: header, payload: payload, key: key)
        let parts = try #require(JWS.parse(token))
        #expect(parts.header.alg == algorithm && parts.header.kid == "k1" && parts.header.typ == "JWT")
        #expect(Array(parts.payload) == payload)
        #expect(parts.signingInput == Array(token.split(separator: ".").prefix(2).joined(separator: ".").utf8))
        #expect(parts.signature.count == (algorithm == "ES256" ? 64 : 256))
        let verifier = try #require(VerificationKey(jwk: try key.publicJWKMembers()))
        #expect(verifier.algorithm == algorithm)
        #expect(verifier.verify(parts.signature, for: parts.signingInput))
        #expect(!verifier.verify(parts.signature, for: parts.signingInput + [0x20]))
        var flipped = parts.signature
        flipped[flipped.startIndex + 5] ^= 0x01
        #expect(!verifier.verify(flipped, for: parts.signingInput))
        let other = try #require(VerificationKey(jwk: try SigningKey.generate(algorithm: algorithm).publicJWKMembers()))
        #expect(!other.verify(parts.signature, for: parts.signingInput))
    }

    static let header = base64url(Data(#"{"alg":"ES256"}"#.utf8))

    @Test(
        "JWS.parse refuses tokens that are not three base64url segments with a JSON header naming alg",
        arguments: [
            "", "e30.e30", "\(header).e30", "\(header).e30.AAAA.AAAA", "\(header).e30.!!!!", "\(header).*.AAAA",
            "%%%.e30.AAAA",
            "\(base64url(Data("not json".utf8))).e30.AAAA", "\(base64url(Data(#"{"kid":"k"}"#.utf8))).e30.AAAA",
            "\(header).e30.A",
        ])
    func parseRefuses(_ token: String) {
        #expect(JWS.parse(token) == nil)
    }

    @Test("JWS.parse accepts a token of exactly 16 KiB and refuses one byte more")
    func sizeLimit() throws {
        // Pick a payload size that leaves the signature segment a valid base64url length even with one more character.
        var filler = 0
        var payload = ""
        var signatureLength = 0
        repeat {
            payload = base64url(Data(#"{"pad":"\#(String(repeating: "x", count: 12_000 + filler))"}"#.utf8))
            signatureLength = 16 * 1024 - Self.header.count - payload.count - 2
            filler += 1
        } while signatureLength % 4 != 2
        let token = Self.header + "." + payload + "." + String(repeating: "A", count: signatureLength)
        #expect(token.utf8.count == 16 * 1024)
        #expect(JWS.parse(token) != nil)
        #expect(JWS.parse(token + "A") == nil)
    }

    @Test("JWS.parse refuses the standard base64 characters + and / (not base64url)")
    func standardAlphabetRefused() {
        let token = Self.header + ".e30.ab+/"
        #expect(JWS.parse(token) == nil)
    }
}

@Suite("RS256 through the system's OpenSSL")
struct OpenSSLRSATests {
    @Test(
        "OpenSSL's RS256 signature is byte for byte BoringSSL's (PKCS#1 v1.5 is deterministic) and verifies with the public key"
    )
    func sameSignatureAsSwiftCrypto() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        guard let fast = OpenSSLRSAKey(key) else {
            Issue.record("libcrypto.so.3 is not loadable here; the OpenSSL path is untested (apt-get install libssl3)")
            return
        }
        for message in ["", "eyJhbGciOiJSUzI1NiJ9.e30", String(repeating: "x", count: 5000)] {
            let input = Array(message.utf8)
            let viaOpenSSL = try SigningKey.rsaOpenSSL(fast).sign(input)
            let viaBoringSSL = try SigningKey.rsa(key).sign(input)
            #expect(viaOpenSSL == viaBoringSSL)
            #expect(
                key.publicKey.isValidSignature(
                    _RSA.Signing.RSASignature(rawRepresentation: viaOpenSSL), for: input, padding: .insecurePKCS1v1_5))
        }
        #expect(SigningKey.rsa(key).accelerated().algorithm == "RS256")
        if case .rsaOpenSSL = SigningKey.rsa(key).accelerated() {
        } else {
            Issue.record("accelerated() did not pick OpenSSL although it loads")
        }
        let ec = SigningKey.ec(P256.Signing.PrivateKey())
        if case .ec = ec.accelerated() {} else { Issue.record("an EC key must stay an EC key") }
    }
}

@Suite("Token claims written by hand")
struct AccessClaimsJSONTests {
    @Test(
        "the hand-written ID-token JSON decodes to the same claims as the Codable form, optional members present or absent, with escapes"
    )
    func idTokenSameAsCodable() throws {
        let samples = [
            IDClaims(
                iss: "http://127.0.0.1:9000", sub: "alice", aud: "keyless-cli", exp: 1_800_000_600, iat: 1_800_000_000,
                auth_time: 1_799_999_000,
                nonce: nil, amr: [], azp: "keyless-cli"),
            IDClaims(
                iss: "https://idp.example.com/t/x", sub: "al\"ice\\\u{1}", aud: "cli", exp: 2, iat: 1, auth_time: 0,
                nonce: "n-0S6_\"",
                amr: ["pwd", "otp", "mfa"], azp: "cli", email: "zoë@example.com", email_verified: true,
                preferred_username: "zoë\t",
                groups: ["dév", "ops\n", ""]),
            IDClaims(
                iss: "i", sub: "s", aud: "a", exp: 2, iat: 1, auth_time: 1, amr: ["pwd"], azp: "a",
                email_verified: false, groups: []),
            IDClaims(
                iss: "i", sub: "corp:1", aud: "a", exp: 2, iat: 1, auth_time: 1, amr: ["pwd"], azp: "a",
                name: "Zoë \"Z\"",
                awsTags: AWSTagsClaim(tags: ["CostCenter": "4711", "Dept": "R&D \"x\""], transitive: ["Dept"]),
                awsSourceIdentity: "zoe"),
            IDClaims(
                iss: "i", sub: "corp:2", aud: "a", exp: 2, iat: 1, auth_time: 1, amr: [], azp: "a",
                awsTags: AWSTagsClaim(tags: [:], transitive: nil)),
        ]
        for claims in samples {
            let text = Data(claims.jsonText.utf8)
            #expect(try JSONSerialization.jsonObject(with: text) is [String: Any], "one JSON object")
            let decoded = try JSONDecoder().decode(IDClaims.self, from: text)
            let viaCodable = try JSONDecoder().decode(IDClaims.self, from: try JSONEncoder().encode(claims))
            let sorted = JSONEncoder()
            sorted.outputFormatting = .sortedKeys
            #expect(try sorted.encode(decoded) == sorted.encode(viaCodable))
            #expect(
                decoded.sub == claims.sub && decoded.nonce == claims.nonce && decoded.groups == claims.groups
                    && decoded.email_verified == claims.email_verified
                    && decoded.preferred_username == claims.preferred_username && decoded.awsTags == claims.awsTags
                    && decoded.awsSourceIdentity == claims.awsSourceIdentity)
        }
    }

    @Test(
        "the hand-written access-token JSON decodes to the same claims as the Codable form, with and without user members and escapes"
    )
    func sameAsCodable() throws {
        let samples = [
            AccessClaims(
                iss: "http://127.0.0.1:9000", sub: "deployer", aud: AudienceList(["sts.amazonaws.com"]),
                exp: 1_800_000_600, iat: 1_800_000_000,
                jti: "abc_-1", client_id: "deployer", scope: "deploy"),
            AccessClaims(
                iss: "https://idp.example.com", sub: "al\"ice\\", aud: AudienceList(["a", "b"]), exp: 2, iat: 1,
                jti: "j", client_id: "cli",
                scope: "openid email", auth_time: 1, amr: ["pwd", "otp", "mfa"], groups: ["dév", "ops\n"]),
        ]
        for claims in samples {
            let decoded = try JSONDecoder().decode(AccessClaims.self, from: Data(claims.jsonText.utf8))
            let viaCodable = try JSONDecoder().decode(AccessClaims.self, from: try JSONEncoder().encode(claims))
            let sorted = JSONEncoder()
            sorted.outputFormatting = .sortedKeys
            #expect(try sorted.encode(decoded) == sorted.encode(viaCodable))
            #expect(
                decoded.sub == claims.sub && decoded.aud == claims.aud && decoded.groups == claims.groups
                    && decoded.amr == claims.amr)
        }
    }
}
