/// Why an LDAP operation failed: a stable code, and the sentence a person reads.
public struct LDAPError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        /// A filter's string form is wrong (a configuration mistake).
        case filterSyntax = "ldap_filter_syntax"
        /// An `ldap://` or `ldaps://` URL is wrong.
        case badURL = "ldap_bad_url"
        /// The directory could not be reached (refused, unreachable, name not resolved).
        case unreachable = "ldap_unreachable"
        /// The directory did not answer within the timeout.
        case timeout = "ldap_timeout"
        /// TLS failed: a certificate not trusted or not for this host, StartTLS refused.
        case tls = "ldap_tls"
        /// The directory sent something that is not LDAP, or too much of it.
        case malformed = "ldap_malformed"
        /// The directory answered an operation with a result code other than success.
        case result = "ldap_result"
        /// The connection closed before the answer came.
        case closed = "ldap_closed"
        /// A request keyless refuses to send (an empty password, which LDAP would take as an anonymous bind).
        case refused = "ldap_refused"
    }

    public let code: Code
    public let message: String
    /// The LDAP result code, for `.result`.
    public let resultCode: Int?
    /// The server's diagnostic message, for `.result`.
    public let diagnosticMessage: String?

    public init(_ code: Code, _ message: String, resultCode: Int? = nil, diagnosticMessage: String? = nil) {
        self.code = code
        self.message = message
        self.resultCode = resultCode
        self.diagnosticMessage = diagnosticMessage
    }

    static func malformed(_ detail: String) -> LDAPError {
        LDAPError(
            .malformed,
            "the directory sent a message that is not valid LDAP (\(detail)); check that the URL names an LDAP server's port (389 for ldap://, 636 for ldaps://) and not another service"
        )
    }

    public var description: String { "\(message) (\(code.rawValue))" }
}
