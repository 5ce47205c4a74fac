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
}
