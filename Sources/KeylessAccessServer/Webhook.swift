import Crypto
import Foundation
import KeylessCore
import KeylessHTTP
import Logging
import NIOCore
import Synchronization

/// server.yaml `requests.webhook`: where events go and how hard to try.
public struct WebhookSettings: Sendable, Equatable, CustomStringConvertible {
    /// The receiver's http(s) URL.
    public var url: String
    /// The HMAC key (read from a file by the config parser, never from YAML).
    public var secret: [UInt8]
    /// How long one attempt may take, in seconds, from sending to the last byte of the answer.
    public var timeout: TimeInterval
    /// How many attempts one delivery gets in all (at least one is always made).
    public var attempts: Int
    /// The delay before the second attempt, in seconds; it doubles before each later one, up to `maximumBackoff`.
    public var backoff: TimeInterval

    /// The longest wait between two attempts, whatever `backoff` or a receiver's `Retry-After` says.
    public static let maximumBackoff: TimeInterval = 60

    /// Settings with the documented defaults: 5 s per attempt, 5 attempts, 1 s before the second.
    public init(url: String, secret: [UInt8], timeout: TimeInterval = 5, attempts: Int = 5, backoff: TimeInterval = 1) {
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.attempts = attempts
        self.backoff = backoff
    }

    /// The settings without the secret, nor the URL's path (a chat service's webhook path is itself a credential).
    public var description: String {
        let host = URL(string: url)?.host ?? "?"
        return
            "WebhookSettings(host: \(host), secret: \(secret.count) bytes, timeout: \(timeout) s, attempts: \(attempts), backoff: \(backoff) s)"
    }
}

/// Sends the access server's events to one webhook receiver: a signed JSON POST per event, in the background, retried
/// with a doubling backoff.
///
/// Each delivery is a POST of the event's JSON text, byte for byte, with these headers:
/// - `Content-Type: application/json` and `User-Agent: keyless-webhook`;
/// - `X-Keyless-Event`: the event's name, such as `request.created`;
/// - `X-Keyless-Delivery`: a random id, the same on every attempt of one delivery, so a receiver can drop repeats;
/// - `X-Keyless-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (Stripe's scheme). The
///   timestamp comes from the injected clock and is signed again on each attempt, so a receiver can refuse a signature
///   older than a few minutes: a captured request cannot be replayed later.
///
/// Each attempt is cut off after `timeout` by the transport, so a receiver that never answers holds one delivery for at
/// most `timeout × attempts` plus the waits between attempts.
///
/// A 2xx answer is a delivery. 408, 429 and 5xx, a timeout, a refused connection and any other transport error are
/// tried again after the backoff: `backoff`, then twice that, and so on, never more than
/// `WebhookSettings.maximumBackoff`; a `Retry-After` in seconds on 429 or 503 replaces the backoff for that wait (still
/// capped; a date or anything else there is ignored). Any other answer (400, 401, 403, 404, 3xx, …) ends the delivery
/// at once: the receiver refuses it and sending it again cannot help (a redirect is never followed: the signed body goes
/// only to the configured URL). After `attempts` attempts the delivery ends too.
/// The answer's body is ignored: the transport reads at most 4 MiB of it, and an answer larger than that ends the
/// delivery too (its status is then unknown, but the receiver has the event).
///
/// Every delivery that ends undelivered is one error line naming the event, the delivery id, the attempts and the last
/// status or error; never the secret, nor the body. A delivery that succeeds after retries is one notice line.
///
/// Delivery is at least once: an attempt that timed out after the receiver acted on it is sent again, so receivers
/// should dedupe on `X-Keyless-Delivery`. Deliveries are independent, each in a task of its own, and sent concurrently:
/// the events of one access request reach the receiver in order only as far as it answers each before the next is
/// queued, and a retried event arrives after later ones. There is no global ordering promise; the body's own fields
/// say when each event happened.
///
/// At most `queueLimit` deliveries wait at once (being sent, or waiting to be sent again); one more drops the oldest,
/// with an error line, so a dead receiver cannot grow memory without bound.
public final class WebhookNotifier: Sendable {
    /// How many deliveries may be undelivered at once before the oldest is dropped.
    public static let queueLimit = 1_000

    /// One event to send: its body, and the id every attempt carries.
    struct Delivery: Sendable {
        let id: String
        let event: String
        let body: [UInt8]
    }

    /// What one attempt came to, and how to say it in a log line.
    struct Outcome: Sendable, Equatable {
        enum Verdict: Sendable, Equatable {
            case delivered
            /// The receiver refused the event: trying again cannot help.
            case refused
            /// Worth another attempt, after the backoff or the receiver's `Retry-After` (seconds), if it gave one.
            case retry(after: TimeInterval?)
        }

        let verdict: Verdict
        /// "HTTP 503", or the transport error.
        let summary: String
    }

    /// The deliveries not yet delivered or given up, oldest first, and the `drain()` calls waiting for none to be left.
    private struct Queue {
        var entries: [(number: UInt64, delivery: Delivery, task: Task<Void, Never>)] = []
        var nextNumber: UInt64 = 0
        var drainers: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextDrainer: UInt64 = 0
    }

    private let settings: WebhookSettings
    private let http: any HTTPTransport
    private let clock: WallClock
    private let logger: Logger
    private let sleep: @Sendable (Duration) async throws -> Void
    private let capacity: Int
    /// Why `settings.url` cannot be sent to at all, found once; nil when it is an http(s) URL with a host.
    private let urlProblem: String?
    /// The receiver's host, the only part of the URL that logs name.
    private let host: String
    /// A Mutex rather than an actor: `notify` must queue synchronously and return at once, from any context.
    private let queue = Mutex(Queue())

    /// A notifier that sends through `http`, which must bound each request by `settings.timeout` (an
    /// `AsyncHTTPTransport(timeout:)`, as the initialiser without `http` builds); `clock` stamps the signatures and
    /// `sleep` waits between attempts.
    public convenience init(
        settings: WebhookSettings, http: any HTTPTransport, clock: WallClock, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.init(
            settings: settings, http: http, clock: clock, logger: logger, sleep: sleep, capacity: Self.queueLimit)
    }

    /// A notifier that sends through the process-wide HTTP client, each attempt cut off after `settings.timeout`.
    public convenience init(
        settings: WebhookSettings, clock: WallClock = .system, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.init(
            settings: settings, http: nil, clock: clock, logger: logger, sleep: sleep, capacity: Self.queueLimit)
    }

    /// The designated initialiser, with the queue's bound as a parameter so tests can fill it with a few deliveries;
    /// without `http`, an `AsyncHTTPTransport` whose timeout is `settings.timeout`.
    init(
        settings: WebhookSettings, http: (any HTTPTransport)?, clock: WallClock, logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void, capacity: Int
    ) {
        self.settings = settings
        // Redirects are not followed: the signed body goes only to the configured URL (a 3xx is given up like a 4xx).
        self.http =
            http
            ?? AsyncHTTPTransport(
                client: AsyncHTTPTransport.clientWithoutRedirects, timeout: Self.timeAmount(settings.timeout))
        self.clock = clock
        self.logger = logger
        self.sleep = sleep
        self.capacity = max(1, capacity)
        let parsed = URL(string: settings.url)
        self.host = parsed?.host ?? "?"
        if let scheme = parsed?.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = parsed?.host, !host.isEmpty
        {
            self.urlProblem = nil
        } else {
            self.urlProblem = "the webhook URL is not an http(s) URL with a host"
        }
    }

    /// Queues one delivery of `body` (a JSON object's text) as event `event` (e.g. "request.created") and returns at once.
    ///
    /// An event name other than letters, digits, `.`, `-` and `_` is not sent (it goes into a header): one error line.
    /// When `queueLimit` deliveries are already undelivered, the oldest of them is dropped: one error line.
    public func notify(event: String, body: String) {
        guard Self.isEventName(event) else {
            logger.error(
                "webhook event not sent: its name may hold only letters, digits, '.', '-' and '_'",
                metadata: ["webhook.event": .string(String(event.prefix(64)).debugDescription)])
            return
        }
        let delivery = Delivery(id: randomToken(bytes: 16), event: event, body: Array(body.utf8))
        let dropped: Delivery? = queue.withLock { queue in
            let number = queue.nextNumber
            queue.nextNumber += 1
            let task = Task {
                await self.deliver(delivery)
                self.finished(number)
            }
            queue.entries.append((number, delivery, task))
            guard queue.entries.count > capacity else { return nil }
            let oldest = queue.entries.removeFirst()
            oldest.task.cancel()
            return oldest.delivery
        }
        if let dropped {
            logger.error(
                "webhook delivery dropped: \(capacity) deliveries were already waiting; check that the receiver at \(host) is up",
                metadata: ["webhook.event": .string(dropped.event), "webhook.delivery": .string(dropped.id)])
        }
    }

    /// Waits until every queued delivery has been delivered or given up (tests, and graceful shutdown).
    ///
    /// With a receiver that never answers, that is at most `timeout × attempts` plus the backoffs after the last
    /// delivery was queued. Cancelling the waiting task makes it return at once; the deliveries go on.
    public func drain() async {
        let waiter = queue.withLock { queue in
            defer { queue.nextDrainer += 1 }
            return queue.nextDrainer
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = queue.withLock { queue in
                    if queue.entries.isEmpty || Task.isCancelled { return true }
                    queue.drainers[waiter] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            queue.withLock { $0.drainers.removeValue(forKey: waiter) }?.resume()
        }
    }

    /// The signature header value: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
    public static func signature(secret: [UInt8], timestamp: Int, body: String) -> String {
        signature(secret: secret, timestamp: timestamp, body: Array(body.utf8))
    }

    static func signature(secret: [UInt8], timestamp: Int, body: [UInt8]) -> String {
        let signed = Array("\(timestamp).".utf8) + body
        let mac = HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: secret))
        return "t=\(timestamp),v1=\(Hex.encode(mac))"
    }

    /// The wait before attempt `attempt` (2 or more): `backoff × 2^(attempt − 2)`, or the receiver's `Retry-After`
    /// when it gave one, never more than `WebhookSettings.maximumBackoff` nor less than nothing.
    static func delay(beforeAttempt attempt: Int, backoff: TimeInterval, retryAfter: TimeInterval?) -> Duration {
        let doubled = backoff * pow(2, Double(max(0, attempt - 2)))
        let wanted = retryAfter ?? doubled
        let seconds = wanted.isNaN ? 0 : min(max(0, wanted), WebhookSettings.maximumBackoff)
        return .seconds(seconds)
    }

    /// How an answer counts: 2xx delivered; 408, 429 and 5xx worth retrying; anything else refused.
    static func classify(_ response: HTTPResponseData) -> Outcome {
        let summary = "HTTP \(response.status)"
        switch response.status {
        case 200..<300:
            return Outcome(verdict: .delivered, summary: summary)
        case 408, 429, 500..<600:
            let retryAfter =
                [429, 503].contains(response.status) ? retryAfterSeconds(response.headers["retry-after"]) : nil
            return Outcome(verdict: .retry(after: retryAfter), summary: summary)
        default:
            return Outcome(verdict: .refused, summary: summary)
        }
    }

    /// `Retry-After` as delay-seconds (RFC 9110 10.2.3); nil for an HTTP date or anything that is not a plain number.
    static func retryAfterSeconds(_ value: String?) -> TimeInterval? {
        guard let text = value?.trimmingCharacters(in: .whitespaces), !text.isEmpty, text.count <= 12,
            text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }), let seconds = Int(text)
        else { return nil }
        return TimeInterval(seconds)
    }

    // MARK: Delivering

    /// Attempts `delivery` until it is delivered, refused or out of attempts, waiting between attempts.
    private func deliver(_ delivery: Delivery) async {
        if let urlProblem {
            giveUp(delivery, attempts: 0, last: urlProblem)
            return
        }
        let attempts = max(1, settings.attempts)
        var attempt = 1
        while true {
            let outcome = await send(delivery)
            // Cancelled: dropped from a full queue, which has said so in the log.
            if Task.isCancelled { return }
            switch outcome.verdict {
            case .delivered:
                if attempt > 1 {
                    logger.notice(
                        "webhook delivered after \(attempt) attempts",
                        metadata: metadata(delivery, attempts: attempt, last: outcome.summary))
                }
                return
            case .refused:
                giveUp(delivery, attempts: attempt, last: outcome.summary)
                return
            case .retry(let retryAfter):
                guard attempt < attempts else {
                    giveUp(delivery, attempts: attempt, last: outcome.summary)
                    return
                }
                let wait = Self.delay(beforeAttempt: attempt + 1, backoff: settings.backoff, retryAfter: retryAfter)
                logger.debug(
                    "webhook attempt failed; trying again in \(wait)",
                    metadata: metadata(delivery, attempts: attempt, last: outcome.summary))
                do { try await sleep(wait) } catch { return }
                attempt += 1
            }
        }
    }

    /// One attempt: the POST, signed now.
    private func send(_ delivery: Delivery) async -> Outcome {
        let seconds = clock.now().timeIntervalSince1970.rounded(.down)
        let timestamp = Int(exactly: seconds) ?? 0
        let headers = [
            "Content-Type": "application/json",
            "User-Agent": "keyless-webhook",
            "X-Keyless-Event": delivery.event,
            "X-Keyless-Delivery": delivery.id,
            "X-Keyless-Signature": Self.signature(secret: settings.secret, timestamp: timestamp, body: delivery.body),
        ]
        do {
            let response = try await http.send(method: "POST", url: settings.url, headers: headers, body: delivery.body)
            return Self.classify(response)
        } catch let error as NIOTooManyBytesError {
            // The receiver got the event and answered, but with more than the transport reads: sending the event again
            // would repeat it, for an answer that is ignored anyway.
            let limit = error.maxBytes.map { "\($0) bytes" } ?? "the transport reads"
            return Outcome(verdict: .refused, summary: "an answer larger than \(limit)")
        } catch {
            return Outcome(verdict: .retry(after: nil), summary: String(String(describing: error).prefix(200)))
        }
    }

    private func giveUp(_ delivery: Delivery, attempts: Int, last: String) {
        logger.error(
            "webhook delivery given up after \(attempts) attempt\(attempts == 1 ? "" : "s") (last: \(last)); check the receiver at \(host) and its logs",
            metadata: metadata(delivery, attempts: attempts, last: last))
    }

    private func metadata(_ delivery: Delivery, attempts: Int, last: String) -> Logger.Metadata {
        [
            "webhook.event": .string(delivery.event), "webhook.delivery": .string(delivery.id),
            "webhook.attempts": .stringConvertible(attempts), "webhook.last": .string(last),
        ]
    }

    // MARK: The queue

    /// Takes a delivery that has ended off the queue, and wakes the drainers when none is left.
    private func finished(_ number: UInt64) {
        let waiting = queue.withLock { queue -> [CheckedContinuation<Void, Never>] in
            queue.entries.removeAll { $0.number == number }
            guard queue.entries.isEmpty else { return [] }
            defer { queue.drainers = [:] }
            return Array(queue.drainers.values)
        }
        for continuation in waiting { continuation.resume() }
    }

    private static func isEventName(_ event: String) -> Bool {
        !event.isEmpty && event.utf8.count <= 128
            && event.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }

    private static func timeAmount(_ seconds: TimeInterval) -> TimeAmount {
        let nanoseconds = (seconds.isFinite ? max(0.001, seconds) : 5) * 1e9
        return .nanoseconds(Int64(min(nanoseconds, 86_400e9)))
    }
}
