import Foundation
import KeylessTestSupport
import KeylessWebAuthn
import Testing

/// Registration and sign-in answers made and judged by python-fido2 (Yubico's library and its relying party,
/// `scripts/partners/fido2_ceremonies.py`): keyless must accept exactly what fido2 accepts, and refuse the rest for
/// the reason the case was built to show.
@Suite("WebAuthn ceremonies: keyless and python-fido2's relying party agree on every answer")
struct Fido2AgreementTests {
    static func cases() throws -> [[String: Any]] {
        let script = repositoryRoot() + "/scripts/partners/fido2_ceremonies.py"
        let result = try PartnerProcess.run(Tooling.python(), [script], timeout: 120)
        try #require(result.status == 0, "fido2_ceremonies.py failed (scripts/test installs fido2): \(result.output)")
        return try result.output.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{") else { return nil }
            return try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        }
    }

    static func bytes(_ value: Any?) -> [UInt8] {
        let hex = value as? String ?? ""
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return out
    }

    /// The refusal each kind of broken answer must get, by the case's name.
    static func expectedCode(_ name: String) -> WebAuthnError.Code? {
        let table: [(String, WebAuthnError.Code)] = [
            ("another origin", .wrongOrigin), ("another RP ID", .wrongRelyingParty),
            ("another challenge", .wrongChallenge), ("'s type", .wrongType),
            ("UV where UV is required", .userNotVerified), ("without UP", .userNotPresent),
            ("another key", .badSignature),
        ]
        return table.first { name.contains($0.0) }?.1
    }

    @Test("every fido2-made answer gets fido2's verdict from keyless, and each refusal its own reason")
    func agreement() async throws {
        let cases = try Self.cases()
        #expect(cases.count >= 20)
        var accepted = 0
        var refused = 0
        for item in cases {
            let name = item["name"] as? String ?? "?"
            let relyingParty = RelyingParty(
                id: "example.org", name: "Example", origins: [item["origin"] as? String ?? ""])
            let requireUV = item["require_uv"] as? Bool ?? true
            var keyless: Result<Void, WebAuthnError>
            do {
                if item["ceremony"] as? String == "registration" {
                    _ = try await relyingParty.verifyRegistration(
                        RegistrationResponse(
                            credentialID: Self.bytes(item["credential_id"]),
                            clientDataJSON: Self.bytes(item["client_data"]),
                            attestationObject: Self.bytes(item["attestation_object"])),
                        challenge: Self.bytes(item["challenge"]), requireUserVerification: requireUV, now: Date())
                } else {
                    let stored = StoredCredential(
                        id: Self.bytes(item["credential_id"]), publicKey: Self.bytes(item["public_key"]), signCount: 0,
                        backupEligible: item["backup_eligible"] as? Bool ?? false,
                        userHandle: Self.bytes(item["user_handle"]))
                    _ = try relyingParty.verifyAssertion(
                        AssertionResponse(
                            credentialID: Self.bytes(item["credential_id"]),
                            clientDataJSON: Self.bytes(item["client_data"]),
                            authenticatorData: Self.bytes(item["authenticator_data"]),
                            signature: Self.bytes(item["signature"]), userHandle: Self.bytes(item["user_handle"])),
                        challenge: Self.bytes(item["challenge"]), credential: stored,
                        requireUserVerification: requireUV, requireUserHandle: true)
                }
                keyless = .success(())
            } catch let error as WebAuthnError {
                keyless = .failure(error)
            }
            let fido2 = item["fido2"] as? String ?? "?"
            switch keyless {
            case .success:
                accepted += 1
                #expect(fido2 == "ok", "\(name): keyless accepted what fido2 refused (\(fido2))")
            case .failure(let error):
                refused += 1
                #expect(fido2 != "ok", "\(name): keyless refused what fido2 accepted: \(error)")
                if let code = Self.expectedCode(name) {
                    #expect(error.code == code, "\(name): \(error)")
                }
            }
        }
        #expect(accepted >= 8 && refused >= 12, "accepted \(accepted), refused \(refused)")
    }
}
