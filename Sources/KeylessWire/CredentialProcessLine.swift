/// The `credential_process = keyless creds-process ...` line for a role: written by the access server (`/api/v1/config`,
/// the web page) and by `keyless configure`, read by the AWS CLI and SDKs (botocore splits it like a POSIX shell), and
/// answered by `creds-process`, first by the launcher's cached answer (which knows `CredsProcessFlags`) and else by the
/// full command. No Foundation: the launcher links this.
public enum CredentialProcessLine {
    /// The line: through `server` when given, else AssumeRoleWithWebIdentity directly.
    public static func make(server: String?, issuer: String, clientID: String, roleArn: String, region: String)
        -> String
    {
        prefix(server: server, issuer: issuer, clientID: clientID) + quoted(roleArn) + " --region " + quoted(region)
    }

    /// The line up to and including "--role-arn ", the same for every role of one caller.
    public static func prefix(server: String?, issuer: String, clientID: String) -> String {
        var words = ["keyless", "creds-process"]
        if let server { words += ["--server", server] }
        words += ["--issuer-url", issuer, "--client-id", clientID, "--role-arn"]
        return words.map(quoted).joined(separator: " ") + " "
    }

    /// Quotes a word for botocore's credential_process splitting (shlex-like) only when it needs it.
    public static func quoted(_ word: String) -> String {
        // Checked on UTF-8 bytes: /api/v1/config quotes every word of every role's line, and building a
        // Set<Character> per word was most of its time. Non-ASCII bytes are never safe.
        if !word.isEmpty && word.utf8.allSatisfy(isSafe) { return word }
        var text = "'"
        for character in word { text += character == "'" ? "'\\''" : String(character) }
        return text + "'"
    }

    /// Letters, digits and `-_./:=@+,%`: bytes botocore's splitting leaves alone.
    static func isSafe(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        case UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: ":"),
            UInt8(ascii: "="),
            UInt8(ascii: "@"), UInt8(ascii: "+"), UInt8(ascii: ","), UInt8(ascii: "%"):
            true
        default: false
        }
    }
}

/// The flags of `creds-process`, as the launcher's cached answer parses them before any command parsing. A test holds
/// this table to the command's real options (`FlagTableTests`), so an option cannot be added to one and not the other.
public enum CredsProcessFlags {
    /// Flags that take a value. Those that are not part of the cache key (`--browser`, `--timeout`…) only matter when
    /// a login is needed, so a cached answer ignores them.
    public static let valued: Set<String> = [
        "--issuer-url", "--client-id", "--aws-role-arn", "--role-arn", "--duration", "--region",
        "--sts-endpoint", "--secret-store", "--scopes", "--redirect-port", "--browser", "--client-secret-file",
        "--server", "--client-key-file", "--web-identity-token-file", "--token-command",
        "--token-command-timeout", "--client-secret", "--auth-param", "--session-name-claim", "--provider",
        "--timeout",
    ]
    /// Flags that take none.
    public static let plain: Set<String> = ["--device", "--no-browser", "--client-credentials"]
    /// Flags the cached answer steps aside for, so the full command runs: whoever asks for `--verbose` wants to see what
    /// happens, which the cached answer does not log.
    public static let stepAside: Set<String> = ["--verbose", "-v"]
    /// Options (with a value) the cached answer steps aside for: a session narrowed by session policies is looked up
    /// and cached by the full command only, so the fast path can never serve a full session for a narrowed one.
    public static let stepAsideValued: Set<String> = ["--session-policy", "--policy-arn"]
    /// The plain flags that are part of the cache key, recorded (with an empty value) when present.
    public static let keyedPlain: Set<String> = ["--client-credentials"]
}
