import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessCore
import KeylessHTTPServer
import KeylessIdPServer
import Testing

@Suite("Trusted proxies: X-Forwarded-For is believed only from them")
struct TrustedProxyTests {
    static let proxies: TrustedProxies = {
        do { return try TrustedProxies(["10.0.0.0/8", "192.0.2.7", "fd00::/8"], what: "--trusted-proxy") } catch {
            fatalError("\(error)")
        }
    }()

    @Test("from a peer that is not a trusted proxy the header is ignored, whatever it says")
    func untrustedPeer() {
        #expect(Self.proxies.clientAddress(peer: "203.0.113.5", forwardedFor: ["198.51.100.1"]) == "203.0.113.5")
        #expect(TrustedProxies.none.clientAddress(peer: "10.1.1.1", forwardedFor: ["198.51.100.1"]) == "10.1.1.1")
    }

    @Test(
        "from a trusted proxy the client is the right-most address that is not a trusted proxy; what the client wrote to its left is ignored"
    )
    func rightMostUntrusted() {
        #expect(Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["198.51.100.1"]) == "198.51.100.1")
        // The client sent a forged first entry; the proxy appended the real address.
        #expect(Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["6.6.6.6, 198.51.100.1"]) == "198.51.100.1")
        // Two proxies in a row, over two header lines.
        #expect(
            Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["198.51.100.2", "192.0.2.7"]) == "198.51.100.2")
        // Every hop a trusted proxy: the left-most of them.
        #expect(Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["10.9.9.9"]) == "10.9.9.9")
        // A hop that is no address ends the walk at the last good one.
        #expect(Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: ["198.51.100.3, unknown"]) == "10.0.0.5")
        #expect(Self.proxies.clientAddress(peer: "10.0.0.5", forwardedFor: []) == "10.0.0.5")
        #expect(Self.proxies.clientAddress(peer: "fd12::1", forwardedFor: ["2001:db8::7"]) == "2001:db8::7")
        #expect(
            Self.proxies.clientAddress(peer: "::ffff:10.0.0.5", forwardedFor: ["198.51.100.4"]) == "198.51.100.4",
            "IPv4-mapped IPv6 peer")
    }

    @Test(
        "CIDR blocks match by prefix, and bad entries are refused with the form to use",
        arguments: ["10.0.0.0/33", "not-an-ip", "10.0.0.0/x", "::1/129"])
    func badEntries(_ spec: String) {
        let error = #expect(throws: KeylessError.self) { try TrustedProxies([spec], what: "--trusted-proxy") }
        #expect(error?.reason.contains(spec) == true && error?.hint != nil, "\(String(describing: error))")
    }

    @Test(
        "behind a trusted proxy each forwarded client has its own login throttle; without trusting it they would share the proxy's"
    )
    func throttlePerForwardedClient() async throws {
        let fixture = try await IdPServerFixture.make(
            trustedProxies: try TrustedProxies(["127.0.0.1"], what: "--trusted-proxy"))
        try await fixture.application().test(.live) { client in
            func signIn(as forwardedFor: String, password: String) async throws -> TestResponse {
                let page = try await client.execute(
                    uri: "/authorize?" + formEncode(cliAuthorizationQuery()), method: .get,
                    headers: [HTTPField.Name("X-Forwarded-For")!: forwardedFor])
                let binding = try #require(
                    setCookie(page, "keyless_csrf").flatMap { $0.split(separator: ";").first }.map(String.init))
                var headers = formHeaders()
                headers[.cookie] = binding
                headers[HTTPField.Name("X-Forwarded-For")!] = forwardedFor
                let form = hiddenFields(text(page)) + [("username", "alice"), ("password", password)]
                return try await client.execute(
                    uri: "/authorize", method: .post, headers: headers, body: formBody(form))
            }
            for _ in 0..<3 {
                let wrong = try await signIn(as: "198.51.100.66", password: "guess")
                #expect(wrong.status == .unauthorized)
            }
            let throttled = try await signIn(as: "198.51.100.66", password: Fixture.alicePassword)
            #expect(throttled.status == .tooManyRequests)
            let other = try await signIn(as: "198.51.100.67", password: Fixture.alicePassword)
            #expect(other.status == .seeOther, "another client behind the same proxy")
        }
        let logged = fixture.logs.records.filter { $0.message == "request" }.compactMap { $0.metadata["peer"] }
        #expect(
            Set(logged) == ["198.51.100.66", "198.51.100.67"],
            "the request log names the client, not the proxy: \(logged)")
    }
}
