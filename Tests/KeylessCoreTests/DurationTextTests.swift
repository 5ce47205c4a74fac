import KeylessCore
import Testing

@Suite("durations as people write them")
struct DurationTextTests {
    @Test("seconds, or one number with s, m, h or d; anything else (negative, two units, unknown unit, empty) is nil")
    func parsing() {
        #expect(DurationText.seconds("90") == 90)
        #expect(DurationText.seconds("1.5") == 1.5)
        #expect(DurationText.seconds("10s") == 10)
        #expect(DurationText.seconds("30m") == 1800)
        #expect(DurationText.seconds("24h") == 86400)
        #expect(DurationText.seconds("7d") == 604_800)
        for bad in ["", "-5", "-1h", "1h30m", "5w", "h", "abc", "nan", "inf", "1e400h"] {
            #expect(DurationText.seconds(bad) == nil, "\(bad)")
        }
    }
}
