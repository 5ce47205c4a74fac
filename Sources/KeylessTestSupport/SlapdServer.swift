import Foundation
import KeylessCore

/// A private OpenLDAP `slapd` (Debian) on loopback, set up by scripts/partners/slapd-setup.sh with its own cn=config,
/// database and CA, and stopped by slapd-stop.sh (by its PID only). Base dc=example,dc=com; users alice, bob, carol
/// (passwords Passw0rd-A1, -B1, -C1); groups developers{alice,bob}, admins{alice,platform}, platform{carol}; StartTLS
/// on the plain port, LDAPS on the second.
public final class SlapdServer: Sendable {
    public let port: Int
    public let ldapsPort: Int
    public let directory: String

    public static let base = "dc=example,dc=com"
    public static let bindDN = "cn=keyless,ou=services,dc=example,dc=com"
    public static let bindPassword = "Svc-Bind-Secret-1"
    public static let adminDN = "cn=admin,dc=example,dc=com"
    public static let adminPassword = "Admin-Passw0rd-1"

    /// `ldap://127.0.0.1:PORT`.
    public var url: String { "ldap://127.0.0.1:\(port)" }
    /// `ldaps://127.0.0.1:PORT`.
    public var ldapsURL: String { "ldaps://127.0.0.1:\(ldapsPort)" }
    /// The PEM file of the CA that signed the server's certificate (for 127.0.0.1 and localhost).
    public var caFile: String { directory + "/tls/ca.pem" }
    /// The server's log: every BIND and SRCH with its result (`-d stats`).
    public var logFile: String { directory + "/slapd.log" }

    private init(port: Int, ldapsPort: Int, directory: String) {
        self.port = port
        self.ldapsPort = ldapsPort
        self.directory = directory
    }

    /// Starts an instance; `memberOf` is "overlay" (direct groups) or "dynlist" (through nested groups).
    public static func start(memberOf: String = "overlay") async throws -> SlapdServer {
        let scripts = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners")
        return try await startOnFreePort { port in
            let ldapsPort = try freePort()
            let directory = try makeTemporaryDirectory(prefix: "keyless-slapd")
            let result = try PartnerProcess.run(
                "/bin/bash", [scripts + "/slapd-setup.sh", directory, String(port), String(ldapsPort)],
                environment: ["SLAPD_MEMBEROF": memberOf], timeout: 120)
            if result.status == 0 {
                return .started(SlapdServer(port: port, ldapsPort: ldapsPort, directory: directory))
            }
            _ = try? PartnerProcess.run("/bin/bash", [scripts + "/slapd-stop.sh", directory], timeout: 30)
            try? FileManager.default.removeItem(atPath: directory)
            return .failed(
                "slapd-setup.sh \(directory) \(port) \(ldapsPort) failed (status \(result.status)):\n\(result.output)",
                portTaken: result.output.contains("in use"))
        }
    }

    /// Writes the service account's password into a 0600 file in the directory (what `bind_password_file` names in
    /// idp.yaml) and returns its path.
    public func bindPasswordFile() throws -> String {
        let path = directory + "/keyless-bind-password"
        try Files.writeAtomically(Array((Self.bindPassword + "\n").utf8), to: path, mode: 0o600)
        return path
    }

    /// Runs an ldapmodify as the directory's administrator (LDIF on standard input).
    public func modify(_ ldif: String) throws {
        let file = directory + "/change-\(UUID().uuidString).ldif"
        try ldif.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try PartnerProcess.run(
            "ldapmodify", ["-x", "-H", url, "-D", Self.adminDN, "-w", Self.adminPassword, "-f", file], timeout: 30)
        guard result.status == 0 else { throw TestSupportError("ldapmodify failed: \(result.output)") }
    }

    /// Stops slapd by its PID (the directory stays, so a test can start nothing else on it).
    public func stop() {
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/slapd-stop.sh")
        _ = try? PartnerProcess.run("/bin/bash", [script, directory], timeout: 30)
    }

    /// Stops slapd and removes its directory (unless partner files are kept).
    public func stopAndRemove() {
        stop()
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) }
    }
}
