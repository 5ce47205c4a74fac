import KeylessCore

/// Distinguished names (RFC 4514), as far as keyless reads them.
public enum LDAPDN {
    /// `developers` from `cn=developers,ou=groups,dc=example,dc=com` (RFC 4514 escapes undone).
    public static func firstValue(_ dn: String) -> String? {
        var value: [UInt8] = []
        var inValue = false
        var bytes = Array(dn.utf8)[...]
        while let byte = bytes.popFirst() {
            if !inValue {
                if byte == UInt8(ascii: "=") { inValue = true }
                continue
            }
            if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "+") { break }
            if byte == UInt8(ascii: "\\"), let next = bytes.popFirst() {
                if let high = Hex.digitValue(next), let second = bytes.first, let low = Hex.digitValue(second) {
                    bytes.removeFirst()
                    value.append(high << 4 | low)
                } else {
                    value.append(next)
                }
                continue
            }
            value.append(byte)
        }
        return inValue && !value.isEmpty ? String(decoding: value, as: UTF8.self) : nil
    }
}
