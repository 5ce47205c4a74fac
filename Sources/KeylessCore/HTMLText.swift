/// `text` safe inside HTML element content and quoted attribute values: `& < > " '` become character references.
public func htmlEscaped(_ text: String) -> String {
    // Most text (names, codes, URLs without markup characters) needs nothing: return it whole.
    if !text.utf8.contains(where: { [0x26, 0x3C, 0x3E, 0x22, 0x27].contains($0) }) { return text }
    var out = ""
    out.reserveCapacity(text.utf8.count + 16)
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(character)
        }
    }
    return out
}
