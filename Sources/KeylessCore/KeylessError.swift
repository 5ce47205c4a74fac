#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// An error a person or a script can act on: a stable code, what happened, and what to do next.
public struct KeylessError: Error, Equatable, CustomStringConvertible, Sendable {
    /// What kind of failure this is; scripts can rely on the process exit code derived from it.
    public enum Code: String, Sendable, CaseIterable {
        case usage
        case configInvalid = "config_invalid"
        case loginRequired = "login_required"
        case loginFailed = "login_failed"
        case stateMismatch = "state_mismatch"
        case tokenInvalid = "token_invalid"
        case idpUnreachable = "idp_unreachable"
        case idpError = "idp_error"
        case stsUnreachable = "sts_unreachable"
        case stsAccessDenied = "sts_access_denied"
        case stsExpiredToken = "sts_expired_token"
        case stsInvalidIdentityToken = "sts_invalid_identity_token"
        case stsError = "sts_error"
        case cacheCorrupt = "cache_corrupt"
        case cacheInsecure = "cache_insecure"
        case secretStoreUnavailable = "secret_store_unavailable"
        case passphraseRequired = "passphrase_required"
        case lockTimeout = "lock_timeout"
        case nested
        case io
    }

    /// The failure's code.
    public let code: Code
    /// What went wrong, in a sentence.
    public let reason: String
    /// What to do about it.
    public let hint: String?

    /// Creates an error with a code, a reason and an optional hint.
    public init(_ code: Code, _ reason: String, hint: String? = nil) {
        self.code = code
        self.reason = reason
        self.hint = hint
    }

    public static func == (lhs: KeylessError, rhs: KeylessError) -> Bool { lhs.code == rhs.code }

    /// What a person reads. Reasons often quote a peer (a provider's error_description, STS's message), so control
    /// and bidirectional-format characters are shown escaped (`\u{1B}`) rather than sent to the terminal.
    public var description: String {
        let reason = Self.printable(self.reason)
        if let hint { return "\(reason) (\(code.rawValue))\n  → \(Self.printable(hint))" }
        return "\(reason) (\(code.rawValue))"
    }

    /// `text` with every control character but newline and tab, and every format character (bidi overrides,
    /// zero-width marks), written as a Swift escape.
    public static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isUnsafe) else { return text }
        var out = ""
        for scalar in text.unicodeScalars {
            if isUnsafe(scalar) { out += scalar.escaped(asASCII: true) } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\n" || scalar == "\t" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format: return true
        default: return false
        }
    }

    /// The process exit code for this error; documented in README.md and stable across releases.
    public var exitCode: Int32 {
        switch code {
        case .usage, .configInvalid: return 2
        case .loginRequired, .loginFailed, .stateMismatch, .tokenInvalid, .passphraseRequired: return 3
        case .stsAccessDenied, .stsExpiredToken, .stsInvalidIdentityToken, .stsError: return 4
        case .idpUnreachable, .idpError, .stsUnreachable: return 5
        case .cacheCorrupt, .cacheInsecure, .secretStoreUnavailable, .lockTimeout, .io: return 6
        case .nested: return 7
        }
    }
}
