import Foundation

/// A private Samba Active Directory domain controller (Debian `samba-ad-dc`) on 127.0.0.1, provisioned by
/// scripts/partners/samba-ad-setup.sh and stopped by samba-ad-stop.sh (by its PID only). Realm EXAMPLE.TEST, base
/// DC=example,DC=test; users alice, bob, carol and dave (disabled), passwords Passw0rd-A1 … -D1; groups
/// developers{alice,bob,dave}, admins{alice,platform}, platform{carol}. Its ports are Samba's fixed 389 and 636 (and
/// the global catalog's 3268, 3269): one per machine, as root; simple binds need TLS (LDAPS or StartTLS).
public final class SambaADServer: Sendable {
    public let directory: String

    public static let base = "DC=example,DC=test"
    public static let bindDN = "CN=keyless,OU=Services,DC=example,DC=test"
    public static let bindPassword = "Svc-Bind-Secret-1"
    public static let ldapsURL = "ldaps://127.0.0.1:636"
    public static let url = "ldap://127.0.0.1:389"

    /// The PEM file of the CA that signed the DC's certificate (for 127.0.0.1 and localhost).
    public var caFile: String { directory + "/tls/ca.pem" }

    private init(directory: String) { self.directory = directory }

    /// Why this machine cannot run one, or nil when it can (root, and 389/636/3268/3269 free on 127.0.0.1).
    public static var unavailable: String? {
        guard getuid() == 0 else { return "Samba AD binds ports below 1024 and must run as root" }
        return nil
    }

    /// Provisions and starts a DC (10 to 45 seconds).
    public static func start() throws -> SambaADServer {
        let scripts = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners")
        let directory = try makeTemporaryDirectory(prefix: "keyless-ad")
        let result = try PartnerProcess.run(
            "/bin/bash", [scripts + "/samba-ad-setup.sh", directory, "389", "636"], timeout: 240)
        guard result.status == 0 else {
            _ = try? PartnerProcess.run("/bin/bash", [scripts + "/samba-ad-stop.sh", directory], timeout: 30)
            try? FileManager.default.removeItem(atPath: directory)
            throw TestSupportError("samba-ad-setup.sh \(directory) failed (status \(result.status)):\n\(result.output)")
        }
        return SambaADServer(directory: directory)
    }

    /// Stops samba by its PID and removes its directory (unless partner files are kept).
    public func stopAndRemove() {
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/samba-ad-stop.sh")
        _ = try? PartnerProcess.run("/bin/bash", [script, directory], timeout: 30)
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) }
    }
}
