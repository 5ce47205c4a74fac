import Logging
import Synchronization

/// Collects every log record written through `logger` (at trace level), to check what a component logs and that no
/// secret reaches a log.
public final class LogCapture: Sendable {
    /// One log call.
    public struct Record: Sendable {
        public var level: Logger.Level
        public var message: String
        /// The logger's metadata merged with the call's, as written.
        public var rawMetadata: Logger.Metadata
        /// The same, each value as text.
        public var metadata: [String: String] { rawMetadata.mapValues { "\($0)" } }
    }

    private let label: String
    private let stored = Mutex<[Record]>([])

    /// An empty capture whose logger is labelled `label`.
    public init(label: String = "keyless.test") { self.label = label }

    /// The records so far, oldest first.
    public var records: [Record] { stored.withLock { $0 } }

    /// A logger at trace level that writes here.
    public var logger: Logger {
        var logger = Logger(label: label) { _ in CapturingLogHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    /// Every message and metadata value as one text, to look for leaked secrets.
    public var allText: String {
        records.map { ([$0.message] + $0.metadata.map { "\($0.key)=\($0.value)" }).joined(separator: " ") }.joined(
            separator: "\n")
    }

    fileprivate func append(_ record: Record) { stored.withLock { $0.append(record) } }
}

/// The log handler behind `LogCapture.logger`.
struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { _, new in new }
        capture.append(LogCapture.Record(level: event.level, message: event.message.description, rawMetadata: merged))
    }
}
