import Foundation
import KeylessCore
import KeylessHTTP
import KeylessOIDC
import KeylessTestFakes
import Testing

/// A presenter that opens no browser and remembers the device code it was asked to show.
final class SilentPresenter: LoginPresenter, @unchecked Sendable {
    // @unchecked: `deviceCodes` is only read and written under `lock`.
    private let lock = NSLock()
    private var deviceCodes: [(userCode: String, uri: String, complete: String?)] = []

    var shownDeviceCodes: [(userCode: String, uri: String, complete: String?)] { lock.withLock { deviceCodes } }

    func openBrowser(_ url: String) -> Bool { false }
    func showLoginURL(_ url: String, browserOpened: Bool) {}
    func showDeviceCode(userCode: String, verificationURI: String, verificationURIComplete: String?) {
        lock.withLock { deviceCodes.append((userCode, verificationURI, verificationURIComplete)) }
    }
    func waiting(_ message: String) -> @Sendable () -> Void { {} }
}

/// Moments at which something happened, on the continuous clock.
final class Moments: @unchecked Sendable {
    // @unchecked: `moments` is only read and written under `lock`.
    private let lock = NSLock()
    private var moments: [ContinuousClock.Instant] = []
    func record() { lock.withLock { moments.append(.now) } }
    var all: [ContinuousClock.Instant] { lock.withLock { moments } }
}

@Suite("Refresh")
struct RefreshTests {
    @Test("a refresh answer without id_token keeps the old ID token while it is valid")
    func keepsValidIDToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let old = try await mint(claims { $0.exp = at(3600) }, with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                jsonResponse(["access_token": "at-2", "token_type": "Bearer", "expires_in": 300])
            })
        let previous = TokenSet(
            idToken: old, refreshToken: "rt-1", accessToken: "at-1", accessTokenExpiresAt: nil,
            obtainedAt: referenceTime.addingTimeInterval(-600))

        let refreshed = try await makeClient(idp).refresh(previous)

        #expect(refreshed.idToken == old)
        #expect(refreshed.refreshToken == "rt-1")
        #expect(refreshed.accessToken == "at-2")
        #expect(refreshed.accessTokenExpiresAt == referenceTime.addingTimeInterval(300))
        #expect(refreshed.obtainedAt == referenceTime)
        let form = try #require(await idp.requests(to: idp.tokenURL).first).form
        #expect(form["grant_type"] == "refresh_token")
        #expect(form["refresh_token"] == "rt-1")
        #expect(form["client_id"] == testClientID)
    }

    @Test("a refresh answer without id_token while the old ID token has expired requires a new login")
    func expiredOldIDToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let old = try await mint(
            claims {
                $0.iat = at(-7200); $0.exp = at(-10)
            }, with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                jsonResponse(["access_token": "at-2", "token_type": "Bearer", "expires_in": 300])
            })
        let previous = TokenSet(
            idToken: old, refreshToken: "rt-1", accessToken: nil, accessTokenExpiresAt: nil, obtainedAt: referenceTime)

        let error = await keylessError { try await makeClient(idp).refresh(previous) }
        #expect(error?.code == .loginRequired)
    }

    @Test("invalid_grant from the token endpoint requires a new login")
    func invalidGrant() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                jsonResponse(400, ["error": "invalid_grant", "error_description": "refresh token revoked"])
            })
        let previous = TokenSet(
            idToken: try await mint(claims(), with: key), refreshToken: "rt-1", accessToken: nil,
            accessTokenExpiresAt: nil, obtainedAt: referenceTime)

        let error = await keylessError { try await makeClient(idp).refresh(previous) }
        #expect(error?.code == .loginRequired)
    }

    @Test("a server error during refresh is an idpError, not a reason to log in again")
    func serverError() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in jsonResponse(503, ["error": "temporarily_unavailable"]) })
        let previous = TokenSet(
            idToken: try await mint(claims(), with: key), refreshToken: "rt-1", accessToken: nil,
            accessTokenExpiresAt: nil, obtainedAt: referenceTime)

        let error = await keylessError { try await makeClient(idp).refresh(previous) }
        #expect(error?.code == .idpError)
    }

    @Test("a rotated refresh token and a new ID token replace the old ones")
    func rotatesRefreshToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let old = try await mint(claims { $0.sub = "old" }, with: key)
        let fresh = try await mint(claims { $0.sub = "fresh" }, with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                jsonResponse(["id_token": fresh, "refresh_token": "rt-2", "access_token": "at-2", "expires_in": 60])
            })
        let previous = TokenSet(
            idToken: old, refreshToken: "rt-1", accessToken: "at-1", accessTokenExpiresAt: nil,
            obtainedAt: referenceTime)

        let refreshed = try await makeClient(idp).refresh(previous)

        #expect(refreshed.idToken == fresh)
        #expect(refreshed.refreshToken == "rt-2")
        #expect(refreshed.accessToken == "at-2")
    }

    @Test("a refresh answer whose new ID token does not verify is rejected")
    func verifiesRefreshedIDToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let foreign = try await mint(claims { $0.aud = ["another-client"] }, with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in jsonResponse(["id_token": foreign, "refresh_token": "rt-2"]) })
        let previous = TokenSet(
            idToken: try await mint(claims(), with: key), refreshToken: "rt-1", accessToken: nil,
            accessTokenExpiresAt: nil, obtainedAt: referenceTime)

        let error = await keylessError { try await makeClient(idp).refresh(previous) }
        #expect(error?.code == .tokenInvalid)
    }

    @Test("a token set without refresh token requires a new login and sends nothing")
    func noRefreshToken() async throws {
        let idp = StubIdP()
        let previous = TokenSet(
            idToken: "x.y.z", refreshToken: nil, accessToken: nil, accessTokenExpiresAt: nil, obtainedAt: referenceTime)

        let error = await keylessError { try await makeClient(idp).refresh(previous) }
        #expect(error?.code == .loginRequired)
        #expect(await idp.requests.isEmpty)
    }
}

@Suite("Device authorization flow")
struct DeviceFlowTests {
    static func deviceAnswer(interval: Int = 0, expiresIn: Int = 600) -> StubIdP.Endpoint {
        { _, _ in
            jsonResponse([
                "device_code": "dc-1", "user_code": "WDJB-MJHT", "verification_uri": testIssuer + "/activate",
                "verification_uri_complete": testIssuer + "/activate?user_code=WDJB-MJHT",
                "interval": interval, "expires_in": expiresIn,
            ])
        }
    }

    @Test("authorization_pending is polled through until the provider answers with tokens")
    func pendingThenSuccess() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let token = try await mint(claims(), with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, call in
                call < 3
                    ? jsonResponse(400, ["error": "authorization_pending"])
                    : jsonResponse([
                        "id_token": token, "refresh_token": "rt-1", "access_token": "at-1", "expires_in": 3600,
                    ])
            }, deviceEndpoint: Self.deviceAnswer())
        let presenter = SilentPresenter()

        let tokens = try await makeClient(idp).loginWithDevice(presenter: presenter)

        #expect(tokens.idToken == token)
        #expect(tokens.refreshToken == "rt-1")
        #expect(await idp.tokenCalls == 3)
        for request in await idp.requests(to: idp.tokenURL) {
            #expect(request.form["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code")
            #expect(request.form["device_code"] == "dc-1")
            #expect(request.form["client_id"] == testClientID)
        }
        let deviceForm = try #require(await idp.requests(to: idp.deviceURL).first).form
        #expect(deviceForm["client_id"] == testClientID)
        #expect(deviceForm["scope"]?.split(separator: " ").contains("openid") == true)
        #expect(presenter.shownDeviceCodes.map(\.userCode) == ["WDJB-MJHT"])
        #expect(presenter.shownDeviceCodes.first?.complete == testIssuer + "/activate?user_code=WDJB-MJHT")
    }

    @Test("slow_down makes the next poll wait at least 5 s longer (RFC 8628 §3.5); takes about 5 s")
    func slowDown() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let token = try await mint(claims(), with: key)
        let moments = Moments()
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, call in
                moments.record()
                return call == 1 ? jsonResponse(400, ["error": "slow_down"]) : jsonResponse(["id_token": token])
            }, deviceEndpoint: Self.deviceAnswer(interval: 0))

        _ = try await makeClient(idp).loginWithDevice(presenter: SilentPresenter())

        let polls = moments.all
        try #require(polls.count == 2)
        #expect(polls[1] - polls[0] >= .seconds(5))
    }

    @Test(
        "a provider's non-finite interval and expires_in (\"nan\", \"1e999\", \"-inf\") fall back to RFC 8628's defaults (5 s, 600 s) instead of trapping; takes about 5 s"
    )
    func nonFiniteNumbers() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let token = try await mint(claims(), with: key)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                jsonResponse(["id_token": token, "expires_in": "nan"])
            },
            deviceEndpoint: { _, _ in
                jsonResponse([
                    "device_code": "dc-1", "user_code": "WDJB-MJHT", "verification_uri": testIssuer + "/activate",
                    "interval": "nan", "expires_in": "1e999",
                ])
            })
        let tokens = try await makeClient(idp).loginWithDevice(presenter: SilentPresenter())
        #expect(tokens.idToken == token)
        #expect(tokens.accessTokenExpiresAt == nil, "a non-finite expires_in is no expiry at all")
        #expect(await idp.tokenCalls == 1)
    }

    @Test(
        "a denied or expired device code ends the login with loginFailed",
        arguments: ["access_denied", "expired_token"])
    func deniedOrExpired(error code: String) async throws {
        let idp = StubIdP(
            tokenEndpoint: { _, _ in jsonResponse(400, ["error": code]) }, deviceEndpoint: Self.deviceAnswer())

        let error = await keylessError { try await makeClient(idp).loginWithDevice(presenter: SilentPresenter()) }
        #expect(error?.code == .loginFailed)
        #expect(await idp.tokenCalls == 1)
    }

    @Test("polling stops with loginFailed once expires_in has passed on the injected clock")
    func stopsAtDeadline() async throws {
        let clock = ManualClock()
        let idp = StubIdP(
            tokenEndpoint: { _, _ in
                clock.advance(by: 400)
                return jsonResponse(400, ["error": "authorization_pending"])
            }, deviceEndpoint: Self.deviceAnswer(expiresIn: 600))

        let error = await keylessError {
            try await makeClient(idp, clock: clock.wallClock).loginWithDevice(presenter: SilentPresenter())
        }
        #expect(error?.code == .loginFailed)
        #expect(await idp.tokenCalls == 2)
    }

    @Test("an unexpected token-endpoint error during polling is an idpError")
    func unexpectedError() async throws {
        let idp = StubIdP(
            tokenEndpoint: { _, _ in jsonResponse(401, ["error": "invalid_client"]) },
            deviceEndpoint: Self.deviceAnswer())

        let error = await keylessError { try await makeClient(idp).loginWithDevice(presenter: SilentPresenter()) }
        #expect(error?.code == .idpError)
    }

    @Test("a provider without a device endpoint is refused with usage")
    func noDeviceEndpoint() async throws {
        let idp = StubIdP()
        let error = await keylessError { try await makeClient(idp).loginWithDevice(presenter: SilentPresenter()) }
        #expect(error?.code == .usage)
    }
}
