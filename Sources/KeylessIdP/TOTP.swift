import Crypto
import Foundation
import _CryptoExtras
import KeylessCore

/// Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps), as authenticator apps make them.
public enum TOTP {
    /// The code for `secret` at the step containing `date`.
    public static func code(secret: [UInt8], at date: Date, digits: Int = 6, step: Int = 30) -> String {
        code(secret: secret, counter: UInt64(max(0, date.timeIntervalSince1970)) / UInt64(step), digits: digits)
    }

    /// The code for a counter value (RFC 4226 HOTP).
    public static func code(secret: [UInt8], counter: UInt64, digits: Int = 6) -> String {
        var big = counter.bigEndian
        let message = withUnsafeBytes(of: &big) { Array($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        let offset = Int(mac[19] & 0x0f)
        let binary =
            (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(binary % modulus)
        return String(repeating: "0", count: digits - value.count) + value
    }

    /// The step counter that `candidate` matches within one step either side of `date`, compared in constant time.
    public static func matchingCounter(secret: [UInt8], candidate: String, at date: Date, step: Int = 30) -> UInt64? {
        let trimmed = candidate.filter { !$0.isWhitespace }
        guard trimmed.count == 6, trimmed.allSatisfy(\.isASCII) else { return nil }
        let now = UInt64(max(0, date.timeIntervalSince1970)) / UInt64(step)
        var found: UInt64?
        for counter in [now &- 1, now, now + 1]
        where constantTimeEqual(Array(code(secret: secret, counter: counter).utf8), Array(trimmed.utf8)) {
            found = counter
        }
        return found
    }

    /// Decodes RFC 4648 base32 (case-insensitive, padding and spaces ignored); nil when not base32.
    public static func base32Decode(_ text: String) -> [UInt8]? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        var buffer: UInt32 = 0
        var bits = 0
        var output: [UInt8] = []
        for scalar in text.uppercased().utf8 where scalar != UInt8(ascii: "=") && scalar != UInt8(ascii: " ") {
            guard let value = alphabet.firstIndex(of: scalar) else { return nil }
            buffer = (buffer << 5) | UInt32(value)
            bits += 5
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((buffer >> UInt32(bits)) & 0xff))
            }
        }
        return output
    }
}
