#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import Crypto
import KeylessCBOR
import SwiftASN1
import X509

/// A browser's answer to `navigator.credentials.create()` (`AuthenticatorAttestationResponse`), decoded from base64url.
public struct RegistrationResponse: Sendable {
    /// `rawId`: must be the credential id inside the attestation.
    public var credentialID: [UInt8]
    public var clientDataJSON: [UInt8]
    public var attestationObject: [UInt8]
    /// `getTransports()`: kept so sign-in can tell the browser where to look (usb, nfc, ble, internal, hybrid).
    public var transports: [String]

    public init(credentialID: [UInt8], clientDataJSON: [UInt8], attestationObject: [UInt8], transports: [String] = []) {
        self.credentialID = credentialID
        self.clientDataJSON = clientDataJSON
        self.attestationObject = attestationObject
        self.transports = transports
    }
}

/// How far a registration's attestation was verified.
public enum AttestationTrust: Sendable, Equatable {
    /// No attestation (`none`), or a format keyless does not verify: the authenticator's model is its own claim.
    case none
    /// `packed` self attestation: signed by the credential's own key (proves the key, not the model).
    case selfAttested
    /// `packed` with a certificate chain; `chained` when the chain ends in one of the configured attestation roots.
    case certified(subject: String, chained: Bool)
}

/// A credential a registration created, ready to be stored.
public struct NewCredential: Sendable {
    public let id: [UInt8]
    /// The COSE_Key bytes as the authenticator encoded them.
    public let publicKey: [UInt8]
    public let algorithm: Int
    public let signCount: UInt32
    public let aaguid: [UInt8]
    public let backupEligible: Bool
    public let backedUp: Bool
    public let userVerified: Bool
    public let attestationFormat: String
    public let attestation: AttestationTrust
    public let transports: [String]
}

extension RelyingParty {
    /// Verifies a registration (WebAuthn Level 3 §7.1) against the challenge this ceremony issued; `now` is the time
    /// attestation certificates are checked at.
    public func verifyRegistration(
        _ response: RegistrationResponse, challenge: [UInt8], requireUserVerification: Bool, now: Date
    ) async throws -> NewCredential {
        let clientData = try CollectedClientData(json: response.clientDataJSON)
        let object: CBORValue
        do { object = try CBORDecoder().decode(response.attestationObject) } catch let error as CBORError {
            throw WebAuthnError(.malformed, "attestation object: \(error)")
        }
        guard let format = object[text: "fmt"]?.text, let statement = object[text: "attStmt"],
            case .map = statement, let authBytes = object[text: "authData"]?.bytes
        else { throw WebAuthnError(.malformed, "attestation object: fmt, attStmt and authData are required") }
        let authenticatorData = try AuthenticatorData(authBytes)
        try checkCeremony(
            clientData: clientData, type: "webauthn.create", challenge: challenge, authenticatorData: authenticatorData,
            requireUserVerification: requireUserVerification)
        guard let credential = authenticatorData.attestedCredential,
            authenticatorData.flags.contains(.attestedCredentialData)
        else { throw WebAuthnError(.malformed, "a registration without attested credential data") }
        guard credential.credentialID == response.credentialID else {
            throw WebAuthnError(.wrongCredential, "the credential id sent is not the one the authenticator attested")
        }
        guard algorithms.contains(credential.publicKey.algorithm) else {
            throw WebAuthnError(
                .unsupportedAlgorithm, "the key's algorithm (\(credential.publicKey.algorithm)) was not offered")
        }
        let clientDataHash = Array(SHA256.hash(data: response.clientDataJSON))
        let trust = try await verifyAttestation(
            format: format, statement: statement, authenticatorData: authenticatorData, credential: credential,
            clientDataHash: clientDataHash, now: now)
        if let allowed = allowedAuthenticators {
            guard case .certified(_, chained: true) = trust else {
                throw WebAuthnError(
                    .authenticatorNotAllowed,
                    "this organisation allows only approved security keys, and this authenticator did not prove its model (attestation '\(format)')"
                )
            }
            guard allowed.contains(credential.aaguid) else {
                throw WebAuthnError(
                    .authenticatorNotAllowed,
                    "this authenticator model (AAGUID \(Self.uuidText(credential.aaguid))) is not on the organisation's list of approved security keys"
                )
            }
        }
        return NewCredential(
            id: credential.credentialID, publicKey: credential.publicKeyBytes,
            algorithm: credential.publicKey.algorithm,
            signCount: authenticatorData.signCount, aaguid: credential.aaguid,
            backupEligible: authenticatorData.flags.contains(.backupEligible),
            backedUp: authenticatorData.flags.contains(.backedUp),
            userVerified: authenticatorData.flags.contains(.userVerified), attestationFormat: format,
            attestation: trust, transports: response.transports)
    }

    /// An AAGUID as a UUID's text (8-4-4-4-12 lower-case hex).
    public static func uuidText(_ bytes: [UInt8]) -> String {
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        guard hex.count == 16 else { return hex.joined() }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }

    /// §8.7 `none` (an empty statement) and §8.2 `packed`; other formats are kept as their name with no trust.
    private func verifyAttestation(
        format: String, statement: CBORValue, authenticatorData: AuthenticatorData,
        credential: AuthenticatorData.AttestedCredential, clientDataHash: [UInt8], now: Date
    ) async throws -> AttestationTrust {
        switch format {
        case "none":
            guard case .map(let entries) = statement, entries.isEmpty else {
                throw WebAuthnError(.attestation, "attestation 'none' with a non-empty statement")
            }
            return .none
        case "packed":
            return try await verifyPacked(
                statement: statement, signed: authenticatorData.bytes + clientDataHash, credential: credential,
                now: now)
        default:
            return .none
        }
    }

    /// The FIDO AAGUID certificate extension (id-fido-gen-ce-aaguid, §8.2.1).
    static let aaguidExtension: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 45724, 1, 1, 4]

    private func verifyPacked(
        statement: CBORValue, signed: [UInt8], credential: AuthenticatorData.AttestedCredential, now: Date
    ) async throws -> AttestationTrust {
        guard let alg = statement[text: "alg"]?.int, let signature = statement[text: "sig"]?.bytes else {
            throw WebAuthnError(.attestation, "packed attestation without alg and sig")
        }
        guard let chain = statement[text: "x5c"] else {
            guard alg == credential.publicKey.algorithm else {
                throw WebAuthnError(.attestation, "packed self attestation with another algorithm than the key's")
            }
            guard credential.publicKey.isValidSignature(signature, for: signed) else {
                throw WebAuthnError(.attestation, "packed self attestation: the signature does not verify")
            }
            return .selfAttested
        }
        guard case .array(let items) = chain, !items.isEmpty, items.count <= 8 else {
            throw WebAuthnError(.attestation, "packed attestation: x5c is not a list of 1 to 8 certificates")
        }
        let certificates: [Certificate]
        do {
            certificates = try items.map { item in
                guard let der = item.bytes else { throw WebAuthnError(.attestation, "x5c holds a non-certificate") }
                return try Certificate(derEncoded: der)
            }
        } catch let error as WebAuthnError { throw error } catch {
            throw WebAuthnError(.attestation, "packed attestation: a certificate in x5c does not parse")
        }
        let leaf = certificates[0]
        guard let algorithm = Self.signatureAlgorithm(cose: alg),
            leaf.publicKey.isValidSignature(signature, for: signed, signatureAlgorithm: algorithm)
        else {
            throw WebAuthnError(.attestation, "packed attestation: the signature does not verify with its certificate")
        }
        // §8.2.1: version 3, not a CA, OU "Authenticator Attestation", and the AAGUID extension (when present, not
        // critical) naming the same model as the authenticator data.
        let units = leaf.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.organizationalUnitName }
        guard leaf.version == .v3, units.contains(where: { String($0.value) == "Authenticator Attestation" }) else {
            throw WebAuthnError(
                .attestation, "packed attestation: the certificate is not an authenticator attestation certificate")
        }
        if let constraints = try? leaf.extensions.basicConstraints, case .isCertificateAuthority = constraints {
            throw WebAuthnError(.attestation, "packed attestation: the attestation certificate is a CA")
        }
        if let aaguid = leaf.extensions[oid: Self.aaguidExtension] {
            guard !aaguid.critical, let node = try? ASN1OctetString(derEncoded: aaguid.value),
                Array(node.bytes) == credential.aaguid
            else {
                throw WebAuthnError(
                    .attestation, "packed attestation: the certificate names another authenticator model (AAGUID)")
            }
        }
        guard !attestationRoots.isEmpty else { return .certified(subject: "\(leaf.subject)", chained: false) }
        var verifier = Verifier(rootCertificates: CertificateStore(attestationRoots)) {
            RFC5280Policy(fixedValidationTime: now)
        }
        let result = await verifier.validate(
            leaf: leaf, intermediates: CertificateStore(Array(certificates.dropFirst())))
        guard case .validCertificate = result else {
            throw WebAuthnError(
                .authenticatorNotAllowed,
                "the authenticator's attestation certificate does not chain to the organisation's attestation roots")
        }
        return .certified(subject: "\(leaf.subject)", chained: true)
    }

    static func signatureAlgorithm(cose: Int) -> Certificate.SignatureAlgorithm? {
        switch cose {
        case COSEKey.es256Algorithm: .ecdsaWithSHA256
        case COSEKey.es384Algorithm: .ecdsaWithSHA384
        case COSEKey.es512Algorithm: .ecdsaWithSHA512
        case COSEKey.rs256Algorithm: .sha256WithRSAEncryption
        case COSEKey.edDSAAlgorithm: .ed25519
        default: nil
        }
    }
}
