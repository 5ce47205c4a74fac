import Crypto
import Foundation
import KeylessCBOR
import KeylessTestSupport
import KeylessWebAuthn
import Testing
import SwiftASN1
import X509

/// The W3C's own test vectors (WebAuthn Level 3 §16, transcribed into Vectors/webauthn-l3-test-vectors.txt): each
/// registration verifies against its challenge, and the sign-in with the same credential verifies against the key that
/// registration produced — then each check is shown to refuse when one input is changed.
@Suite("WebAuthn Level 3 test vectors: registrations and sign-ins verify, and every check refuses a changed input")
struct SpecVectorTests {
    typealias Ceremony = [String: [UInt8]]
    struct Vector {
        var registration: Ceremony
        var authentication: Ceremony
    }

    static let vectors: [String: Vector] = {
        let path = repositoryRoot() + "/Tests/KeylessWebAuthnTests/Vectors/webauthn-l3-test-vectors.txt"
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var result: [String: Vector] = [:]
        var section = ""
        var ceremony = ""
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("section ") {
                section = String(line.dropFirst(8))
                result[section] = Vector(registration: [:], authentication: [:])
                ceremony = "registration"
            } else if line == "registration" || line == "authentication" {
                ceremony = String(line)
            } else if let equals = line.range(of: " = ") {
                let name = String(line[..<equals.lowerBound])
                let value = bytes(hex: String(line[equals.upperBound...]))
                if ceremony == "registration" {
                    result[section]?.registration[name] = value
                } else {
                    result[section]?.authentication[name] = value
                }
            }
        }
        return result
    }()

    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    static let relyingParty = RelyingParty(id: "example.org", name: "Example", origins: ["https://example.org"])
    static let now = Date(timeIntervalSince1970: 1_798_761_600)  // 2027-01-01

    static func vector(_ label: String) throws -> Vector {
        try #require(vectors[label], "no test vector '\(label)' in the file (\(vectors.count) read)")
    }

    static func register(
        _ vector: Vector, relyingParty: RelyingParty = relyingParty, challenge: [UInt8]? = nil,
        clientDataJSON: [UInt8]? = nil
    ) async throws -> NewCredential {
        let r = vector.registration
        return try await relyingParty.verifyRegistration(
            RegistrationResponse(
                credentialID: r["credential_id"]!, clientDataJSON: clientDataJSON ?? r["clientDataJSON"]!,
                attestationObject: r["attestationObject"]!),
            challenge: challenge ?? r["challenge"]!, requireUserVerification: false, now: now)
    }

    static func stored(_ credential: NewCredential, signCount: UInt32? = nil) -> StoredCredential {
        StoredCredential(
            id: credential.id, publicKey: credential.publicKey, signCount: signCount ?? credential.signCount,
            backupEligible: credential.backupEligible, userHandle: [1, 2, 3])
    }

    static func assertion(_ vector: Vector, authenticatorData: [UInt8]? = nil, signature: [UInt8]? = nil)
        -> AssertionResponse
    {
        let a = vector.authentication
        return AssertionResponse(
            credentialID: vector.registration["credential_id"]!, clientDataJSON: a["clientDataJSON"]!,
            authenticatorData: authenticatorData ?? a["authenticatorData"]!, signature: signature ?? a["signature"]!,
            userHandle: nil)
    }

    static let verifying = [
        "ES256 Credential with No Attestation", "ES256 Credential with Self Attestation",
        "ES256 Credential with very long credential ID", "Packed Attestation with ES256 Credential",
        "Packed Attestation with ES384 Credential", "Packed Attestation with ES512 Credential",
        "Packed Attestation with RS256 Credential", "Packed Attestation with Ed25519 Credential",
        "TPM Attestation with ES256 Credential", "Android Key Attestation with ES256 Credential",
        "Apple Anonymous Attestation with ES256 Credential", "FIDO U2F Attestation with ES256 Credential",
    ]

    @Test(
        "every vector keyless supports registers with its challenge, and its sign-in verifies with the registered key",
        arguments: verifying)
    func registersAndSignsIn(label: String) async throws {
        let vector = try Self.vector(label)
        let credential = try await Self.register(vector)
        #expect(credential.id == vector.registration["credential_id"])
        #expect(credential.aaguid == vector.registration["aaguid"])
        let authenticatorData = try AuthenticatorData(vector.authentication["authenticatorData"]!)
        let verified = try Self.relyingParty.verifyAssertion(
            Self.assertion(vector), challenge: vector.authentication["challenge"]!, credential: Self.stored(credential),
            requireUserVerification: false, requireUserHandle: false)
        #expect(verified.userVerified == authenticatorData.flags.contains(.userVerified))
        #expect(verified.counterWentBackwards == false)
    }

    @Test("what each attestation proves: none, self (the key's own signature), a certificate, a chain to the root")
    func attestationTrust() async throws {
        #expect(try await Self.register(Self.vector("ES256 Credential with No Attestation")).attestation == .none)
        #expect(
            try await Self.register(Self.vector("ES256 Credential with Self Attestation")).attestation == .selfAttested)
        let packed = try Self.vector("Packed Attestation with ES256 Credential")
        guard case .certified(_, chained: false) = try await Self.register(packed).attestation else {
            Issue.record("a packed attestation with x5c and no roots configured is certified, not chained")
            return
        }
        let root = try Certificate(
            derEncoded: try Self.vector("Attestation trust root certificate").registration["attestation_ca_cert"]!)
        var rooted = Self.relyingParty
        rooted.attestationRoots = [root]
        guard case .certified(_, chained: true) = try await Self.register(packed, relyingParty: rooted).attestation
        else {
            Issue.record("the packed attestation chains to the specification's attestation root")
            return
        }
        let tpm = try await Self.register(Self.vector("TPM Attestation with ES256 Credential"))
        #expect(tpm.attestationFormat == "tpm")
        #expect(tpm.attestation == .none, "formats keyless does not verify prove nothing")
    }

    @Test(
        "an AAGUID allow-list accepts a listed model whose attestation chains to the roots, and refuses an unlisted model, an unverified attestation, or no roots"
    )
    func allowList() async throws {
        let packed = try Self.vector("Packed Attestation with ES256 Credential")
        let root = try Certificate(
            derEncoded: try Self.vector("Attestation trust root certificate").registration["attestation_ca_cert"]!)
        var strict = Self.relyingParty
        strict.attestationRoots = [root]
        strict.allowedAuthenticators = [packed.registration["aaguid"]!]
        _ = try await Self.register(packed, relyingParty: strict)

        var otherModel = strict
        otherModel.allowedAuthenticators = [[UInt8](repeating: 7, count: 16)]
        await #expect(throws: WebAuthnError(.authenticatorNotAllowed, "")) {
            try await Self.register(packed, relyingParty: otherModel)
        }
        // The same AAGUID claimed without a verifiable attestation is only a claim.
        var listedNone = strict
        let none = try Self.vector("ES256 Credential with No Attestation")
        listedNone.allowedAuthenticators = [none.registration["aaguid"]!]
        await #expect(throws: WebAuthnError(.authenticatorNotAllowed, "")) {
            try await Self.register(none, relyingParty: listedNone)
        }
        // Another root: the chain does not end in it.
        var otherRoot = strict
        otherRoot.attestationRoots = [try Certificate(derEncoded: Self.selfSignedRoot())]
        await #expect(throws: WebAuthnError(.authenticatorNotAllowed, "")) {
            try await Self.register(packed, relyingParty: otherRoot)
        }
    }

    static func selfSignedRoot() throws -> [UInt8] {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("Another attestation root") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date(timeIntervalSince1970: 0), notValidAfter: Date(timeIntervalSince1970: 4_000_000_000),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
            },
            issuerPrivateKey: .init(key))
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    @Test("a credential in a frame of another site (crossOrigin true, or a topOrigin) is refused")
    func crossOrigin() async throws {
        await #expect(throws: WebAuthnError(.crossOrigin, "")) {
            try await Self.register(Self.vector("ES256 Credential with \"crossOrigin\": true in clientDataJSON"))
        }
        await #expect(throws: WebAuthnError(.crossOrigin, "")) {
            try await Self.register(Self.vector("ES256 Credential with \"topOrigin\" in clientDataJSON"))
        }
    }

    @Test("an Ed448 key (not supported) is refused as an unsupported algorithm, not accepted or crashed on")
    func ed448() async throws {
        await #expect(throws: WebAuthnError(.unsupportedAlgorithm, "")) {
            try await Self.register(Self.vector("Packed Attestation with Ed448 Credential"))
        }
    }

    @Test(
        "registration refuses another challenge, another origin, another RP ID, a key algorithm not offered, and a credential id other than the attested one"
    )
    func registrationRefusals() async throws {
        let vector = try Self.vector("ES256 Credential with No Attestation")
        var challenge = vector.registration["challenge"]!
        challenge[0] ^= 1
        await #expect(throws: WebAuthnError(.wrongChallenge, "")) {
            try await Self.register(vector, challenge: challenge)
        }
        var otherOrigin = Self.relyingParty
        otherOrigin.origins = ["https://login.example.org"]
        await #expect(throws: WebAuthnError(.wrongOrigin, "")) {
            try await Self.register(vector, relyingParty: otherOrigin)
        }
        var otherID = Self.relyingParty
        otherID.id = "login.example.org"
        await #expect(throws: WebAuthnError(.wrongRelyingParty, "")) {
            try await Self.register(vector, relyingParty: otherID)
        }
        var rsaOnly = Self.relyingParty
        rsaOnly.algorithms = [COSEKey.rs256Algorithm]
        await #expect(throws: WebAuthnError(.unsupportedAlgorithm, "")) {
            try await Self.register(vector, relyingParty: rsaOnly)
        }
        await #expect(throws: WebAuthnError(.wrongCredential, "")) {
            try await Self.relyingParty.verifyRegistration(
                RegistrationResponse(
                    credentialID: [1, 2, 3], clientDataJSON: vector.registration["clientDataJSON"]!,
                    attestationObject: vector.registration["attestationObject"]!),
                challenge: vector.registration["challenge"]!, requireUserVerification: false, now: Self.now)
        }
        // A sign-in's client data (type webauthn.get) replayed into a registration.
        await #expect(throws: WebAuthnError(.wrongType, "")) {
            try await Self.register(
                vector, challenge: vector.authentication["challenge"]!,
                clientDataJSON: vector.authentication["clientDataJSON"]!)
        }
    }

    @Test(
        "sign-in refuses another challenge, another origin or RP ID, a changed authenticator data, another key's signature, a missing UV where required, and another account's user handle"
    )
    func assertionRefusals() async throws {
        let vector = try Self.vector("ES256 Credential with No Attestation")
        let credential = try await Self.register(vector)
        let challenge = vector.authentication["challenge"]!
        func verify(
            _ relyingParty: RelyingParty = Self.relyingParty, _ response: AssertionResponse? = nil,
            challenge: [UInt8] = challenge, stored: StoredCredential? = nil, uv: Bool = false
        ) throws {
            _ = try relyingParty.verifyAssertion(
                response ?? Self.assertion(vector), challenge: challenge, credential: stored ?? Self.stored(credential),
                requireUserVerification: uv, requireUserHandle: false)
        }
        try verify()
        var otherChallenge = challenge
        otherChallenge[31] ^= 0x80
        #expect(throws: WebAuthnError(.wrongChallenge, "")) { try verify(challenge: otherChallenge) }
        var otherOrigin = Self.relyingParty
        otherOrigin.origins = ["https://example.org:8443"]
        #expect(throws: WebAuthnError(.wrongOrigin, "")) { try verify(otherOrigin) }
        var otherID = Self.relyingParty
        otherID.id = "org"
        #expect(throws: WebAuthnError(.wrongRelyingParty, "")) { try verify(otherID) }
        // The authenticator data with the UV flag added: the signature no longer covers it.
        var changed = vector.authentication["authenticatorData"]!
        changed[32] |= 0x04
        #expect(throws: WebAuthnError(.badSignature, "")) {
            try verify(Self.relyingParty, Self.assertion(vector, authenticatorData: changed))
        }
        // The key of another credential: its signature is not this one's.
        let other = try await Self.register(Self.vector("ES256 Credential with Self Attestation"))
        var otherKey = Self.stored(credential)
        otherKey.publicKey = other.publicKey
        #expect(throws: WebAuthnError(.badSignature, "")) { try verify(stored: otherKey) }
        // This vector's sign-in has no UV flag (auth_data_UV_BS = 0x38 leaves UV clear).
        #expect(!(try AuthenticatorData(vector.authentication["authenticatorData"]!).flags.contains(.userVerified)))
        #expect(throws: WebAuthnError(.userNotVerified, "")) { try verify(uv: true) }
        var handle = Self.assertion(vector)
        handle.userHandle = [9, 9, 9]
        #expect(throws: WebAuthnError(.wrongCredential, "")) { try verify(Self.relyingParty, handle) }
        #expect(throws: WebAuthnError(.wrongCredential, "no user handle where one is required")) {
            _ = try Self.relyingParty.verifyAssertion(
                Self.assertion(vector), challenge: challenge, credential: Self.stored(credential),
                requireUserVerification: false, requireUserHandle: true)
        }
        // A registration's client data replayed as a sign-in.
        var registrationData = Self.assertion(vector)
        registrationData.clientDataJSON = vector.registration["clientDataJSON"]!
        #expect(throws: WebAuthnError(.wrongType, "")) {
            try verify(Self.relyingParty, registrationData, challenge: vector.registration["challenge"]!)
        }
    }

    @Test(
        "20,000 mutations of the vectors' attestation objects and authenticator data are refused with a WebAuthnError, never a crash or another error"
    )
    func mutations() async throws {
        var generator = SystemRandomNumberGenerator()
        var refused = 0
        for label in Self.verifying {
            let vector = try Self.vector(label)
            let registration = vector.registration["attestationObject"]!
            let assertion = vector.authentication["authenticatorData"]!
            let credential = try await Self.register(vector)
            for round in 0..<(20_000 / Self.verifying.count / 2) {
                var object = registration
                var data = assertion
                for _ in 0...(round % 4) {
                    object[Int.random(in: 0..<object.count, using: &generator)] = UInt8.random(
                        in: 0...255, using: &generator)
                    data[Int.random(in: 0..<data.count, using: &generator)] = UInt8.random(
                        in: 0...255, using: &generator)
                }
                if round % 7 == 0 { object = Array(object.prefix(Int.random(in: 0..<object.count, using: &generator))) }
                if round % 5 == 0 { data += [UInt8.random(in: 0...255, using: &generator)] }
                do {
                    _ = try await Self.relyingParty.verifyRegistration(
                        RegistrationResponse(
                            credentialID: vector.registration["credential_id"]!,
                            clientDataJSON: vector.registration["clientDataJSON"]!, attestationObject: object),
                        challenge: vector.registration["challenge"]!, requireUserVerification: false, now: Self.now)
                } catch is WebAuthnError { refused += 1 }
                do {
                    _ = try Self.relyingParty.verifyAssertion(
                        Self.assertion(vector, authenticatorData: data), challenge: vector.authentication["challenge"]!,
                        credential: Self.stored(credential), requireUserVerification: false, requireUserHandle: false)
                } catch is WebAuthnError { refused += 1 }
            }
        }
        #expect(refused > 15_000, "most mutations break a signature or a structure (\(refused) refused)")
    }

    @Test("a counter that went backwards is refused by default, and accepted and reported under the 'report' policy")
    func counter() async throws {
        let vector = try Self.vector("ES256 Credential with No Attestation")
        let credential = try await Self.register(vector)
        // The vector's sign-in carries counter 0; a credential last seen at 5 makes that a step backwards.
        let seen = Self.stored(credential, signCount: 5)
        #expect(throws: WebAuthnError(.counterWentBackwards, "")) {
            _ = try Self.relyingParty.verifyAssertion(
                Self.assertion(vector), challenge: vector.authentication["challenge"]!, credential: seen,
                requireUserVerification: false, requireUserHandle: false)
        }
        var reporting = Self.relyingParty
        reporting.counterPolicy = .report
        let verified = try reporting.verifyAssertion(
            Self.assertion(vector), challenge: vector.authentication["challenge"]!, credential: seen,
            requireUserVerification: false, requireUserHandle: false)
        #expect(verified.counterWentBackwards)
        #expect(verified.signCount == 5, "the stored counter is kept, not lowered")
    }
}
