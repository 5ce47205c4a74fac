import Foundation
import KeylessCore
import KeylessOIDC
@testable import KeylessAccessServer
import Testing

@Suite("who the session is named after")
struct SessionNameSourceTests {
    @Test("an email the provider marks unverified never names the session; the login name does")
    func unverifiedEmail() throws {
        let issuer = ServerIssuer(
            trusted: TrustedIssuer(issuer: "https://idp.example.com", audiences: ["keyless-cli"]),
            clientID: "keyless-cli",
            groupsClaim: "groups", mfaMethods: ["mfa"])
        func name(_ claims: [String: JSONValue]) -> String {
            AccessService.caller(
                VerifiedBearer(
                    issuer: "https://idp.example.com", subject: "u-1",
                    expiresAt: Date(timeIntervalSince1970: 4_000_000_000), claims: claims),
                issuer: issuer
            ).name
        }
        #expect(
            name([
                "email": .string("boss@example.com"), "email_verified": .bool(false),
                "preferred_username": .string("mallory"),
            ]) == "mallory")
        #expect(name(["email": .string("boss@example.com"), "email_verified": .string("false")]) == "u-1")
        #expect(name(["email": .string("alice@example.com"), "email_verified": .bool(true)]) == "alice@example.com")
        #expect(name(["email": .string("alice@example.com")]) == "alice@example.com")
    }
}

@Suite("unverified emails through the API")
struct UnverifiedEmailTests {
    @Test(
        "email_verified false: a grant on the email's domain does not apply (403 saying why), and the email tags no session; verified, it does"
    )
    func unverifiedEmailGetsNothing() async throws {
        let moto = try await RecordingMoto.start()
        defer { moto.stop() }
        let fixture = try ServerFixture.make(stsEndpoint: moto.endpoint)
        defer { fixture.remove() }
        // The matrix policy grants prod/auditor to claims {email: "*@audit.example.com"}, and tags sessions with email.
        let impostor = TestUser(
            "impostor", email: "ceo@audit.example.com", groups: ["developers"], extraJSON: #"{"email_verified": false}"#
        )
        let verified = TestUser("zoe", email: "zoe@audit.example.com", extraJSON: #"{"email_verified": true}"#)
        try await fixture.application().test(.live) { client in
            let refused = try await client.credentials(Policies.auditorArn, token: try impostor.token())
            #expect(refused.status == .forbidden, "\(text(refused))")
            #expect(
                (try json(refused)["error_description"] as? String)?.contains("email is not verified") == true,
                "\(text(refused))")
            // A role the impostor does hold by group: granted, but no email tag and not named after the email.
            let developer = try await client.credentials(Policies.developerArn, token: try impostor.token())
            #expect(developer.status == .ok, "\(text(developer))")
            let granted = try await client.credentials(Policies.auditorArn, token: try verified.token())
            #expect(granted.status == .ok, "\(text(granted))")
        }
        let calls = try moto.assumeRoleCalls()
        #expect(calls.count == 2)
        let impostorCall = try #require(calls.first)
        #expect(!impostorCall.form.values.contains("ceo@audit.example.com"), "\(impostorCall.form)")
        #expect(calls.last?.form["Tags.member.1.Value"] == "zoe@audit.example.com")
    }
}

@Suite("phishing-resistant sign-ins as the access server reads tokens")
struct PhishingResistantCallerTests {
    @Test(
        "amr hwk or fido, or acr phr/phrh, make a phishing-resistant caller (and an MFA one); swk, otp or nothing do not; the issuer can change both lists"
    )
    func fromClaims() {
        var issuer = ServerIssuer(
            trusted: TrustedIssuer(issuer: "https://idp.example.com", audiences: ["keyless-cli"]),
            clientID: "keyless-cli", groupsClaim: "groups", mfaMethods: ["mfa", "otp"])
        func caller(_ claims: [String: JSONValue]) -> (strong: Bool, mfa: Bool) {
            let caller = AccessService.caller(
                VerifiedBearer(
                    issuer: "https://idp.example.com", subject: "u-1",
                    expiresAt: Date(timeIntervalSince1970: 4_000_000_000), claims: claims),
                issuer: issuer
            ).policyCaller
            return (caller.phishingResistant, caller.mfa)
        }
        #expect(caller(["amr": .array([.string("hwk")])]) == (true, true))
        #expect(caller(["amr": .array([.string("fido")])]) == (true, true))
        #expect(caller(["acr": .string("phr")]) == (true, true))
        #expect(caller(["acr": .string("phrh"), "amr": .array([.string("pwd")])]) == (true, true))
        #expect(caller(["amr": .array([.string("swk"), .string("mfa")])]) == (false, true))
        #expect(caller(["amr": .array([.string("pwd"), .string("otp")])]) == (false, true))
        #expect(caller([:]) == (false, false))
        issuer.phishingResistantMethods = ["swk"]
        issuer.phishingResistantACR = []
        #expect(caller(["amr": .array([.string("swk")])]) == (true, true))
        #expect(caller(["acr": .string("phr")]) == (false, false))
    }
}
