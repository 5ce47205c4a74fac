import Crypto
import KeylessCBOR

/// A browser's answer to `navigator.credentials.get()` (`AuthenticatorAssertionResponse`), decoded from base64url.
public struct AssertionResponse: Sendable {
    /// `rawId`: which credential answered.
    public var credentialID: [UInt8]
    public var clientDataJSON: [UInt8]
    public var authenticatorData: [UInt8]
    public var signature: [UInt8]
    /// The user handle a discoverable credential returns (required for a sign-in without a user name).
    public var userHandle: [UInt8]?

    public init(
        credentialID: [UInt8], clientDataJSON: [UInt8], authenticatorData: [UInt8], signature: [UInt8],
        userHandle: [UInt8]?
    ) {
        self.credentialID = credentialID
        self.clientDataJSON = clientDataJSON
        self.authenticatorData = authenticatorData
        self.signature = signature
        self.userHandle = userHandle
    }
}

/// What the relying party stored about a credential at registration (and the counter since).
public struct StoredCredential: Sendable, Equatable {
    public var id: [UInt8]
    /// The COSE_Key bytes.
    public var publicKey: [UInt8]
    public var signCount: UInt32
    public var backupEligible: Bool
    /// The user handle (`user.id`) the credential was created for.
    public var userHandle: [UInt8]

    public init(id: [UInt8], publicKey: [UInt8], signCount: UInt32, backupEligible: Bool, userHandle: [UInt8]) {
        self.id = id
        self.publicKey = publicKey
        self.signCount = signCount
        self.backupEligible = backupEligible
        self.userHandle = userHandle
    }
}

/// A verified sign-in.
public struct VerifiedAssertion: Sendable, Equatable {
    /// The counter to store (the authenticator's new value).
    public let signCount: UInt32
    public let userVerified: Bool
    public let backedUp: Bool
    /// The counter did not increase and the policy is `.report`: worth an alert.
    public let counterWentBackwards: Bool
}

extension RelyingParty {
    /// Verifies a sign-in (WebAuthn Level 3 §7.2) by `credential` against the challenge this ceremony issued.
    /// `requireUserHandle` is for sign-in without a user name, where the user handle is how the person was found.
    public func verifyAssertion(
        _ response: AssertionResponse, challenge: [UInt8], credential: StoredCredential,
        requireUserVerification: Bool, requireUserHandle: Bool
    ) throws -> VerifiedAssertion {
        guard response.credentialID == credential.id else {
            throw WebAuthnError(.wrongCredential, "the answer is from another credential than the one looked up")
        }
        // §7.2 step 6: a returned user handle must be the credential's owner; without a user name it must be there.
        if let handle = response.userHandle, !handle.isEmpty {
            guard handle == credential.userHandle else {
                throw WebAuthnError(.wrongCredential, "the passkey belongs to another account than the one it names")
            }
        } else if requireUserHandle {
            throw WebAuthnError(.wrongCredential, "the passkey did not say whose it is (no user handle)")
        }
        let clientData = try CollectedClientData(json: response.clientDataJSON)
        let authenticatorData = try AuthenticatorData(response.authenticatorData)
        try checkCeremony(
            clientData: clientData, type: "webauthn.get", challenge: challenge, authenticatorData: authenticatorData,
            requireUserVerification: requireUserVerification)
        // §7.2 step 19 (Level 3): backup eligibility is fixed for a credential's life.
        guard authenticatorData.flags.contains(.backupEligible) == credential.backupEligible else {
            throw WebAuthnError(
                .wrongCredential, "the authenticator changed whether this credential can be backed up (BE flag)")
        }
        let key: COSEKey
        do { key = try COSEKey(try CBORDecoder().decode(credential.publicKey)) } catch {
            throw WebAuthnError(.malformed, "the stored public key does not parse: \(error)")
        }
        let signed = response.authenticatorData + Array(SHA256.hash(data: response.clientDataJSON))
        guard key.isValidSignature(response.signature, for: signed) else {
            throw WebAuthnError(.badSignature, "the signature is not this passkey's")
        }
        // §7.2 step 22 and §6.1.1: a counter that does not increase (while either is non-zero) may be a clone.
        let new = authenticatorData.signCount
        let backwards = (new != 0 || credential.signCount != 0) && new <= credential.signCount
        if backwards && counterPolicy == .refuse {
            throw WebAuthnError(
                .counterWentBackwards,
                "the security key's signature counter went from \(credential.signCount) to \(new): it may have been copied. Tell your administrator, and sign in another way meanwhile"
            )
        }
        return VerifiedAssertion(
            signCount: backwards ? credential.signCount : new,
            userVerified: authenticatorData.flags.contains(.userVerified),
            backedUp: authenticatorData.flags.contains(.backedUp), counterWentBackwards: backwards)
    }
}
