import Foundation
import KeylessCore
import KeylessOIDC
@testable import KeylessServer
import Testing

@Suite("who the session is named after")
struct SessionNameSourceTests {
    @Test("an email the provider marks unverified never names the session; the login name does")
    func unverifiedEmail() throws {
        let issuer = ServerIssuer(trusted: TrustedIssuer(issuer: "https://idp.example.com", audiences: ["keyless-cli"]), clientID: "keyless-cli",
                                  groupsClaim: "groups", mfaMethods: ["mfa"])
        func name(_ claims: [String: JSONValue]) -> String {
            AccessService.caller(VerifiedBearer(issuer: "https://idp.example.com", subject: "u-1", expiresAt: Date(timeIntervalSince1970: 4_000_000_000), claims: claims),
                                 issuer: issuer).name
        }
        #expect(name(["email": .string("boss@example.com"), "email_verified": .bool(false), "preferred_username": .string("mallory")]) == "mallory")
        #expect(name(["email": .string("boss@example.com"), "email_verified": .string("false")]) == "u-1")
        #expect(name(["email": .string("alice@example.com"), "email_verified": .bool(true)]) == "alice@example.com")
        #expect(name(["email": .string("alice@example.com")]) == "alice@example.com")
    }
}
