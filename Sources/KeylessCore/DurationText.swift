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

    /// Whole seconds for people, in the largest unit that divides them: "1 h", "24 h", "90 min", "45 s" (the web page's
    /// longest sessions, request lengths in the CLI, the server's messages).
    public static func describe(seconds: Int) -> String {
        if seconds % 3600 == 0 { return "\(seconds / 3600) h" }
        if seconds % 60 == 0 { return "\(seconds / 60) min" }
        return "\(seconds) s"
    }
}
