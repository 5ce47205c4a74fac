import Foundation
import KeylessStorage
import PostgresNIO

/// The parts of a `postgres://` URL the store uses.
struct PostgresURL: Equatable, CustomStringConvertible {
    /// libpq's `sslmode` values.
    enum SSLMode: String, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    var host: String
    var port: Int
    var username: String
    var password: String?
    var database: String?
    var sslMode: SSLMode
    var sslRootCertificate: String?

    /// Whether and how to use TLS.
    enum TLS {
        /// Plain TCP.
        case disable
        /// TLS when the server offers it.
        case prefer(TLSConfiguration)
        /// TLS or no connection.
        case require(TLSConfiguration)
    }
}

extension PostgresURL {
    /// Parses `postgres://` or `postgresql://` URLs; rejects what it would otherwise ignore (unknown parameters).
    init(parsing url: String) throws {
        func invalid(_ reason: String) -> IdPStoreError {
            IdPStoreError(
                "invalid PostgreSQL URL: \(reason); expected "
                    + "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=disable|require|verify-ca|verify-full]")
        }
        guard let components = URLComponents(string: url) else { throw invalid("it does not parse as a URL") }
        guard let scheme = components.scheme?.lowercased(), scheme == "postgres" || scheme == "postgresql" else {
            throw invalid("the scheme must be postgres:// or postgresql://")
        }
        guard var host = components.host, !host.isEmpty else { throw invalid("it names no host") }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }  // IPv6 literal
        guard let username = components.user, !username.isEmpty else { throw invalid("it names no user") }
        self.host = host
        self.port = components.port ?? 5432
        self.username = username
        self.password = components.password
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        self.database = path.isEmpty ? nil : path
        self.sslMode = .disable
        self.sslRootCertificate = nil
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, let mode = SSLMode(rawValue: value) else {
                    throw invalid("sslmode must be one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = mode
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else { throw invalid("sslrootcert needs a PEM file path") }
                sslRootCertificate = value
            default:
                throw invalid("unsupported parameter \(item.name) (supported: sslmode, sslrootcert)")
            }
        }
    }

    /// The TLS configuration `sslMode` asks for.
    func tls() throws -> TLS {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let sslRootCertificate {
            guard FileManager.default.isReadableFile(atPath: sslRootCertificate) else {
                throw IdPStoreError("cannot read the PostgreSQL sslrootcert file \(sslRootCertificate)")
            }
            configuration.trustRoots = .file(sslRootCertificate)
        }
        switch sslMode {
        case .disable:
            return .disable
        case .allow, .prefer:
            configuration.certificateVerification = .none
            return .prefer(configuration)
        case .require:
            // As in libpq: encryption only, unless a root certificate is given, which makes it verify-ca.
            configuration.certificateVerification = sslRootCertificate == nil ? .none : .noHostnameVerification
            return .require(configuration)
        case .verifyCA:
            configuration.certificateVerification = .noHostnameVerification
            return .require(configuration)
        case .verifyFull:
            configuration.certificateVerification = .fullVerification
            return .require(configuration)
        }
    }

    /// `user@host:port/database`, without the password.
    var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(username)@\(shownHost):\(port)/\(database ?? username)"
    }
}
