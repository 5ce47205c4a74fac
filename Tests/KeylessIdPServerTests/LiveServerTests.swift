import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KeylessIdP
import KeylessHTTPServer
import KeylessIdPServer
import KeylessTestSupport
import NIOCore
import ServiceLifecycle
import Testing

/// Remembers the address `onRunning` reported.
/// `@unchecked Sendable`: `stored` is only read or written while holding `lock`.
final class AddressBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: SocketAddress?
    var address: SocketAddress? { lock.withLock { stored } }
    func set(_ address: SocketAddress?) { lock.withLock { stored = address } }
}

@Suite("IdP server: over a real socket")
struct LiveServerTests {
    @Test("a silent connection and a half-sent request head are closed after the idle timeout")
    func idleAndHalfSentConnectionsClose() async throws {
        let fixture = try await IdPServerFixture.make(idleTimeout: 1)
        try await fixture.application().test(.live) { client in
            let port = try #require(client.port)
            // (The test client's own idle connection is closed too, so it sends nothing here.)
            #expect(try RawConnection.serverCloses(port: port, within: 15), "a connection that sends nothing is closed")
            #expect(
                try RawConnection.serverCloses(
                    port: port, after: Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n".utf8), within: 15),
                "a request head that never ends is closed")
        }
    }

    @Test("the server binds a loopback port, reports it through onRunning and serves discovery over TCP")
    func discoveryOverSocket() async throws {
        let fixture = try await IdPServerFixture.make()
        let reported = AddressBox()
        let app = fixture.application { address in reported.set(address) }
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let response = try await client.execute(uri: "/.well-known/openid-configuration", method: .get)
            #expect(response.status == .ok)
            #expect(try json(response)["issuer"] as? String == Fixture.issuer)
            #expect(response.headers[.accessControlAllowOrigin] == "*")
            #expect(response.headers[.xContentTypeOptions] == "nosniff")
            let address = try #require(reported.address)
            #expect(address.port == port)
            #expect(["127.0.0.1", "::1"].contains(address.ipAddress ?? ""), "\(address)")
        }
        // Over TCP the request log names the real peer instead of "unknown".
        let logged = try #require(fixture.logs.records.first { $0.message == "request" })
        #expect(["127.0.0.1", "::1"].contains(logged.metadata["peer"] ?? ""), "\(logged.metadata)")
    }

    @Test(
        "with IdPServerConfiguration 127.0.0.1 port 0 the application itself binds 127.0.0.1 on a free port and stops on shutdown"
    )
    func bindsConfiguredAddress() async throws {
        let fixture = try await IdPServerFixture.make(host: "127.0.0.1", port: 0)
        let (addresses, continuation) = AsyncStream.makeStream(of: SocketAddress?.self)
        let app = fixture.application { address in
            continuation.yield(address)
            continuation.finish()
        }
        let serviceGroup = ServiceGroup(configuration: .init(services: [app], logger: fixture.logs.logger))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // If the server cannot start, end the stream so the test fails instead of waiting forever.
                defer { continuation.finish() }
                try await serviceGroup.run()
            }
            var iterator = addresses.makeAsyncIterator()
            let bound = await iterator.next()
            guard let address = bound ?? nil, let port = address.port else {
                await serviceGroup.triggerGracefulShutdown()
                try await group.waitForAll()
                Issue.record("the server did not report a bound address")
                return
            }
            #expect(address.ipAddress == "127.0.0.1")
            #expect(port > 0)
            let response = try await TestClient.withClient(host: "127.0.0.1", port: port) { client in
                try await client.get("/healthz")
            }
            #expect(response.status == .ok)
            #expect(response.body.map { String(buffer: $0) } == #"{"status":"ok"}"#)
            await serviceGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }
}
