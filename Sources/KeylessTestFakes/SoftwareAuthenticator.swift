import Crypto
import Foundation
import KeylessCore
import Synchronization

/// An authenticator and its browser in software, for tests of the provider's passkey ceremonies: it reads the
/// options JSON the provider writes for the page's script and answers with the JSON the script would post
/// (WebAuthn Level 3 §5.1.8). ES256 keys; attestation `none`; everything written out by hand here (CBOR included),
/// sharing no code with KeylessWebAuthn. Each answer can be bent to test a refusal.
public final class SoftwareAuthenticator: Sendable {
    public struct Credential: Sendable {
        public var id: [UInt8]
        public var key: P256.Signing.PrivateKey
        public var rpID: String
        public var userHandle: [UInt8]
        public var signCount: UInt32
    }

    /// How one answer departs from an honest one.
    public struct Bend: Sendable {
        public var origin: String?
        public var rpID: String?
        public var userVerified: Bool?
        public var signCount: UInt32?
        /// Sign with another key than the credential's.
        public var foreignKey = false
        public var crossOrigin = false
        public init(
            origin: String? = nil, rpID: String? = nil, userVerified: Bool? = nil, signCount: UInt32? = nil,
            foreignKey: Bool = false, crossOrigin: Bool = false
        ) {
            self.origin = origin
            self.rpID = rpID
            self.userVerified = userVerified
            self.signCount = signCount
            self.foreignKey = foreignKey
            self.crossOrigin = crossOrigin
        }
    }

    public let origin: String
    /// Backup eligible (a synced passkey) or device-bound (a security key).
    public let backupEligible: Bool
    private let state = Mutex<[Credential]>([])

    public init(origin: String, backupEligible: Bool = false) {
        self.origin = origin
        self.backupEligible = backupEligible
    }

    public var credentials: [Credential] { state.withLock { $0 } }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    private static func object(_ json: String) throws -> [String: Any] {
        guard let value = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw Failure(description: "options are not a JSON object")
        }
        return value
    }

    private static func decode(_ text: Any?) throws -> [UInt8] {
        guard let text = text as? String, let data = Base64URL.decode(text) else {
            throw Failure(description: "not base64url: \(String(describing: text))")
        }
        return Array(data)
    }

    /// `navigator.credentials.create()`: a new credential for the options' RP and user; the answer's JSON.
    public func register(options json: String, bend: Bend = Bend()) throws -> String {
        let options = try Self.object(json)
        let rp = options["rp"] as? [String: Any] ?? [:]
        let user = options["user"] as? [String: Any] ?? [:]
        let rpID = bend.rpID ?? (rp["id"] as? String ?? "")
        let credential = Credential(
            id: Array(SHA256.hash(data: Data(UUID().uuidString.utf8))), key: P256.Signing.PrivateKey(), rpID: rpID,
            userHandle: try Self.decode(user["id"]), signCount: 0)
        let raw = credential.key.publicKey.rawRepresentation
        // COSE_Key (RFC 9053 §7.1.1): {1: 2, 3: -7, -1: 1, -2: x, -3: y}.
        let coseKey: [UInt8] =
            [0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20] + raw.prefix(32) + [0x22, 0x58, 0x20]
            + raw.suffix(32)
        var attested = [UInt8](repeating: 0, count: 16)  // AAGUID: not said
        attested += [UInt8(credential.id.count >> 8), UInt8(credential.id.count & 0xff)] + credential.id + coseKey
        let authData = authenticatorData(
            rpID: rpID, userVerified: bend.userVerified ?? true, signCount: 0, attested: attested)
        let clientData = clientDataJSON(
            type: "webauthn.create", challenge: options["challenge"] as? String ?? "", bend: bend)
        // {"fmt": "none", "attStmt": {}, "authData": bytes}
        var object: [UInt8] = [0xa3, 0x63] + Array("fmt".utf8) + [0x64] + Array("none".utf8)
        object += [0x67] + Array("attStmt".utf8) + [0xa0, 0x68] + Array("authData".utf8)
        object +=
            authData.count < 256
            ? [0x58, UInt8(authData.count)] : [0x59, UInt8(authData.count >> 8), UInt8(authData.count & 0xff)]
        object += authData
        state.withLock { $0.append(credential) }
        return try answer([
            "id": Base64URL.encode(credential.id), "rawId": Base64URL.encode(credential.id), "type": "public-key",
            "response": [
                "clientDataJSON": Base64URL.encode(clientData), "attestationObject": Base64URL.encode(object),
                "transports": ["usb"],
            ],
        ])
    }

    /// `navigator.credentials.get()`: an assertion by the credential the options allow (or, with none listed, the
    /// newest one for the RP ID); the answer's JSON. The stored counter goes up by one unless bent.
    public func signIn(options json: String, bend: Bend = Bend(), credentialIndex: Int? = nil) throws -> String {
        let options = try Self.object(json)
        let rpID = options["rpId"] as? String ?? ""
        let allowed = try (options["allowCredentials"] as? [[String: Any]] ?? []).map { try Self.decode($0["id"]) }
        let index: Int = try state.withLock { credentials in
            if let credentialIndex { return credentialIndex }
            guard
                let found = credentials.indices.last(where: {
                    credentials[$0].rpID == rpID && (allowed.isEmpty || allowed.contains(credentials[$0].id))
                })
            else { throw Failure(description: "no credential for \(rpID)") }
            return found
        }
        let credential: Credential = state.withLock { credentials in
            credentials[index].signCount += 1
            return credentials[index]
        }
        let count = bend.signCount ?? credential.signCount
        let authData = authenticatorData(
            rpID: bend.rpID ?? rpID, userVerified: bend.userVerified ?? true, signCount: count, attested: nil)
        let clientData = clientDataJSON(
            type: "webauthn.get", challenge: options["challenge"] as? String ?? "", bend: bend)
        let key = bend.foreignKey ? P256.Signing.PrivateKey() : credential.key
        let signature = try key.signature(for: authData + Array(SHA256.hash(data: clientData))).derRepresentation
        return try answer([
            "id": Base64URL.encode(credential.id), "rawId": Base64URL.encode(credential.id), "type": "public-key",
            "response": [
                "clientDataJSON": Base64URL.encode(clientData), "authenticatorData": Base64URL.encode(authData),
                "signature": Base64URL.encode(signature), "userHandle": Base64URL.encode(credential.userHandle),
            ],
        ])
    }

    private func authenticatorData(rpID: String, userVerified: Bool, signCount: UInt32, attested: [UInt8]?)
        -> [UInt8]
    {
        var flags: UInt8 = 0x01  // UP
        if userVerified { flags |= 0x04 }
        if backupEligible { flags |= 0x08 | 0x10 }
        if attested != nil { flags |= 0x40 }
        let counter = [24, 16, 8, 0].map { UInt8((signCount >> $0) & 0xff) }
        return Array(SHA256.hash(data: Data(rpID.utf8))) + [flags] + counter + (attested ?? [])
    }

    private func clientDataJSON(type: String, challenge: String, bend: Bend) -> [UInt8] {
        let origin = bend.origin ?? origin
        return Array(
            "{\"type\":\"\(type)\",\"challenge\":\"\(challenge)\",\"origin\":\"\(origin)\",\"crossOrigin\":\(bend.crossOrigin)}"
                .utf8)
    }

    private func answer(_ value: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]), as: UTF8.self)
    }
}
