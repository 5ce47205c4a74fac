import Foundation
import KeylessCore
import Logging
#if canImport(Glibc)
    import Glibc
#endif

/// Writes one JSON object per line to stderr: time, level, label, message and metadata. Callers never put secrets in
/// metadata; the request log carries the path without its query and no headers.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    /// A handler for `label` at `level`.
    public init(label: String, level: Logger.Level) {
        self.label = label; self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(
        level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
        file: String, function: String, line: UInt
    ) {
        var merged = metadata
        if let extra { for (key, value) in extra { merged[key] = value } }
        var text = Self.line(
            timestamp: Self.timestamp(), level: level, label: label, message: message.description, metadata: merged)
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// One log line (with its newline). Written by hand: JSONSerialization, and its sorting of keys through ICU, cost
    /// more than the rest of a token request.
    public static func line(
        timestamp: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata
    ) -> String {
        var text = ""
        text.reserveCapacity(256)
        text += "{\"ts\":\""; text += timestamp; text += "\",\"level\":\""; text += level.rawValue
        text += "\",\"logger\":"; text += jsonString(label); text += ",\"msg\":"; text += jsonString(message)
        for key in metadata.keys.sorted() where key != "ts" && key != "level" && key != "logger" && key != "msg" {
            text += ","; text += jsonString(key); text += ":"; text += json(metadata[key]!)
        }
        text += "}\n"
        return text
    }

    static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let s): return jsonString(s)
        case .stringConvertible(let c): return jsonString(c.description)
        case .array(let a): return "[" + a.map(json).joined(separator: ",") + "]"
        case .dictionary(let d):
            return "{"
                + d.sorted { $0.key < $1.key }.map { jsonString($0.key) + ":" + json($0.value) }.joined(separator: ",")
                + "}"
        }
    }

    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var t = time_t(now.tv_sec)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return pad(Int(parts.tm_year) + 1900, 4) + "-" + pad(Int(parts.tm_mon) + 1, 2) + "-"
            + pad(Int(parts.tm_mday), 2) + "T"
            + pad(Int(parts.tm_hour), 2) + ":" + pad(Int(parts.tm_min), 2) + ":" + pad(Int(parts.tm_sec), 2) + "."
            + pad(now.tv_nsec / 1_000_000, 3) + "Z"
    }
}
