import Crypto
import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

/// The provider's passkey ceremonies end to end inside the engine, with a software authenticator that writes what a
/// browser would post (KeylessTestFakes.SoftwareAuthenticator: its own CBOR, keys and JSON).
@Suite("passkeys in the provider: registration, sign-in without a password, the second factor, and every refusal")
struct PasskeyTests {
    static let origin = "https://idp.example.com"

    /// `subject`'s passkey, registered through the engine; returns the authenticator holding it.
    @discardableResult
    static func register(
        _ f: EngineFixture, subject: String = "alice", synced: Bool = false, name: String = "YubiKey 5C"
    ) async throws -> SoftwareAuthenticator {
        let authenticator = SoftwareAuthenticator(origin: origin, backupEligible: synced)
        let start = try await f.engine.passkeyRegistrationStart(subject: subject)
        let answer = try authenticator.register(options: start.options)
        _ = try await f.engine.finishPasskeyRegistration(
            state: start.state, credential: answer, name: name, subject: subject
        ).get()
        return authenticator
    }

    static func signIn(
        _ f: EngineFixture, _ authenticator: SoftwareAuthenticator, bend: SoftwareAuthenticator.Bend = .init()
    ) async throws -> Result<Authentication, LoginFailure> {
        let start = try f.engine.passkeySignInStart()
        return await f.engine.finishPasskeySignIn(
            state: start.state, credential: try authenticator.signIn(options: start.options, bend: bend))
    }

    /// The refusal's WebAuthn code, or nil when it was not a passkey refusal.
    static func code(_ result: Result<Authentication, LoginFailure>) -> String? {
        if case .failure(.passkeyRefused(_, let code)) = result { return code }
        return nil
    }

    @Test(
        "a person registers a passkey: stored with its name, user handle, flags and attestation; the same answer again is refused"
    )
    func registration() async throws {
        let f = try await EngineFixture()
        let authenticator = SoftwareAuthenticator(origin: Self.origin)
        let start = try await f.engine.passkeyRegistrationStart(subject: "alice")
        let options = try #require(
            try JSONSerialization.jsonObject(with: Data(start.options.utf8)) as? [String: Any])
        #expect((options["rp"] as? [String: String])?["id"] == "idp.example.com")
        #expect((options["user"] as? [String: String])?["name"] == "alice")
        #expect(options["attestation"] as? String == "none")
        let answer = try authenticator.register(options: start.options)
        let record = try await f.engine.finishPasskeyRegistration(
            state: start.state, credential: answer, name: "  YubiKey 5C  ", subject: "alice"
        ).get()
        #expect(record.name == "YubiKey 5C")
        #expect(record.subject == "alice" && !record.backupEligible && record.attestation == "none")
        #expect(record.transports == ["usb"])
        #expect(record.userHandle == Base64URL.encode(f.engine.userHandle(subject: "alice")))
        #expect(try await f.engine.passkeys(of: "alice").map(\.credentialID) == [record.credentialID])
        let again = await f.engine.finishPasskeyRegistration(
            state: start.state, credential: answer, name: "again", subject: "alice")
        #expect(throws: PasskeyRegistrationFailure.self) { try again.get() }
        // A ceremony started for alice cannot register a passkey for bob.
        let other = try await f.engine.passkeyRegistrationStart(subject: "alice")
        let stolen = await f.engine.finishPasskeyRegistration(
            state: other.state, credential: try authenticator.register(options: other.options), name: "x",
            subject: "bob")
        #expect(throws: PasskeyRegistrationFailure.self) { try stolen.get() }
        #expect(try await f.engine.passkeys(of: "bob").isEmpty)
        // Excluded next time: the page tells the browser which passkeys the person already has.
        let next = try await f.engine.passkeyRegistrationStart(subject: "alice")
        #expect(next.options.contains(record.credentialID))
        // Somebody who is not a user of idp.yaml has no passkeys here.
        await #expect(throws: PasskeyRegistrationFailure.self) {
            try await f.engine.passkeyRegistrationStart(subject: "corp:1234")
        }
    }

    @Test(
        "sign-in without a password: amr [hwk, mfa] and acr phrh in the ID token for a security key, [swk, mfa] and phr for a synced passkey; the counter and last use are recorded"
    )
    func passwordless() async throws {
        let f = try await EngineFixture()
        let key = try await Self.register(f)
        let authentication = try await Self.signIn(f, key).get()
        #expect(authentication == Authentication(subject: "alice", authTime: Fixture.reference, amr: ["hwk", "mfa"]))
        let (code, _) = try await f.code(authentication: authentication)
        let tokens = try await f.redeem(code)
        let claims = try jwtClaims(try #require(tokens.idToken))
        #expect(claims["amr"] as? [String] == ["hwk", "mfa"])
        #expect(claims["acr"] as? String == "phrh")
        #expect(try jwtClaims(tokens.accessToken)["acr"] as? String == "phrh")
        let stored = try #require(try await f.engine.passkeys(of: "alice").first)
        #expect(stored.signCount == 1 && stored.lastUsedAt == Fixture.reference)

        let synced = try await Self.register(f, subject: "u-carol-7", synced: true, name: "phone")
        let carol = try await Self.signIn(f, synced).get()
        #expect(carol.amr == ["swk", "mfa"])
        #expect(OAuthEngine.acr(amr: carol.amr) == "phr")
        #expect(OAuthEngine.acr(amr: ["pwd", "otp", "mfa"]) == nil)
    }

    @Test(
        "after the right password a person with a passkey must use it: passkeyRequired, then amr [pwd, hwk, mfa] with the password's time; another person's passkey is refused"
    )
    func secondFactor() async throws {
        let f = try await EngineFixture()
        let key = try await Self.register(f)
        let carolKey = try await Self.register(f, subject: "u-carol-7", name: "carol's")
        let result = await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address)
        guard case .failure(.passkeyRequired(let step)) = result else {
            Issue.record("a password alone signed in a person with a passkey: \(result)")
            return
        }
        #expect(step.options.contains(try #require(key.credentials.first).id.base64URL))
        f.clock.advance(by: 20)
        // carol's passkey answering alice's step.
        let wrong = await f.engine.finishPasskeySignIn(
            state: step.state, credential: try carolKey.signIn(options: step.options, credentialIndex: 0))
        guard case .failure(.passkeyRefused(let reason, _)) = wrong else {
            Issue.record("another person's passkey finished alice's sign-in: \(wrong)")
            return
        }
        #expect(reason.contains("another account"))
        let done = try await f.engine.finishPasskeySignIn(
            state: step.state, credential: try key.signIn(options: step.options)
        ).get()
        #expect(done == Authentication(subject: "alice", authTime: Fixture.reference, amr: ["pwd", "hwk", "mfa"]))
        // The wrong password never reaches the passkey step.
        #expect(
            await f.engine.login(username: "alice", password: "wrong", otp: nil, address: Fixture.address)
                == .failure(.invalid))
    }

    @Test(
        "a person with a one-time code and a passkey: the code with the password signs in (otp), without it the passkey is asked for; acr_values=phr asks for the passkey regardless"
    )
    func codeOrPasskey() async throws {
        let f = try await EngineFixture()
        try await Self.register(f, subject: "bob")
        guard
            case .failure(.passkeyRequired) = await f.engine.login(
                username: "bob", password: Fixture.bobPassword, otp: nil, address: Fixture.address)
        else {
            Issue.record("bob without a code is asked for his passkey")
            return
        }
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: Fixture.reference)
        let withCode = try await f.engine.login(
            username: "bob", password: Fixture.bobPassword, otp: code, address: Fixture.address
        ).get()
        #expect(withCode.amr == ["pwd", "otp", "mfa"])
        // A client asking for a phishing-resistant sign-in (acr_values=phr) gets the passkey step even with a code.
        f.clock.advance(by: 30)
        let later = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        guard
            case .failure(.passkeyRequired) = await f.engine.login(
                username: "bob", password: Fixture.bobPassword, otp: later, address: Fixture.address,
                phishingResistant: true)
        else {
            Issue.record("acr_values=phr let a one-time code stand in for the passkey")
            return
        }
        // And a session made with the code does not answer such a request.
        var query = f.query()
        query["acr_values"] = "phr"
        let request = try f.engine.validateAuthorization(query).get()
        #expect(request.wantsPhishingResistant && request.fields.contains { $0 == ("acr_values", "phr") })
        #expect(!f.engine.sessionSatisfies(withCode, request))
        #expect(
            f.engine.sessionSatisfies(
                Authentication(subject: "bob", authTime: f.clock.now, amr: ["hwk", "mfa"]), request))
        #expect(f.engine.sessionSatisfies(withCode, try f.engine.validateAuthorization(f.query()).get()))
    }

    @Test(
        "refused: a wrong origin, a wrong RP ID, no user verification without a password, another key's signature, a counter that went backwards, an expired page, a replayed answer"
    )
    func refusals() async throws {
        let f = try await EngineFixture()
        let key = try await Self.register(f)
        #expect(
            Self.code(try await Self.signIn(f, key, bend: .init(origin: "https://idp.example.com.evil.test")))
                == "webauthn_wrong_origin")
        #expect(Self.code(try await Self.signIn(f, key, bend: .init(rpID: "evil.test"))) == "webauthn_wrong_rp_id")
        #expect(
            Self.code(try await Self.signIn(f, key, bend: .init(userVerified: false))) == "webauthn_user_not_verified")
        #expect(Self.code(try await Self.signIn(f, key, bend: .init(crossOrigin: true))) == "webauthn_cross_origin")
        #expect(Self.code(try await Self.signIn(f, key, bend: .init(foreignKey: true))) == "webauthn_bad_signature")
        // A good sign-in moves the stored counter on; an answer with a lower counter (a copied key) is refused.
        _ = try await Self.signIn(f, key).get()
        let stored = try #require(try await f.engine.passkeys(of: "alice").first).signCount
        #expect(stored > 1)
        #expect(
            Self.code(try await Self.signIn(f, key, bend: .init(signCount: UInt32(stored - 1))))
                == "webauthn_counter_went_backwards")
        // Expired: the page was opened more than five minutes ago.
        let start = try f.engine.passkeySignInStart()
        let answer = try key.signIn(options: start.options)
        f.clock.advance(by: 301)
        guard
            case .failure(.passkeyRefused(let reason, nil)) = await f.engine.finishPasskeySignIn(
                state: start.state, credential: answer)
        else {
            Issue.record("an expired challenge was not refused as expired")
            return
        }
        #expect(reason.contains("expired"))
        // Replayed: the same answer posted twice (an authenticator without a counter, so only the spent challenge
        // stands in the way).
        let counterless = try await Self.register(f, subject: "u-carol-7")
        let again = try f.engine.passkeySignInStart()
        let once = try counterless.signIn(options: again.options, bend: .init(signCount: 0))
        _ = try await f.engine.finishPasskeySignIn(state: again.state, credential: once).get()
        #expect(Self.code(await f.engine.finishPasskeySignIn(state: again.state, credential: once)) == "replayed")
        // Garbage from the browser is a refusal, not a crash.
        guard
            case .failure(.passkeyRefused) = await f.engine.finishPasskeySignIn(
                state: again.state, credential: "{\"type\":\"public-key\"")
        else {
            Issue.record("malformed JSON")
            return
        }
    }

    @Test(
        "the counter policy 'report' accepts a counter that went backwards; a UV-less answer is accepted as a second factor"
    )
    func policies() async throws {
        var config = Fixture.config()
        var settings = IdPConfiguration.Passkeys()
        settings.signatureCounter = "report"
        config.passkeys = settings
        let f = try await EngineFixture(config: config)
        let key = try await Self.register(f)
        _ = try await Self.signIn(f, key).get()
        _ = try await Self.signIn(f, key).get()
        _ = try await Self.signIn(f, key, bend: .init(signCount: 1)).get()
        let step = await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address)
        guard case .failure(.passkeyRequired(let ceremony)) = step else {
            Issue.record("no passkey step")
            return
        }
        let done = try await f.engine.finishPasskeySignIn(
            state: ceremony.state,
            credential: try key.signIn(options: ceremony.options, bend: .init(userVerified: false))
        ).get()
        #expect(done.amr == ["pwd", "hwk", "mfa"])
    }

    @Test(
        "a challenge one replica issued is accepted by another sharing the store and key, once: the other replica then refuses the same answer"
    )
    func replicas() async throws {
        let store = MemoryIdPStore()
        let kek = SymmetricKey(size: .bits256)
        let a = try await EngineFixture(store: store, kek: kek)
        let b = try await EngineFixture(store: store, kek: kek)
        let key = try await Self.register(a)
        let start = try a.engine.passkeySignInStart()
        let answer = try key.signIn(options: start.options, bend: .init(signCount: 0))
        #expect(try await b.engine.finishPasskeySignIn(state: start.state, credential: answer).get().subject == "alice")
        #expect(Self.code(await a.engine.finishPasskeySignIn(state: start.state, credential: answer)) == "replayed")
        // A provider with another key cannot open the state at all.
        let stranger = try await EngineFixture()
        guard
            case .failure(.passkeyRefused) = await stranger.engine.finishPasskeySignIn(
                state: start.state, credential: answer)
        else {
            Issue.record("another provider's state was accepted")
            return
        }
    }

    @Test(
        "an enrolment link registers one passkey for the person it names, once; an expired, foreign or other-link ceremony is refused"
    )
    func enrolment() async throws {
        let f = try await EngineFixture()
        #expect(throws: KeylessError.self) { try f.engine.enrolmentLink(username: "mallory", validFor: 3600) }
        #expect(throws: KeylessError.self) { try f.engine.enrolmentLink(username: "alice", validFor: 8 * 86400) }
        let link = try f.engine.enrolmentLink(username: "carol", validFor: 3600)
        #expect(link.url.hasPrefix(Fixture.issuer + "/passkeys/enrol?token="))
        let token = try #require(URLComponents(string: link.url)?.queryItems?.first?.value)
        let opened = try #require(f.engine.openEnrolment(token))
        #expect(opened.subject == "u-carol-7" && opened.id == link.id)
        #expect(f.engine.openEnrolment(token + "x") == nil)
        let authenticator = SoftwareAuthenticator(origin: Self.origin)
        // A ceremony not started for this link (the person's own page) does not spend or use it.
        let unrelated = try await f.engine.passkeyRegistrationStart(subject: opened.subject)
        let refused = await f.engine.finishPasskeyRegistration(
            state: unrelated.state, credential: try authenticator.register(options: unrelated.options), name: "k",
            subject: opened.subject, enrolment: opened.id)
        #expect(throws: PasskeyRegistrationFailure.self) { try refused.get() }
        let first = try await f.engine.passkeyRegistrationStart(subject: opened.subject, enrolment: opened.id)
        _ = try await f.engine.finishPasskeyRegistration(
            state: first.state, credential: try authenticator.register(options: first.options), name: "first",
            subject: opened.subject, enrolment: opened.id
        ).get()
        // The link is used up: a second ceremony for it registers nothing.
        let second = try await f.engine.passkeyRegistrationStart(subject: opened.subject, enrolment: opened.id)
        let again = await f.engine.finishPasskeyRegistration(
            state: second.state, credential: try authenticator.register(options: second.options), name: "second",
            subject: opened.subject, enrolment: opened.id)
        #expect(throws: PasskeyRegistrationFailure.self) { try again.get() }
        #expect(try await f.engine.passkeys(of: "u-carol-7").map(\.name) == ["first"])
        f.clock.advance(by: 3601)
        #expect(f.engine.openEnrolment(token) == nil, "expired")
    }

    @Test(
        "a provider whose issuer is an IP address offers no passkeys: no ceremony starts, no enrolment link, and a password alone still signs in"
    )
    func offAtAnIPAddress() async throws {
        var config = Fixture.config()
        config.issuer = "http://127.0.0.1:9000"
        let f = try await EngineFixture(config: config, issuer: "http://127.0.0.1:9000")
        #expect(!f.engine.passkeysOffered)
        #expect(throws: PasskeyRegistrationFailure.self) { try f.engine.passkeySignInStart() }
        await #expect(throws: PasskeyRegistrationFailure.self) {
            try await f.engine.passkeyRegistrationStart(subject: "alice")
        }
        #expect(throws: KeylessError.self) { try f.engine.enrolmentLink(username: "alice", validFor: 600) }
        #expect(
            try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address
            ).get().amr == ["pwd"])
    }

    @Test("the relying party's origin is the issuer's as browsers write it: the default port left out, another kept")
    func origins() throws {
        for (issuer, origin) in [
            ("https://idp.example.com:443/", "https://idp.example.com"),
            ("https://idp.example.com:8443/tenant", "https://idp.example.com:8443"),
            ("http://localhost:80", "http://localhost"), ("http://localhost:9000", "http://localhost:9000"),
        ] {
            let party = try OAuthEngine.makeRelyingParty(config: Fixture.config(), issuer: issuer)
            #expect(party.origins == [origin], "\(issuer)")
        }
    }

    @Test("passkeys can be changed only within 15 minutes of a sign-in, by a person of idp.yaml, and only their own")
    func management() async throws {
        let f = try await EngineFixture()
        try await Self.register(f)
        let record = try #require(try await f.engine.passkeys(of: "alice").first)
        let fresh = Authentication(subject: "alice", authTime: Fixture.reference, amr: ["pwd"])
        #expect(f.engine.mayManagePasskeys(fresh))
        f.clock.advance(by: 15 * 60 + 1)
        #expect(!f.engine.mayManagePasskeys(fresh))
        #expect(!f.engine.mayManagePasskeys(Authentication(subject: "nobody", authTime: f.clock.now, amr: ["pwd"])))
        #expect(try await f.engine.removePasskey(subject: "bob", credentialID: record.credentialID) == false)
        #expect(try await f.engine.removePasskey(subject: "alice", credentialID: record.credentialID))
        #expect(try await f.engine.passkeys(of: "alice").isEmpty)
    }
}

extension [UInt8] {
    fileprivate var base64URL: String { Base64URL.encode(self) }
}
