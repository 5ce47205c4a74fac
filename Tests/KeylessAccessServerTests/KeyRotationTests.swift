import Foundation
import Hummingbird
import HummingbirdTesting
import KeylessAccessServer
import Testing

/// An issuer rotating its signing key while the server runs.
@Suite("Access server: issuer key rotation")
struct KeyRotationTests {
    static let alice = TestUser("alice", email: "alice@example.com", groups: ["platform-admins"])

    @Test(
        "after the issuer switches to a new key, a token with the new kid is accepted after exactly one JWKS refetch, without a restart"
    )
    func rotation() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.live) { client in
            let old = try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token()))
            #expect(old.status == .ok)
            #expect(fixture.jwks.fetches() == 1)

            // The issuer rotates: only the new key is published from now on.
            fixture.jwks.publish([Keys.mainRotated], at: Issuers.mainJWKS)
            fixture.clock.advance(by: fixture.configuration.jwksRefetchInterval + 1)
            let rotated = try signedToken(
                Self.alice.claims {
                    $0["iat"] = at(20); $0["exp"] = at(3620)
                }, key: Keys.mainRotated)

            let first = try await client.get("/api/v1/config", authorization: "Bearer " + rotated)
            #expect(first.status == .ok, "\(text(first))")
            #expect(fixture.jwks.fetches() == 2, "exactly one refetch for the new kid")

            // Another new-key token from the same caller: the keys are known now, no more fetches.
            let second = try signedToken(
                Self.alice.claims {
                    $0["iat"] = at(30); $0["exp"] = at(3630); $0["jti"] = "again"
                }, key: Keys.mainRotated)
            let again = try await client.get("/api/v1/config", authorization: "Bearer " + second)
            #expect(again.status == .ok)
            #expect(fixture.jwks.fetches() == 2)

            // A fresh token under the retired key is now refused (the key is no longer published).
            let retired = try signedToken(Self.alice.claims { $0["jti"] = "retired" }, key: Keys.mainRSA)
            let refused = try await client.get("/api/v1/config", authorization: "Bearer " + retired)
            #expect(refused.status == .unauthorized)
        }
    }

    @Test(
        "a token with a new kid that arrives within jwks_refetch_interval of the last fetch is refused, and accepted once the interval has passed"
    )
    func rotationWithinRefetchInterval() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        try await fixture.application().test(.router) { client in
            #expect(
                try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token())).status
                    == .ok)
            fixture.jwks.publish([Keys.mainRSA, Keys.mainRotated], at: Issuers.mainJWKS)
            let rotated = try signedToken(Self.alice.claims(), key: Keys.mainRotated)
            let early = try await client.get("/api/v1/config", authorization: "Bearer " + rotated)
            #expect(early.status == .unauthorized)
            #expect(fixture.jwks.fetches() == 1)
            fixture.clock.advance(by: fixture.configuration.jwksRefetchInterval)
            let later = try await client.get("/api/v1/config", authorization: "Bearer " + rotated)
            #expect(later.status == .ok, "\(text(later))")
            #expect(fixture.jwks.fetches() == 2)
        }
    }

    @Test(
        "when the issuer's keys cannot be fetched the API answers 503 issuer_unavailable (not 401, so clients retry instead of logging in again), and recovers once the JWKS is back"
    )
    func jwksUnavailable() async throws {
        let fixture = try ServerFixture.make()
        defer { fixture.remove() }
        fixture.jwks.unpublish(Issuers.mainJWKS)
        try await fixture.application().test(.router) { client in
            let response = try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token()))
            #expect(response.status == .serviceUnavailable, "\(text(response))")
            #expect(try json(response)["error"] as? String == "issuer_unavailable")
            #expect(response.headers[.wwwAuthenticate] == nil)

            fixture.jwks.publish([Keys.mainRSA], at: Issuers.mainJWKS)
            fixture.clock.advance(by: fixture.configuration.jwksRefetchInterval)
            let back = try await client.get("/api/v1/config", authorization: "Bearer " + (try Self.alice.token()))
            #expect(back.status == .ok, "\(text(back))")
        }
    }
}
