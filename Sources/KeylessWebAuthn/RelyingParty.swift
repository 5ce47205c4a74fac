#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
import Crypto
import KeylessCBOR
import X509

/// The relying party's side of WebAuthn Level 3 (§7.1 registration, §7.2 authentication): who we are (RP ID, the
/// origins our pages are served from), what we accept (algorithms, authenticator models, a counter that did not
/// increase), and the checks of a browser's answer against a challenge we issued. Challenges are issued and spent by
/// the caller (single use, in a store replicas share); this type only compares.
public struct RelyingParty: Sendable {
    /// What to do when an authenticator's signature counter did not increase (§6.1.1: a possibly cloned authenticator).
    public enum CounterPolicy: String, Sendable {
        /// Refuse the sign-in (the default).
        case refuse
        /// Accept it and report it (`VerifiedAssertion.counterWentBackwards`), for fleets of authenticators known to
        /// misbehave.
        case report
    }

    /// The RP ID: the provider's host name (or a registrable suffix of it) that credentials are scoped to.
    public var id: String
    /// Shown by the browser and stored on the authenticator.
    public var name: String
    /// The exact origins (`https://host[:port]`) whose pages may use the credentials.
    public var origins: Set<String>
    /// COSE algorithms offered at registration, most preferred first (`pubKeyCredParams`).
    public var algorithms: [Int]
    /// Authenticator models (AAGUIDs, 16 bytes) allowed to register; nil allows any. When set, a registration must
    /// carry an attestation that verifies to one of `attestationRoots` (an AAGUID alone is only the device's claim).
    public var allowedAuthenticators: Set<[UInt8]>?
    /// The certificates attestation chains must end in when `allowedAuthenticators` is set (vendors publish them, e.g.
    /// Yubico's attestation root CA).
    public var attestationRoots: [Certificate]
    public var counterPolicy: CounterPolicy

    public init(
        id: String, name: String, origins: Set<String>,
        algorithms: [Int] = [
            COSEKey.es256Algorithm, COSEKey.edDSAAlgorithm, COSEKey.es384Algorithm, COSEKey.es512Algorithm,
            COSEKey.rs256Algorithm,
        ],
        allowedAuthenticators: Set<[UInt8]>? = nil, attestationRoots: [Certificate] = [],
        counterPolicy: CounterPolicy = .refuse
    ) {
        self.id = id
        self.name = name
        self.origins = origins
        self.algorithms = algorithms
        self.allowedAuthenticators = allowedAuthenticators
        self.attestationRoots = attestationRoots
        self.counterPolicy = counterPolicy
    }

    /// The SHA-256 of the RP ID, which authenticator data must start with.
    public var idHash: [UInt8] { Array(SHA256.hash(data: Array(id.utf8))) }

    /// Checks what every ceremony shares (§7.1 steps 7–14, §7.2 steps 10–17): clientDataJSON's type, challenge and
    /// origin (and that no other site framed the page), then the authenticator data's RP ID hash and flags.
    func checkCeremony(
        clientData: CollectedClientData, type: String, challenge: [UInt8], authenticatorData: AuthenticatorData,
        requireUserVerification: Bool
    ) throws {
        guard clientData.type == type else {
            throw WebAuthnError(.wrongType, "clientDataJSON is for '\(clientData.type)', not '\(type)'")
        }
        guard !challenge.isEmpty, clientData.challenge == challenge else {
            throw WebAuthnError(.wrongChallenge, "the answer is to another challenge than the one this page was given")
        }
        guard origins.contains(clientData.origin) else {
            throw WebAuthnError(
                .wrongOrigin,
                "the page that asked is \(clientData.origin), which is not this provider (\(origins.sorted().joined(separator: ", ")))"
            )
        }
        guard !clientData.crossOrigin, clientData.topOrigin == nil else {
            throw WebAuthnError(.crossOrigin, "the request came from a frame inside another site")
        }
        guard authenticatorData.rpIDHash == idHash else {
            throw WebAuthnError(.wrongRelyingParty, "the authenticator answered for another site than \(id)")
        }
        guard authenticatorData.flags.contains(.userPresent) else {
            throw WebAuthnError(.userNotPresent, "the authenticator did not report a person's presence (touch)")
        }
        if requireUserVerification && !authenticatorData.flags.contains(.userVerified) {
            throw WebAuthnError(
                .userNotVerified,
                "the authenticator did not verify the person (PIN or biometrics), which is required here")
        }
    }
}
