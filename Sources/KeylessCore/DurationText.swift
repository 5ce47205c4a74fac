/// A duration as people write it in flags and server.yaml: seconds (`90`), or one number with a unit (`10s`, `5m`, `1h`,
/// `7d`). Never negative. (The access policy's `max_session` also takes compound forms such as `1h30m`.)
public enum DurationText {
    public static func seconds(_ text: String) -> Double? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        if let value = Double(text), value >= 0, value.isFinite { return value }
        if let unit = text.last, let factor = units[unit], let value = Double(text.dropLast()), value >= 0,
            value.isFinite
        {
            return value * factor
        }
        return nil
    }

    /// Whole seconds in words for people: "1 h", "1 h 30 min", "45 min", "90 s", "2 d".
    public static func describe(seconds: Int) -> String {
        guard seconds > 0 else { return "\(seconds) s" }
        if seconds % 86400 == 0 { return "\(seconds / 86400) d" }
        if seconds % 60 != 0 { return seconds < 3600 ? "\(seconds) s" : "\(seconds / 3600) h \(seconds % 3600) s" }
        let hours = seconds / 3600, minutes = (seconds % 3600) / 60
        switch (hours, minutes) {
        case (0, _): return "\(minutes) min"
        case (_, 0): return "\(hours) h"
        default: return "\(hours) h \(minutes) min"
        }
    }
}
