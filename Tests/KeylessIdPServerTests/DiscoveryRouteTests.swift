import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import Testing

@Suite("IdP server: discovery and JWKS")
struct DiscoveryRouteTests {
    @Test("the discovery document names this issuer, every endpoint under it, S256 PKCE and the device grant")
    func discoveryDocument() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            try await client.execute(uri: "/.well-known/openid-configuration", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                let doc = try json(response)
                #expect(doc["issuer"] as? String == "https://idp.example.com")
                #expect(doc["authorization_endpoint"] as? String == "https://idp.example.com/authorize")
                #expect(doc["token_endpoint"] as? String == "https://idp.example.com/token")
                #expect(doc["jwks_uri"] as? String == "https://idp.example.com/jwks.json")
                #expect(doc["userinfo_endpoint"] as? String == "https://idp.example.com/userinfo")
                #expect(doc["revocation_endpoint"] as? String == "https://idp.example.com/revoke")
                #expect(
                    doc["device_authorization_endpoint"] as? String == "https://idp.example.com/device_authorization")
                #expect(doc["code_challenge_methods_supported"] as? [String] == ["S256"])
                #expect(doc["id_token_signing_alg_values_supported"] as? [String] == ["ES256"])
                #expect(doc["response_types_supported"] as? [String] == ["code"])
                #expect(doc["authorization_response_iss_parameter_supported"] as? Bool == true)
                #expect(
                    doc["grant_types_supported"] as? [String] == [
                        "authorization_code", "client_credentials", "refresh_token",
                        "urn:ietf:params:oauth:grant-type:device_code",
                    ])
            }
        }
    }

    @Test(
        "discovery and JWKS are cacheable by anyone for five minutes and readable cross-origin, with the security headers"
    )
    func discoveryAndJWKSAreCacheable() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            for uri in ["/.well-known/openid-configuration", "/jwks.json"] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok, "\(uri)")
                    #expect(response.headers[.contentType] == "application/json", "\(uri)")
                    #expect(response.headers[.accessControlAllowOrigin] == "*", "\(uri)")
                    expectSecurityHeaders(response, cacheControl: "public, max-age=300")
                }
            }
        }
    }

    @Test("the JWKS publishes the ES256 signing key as a public P-256 JWK, without private material")
    func jwksPublishesOnlyPublicKey() async throws {
        let fixture = try await IdPServerFixture.make()
        try await fixture.withRouter { client in
            try await client.execute(uri: "/jwks.json", method: .get) { response in
                let keys = try json(response)["keys"] as? [[String: Any]] ?? []
                #expect(keys.count == 1)
                let key = try #require(keys.first)
                #expect(key["kty"] as? String == "EC")
                #expect(key["crv"] as? String == "P-256")
                #expect(key["alg"] as? String == "ES256")
                #expect(key["use"] as? String == "sig")
                #expect((key["kid"] as? String)?.isEmpty == false)
                #expect(key["x"] is String && key["y"] is String)
                #expect(key["d"] == nil, "a JWKS must never carry the private scalar")
            }
        }
    }
}
