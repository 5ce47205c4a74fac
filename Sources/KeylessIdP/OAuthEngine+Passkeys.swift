import Crypto
import Foundation
import KeylessCore
import KeylessStorage
import KeylessWebAuthn
import SwiftASN1
import X509

/// A WebAuthn ceremony the browser is asked to perform: `state` (sealed, for a hidden form field) and `options` (the
/// `PublicKeyCredentialCreationOptionsJSON` / `PublicKeyCredentialRequestOptionsJSON` of WebAuthn Level 3 §5.1, for the
/// page's script).
public struct PasskeyCeremonyStart: Sendable, Equatable {
    public var state: String
    public var options: String
}

/// Why a passkey could not be registered: a sentence for the person.
public struct PasskeyRegistrationFailure: Error, Sendable, Equatable {
    public var message: String
    /// The WebAuthn refusal's code, when the browser's answer was refused (for the log).
    public var code: String?
}

/// Passkeys (WebAuthn): registration for a signed-in person, sign-in without a password (discoverable credentials,
/// user verification required), and a passkey as the second factor after a password. Challenges are 32 random bytes
/// sealed with what the ceremony is for and when it ends (five minutes); each is spent in the store when it is used,
/// so no replica accepts one twice, and any replica accepts the one another issued.
extension OAuthEngine {
    /// A ceremony's state, sealed into the page.
    struct PasskeyCeremony: Codable {
        enum Purpose: String, Codable { case register, signIn = "sign-in", secondFactor = "second-factor" }
        var purpose: Purpose
        var challenge: String
        /// register: whose passkey; second-factor: the password step's authentication.
        var subject: String?
        var authentication: Authentication?
        /// register through an enrolment link: the link's id, spent with the registration.
        var enrolment: String?
        var expires: Double
    }

    /// How long a browser has to answer (WebAuthn's recommended default timeout, §15.1: 300 s).
    static let passkeyCeremonyLifetime: TimeInterval = 300
    /// The most passkeys one person may register.
    public static let maxPasskeysPerPerson = 20

    /// The relying party for this issuer and `passkeys:` (attestation roots read from their file).
    static func makeRelyingParty(config: IdPConfiguration, issuer: String) throws -> RelyingParty {
        let settings = config.passkeys ?? IdPConfiguration.Passkeys()
        // The origin as browsers write it: scheme, host, and the port unless it is the scheme's default.
        var origin = issuer
        if let url = URL(string: issuer), let scheme = url.scheme, let host = url.host {
            let defaultPort = scheme == "https" ? 443 : 80
            origin = "\(scheme)://\(host)" + (url.port.flatMap { $0 == defaultPort ? nil : ":\($0)" } ?? "")
        }
        var roots: [Certificate] = []
        if let path = settings.attestationRoots {
            guard let bytes = try Files.read(path) else {
                throw KeylessError(
                    .configInvalid, "passkeys.attestation_roots: \(path) does not exist.",
                    hint: "Point it at a PEM file of the vendors' attestation root certificates.")
            }
            do {
                roots = try PEMDocument.parseMultiple(pemString: String(decoding: bytes, as: UTF8.self)).map {
                    try Certificate(pemDocument: $0)
                }
            } catch {
                throw KeylessError(
                    .configInvalid, "passkeys.attestation_roots: \(path) holds something other than PEM certificates.",
                    hint: "Use the vendors' root certificates as -----BEGIN CERTIFICATE----- blocks.")
            }
            guard !roots.isEmpty else {
                throw KeylessError(
                    .configInvalid, "passkeys.attestation_roots: \(path) holds no certificate.",
                    hint: "Add the vendors' attestation root certificates (PEM).")
            }
        }
        let allowed = settings.allowedAuthenticators.map { list in
            Set(list.compactMap { UUID(uuidString: $0) }.map { uuid in withUnsafeBytes(of: uuid.uuid) { Array($0) } })
        }
        return RelyingParty(
            id: config.passkeyRPID(issuer: issuer) ?? "", name: settings.rpName ?? "keyless",
            origins: Set([origin] + (settings.origins ?? [])), allowedAuthenticators: allowed,
            attestationRoots: roots, counterPolicy: settings.signatureCounter == "report" ? .report : .refuse)
    }

    /// The user handle (`user.id`) of `subject`'s passkeys: an HMAC of the subject under a key from the KEK, so it
    /// names nobody (WebAuthn §14.6.1) and is the same at every registration (an authenticator then replaces its
    /// older passkey for the person rather than keeping two).
    func userHandle(subject: String) -> [UInt8] {
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: keys.kek, info: Data("keyless idp passkey user handle".utf8), outputByteCount: 32)
        return Array(HMAC<SHA256>.authenticationCode(for: Data(subject.utf8), using: key))
    }

    /// Whether people of idp.yaml sign in here (passkeys are theirs; a directory's people use the directory).
    public var localUsersSignIn: Bool { config.effectiveConnectors.contains { $0.type == "local" } }

    /// Whether the sign-in pages offer passkeys: people of idp.yaml sign in here and the issuer has a host name.
    public var passkeysOffered: Bool { localUsersSignIn && !relyingParty.id.isEmpty }

    /// Refuses any ceremony while passkeys are off (the issuer's host is an IP address).
    private func requirePasskeys() throws {
        guard !relyingParty.id.isEmpty else {
            throw PasskeyRegistrationFailure(
                message: "Passkeys are off on this provider: " + (config.passkeysOff(issuer: issuer) ?? "") + ".")
        }
    }

    private func startCeremony(
        _ purpose: PasskeyCeremony.Purpose, subject: String? = nil, authentication: Authentication? = nil,
        enrolment: String? = nil, options: (String) -> [String: Any]
    ) throws -> PasskeyCeremonyStart {
        let challenge = Base64URL.encode(secureRandomBytes(32))
        let ceremony = PasskeyCeremony(
            purpose: purpose, challenge: challenge, subject: subject, authentication: authentication,
            enrolment: enrolment,
            expires: clock.now().addingTimeInterval(Self.passkeyCeremonyLifetime).timeIntervalSince1970)
        let json = try JSONSerialization.data(withJSONObject: options(challenge), options: [.sortedKeys])
        return PasskeyCeremonyStart(
            state: try seal(ceremony, purpose: "passkey"), options: String(decoding: json, as: UTF8.self))
    }

    private static func descriptors(_ passkeys: [PasskeyRecord]) -> [[String: Any]] {
        passkeys.map { passkey in
            var entry: [String: Any] = ["type": "public-key", "id": passkey.credentialID]
            if !passkey.transports.isEmpty { entry["transports"] = passkey.transports }
            return entry
        }
    }

    /// A sign-in without a user name: the browser offers the person's discoverable passkeys for this RP ID (also as
    /// conditional UI, in the user-name field's autofill). User verification is required.
    public func passkeySignInStart() throws -> PasskeyCeremonyStart {
        try requirePasskeys()
        return try startCeremony(.signIn) { challenge in
            [
                "challenge": challenge, "rpId": relyingParty.id, "timeout": Int(Self.passkeyCeremonyLifetime * 1000),
                "userVerification": "required", "allowCredentials": [[String: Any]](),
            ]
        }
    }

    /// Whether `subject` has registered a passkey.
    func hasPasskeys(_ subject: String) async throws -> Bool { !(try await store.passkeys(subject: subject)).isEmpty }

    /// The second step after a right password, for a person with passkeys: nil when they have none.
    public func passkeySecondFactorStart(after authentication: Authentication) async throws -> PasskeyCeremonyStart? {
        let passkeys = try await store.passkeys(subject: authentication.subject)
        guard !passkeys.isEmpty, passkeysOffered else { return nil }
        return try startCeremony(.secondFactor, authentication: authentication) { challenge in
            [
                "challenge": challenge, "rpId": relyingParty.id, "timeout": Int(Self.passkeyCeremonyLifetime * 1000),
                "userVerification": "preferred", "allowCredentials": Self.descriptors(passkeys),
            ]
        }
    }

    /// Registration of a new passkey for `subject` (a person of idp.yaml, signed in, or holding an enrolment link).
    public func passkeyRegistrationStart(subject: String, enrolment: String? = nil) async throws
        -> PasskeyCeremonyStart
    {
        try requirePasskeys()
        guard let user = config.user(subject: subject) else {
            throw PasskeyRegistrationFailure(
                message:
                    "Passkeys are for the people written in idp.yaml; people from a directory or another provider sign in there."
            )
        }
        let existing = try await store.passkeys(subject: subject)
        return try startCeremony(.register, subject: subject, enrolment: enrolment) { challenge in
            [
                "challenge": challenge, "rp": ["id": relyingParty.id, "name": relyingParty.name],
                "user": [
                    "id": Base64URL.encode(userHandle(subject: subject)), "name": user.username,
                    "displayName": user.email ?? user.username,
                ],
                "pubKeyCredParams": relyingParty.algorithms.map { ["type": "public-key", "alg": $0] },
                "timeout": Int(Self.passkeyCeremonyLifetime * 1000), "excludeCredentials": Self.descriptors(existing),
                "authenticatorSelection": [
                    "residentKey": "preferred", "requireResidentKey": false, "userVerification": "preferred",
                ],
                "attestation": relyingParty.allowedAuthenticators == nil ? "none" : "direct",
            ]
        }
    }

    /// Opens a ceremony's state: nil when it was not sealed here, is for another purpose, or has expired.
    private func openCeremony(_ state: String, _ purposes: Set<PasskeyCeremony.Purpose>) -> PasskeyCeremony? {
        guard let ceremony = open(state, as: PasskeyCeremony.self, purpose: "passkey"),
            purposes.contains(ceremony.purpose), clock.now().timeIntervalSince1970 < ceremony.expires
        else { return nil }
        return ceremony
    }

    /// Spends a ceremony's challenge in the store: true the first time, on whichever replica; remembered until the
    /// ceremony would have expired anyway.
    private func spend(_ ceremony: PasskeyCeremony) async throws -> Bool {
        try await store.spendOnce(
            key: "passkey:" + Self.hash(ceremony.challenge), expiresAt: Date(timeIntervalSince1970: ceremony.expires),
            now: clock.now())
    }

    /// The browser's `PublicKeyCredential` as JSON (WebAuthn Level 3 §5.1.8 `RegistrationResponseJSON` /
    /// `AuthenticationResponseJSON`): its base64url members decoded.
    struct CredentialJSON: Decodable {
        struct Response: Decodable {
            var clientDataJSON: String
            var attestationObject: String?
            var transports: [String]?
            var authenticatorData: String?
            var signature: String?
            var userHandle: String?
        }
        var rawId: String
        var type: String
        var response: Response

        static func parse(_ text: String) -> CredentialJSON? {
            guard text.utf8.count < 64 * 1024,
                let value = try? JSONDecoder().decode(CredentialJSON.self, from: Data(text.utf8)),
                value.type == "public-key"
            else { return nil }
            return value
        }
    }

    private static func bytes(_ text: String?) -> [UInt8]? { text.flatMap(Base64URL.decode).map(Array.init) }

    /// Finishes a sign-in with a passkey: without a user name (the credential names its person), or as the second
    /// factor after a password (the credential must be that person's). The challenge is spent only once the assertion
    /// verifies; the counter is updated with a compare-and-set, so two racing uses of one assertion cannot both pass.
    public func finishPasskeySignIn(state: String, credential: String) async -> Result<Authentication, LoginFailure> {
        guard let ceremony = openCeremony(state, [.signIn, .secondFactor]),
            let challenge = Base64URL.decode(ceremony.challenge)
        else { return .failure(.passkeyRefused("This sign-in page has expired; try again.")) }
        guard let answer = CredentialJSON.parse(credential), let rawID = Self.bytes(answer.rawId),
            let clientData = Self.bytes(answer.response.clientDataJSON),
            let authenticatorData = Self.bytes(answer.response.authenticatorData),
            let signature = Self.bytes(answer.response.signature)
        else { return .failure(.passkeyRefused("The browser's answer was not a passkey sign-in; try again.")) }
        do {
            guard let passkey = try await store.passkey(credentialID: Base64URL.encode(rawID)) else {
                return .failure(
                    .passkeyRefused(
                        "This passkey is not registered here (it may have been removed): sign in with your password, then add it again on the passkeys page."
                    ))
            }
            let secondFactor = ceremony.purpose == .secondFactor
            if secondFactor, passkey.subject != ceremony.authentication?.subject {
                return .failure(
                    .passkeyRefused(
                        "This passkey belongs to another account: use your own, or sign in again as its owner."))
            }
            guard localUsersSignIn, let user = config.user(subject: passkey.subject) else {
                return .failure(
                    .passkeyRefused("The account of this passkey no longer exists here: ask your administrator."))
            }
            let verified: VerifiedAssertion
            do {
                verified = try relyingParty.verifyAssertion(
                    AssertionResponse(
                        credentialID: rawID, clientDataJSON: clientData, authenticatorData: authenticatorData,
                        signature: signature, userHandle: Self.bytes(answer.response.userHandle)),
                    challenge: Array(challenge),
                    credential: StoredCredential(
                        id: rawID, publicKey: passkey.publicKey, signCount: UInt32(clamping: passkey.signCount),
                        backupEligible: passkey.backupEligible,
                        userHandle: Self.bytes(passkey.userHandle) ?? []),
                    requireUserVerification: !secondFactor, requireUserHandle: !secondFactor)
            } catch let error as WebAuthnError {
                return .failure(.passkeyRefused(error.message, code: error.code.rawValue))
            }
            guard try await spend(ceremony) else {
                return .failure(.passkeyRefused("This sign-in was already used; try again.", code: "replayed"))
            }
            guard
                try await store.recordPasskeyUse(
                    credentialID: passkey.credentialID, previousSignCount: passkey.signCount,
                    signCount: Int64(verified.signCount), backedUp: verified.backedUp, at: clock.now())
            else {
                return .failure(
                    .passkeyRefused("This passkey was used twice at the same moment; try again.", code: "raced"))
            }
            let kind = passkey.backupEligible ? "swk" : "hwk"
            let amr = secondFactor ? ["pwd", kind, "mfa"] : [kind, "mfa"]
            return .success(
                Authentication(
                    subject: user.subject ?? user.username,
                    authTime: secondFactor ? (ceremony.authentication?.authTime ?? clock.now()) : clock.now(),
                    amr: amr))
        } catch {
            return .failure(.unavailable(retryAfter: 5))
        }
    }

    /// Finishes a registration for `subject` (who must be the one the ceremony was started for), named `name`;
    /// through an enrolment link, the ceremony must be the one started for that link (`enrolment`, its id).
    public func finishPasskeyRegistration(
        state: String, credential: String, name: String, subject: String, enrolment: String? = nil
    ) async -> Result<PasskeyRecord, PasskeyRegistrationFailure> {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard let ceremony = openCeremony(state, [.register]), ceremony.subject == subject,
            enrolment == nil || ceremony.enrolment == enrolment,
            let challenge = Base64URL.decode(ceremony.challenge)
        else { return .failure(PasskeyRegistrationFailure(message: "This page has expired; start again.")) }
        guard !trimmed.isEmpty, trimmed.count <= 64, !trimmed.contains(where: \.isNewline) else {
            return .failure(PasskeyRegistrationFailure(message: "Give the passkey a name of 1 to 64 characters."))
        }
        guard let answer = CredentialJSON.parse(credential), let rawID = Self.bytes(answer.rawId),
            let clientData = Self.bytes(answer.response.clientDataJSON),
            let attestation = Self.bytes(answer.response.attestationObject)
        else {
            return .failure(
                PasskeyRegistrationFailure(message: "The browser's answer was not a passkey registration; try again."))
        }
        do {
            let existing = try await store.passkeys(subject: subject)
            guard existing.count < Self.maxPasskeysPerPerson else {
                return .failure(
                    PasskeyRegistrationFailure(
                        message: "You have \(existing.count) passkeys, the most allowed; remove one first."))
            }
            let created: NewCredential
            do {
                created = try await relyingParty.verifyRegistration(
                    RegistrationResponse(
                        credentialID: rawID, clientDataJSON: clientData, attestationObject: attestation,
                        transports: (answer.response.transports ?? []).filter {
                            ["usb", "nfc", "ble", "internal", "hybrid", "smart-card"].contains($0)
                        }),
                    challenge: Array(challenge), requireUserVerification: false, now: clock.now())
            } catch let error as WebAuthnError {
                return .failure(PasskeyRegistrationFailure(message: error.message, code: error.code.rawValue))
            }
            guard try await spend(ceremony) else {
                return .failure(PasskeyRegistrationFailure(message: "This page was already used; start again."))
            }
            if let enrolment = ceremony.enrolment {
                guard
                    try await store.spendOnce(
                        key: "enrol:" + enrolment, expiresAt: clock.now().addingTimeInterval(Self.enrolmentMemory),
                        now: clock.now())
                else {
                    return .failure(
                        PasskeyRegistrationFailure(
                            message: "This enrolment link was already used; ask your administrator for a new one."))
                }
            }
            let attestationText: String =
                switch created.attestation {
                case .none: "none"
                case .selfAttested: "self"
                case .certified(let certificateSubject, _): "certified: \(certificateSubject)"
                }
            let record = PasskeyRecord(
                credentialID: Base64URL.encode(created.id), subject: subject,
                userHandle: Base64URL.encode(userHandle(subject: subject)), name: trimmed,
                publicKey: created.publicKey, signCount: Int64(created.signCount),
                aaguid: RelyingParty.uuidText(created.aaguid), backupEligible: created.backupEligible,
                backedUp: created.backedUp, transports: created.transports, attestation: attestationText,
                createdAt: clock.now())
            guard try await store.insertPasskey(record) else {
                return .failure(PasskeyRegistrationFailure(message: "This passkey is already registered."))
            }
            return .success(record)
        } catch let failure as PasskeyRegistrationFailure {
            return .failure(failure)
        } catch {
            return .failure(
                PasskeyRegistrationFailure(message: "The provider cannot store passkeys now; try again shortly."))
        }
    }

    /// The passkeys of `subject`, oldest first.
    public func passkeys(of subject: String) async throws -> [PasskeyRecord] {
        try await store.passkeys(subject: subject)
    }

    /// Removes `subject`'s passkey `credentialID`; false when they have none by that id.
    public func removePasskey(subject: String, credentialID: String) async throws -> Bool {
        try await store.deletePasskey(credentialID: credentialID, subject: subject)
    }

    /// How recent a sign-in must be to add or remove passkeys (a session cookie found later cannot plant one).
    public static let passkeyManagementWindow: TimeInterval = 15 * 60

    /// Whether `authentication` may add or remove passkeys now: a person of idp.yaml, signed in recently.
    public func mayManagePasskeys(_ authentication: Authentication) -> Bool {
        authentication.identity == nil && config.user(subject: authentication.subject) != nil
            && clock.now().timeIntervalSince(authentication.authTime) <= Self.passkeyManagementWindow
    }

    // MARK: Enrolment links

    /// An admin's one-time link for a person to register a passkey without signing in (a first passkey, or after
    /// losing all of them). Sealed with the KEK; single use (spent with the registration it allows).
    struct Enrolment: Codable {
        var subject: String
        var id: String
        var expires: Double
    }

    /// The longest an enrolment link may live (seven days).
    public static let maxEnrolmentLifetime: TimeInterval = 7 * 86400

    /// A new enrolment link for `username` (a user of idp.yaml), valid for `validFor` seconds: the URL to hand over
    /// (the token is in its query; the provider's request log records routes only), the link's id for the audit
    /// record, and when it ends.
    public func enrolmentLink(username: String, validFor: TimeInterval) throws -> (
        url: String, id: String, subject: String, expires: Date
    ) {
        if let off = config.passkeysOff(issuer: issuer) {
            throw KeylessError(
                .configInvalid, "No enrolment link: \(off).",
                hint: "Set issuer: in idp.yaml (or --issuer) to a host name.")
        }
        guard let user = config.user(username) else {
            throw KeylessError(
                .usage, "There is no user '\(username)' in idp.yaml.",
                hint: "Name a user of the provider's configuration (users: … username).")
        }
        guard validFor > 0, validFor <= Self.maxEnrolmentLifetime else {
            throw KeylessError(
                .usage, "An enrolment link must live between 1 second and 7 days.",
                hint: "Pass --valid-for with a shorter time, such as 24h.")
        }
        let id = Base64URL.encode(secureRandomBytes(12))
        let expires = clock.now().addingTimeInterval(validFor)
        let subject = user.subject ?? user.username
        let token = try seal(
            Enrolment(subject: subject, id: id, expires: expires.timeIntervalSince1970), purpose: "enrolment")
        return (issuer + "/passkeys/enrol?token=" + token, id, subject, expires)
    }

    /// The person and link id of an enrolment token that is sealed here and not expired (spent links are found out
    /// when the registration is finished).
    public func openEnrolment(_ token: String) -> (subject: String, id: String)? {
        guard let enrolment = open(token, as: Enrolment.self, purpose: "enrolment"),
            clock.now().timeIntervalSince1970 < enrolment.expires, config.user(subject: enrolment.subject) != nil
        else { return nil }
        return (enrolment.subject, enrolment.id)
    }

    /// How long a spent enrolment link is remembered (longer than any link lives).
    static let enrolmentMemory: TimeInterval = 8 * 86400
}
