/// `HOST:PORT` as `--listen` and `listen:` take it, with `[v6]` brackets allowed.
public enum ListenAddress {
    /// The host and port, or nil when `text` is not HOST:PORT with a port from 0 to 65535.
    public static func parse(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }
}
