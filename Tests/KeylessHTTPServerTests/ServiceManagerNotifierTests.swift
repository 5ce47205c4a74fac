import Foundation
import KeylessCore
import KeylessTestSupport
import Testing

@testable import KeylessHTTPServer

@Suite("ServiceManagerNotifier: systemd's Type=notify readiness (sd_notify protocol)")
struct ServiceManagerNotifierTests {
    @Test("READY=1 with a one-line STATUS reaches a socket bound at NOTIFY_SOCKET's path")
    func readyReachesAPathSocket() throws {
        let path = NSTemporaryDirectory() + "notify-\(UUID().uuidString.prefix(8))"
        let socket = try NotifySocket(path: path)
        let notifier = ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": path]))
        #expect(notifier.ready(status: "listening on 127.0.0.1:9000\nissuer x"))
        #expect(socket.receive() == "READY=1\nSTATUS=listening on 127.0.0.1:9000 issuer x")
        #expect(notifier.stopping())
        #expect(socket.receive() == "STOPPING=1")
    }

    @Test("an @name socket is in the abstract namespace, as systemd passes it")
    func abstractNamespace() throws {
        let name = "@keyless-notify-\(UUID().uuidString.prefix(8))"
        let socket = try NotifySocket(path: name)
        #expect(ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": name])).ready(status: "ok"))
        #expect(socket.receive() == "READY=1\nSTATUS=ok")
    }

    @Test(
        "without NOTIFY_SOCKET, or with one nobody listens on or that is not a socket path, nothing is sent and nothing fails"
    )
    func noSocketIsNotAnError() {
        #expect(!ServiceManagerNotifier(environment: Environment([:])).ready(status: "x"))
        #expect(!ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": ""])).ready(status: "x"))
        #expect(
            !ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": "/nonexistent/notify"])).ready(
                status: "x"))
        #expect(!ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": "relative"])).ready(status: "x"))
        let long = "/" + String(repeating: "a", count: 200)
        #expect(!ServiceManagerNotifier(environment: Environment(["NOTIFY_SOCKET": long])).ready(status: "x"))
    }
}
