/// Why a registration or a sign-in with a passkey was refused. Each refusal has a stable code (for logs, audit records
/// and tests) and a message for the person or the admin reading it.
public struct WebAuthnError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// The browser's answer is not what WebAuthn defines (bad CBOR, JSON, lengths, flags that contradict).
        case malformed = "webauthn_malformed"
        /// clientDataJSON's `type` is not the ceremony's (`webauthn.create` / `webauthn.get`).
        case wrongType = "webauthn_wrong_type"
        /// The challenge in clientDataJSON is not the one this ceremony issued.
        case wrongChallenge = "webauthn_wrong_challenge"
        /// The page that called WebAuthn is not one of the provider's origins (a look-alike site).
        case wrongOrigin = "webauthn_wrong_origin"
        /// The call came from a frame of another site (`crossOrigin: true` or a `topOrigin`).
        case crossOrigin = "webauthn_cross_origin"
        /// The authenticator signed for another relying party (its RP ID hash is not SHA-256 of ours).
        case wrongRelyingParty = "webauthn_wrong_rp_id"
        /// The user-present flag is not set.
        case userNotPresent = "webauthn_user_not_present"
        /// User verification (PIN, biometrics) was required and the flag is not set.
        case userNotVerified = "webauthn_user_not_verified"
        /// The credential's key uses an algorithm this relying party did not offer or does not support.
        case unsupportedAlgorithm = "webauthn_unsupported_algorithm"
        /// The attestation statement does not verify, or does not satisfy the attestation policy.
        case attestation = "webauthn_attestation"
        /// The authenticator's model (AAGUID) is not on the organisation's allow-list.
        case authenticatorNotAllowed = "webauthn_authenticator_not_allowed"
        /// The assertion's signature is not the stored key's over authenticatorData ‖ SHA-256(clientDataJSON).
        case badSignature = "webauthn_bad_signature"
        /// The signature counter did not increase: the authenticator may have been cloned.
        case counterWentBackwards = "webauthn_counter_went_backwards"
        /// The credential is not the one expected (another id, another user's handle, backup eligibility changed).
        case wrongCredential = "webauthn_wrong_credential"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(message) (\(code.rawValue))" }

    /// Errors are equal when their codes are (the message is for people).
    public static func == (a: WebAuthnError, b: WebAuthnError) -> Bool { a.code == b.code }
}
