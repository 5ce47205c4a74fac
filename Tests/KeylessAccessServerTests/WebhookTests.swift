import Foundation
import HTTPTypes
import Hummingbird
import KeylessCore
import KeylessHTTP
import KeylessTestFakes
import KeylessTestSupport
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

@testable import KeylessAccessServer

// The webhook notifier against a real HTTP receiver: an in-process Hummingbird server on 127.0.0.1 whose answers each
// test scripts, reached through the real AsyncHTTPTransport. Waits between attempts are recorded instead of slept, and
// the clock is a ManualClock that only those recorded waits move.

@Suite("Webhook notifier: a real receiver on 127.0.0.1", .timeLimit(.minutes(2)))
struct WebhookTests {
    @Test(
        "the receiver gets the body byte for byte, POSTed to the URL with the JSON, user agent, event, delivery and signature headers"
    )
    func deliversBodyAndHeaders() async throws {
        let sent = try await OneDelivery.run { _, _ in .status(204) }
        let request = try #require(sent.requests.only)
        #expect(request.method == "POST")
        #expect(request.target == "/hook?team=infra")
        #expect(request.body == Array(Sample.body.utf8))
        #expect(request.headers["content-type"] == "application/json")
        #expect(request.headers["user-agent"] == "keyless-webhook")
        #expect(request.headers["x-keyless-event"] == "request.created")
        #expect(request.delivery.count >= 20, "a random delivery id: \(request.delivery)")
        let timestamp = Int(ManualClock.reference.timeIntervalSince1970)
        #expect(
            request.signature
                == WebhookNotifier.signature(secret: Sample.secret, timestamp: timestamp, body: Sample.body))
        #expect(sent.waits.isEmpty)
        #expect(sent.logs.records.filter { $0.level >= .notice }.isEmpty, "\(sent.logs.allText)")
    }

    @Test("two deliveries carry different delivery ids")
    func deliveryIDsDiffer() async throws {
        let requests = try await WebhookReceiver.run({ _, _ in .status(200) }) { receiver in
            let world = TestWorld(url: receiver.url)
            world.notifier.notify(event: "request.approved", body: #"{"n":1}"#)
            world.notifier.notify(event: "request.approved", body: #"{"n":2}"#)
            await world.notifier.drain()
            return receiver.requests
        }
        #expect(requests.count == 2)
        #expect(Set(requests.map(\.delivery)).count == 2)
    }

    @Test("Python's hmac verifies the received signature over the received body; a changed body or timestamp does not")
    func signatureVerifiesWithPython() async throws {
        let sent = try await OneDelivery.run { _, _ in .status(202) }
        let request = try #require(sent.requests.only)
        let timestamp = Int(ManualClock.reference.timeIntervalSince1970)
        #expect(request.signature.hasPrefix("t=\(timestamp),v1="))
        #expect(try PythonHMAC.verdict(secret: Sample.secret, header: request.signature, body: request.body) == "valid")
        #expect(
            try PythonHMAC.verdict(secret: Sample.secret, header: request.signature, body: request.body + [0x20])
                == "invalid", "a body with one byte more")
        var flipped = request.body
        flipped[flipped.count / 2] ^= 0x01
        #expect(
            try PythonHMAC.verdict(secret: Sample.secret, header: request.signature, body: flipped) == "invalid",
            "a body with one bit changed")
        let older = request.signature.replacingOccurrences(of: "t=\(timestamp)", with: "t=\(timestamp - 600)")
        #expect(
            try PythonHMAC.verdict(secret: Sample.secret, header: older, body: request.body) == "invalid",
            "the same MAC under another timestamp")
        #expect(
            try PythonHMAC.verdict(secret: Array("another secret".utf8), header: request.signature, body: request.body)
                == "invalid", "another secret")
    }

    @Test(
        "500 twice then 204: retried after 1 s and 2 s with one delivery id, re-signed each time, delivered, a notice logged"
    )
    func serverErrorsAreRetriedUntilDelivered() async throws {
        let sent = try await OneDelivery.run { _, attempt in attempt <= 2 ? .status(500) : .status(204) }
        #expect(sent.requests.count == 3)
        #expect(sent.waits == [.seconds(1), .seconds(2)])
        #expect(Set(sent.requests.map(\.delivery)).count == 1, "the same delivery id on every attempt")
        #expect(sent.requests.allSatisfy { $0.body == Array(Sample.body.utf8) })
        // The clock moved only by the recorded waits, so each attempt's timestamp shows it was signed when sent.
        let start = Int(ManualClock.reference.timeIntervalSince1970)
        #expect(sent.requests.map(\.timestamp) == [start, start + 1, start + 3])
        for request in sent.requests {
            let expected = WebhookNotifier.signature(
                secret: Sample.secret, timestamp: request.timestamp, body: Sample.body)
            #expect(request.signature == expected)
        }
        #expect(sent.logs.records.filter { $0.level >= .error }.isEmpty, "\(sent.logs.allText)")
        let notice = try #require(sent.logs.records.only(where: { $0.level == .notice }))
        #expect(notice.metadata["webhook.attempts"] == "3")
        #expect(notice.metadata["webhook.delivery"] == sent.requests.first?.delivery)
        Sample.expectNoSecretOrBody(in: sent.logs)
    }

    @Test(
        "a receiver that always answers 503 is tried exactly `attempts` times, the waits double up to the 60 s cap, and one error line without the secret or body gives up"
    )
    func alwaysFailingReceiverIsGivenUp() async throws {
        let sent = try await OneDelivery.run(attempts: 9) { _, _ in .status(503) }
        #expect(sent.requests.count == 9)
        #expect(Set(sent.requests.map(\.delivery)).count == 1)
        #expect(sent.waits == [1, 2, 4, 8, 16, 32, 60, 60].map { Duration.seconds($0) })
        let error = try #require(sent.logs.records.only(where: { $0.level >= .error }))
        #expect(error.level == .error)
        #expect(error.metadata["webhook.event"] == "request.created")
        #expect(error.metadata["webhook.delivery"] == sent.requests.first?.delivery)
        #expect(error.metadata["webhook.attempts"] == "9")
        #expect(error.metadata["webhook.last"] == "HTTP 503")
        Sample.expectNoSecretOrBody(in: sent.logs)
    }

    @Test(
        "a 4xx other than 408 and 429 (and a 3xx) is tried once and given up at once",
        arguments: [300, 400, 401, 403, 404, 405, 409, 410, 413, 422])
    func refusalsAreNotRetried(status: Int) async throws {
        let sent = try await OneDelivery.run { _, _ in .status(status) }
        #expect(sent.requests.count == 1)
        #expect(sent.waits.isEmpty)
        let error = try #require(sent.logs.records.only(where: { $0.level >= .error }))
        #expect(error.metadata["webhook.attempts"] == "1")
        #expect(error.metadata["webhook.last"] == "HTTP \(status)")
        Sample.expectNoSecretOrBody(in: sent.logs)
    }

    @Test(
        "a redirect is not followed (the signed body and its headers go only where server.yaml says): tried once and given up",
        arguments: [301, 302, 307, 308])
    func redirectsAreNotFollowed(status: Int) async throws {
        let sent = try await OneDelivery.run { _, _ in .status(status, headers: ["Location": "/hook?moved=1"]) }
        #expect(sent.requests.map(\.target) == ["/hook?team=infra"], "\(sent.requests.map(\.target))")
        let error = try #require(sent.logs.records.only(where: { $0.level >= .error }))
        #expect(error.metadata["webhook.last"] == "HTTP \(status)")
    }

    @Test("408, 429 and 5xx are retried", arguments: [408, 429, 500, 502, 503, 504, 599])
    func transientAnswersAreRetried(status: Int) async throws {
        let sent = try await OneDelivery.run { _, attempt in attempt == 1 ? .status(status) : .status(200) }
        #expect(sent.requests.count == 2)
        #expect(sent.waits == [.seconds(1)])
        #expect(sent.logs.records.filter { $0.level >= .error }.isEmpty, "\(sent.logs.allText)")
    }

    @Test(
        "Retry-After in seconds on 429 and 503 replaces the backoff up to the cap; a date, a negative number or a 500's is ignored"
    )
    func retryAfterIsHonouredUpToTheCap() async throws {
        let sent = try await OneDelivery.run(attempts: 6) { _, attempt in
            switch attempt {
            case 1: .status(429, headers: ["Retry-After": "7"])
            case 2: .status(503, headers: ["Retry-After": "600"])
            case 3: .status(429, headers: ["Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"])
            case 4: .status(503, headers: ["Retry-After": "-3"])
            case 5: .status(500, headers: ["Retry-After": "3"])
            default: .status(204)
            }
        }
        #expect(sent.requests.count == 6)
        #expect(sent.waits == [7, 60, 4, 8, 16].map { Duration.seconds($0) })
    }

    // No upper bound on the time taken (a loaded CI machine measured 19 s for what takes 1.5 s alone): the timeout's work
    // shows in the error, and the time limit only stops a hang (without the timeout, drain() would wait forever).
    @Test(
        "a receiver that never answers is cut off after the timeout on every attempt and given up",
        .timeLimit(.minutes(2)))
    func silentReceiverIsCutOffByTheTimeout() async throws {
        let started = ContinuousClock.now
        let sent = try await OneDelivery.run(timeout: 0.5, attempts: 3) { _, _ in .silence }
        let elapsed = ContinuousClock.now - started
        #expect(sent.requests.count == 3, "each attempt reached the receiver")
        #expect(Set(sent.requests.map(\.delivery)).count == 1)
        #expect(sent.waits == [.seconds(1), .seconds(2)])
        #expect(elapsed >= .milliseconds(1_400), "three attempts of 0.5 s each: \(elapsed)")
        let error = try #require(sent.logs.records.only(where: { $0.level >= .error }))
        #expect(error.metadata["webhook.attempts"] == "3")
        #expect(error.metadata["webhook.last"]?.contains("deadline") == true, "a timeout: \(error.metadata)")
    }

    @Test("a refused connection is retried with the backoff and given up after `attempts`")
    func refusedConnectionIsRetried() async throws {
        // A port that was just listening and is closed now.
        let url = try await WebhookReceiver.run({ _, _ in .status(204) }) { $0.url }
        let waits = WaitRecorder()
        let world = TestWorld(url: url, attempts: 3, waits: waits)
        world.notifier.notify(event: "request.created", body: Sample.body)
        await world.notifier.drain()
        #expect(waits.delays == [.seconds(1), .seconds(2)])
        let error = try #require(world.logs.records.only(where: { $0.level >= .error }))
        #expect(error.metadata["webhook.attempts"] == "3")
        Sample.expectNoSecretOrBody(in: world.logs)
    }

    @Test("what a receiver sends back (a 1 MiB body, odd headers) is ignored: a 2xx is a delivery")
    func receiverJunkIsIgnored() async throws {
        let junk = String(repeating: "\u{1F4A5}<not json>\r\n", count: 1 << 16)
        let sent = try await OneDelivery.run { _, _ in
            .status(200, headers: ["Retry-After": "soon", "Content-Type": "text/x-junk"], body: junk)
        }
        #expect(sent.requests.count == 1)
        #expect(sent.logs.records.filter { $0.level >= .notice }.isEmpty, "\(sent.logs.allText)")
    }

    @Test("an answer larger than the transport reads (8 MiB) ends the delivery after one attempt, without a crash")
    func oversizedAnswerIsNotResent() async throws {
        let huge = String(repeating: "x", count: 8 << 20)
        let sent = try await OneDelivery.run { _, _ in .status(200, body: huge) }
        #expect(sent.requests.count == 1, "the receiver has the event: sending it again would repeat it")
        #expect(sent.waits.isEmpty)
        let error = try #require(sent.logs.records.only(where: { $0.level >= .error }))
        #expect(error.metadata["webhook.last"] == "an answer larger than 4194304 bytes")
    }

    @Test("with the queue full, one more delivery drops the oldest undelivered one with an error line; the rest arrive")
    func fullQueueDropsTheOldest() async throws {
        let gate = Gate()
        let script: WebhookReceiver.Script = { _, attempt in attempt == 1 ? .status(503) : .status(204) }
        let (requests, logs) = try await WebhookReceiver.run(script) { receiver in
            let world = TestWorld(url: receiver.url, capacity: 3, sleep: { _ in try await gate.wait() })
            for index in 0..<4 {
                world.notifier.notify(event: "request.created-\(index)", body: #"{"n":\#(index)}"#)
            }
            let dropped = try #require(world.logs.records.only(where: { $0.level >= .error }))
            #expect(dropped.metadata["webhook.event"] == "request.created-0")
            #expect(dropped.message.contains("dropped"))
            gate.open()
            await world.notifier.drain()
            return (receiver.requests, world.logs)
        }
        let byEvent = Dictionary(grouping: requests) { $0.headers["x-keyless-event"] ?? "" }
        #expect((byEvent["request.created-0"] ?? []).count <= 1, "the dropped delivery is not tried again")
        for index in 1..<4 {
            #expect(byEvent["request.created-\(index)"]?.count == 2, "request.created-\(index): 503, then 204")
        }
        #expect(logs.records.filter { $0.level >= .error }.count == 1, "\(logs.allText)")
    }

    @Test("the public notifier holds 1,000 undelivered deliveries; the 1,001st drops the first")
    func queueLimitIsOneThousand() async throws {
        #expect(WebhookNotifier.queueLimit == 1_000)
        let gate = Gate()
        let transport = StubTransport { _ in
            try await gate.wait()
            return HTTPResponseData(status: 204, body: [])
        }
        let logs = LogCapture()
        let notifier = WebhookNotifier(
            settings: WebhookSettings(url: "https://hooks.example.test/keyless", secret: Sample.secret),
            http: transport, clock: ManualClock().wallClock, logger: logs.logger)
        for index in 0..<1_000 { notifier.notify(event: "request.created-\(index)", body: "{}") }
        #expect(logs.records.filter { $0.level >= .error }.isEmpty)
        notifier.notify(event: "request.created-1000", body: "{}")
        let dropped = try #require(logs.records.only(where: { $0.level >= .error }))
        #expect(dropped.metadata["webhook.event"] == "request.created-0")
        gate.open()
        await notifier.drain()
        #expect(logs.records.filter { $0.level >= .error }.count == 1)
    }

    @Test("cancelling drain() returns at once while a delivery still waits to be retried")
    func drainCanBeCancelled() async throws {
        let gate = Gate()
        let script: WebhookReceiver.Script = { _, attempt in attempt == 1 ? .status(503) : .status(204) }
        let requests = try await WebhookReceiver.run(script) { receiver in
            let world = TestWorld(url: receiver.url, sleep: { _ in try await gate.wait() })
            world.notifier.notify(event: "request.created", body: Sample.body)
            let waiting = Task { await world.notifier.drain() }
            waiting.cancel()
            await waiting.value
            #expect(receiver.requests.count <= 1, "the delivery still waits for its second attempt")
            gate.open()
            await world.notifier.drain()
            return receiver.requests
        }
        #expect(requests.count == 2)
    }

    @Test("an event name that cannot be a header value, and a URL that is not http(s), are refused without a request")
    func badEventAndURLAreRefused() async throws {
        let transport = StubTransport(status: 204)
        let logs = LogCapture()
        let good = WebhookNotifier(
            settings: WebhookSettings(url: "https://hooks.example.test/keyless", secret: Sample.secret),
            http: transport, clock: ManualClock().wallClock, logger: logs.logger)
        good.notify(event: "request.created\r\nX-Injected: 1", body: "{}")
        good.notify(event: "", body: "{}")
        await good.drain()
        #expect(transport.requests.isEmpty)
        #expect(logs.records.filter { $0.level >= .error }.count == 2)

        let unsendable = WebhookNotifier(
            settings: WebhookSettings(url: "ftp://hooks.example.test/keyless", secret: Sample.secret),
            http: transport, clock: ManualClock().wallClock, logger: logs.logger)
        unsendable.notify(event: "request.created", body: "{}")
        await unsendable.drain()
        #expect(transport.requests.isEmpty)
        #expect(logs.records.filter { $0.level >= .error }.count == 3)
        Sample.expectNoSecretOrBody(in: logs)
    }

    @Test("the settings' description names the host but neither the secret nor the URL's path")
    func settingsDescriptionHidesSecrets() {
        let settings = WebhookSettings(
            url: "https://hooks.chat.example.test/services/T000/B000/XXXXSECRETPATH", secret: Sample.secret)
        let text = "\(settings) \(String(reflecting: settings))"
        #expect(text.contains("hooks.chat.example.test"))
        #expect(!text.contains("XXXXSECRETPATH"))
        #expect(!text.contains(Sample.secretText))
        #expect(!text.contains(Hex.encode(Sample.secret)))
    }
}

// MARK: Fixtures

/// The secret and body every test sends.
private enum Sample {
    /// Printable, so a leak into a log line is found by a plain search.
    static let secretText = "whsec_6f1d0c_keyless_webhook_test_secret"
    /// Raw bytes outside UTF-8 too, so the HMAC is shown to take the key as bytes.
    static let secret: [UInt8] = [0x00, 0xff, 0x80] + Array(secretText.utf8)
    /// Marks the body, to look for it in logs.
    static let bodyMarker = "body-marker-3c9e"
    /// A JSON object with escapes and characters outside ASCII, which must arrive unchanged.
    static let body =
        #"{"event":"request.created","role":"arn:aws:iam::123456789012:role/Admin","reason":"café ☕ \"urgent\"\n\#(bodyMarker)","requested_at":1767225600}"#

    /// Checks that nothing logged holds the secret (as text or hex) or the body.
    static func expectNoSecretOrBody(in logs: LogCapture, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = logs.allText
        #expect(!text.contains(secretText), sourceLocation: sourceLocation)
        #expect(!text.contains(Hex.encode(secret)), sourceLocation: sourceLocation)
        #expect(!text.contains(bodyMarker), sourceLocation: sourceLocation)
    }
}

/// One event sent to a receiver running a script, and what came of it.
private struct OneDelivery: Sendable {
    /// What the receiver got, in order.
    let requests: [WebhookReceiver.Received]
    /// The waits the notifier asked for between attempts.
    let waits: [Duration]
    /// What the notifier logged.
    let logs: LogCapture

    /// Starts a receiver running `script`, sends `Sample.body` as `request.created` and waits for the delivery to end.
    static func run(
        timeout: TimeInterval = 5, attempts: Int = 5, _ script: @escaping WebhookReceiver.Script
    ) async throws -> OneDelivery {
        try await WebhookReceiver.run(script) { receiver in
            let waits = WaitRecorder()
            let world = TestWorld(url: receiver.url, timeout: timeout, attempts: attempts, waits: waits)
            world.notifier.notify(event: "request.created", body: Sample.body)
            await world.notifier.drain()
            return OneDelivery(requests: receiver.requests, waits: waits.delays, logs: world.logs)
        }
    }
}

/// A notifier with the test's settings and its own real AsyncHTTPTransport, a ManualClock at the reference time and a
/// log capture.
private struct TestWorld {
    let notifier: WebhookNotifier
    let logs = LogCapture()
    let clock = ManualClock()

    /// With `waits`, each wait is recorded and moves the clock instead of sleeping; with `sleep`, that waits.
    init(
        url: String, timeout: TimeInterval = 5, attempts: Int = 5, capacity: Int = WebhookNotifier.queueLimit,
        waits: WaitRecorder = WaitRecorder(), sleep: (@Sendable (Duration) async throws -> Void)? = nil
    ) {
        let settings = WebhookSettings(url: url, secret: Sample.secret, timeout: timeout, attempts: attempts)
        let clock = self.clock
        let record: @Sendable (Duration) async throws -> Void = { delay in
            waits.record(delay)
            clock.advance(by: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18)
        }
        // The notifier's own AsyncHTTPTransport, so its timeout is the one the settings give.
        notifier =
            capacity == WebhookNotifier.queueLimit
            ? WebhookNotifier(settings: settings, clock: clock.wallClock, logger: logs.logger, sleep: sleep ?? record)
            : WebhookNotifier(
                settings: settings, http: nil, clock: clock.wallClock, logger: logs.logger, sleep: sleep ?? record,
                capacity: capacity)
    }
}

/// The waits the notifier asked for, in order.
private final class WaitRecorder: Sendable {
    private let stored = Mutex<[Duration]>([])
    var delays: [Duration] { stored.withLock { $0 } }
    func record(_ delay: Duration) { stored.withLock { $0.append(delay) } }
}

/// Holds every waiter until `open()`; a waiter whose task is cancelled throws `CancellationError`.
private final class Gate: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var next = 0
    }

    private let state = Mutex(State())

    func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    func wait() async throws {
        let id = state.withLock { state in
            defer { state.next += 1 }
            return state.next
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let now: Result<Void, any Error>? = state.withLock { state in
                    if state.isOpen { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let now { continuation.resume(with: now) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}

/// Checks a signature header the way a receiver in Python would: hmac and hashlib, compare_digest.
private enum PythonHMAC {
    static let script = """
        import hashlib, hmac, sys
        secret = bytes.fromhex(sys.argv[1])
        with open(sys.argv[2], "rb") as file:
            body = file.read()
        fields = dict(part.split("=", 1) for part in sys.argv[3].split(","))
        expected = hmac.new(secret, fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        print("valid" if hmac.compare_digest(expected, fields.get("v1", "")) else "invalid")
        """

    /// "valid" or "invalid"; the secret goes in hex on the command line, the body through a file.
    static func verdict(secret: [UInt8], header: String, body: [UInt8]) throws -> String {
        let scratch = try Scratch("webhook")
        defer { scratch.remove() }
        let path = scratch.file("body")
        try Data(body).write(to: URL(fileURLWithPath: path))
        let result = try PartnerProcess.run("python3", ["-c", script, Hex.encode(secret), path, header], timeout: 60)
        #expect(result.status == 0, "python3 failed: \(result.output)")
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// An HTTP receiver on 127.0.0.1 (Hummingbird, port 0) that records every request and answers as the test scripts.
private final class WebhookReceiver: Sendable {
    /// What to answer to one request.
    enum Reply: Sendable {
        case status(Int, headers: [String: String] = [:], body: String = "")
        /// Never answer (until the test ends).
        case silence
    }

    /// One request as received.
    struct Received: Sendable {
        var method: String
        /// Path and query.
        var target: String
        /// Lower-cased names.
        var headers: [String: String]
        var body: [UInt8]

        var signature: String { headers["x-keyless-signature"] ?? "" }
        var delivery: String { headers["x-keyless-delivery"] ?? "" }
        /// The signature's `t`.
        var timestamp: Int {
            signature.split(separator: ",").first.flatMap { Int($0.dropFirst(2)) } ?? -1
        }
    }

    /// The answer to `request`, the `attempt`th (from 1) with its delivery id.
    typealias Script = @Sendable (_ request: Received, _ attempt: Int) -> Reply

    let url: String
    private let script: Script
    private let received = Mutex<[Received]>([])
    private let released = Atomic<Bool>(false)

    private init(url: String, script: @escaping Script) {
        self.url = url
        self.script = script
    }

    /// The requests so far, in the order they arrived.
    var requests: [Received] { received.withLock { $0 } }

    /// Starts a receiver, runs `test` with it, then lets silent requests end and stops it.
    static func run<Value: Sendable>(
        _ script: @escaping Script, _ test: @Sendable (WebhookReceiver) async throws -> Value
    ) async throws -> Value {
        let box = Mutex<WebhookReceiver?>(nil)
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            guard let receiver = box.withLock({ $0 }) else { return Response(status: .serviceUnavailable) }
            return try await receiver.answer(request)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let quiet = Logger(label: "keyless.test.webhook-receiver") { _ in SwiftLogNoOpLogHandler() }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in
                continuation.yield(channel.localAddress?.port ?? 0)
                continuation.finish()
            }, logger: quiet)
        let services = ServiceGroup(configuration: .init(services: [app], logger: quiet))
        return try await withThrowingTaskGroup(of: Void.self, returning: Value.self) { group in
            group.addTask {
                // If the server cannot start, end the stream so the test fails instead of waiting forever.
                defer { continuation.finish() }
                try await services.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next(), port > 0 else {
                await services.triggerGracefulShutdown()
                try await group.waitForAll()
                throw TestSupportError("the webhook receiver did not start")
            }
            let receiver = WebhookReceiver(url: "http://127.0.0.1:\(port)/hook?team=infra", script: script)
            box.withLock { $0 = receiver }
            let outcome: Result<Value, any Error>
            do { outcome = .success(try await test(receiver)) } catch { outcome = .failure(error) }
            receiver.released.store(true, ordering: .releasing)
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return try outcome.get()
        }
    }

    private func answer(_ request: Request) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let recorded = Received(
            method: request.method.rawValue, target: request.uri.description, headers: headers,
            body: Array(body.readableBytesView))
        let attempt = received.withLock { requests in
            requests.append(recorded)
            return requests.filter { $0.delivery == recorded.delivery }.count
        }
        switch script(recorded, attempt) {
        case .silence:
            while !released.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(20)) }
            return Response(status: .noContent)
        case .status(let code, let replyHeaders, let replyBody):
            var fields = HTTPFields()
            for (name, value) in replyHeaders {
                if let name = HTTPField.Name(name) { fields[name] = value }
            }
            return Response(
                status: HTTPResponse.Status(code: code), headers: fields,
                body: ResponseBody(byteBuffer: ByteBuffer(string: replyBody)))
        }
    }
}

extension Array {
    /// The one element, or nil when there are none or several.
    fileprivate var only: Element? { count == 1 ? first : nil }

    /// The one element that matches, or nil when none or several do.
    fileprivate func only(where matches: (Element) -> Bool) -> Element? { filter(matches).only }
}
