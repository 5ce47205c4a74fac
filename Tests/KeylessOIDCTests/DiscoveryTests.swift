import Foundation
import KeylessCore
import KeylessOIDC
import KeylessTestFakes
import Testing

@Suite("Discovery")
struct DiscoveryTests {
    @Test("the discovery document is fetched from issuer/.well-known/openid-configuration and its endpoints returned")
    func fetchesMetadata() async throws {
        let idp = StubIdP()
        let metadata = try await Discovery.fetch(issuer: testIssuer + "/", http: idp, logger: quietLogger)

        #expect(metadata.issuer == testIssuer)
        #expect(metadata.tokenEndpoint == testIssuer + "/token")
        #expect(metadata.authorizationEndpoint == testIssuer + "/authorize")
        #expect(metadata.jwksURI == testIssuer + "/jwks")
        #expect(metadata.deviceAuthorizationEndpoint == nil)
        #expect(await idp.requests.map(\.url) == [testIssuer + "/.well-known/openid-configuration"])
    }

    @Test("a discovery document naming another issuer is rejected with idpError")
    func rejectsIssuerMismatch() async throws {
        let idp = StubIdP(advertisedIssuer: "https://other.example.test")
        let error = await keylessError { try await Discovery.fetch(issuer: testIssuer, http: idp, logger: quietLogger) }
        #expect(error?.code == .idpError)
    }

    @Test("an http issuer on a non-loopback host is refused with usage before anything is sent")
    func rejectsPlainHTTP() async throws {
        let idp = StubIdP(issuer: "http://idp.example.test")
        let error = await keylessError {
            try await Discovery.fetch(issuer: "http://idp.example.test", http: idp, logger: quietLogger)
        }
        #expect(error?.code == .usage)
        #expect(await idp.requests.isEmpty)
    }

    @Test(
        "an http issuer on a loopback address is allowed",
        arguments: ["http://127.0.0.1:5556", "http://localhost:5556"])
    func allowsLoopbackHTTP(issuer: String) async throws {
        let idp = StubIdP(issuer: issuer)
        let metadata = try await Discovery.fetch(issuer: issuer, http: idp, logger: quietLogger)
        #expect(metadata.issuer == issuer)
    }

    @Test(
        "an issuer that is not an http(s) URL is refused with usage",
        arguments: ["idp.example.test", "ftp://idp.example.test", ""])
    func rejectsNonURL(issuer: String) async throws {
        let idp = StubIdP(issuer: issuer)
        let error = await keylessError { try await Discovery.fetch(issuer: issuer, http: idp, logger: quietLogger) }
        #expect(error?.code == .usage)
        #expect(await idp.requests.isEmpty)
    }

    @Test("an identity provider that cannot be reached gives idpUnreachable")
    func unreachable() async throws {
        let idp = StubIdP(unreachable: true)
        let error = await keylessError { try await Discovery.fetch(issuer: testIssuer, http: idp, logger: quietLogger) }
        #expect(error?.code == .idpUnreachable)
    }

    @Test("a discovery URL that answers 404 gives idpError")
    func notFound() async throws {
        let idp = StubIdP(issuer: "https://elsewhere.example.test")
        let error = await keylessError { try await Discovery.fetch(issuer: testIssuer, http: idp, logger: quietLogger) }
        #expect(error?.code == .idpError)
    }

    @Test("the client fetches the discovery document once and reuses it")
    func clientCachesMetadata() async throws {
        let idp = StubIdP()
        let client = makeClient(idp)
        _ = try await client.metadata()
        _ = try await client.metadata()
        #expect(await idp.discoveryFetches == 1)
    }

    @Test("the client reports idpUnreachable when verifying a token against an unreachable provider")
    func clientUnreachable() async throws {
        let idp = StubIdP(unreachable: true)
        let token = try await mint(claims(), with: try RSATestKey(kid: "rsa-1"))
        let error = await keylessError { try await makeClient(idp).verify(idToken: token) }
        #expect(error?.code == .idpUnreachable)
    }
}
