/// Lower-case hexadecimal text of bytes, written directly (`String(format: "%02x")` per byte went through
/// CoreFoundation and cost 8-9 % of the provider's CPU per token request: bench/idp-flows).
public enum Hex {
    /// Two lower-case hex digits per byte.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
}
