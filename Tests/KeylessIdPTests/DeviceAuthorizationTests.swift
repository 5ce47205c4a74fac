import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

@Suite("device authorization (RFC 8628)")
struct DeviceFlowTests {
    static let consonants = Set("BCDFGHJKLMNPQRSTVWXZ")

    func start(_ f: EngineFixture) async throws -> DeviceAuthorization {
        try await f.engine.authorizeDevice(
            form: ["client_id": "cli", "scope": "openid email offline_access"],
            credentials: ClientCredentials(authorization: nil, form: ["client_id": "cli"]), address: Fixture.address)
    }

    func poll(_ f: EngineFixture, _ device: DeviceAuthorization) async throws -> TokenResponse {
        try await f.token(["grant_type": OAuthEngine.deviceGrant, "device_code": device.deviceCode, "client_id": "cli"])
    }

    @Test("authorizeDevice returns an XXXX-XXXX consonant user code and verification URIs under the issuer")
    func authorization() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        let code = Array(device.userCode)
        #expect(code.count == 9 && code[4] == "-")
        #expect((code[0..<4] + code[5...]).allSatisfy { Self.consonants.contains($0) })
        #expect(device.verificationURI == Fixture.issuer + "/device")
        #expect(device.verificationURIComplete == Fixture.issuer + "/device?user_code=" + device.userCode)
        #expect(device.expiresIn == Fixture.lifetimes.deviceCode)
        #expect(device.interval == Fixture.lifetimes.deviceInterval)
        #expect(device.deviceCode.utf8.count >= 43)
        #expect(try await start(f).userCode != device.userCode)
    }

    @Test("polling before approval is authorization_pending; polling again sooner than the interval is slow_down")
    func pendingAndSlowDown() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        f.clock.advance(by: 1)
        await expectOAuthError("slow_down") { try await poll(f, device) }
        // slow_down raised the interval from 5 s to 10 s: a poll 10 s later is fine, one 6 s after that is too soon.
        f.clock.advance(by: 10)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        f.clock.advance(by: 6)
        await expectOAuthError("slow_down") { try await poll(f, device) }
    }

    @Test("after approval the device gets tokens for the approving user once; the next poll is invalid_grant")
    func approved() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        await expectOAuthError("authorization_pending") { try await poll(f, device) }
        let pending = try #require(try await f.engine.pendingDevice(userCode: device.userCode))
        #expect(pending.clientID == "cli" && pending.scope == "openid email offline_access")
        #expect(
            try await f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication("u-carol-7")))
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceInterval))
        let tokens = try await poll(f, device)
        #expect(try jwtClaims(#require(tokens.idToken))["sub"] as? String == "u-carol-7")
        #expect(tokens.scope == "openid email offline_access")
        #expect(try await f.refresh(tokens.refreshToken).refreshToken != nil)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceInterval))
        await expectOAuthError("invalid_grant") { try await poll(f, device) }
        // A decided code is no longer pending.
        #expect(try await f.engine.pendingDevice(userCode: device.userCode) == nil)
        #expect(
            try await !f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication()))
    }

    @Test("a denied request is access_denied")
    func denied() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        #expect(
            try await f.engine.decideDevice(
                userCode: device.userCode, approve: false, authentication: f.authentication()))
        await expectOAuthError("access_denied") { try await poll(f, device) }
    }

    @Test("a request polled after lifetimes.device_code is expired_token, and can no longer be approved")
    func expired() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.deviceCode + 1))
        await expectOAuthError("expired_token") { try await poll(f, device) }
        #expect(try await f.engine.pendingDevice(userCode: device.userCode) == nil)
        #expect(
            try await !f.engine.decideDevice(
                userCode: device.userCode, approve: true, authentication: f.authentication()))
    }

    @Test("pendingDevice accepts the user code in lower case, without the dash, or with spaces")
    func typedUserCodes() async throws {
        let f = try await EngineFixture()
        let device = try await start(f)
        let bare = device.userCode.replacingOccurrences(of: "-", with: "")
        let spaced = " " + String(bare.prefix(4)) + " " + String(bare.suffix(4)) + " "
        for typed in [device.userCode.lowercased(), bare, bare.lowercased(), spaced] {
            #expect(try await f.engine.pendingDevice(userCode: typed)?.userCode == bare, "\(typed)")
        }
        // Vowels never occur in a user code, so this one cannot exist.
        #expect(try await f.engine.pendingDevice(userCode: "AEIO-UAEI") == nil)
    }

    @Test(
        "a client without the device_code grant is unauthorized_client; a scope the client may not ask for is invalid_scope"
    )
    func deviceGrantRequired() async throws {
        let f = try await EngineFixture()
        await expectOAuthError("unauthorized_client") {
            try await f.engine.authorizeDevice(
                form: [:],
                credentials: ClientCredentials(authorization: basicAuthorization("web", Fixture.webSecret), form: [:]),
                address: Fixture.address)
        }
        await expectOAuthError("invalid_scope") {
            try await f.engine.authorizeDevice(
                form: ["scope": "openid deploy"],
                credentials: ClientCredentials(authorization: nil, form: ["client_id": "cli"]), address: Fixture.address
            )
        }
    }
}
