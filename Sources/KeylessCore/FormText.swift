/// Decoding of `application/x-www-form-urlencoded` names and values (and URL queries), the one decoder the provider's
/// endpoints, the access server's page, the loopback redirect and client authentication share. No Foundation.
public enum FormText {
    /// A decoded name or value: "+" is a space and "%XX" a byte; nil when an escape is malformed or the bytes are not
    /// UTF-8. Text without escapes is returned as it is.
    public static func decode(_ text: Substring) -> String? {
        let utf8 = text.utf8
        guard utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return String(text) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%") {
                let high = utf8.index(after: index)
                guard high != utf8.endIndex, utf8.index(after: high) != utf8.endIndex,
                    let h = hexValue(utf8[high]), let l = hexValue(utf8[utf8.index(after: high)])
                else { return nil }
                bytes.append(h << 4 | l)
                index = utf8.index(after: high)
            } else {
                bytes.append(byte)
            }
            index = utf8.index(after: index)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
