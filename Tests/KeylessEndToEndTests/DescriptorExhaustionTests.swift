import Foundation
#if canImport(Glibc)
    import Glibc
#endif
import KeylessHTTPServer
import KeylessTestSupport
import Testing

/// The provider under a small descriptor limit with more idle clients than descriptors.
@Suite("keyless idp serve keeps serving when descriptors run short", .serialized)
struct DescriptorExhaustionTests {
    @Test("the connection cap keeps the reserve of descriptors for the server's own work, between 16 and the limit")
    func capArithmetic() {
        #expect(ConnectionLimit.connections(descriptors: 1024, requested: nil) == 1024 - ConnectionLimit.reserve)
        #expect(ConnectionLimit.connections(descriptors: 70, requested: nil) == 16)
        #expect(ConnectionLimit.connections(descriptors: 1024, requested: 100) == 100)
        #expect(ConnectionLimit.connections(descriptors: 1024, requested: 100_000) == 1024 - ConnectionLimit.reserve)
        #expect(ConnectionLimit.connections(descriptors: Int.max, requested: nil) == 16_384)
    }

    // Measured: this also passes with the cap lifted (--max-connections 100000): the idle timeout frees the silent
    // connections and NIO backs off accepting while descriptors are short. The cap keeps descriptors for the server's
    // own outgoing work (database, JWKS, STS) besides.
    @Test(
        "with 128 descriptors and 200 silent connections open, a new client's store-writing request is answered, and the server never runs out of descriptors"
    )
    func silentCrowd() async throws {
        let prlimit = try #require(Tooling.path(of: "prlimit"), "prlimit (util-linux) is needed")
        let port = try freePort()
        let directory = try EmbeddedIdP.writeConfiguration(issuerPort: port)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let issuer = "http://127.0.0.1:\(port)"
        let process = try PartnerProcess(
            executable: prlimit,
            arguments: [
                "--nofile=128:128", try EmbeddedIdP.keylessCLI(), "idp", "serve", "--config", directory + "/idp.yaml",
                "--listen", "127.0.0.1:\(port)",
                "--issuer", issuer, "--key-encryption-key", directory + "/idp-kek", "--idle-timeout", "3",
            ], environment: ["KEYLESS_DATA_DIR": directory + "/data", "HOME": directory],
            logPath: directory + "/idp.log")
        defer { process.stop() }
        var healthy = false
        for _ in 0..<300 where !healthy {
            healthy =
                (try? RawConnection.exchange(
                    "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port, timeout: 2))?.status
                == 200
            if !healthy { try await Task.sleep(for: .milliseconds(100)) }
        }
        try #require(healthy, "the provider did not start: \(process.logTail(20))")

        var crowd: [Int32] = []
        defer { crowd.forEach { close($0) } }
        for _ in 0..<200 { crowd.append(try RawConnection.silent(port: port)) }
        let body = "client_id=keyless-cli&scope=openid"
        let answer = try RawConnection.exchange(
            "POST /device_authorization HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n" + body, port: port, timeout: 30)
        #expect(answer.status == 200, "\(answer)\n\(process.logTail(20))")
        let log = process.logTail(400)
        #expect(!log.contains("Too many open files") && !log.contains("EMFILE"), "\(log)")
    }
}
