import Foundation

/// A private LemonLDAP::NG OpenID Provider (Debian `lemonldap-ng`, OpenID-certified) behind its own nginx on a free
/// loopback port, set up by scripts/partners/lemonldap-setup.sh and stopped by lemonldap-stop.sh (by its PIDs only).
public final class LemonLDAPServer: Sendable {
    /// "http://127.0.0.1:PORT": the issuer.
    public let issuer: String
    /// The public PKCE client.
    public let clientID = "keyless-cli"
    /// LemonLDAP 2.16 compares redirect URIs exactly: the port the client's loopback redirect must use.
    public let redirectPort: Int
    /// The instance's directory (configuration, logs, PID files).
    public let directory: String

    private init(port: Int, redirectPort: Int, directory: String) {
        self.issuer = "http://127.0.0.1:\(port)"
        self.redirectPort = redirectPort
        self.directory = directory
    }

    /// A demo user of the Debian configuration: dwho/dwho (groups timelords, users), email dwho@badwolf.org.
    public static let user = (name: "dwho", password: "dwho", email: "dwho@badwolf.org")

    /// Starts an instance whose ID tokens live `idTokenTTL` seconds.
    public static func start(redirectPort: Int, idTokenTTL: Int = 3600) async throws -> LemonLDAPServer {
        guard Tooling.have("nginx") || FileManager.default.isExecutableFile(atPath: "/usr/sbin/nginx") else {
            throw TestSupportError("LemonLDAP::NG and nginx are not installed (run scripts/test)")
        }
        let scripts = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners")
        return try await startOnFreePort { port in
            let directory = try makeTemporaryDirectory(prefix: "keyless-llng")
            let result = try PartnerProcess.run(
                "/bin/bash", [scripts + "/lemonldap-setup.sh", directory, String(port), String(redirectPort)],
                environment: ["LLNG_ID_TOKEN_TTL": String(idTokenTTL)], timeout: 90)
            if result.status == 0 {
                return .started(LemonLDAPServer(port: port, redirectPort: redirectPort, directory: directory))
            }
            _ = try? PartnerProcess.run("/bin/bash", [scripts + "/lemonldap-stop.sh", directory], timeout: 30)
            return .failed(
                "lemonldap-setup.sh \(directory) \(port) \(redirectPort) failed (status \(result.status)):\n\(result.output)",
                portTaken: result.output.contains("Address already in use") || result.output.contains("already answers")
            )
        }
    }

    /// Stops nginx and the portal by their PIDs and removes the directory (unless partner files are kept).
    public func stopAndRemove() {
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/lemonldap-stop.sh")
        _ = try? PartnerProcess.run("/bin/bash", [script, directory], timeout: 30)
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) }
    }
}
