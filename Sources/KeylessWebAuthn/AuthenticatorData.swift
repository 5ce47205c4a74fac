import KeylessCBOR

/// The authenticator data (WebAuthn §6.1): what the authenticator signs about itself and this ceremony.
///
///     rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian) ‖ [attestedCredentialData] ‖ [extensions (CBOR map)]
///     attestedCredentialData = aaguid (16) ‖ credentialIdLength (2) ‖ credentialId ‖ credentialPublicKey (COSE_Key)
public struct AuthenticatorData: Sendable {
    /// The flags byte (§6.1, "flags").
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// UP: a person touched or otherwise acknowledged the authenticator.
        public static let userPresent = Flags(rawValue: 0x01)
        /// UV: the authenticator verified the person (PIN, fingerprint, face).
        public static let userVerified = Flags(rawValue: 0x04)
        /// BE: the credential may be backed up (a synced passkey) — fixed for the credential's life.
        public static let backupEligible = Flags(rawValue: 0x08)
        /// BS: the credential is backed up now.
        public static let backedUp = Flags(rawValue: 0x10)
        /// AT: attested credential data follows.
        public static let attestedCredentialData = Flags(rawValue: 0x40)
        /// ED: extension data follows.
        public static let extensionData = Flags(rawValue: 0x80)
    }

    /// The credential an authenticator created, as registration reports it.
    public struct AttestedCredential: Sendable {
        /// The authenticator model's identifier (all zeros when the authenticator does not say).
        public let aaguid: [UInt8]
        public let credentialID: [UInt8]
        /// The COSE_Key exactly as the authenticator encoded it (stored as is, and parsed again for each sign-in).
        public let publicKeyBytes: [UInt8]
        public let publicKey: COSEKey
    }

    /// The bytes as received (the signature covers them).
    public let bytes: [UInt8]
    public let rpIDHash: [UInt8]
    public let flags: Flags
    public let signCount: UInt32
    public let attestedCredential: AttestedCredential?
    public let extensions: CBORValue?

    /// The longest credential id WebAuthn Level 3 allows (§6.5.1: credentialIdLength ≤ 1023).
    public static let maxCredentialIDLength = 1023

    /// Parses authenticator data; anything short, left over, or contradicting its flags is `malformed`. A COSE key
    /// whose type or algorithm keyless does not support is `unsupportedAlgorithm`.
    public init(_ bytes: [UInt8]) throws {
        func fail(_ reason: String) -> WebAuthnError { WebAuthnError(.malformed, "authenticator data: \(reason)") }
        guard bytes.count >= 37 else { throw fail("\(bytes.count) bytes, at least 37 expected") }
        self.bytes = bytes
        rpIDHash = Array(bytes[0..<32])
        flags = Flags(rawValue: bytes[32])
        signCount = bytes[33..<37].reduce(0) { $0 << 8 | UInt32($1) }
        if flags.contains(.backedUp) && !flags.contains(.backupEligible) {
            throw fail("the backed-up flag (BS) is set on a credential that is not backup eligible (BE)")
        }
        var rest = Array(bytes[37...])
        if flags.contains(.attestedCredentialData) {
            guard rest.count >= 18 else { throw fail("attested credential data is cut short") }
            let aaguid = Array(rest[0..<16])
            let length = Int(rest[16]) << 8 | Int(rest[17])
            guard length >= 1, length <= Self.maxCredentialIDLength else {
                throw fail("a credential id of \(length) bytes (1 to \(Self.maxCredentialIDLength) allowed)")
            }
            guard rest.count >= 18 + length else { throw fail("the credential id is cut short") }
            let credentialID = Array(rest[18..<(18 + length)])
            rest = Array(rest[(18 + length)...])
            let keyValue: CBORValue
            let used: Int
            do { (keyValue, used) = try CBORDecoder().decodePrefix(rest) } catch let error as CBORError {
                throw fail("the credential public key: \(error)")
            }
            let key: COSEKey
            do { key = try COSEKey(keyValue) } catch let error as CBORError {
                throw WebAuthnError(
                    error.code == .unsupported ? .unsupportedAlgorithm : .malformed, "credential public key: \(error)")
            }
            attestedCredential = AttestedCredential(
                aaguid: aaguid, credentialID: credentialID, publicKeyBytes: Array(rest[..<used]), publicKey: key)
            rest = Array(rest[used...])
        } else {
            attestedCredential = nil
        }
        if flags.contains(.extensionData) {
            let value: CBORValue
            do { value = try CBORDecoder().decode(rest) } catch let error as CBORError {
                throw fail("the extensions: \(error)")
            }
            guard case .map = value else { throw fail("the extensions are not a CBOR map") }
            extensions = value
        } else {
            guard rest.isEmpty else { throw fail("\(rest.count) bytes after the data its flags announce") }
            extensions = nil
        }
    }
}
