import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A private PostgreSQL server for tests: a fresh cluster in a temporary directory, listening on 127.0.0.1 (and a Unix
/// socket in that directory) only, user `keyless` with trust authentication, fsync off.
///
/// initdb and postgres refuse to run as root; when the tests do, both run as the `postgres` account (else `nobody`)
/// through `setpriv`, which execs, so the PID this launcher holds is postgres itself. `stop()` signals that PID only.
public final class PostgresServer: Sendable {
    /// The TCP port on 127.0.0.1.
    public let port: Int
    /// The superuser every URL names.
    public let user = "keyless"
    /// The temporary directory holding the cluster (`data`), the socket directory and, with TLS, the certificates.
    public let directory: String
    /// The CA certificate (PEM) that signed the server's certificate (for `sslrootcert`), when started with TLS.
    public let caCertificatePath: String?
    /// The postgres process (its log is the server log).
    public let process: PartnerProcess
    /// The server log.
    public var logPath: String { process.logPath }

    private let binDirectory: String?

    private init(
        port: Int, directory: String, caCertificatePath: String?, process: PartnerProcess, binDirectory: String?
    ) {
        self.port = port
        self.directory = directory
        self.caCertificatePath = caCertificatePath
        self.process = process
        self.binDirectory = binDirectory
    }

    /// Creates a cluster and starts postgres on a free port, waiting (up to 90 s) until it accepts connections; with
    /// `tls`, the server also offers TLS with a certificate for IP 127.0.0.1 signed by a throwaway CA (needs openssl).
    public static func start(tls: Bool = false) async throws -> PostgresServer {
        let binDirectory = findBinDirectory()
        func tool(_ name: String) throws -> String {
            if let binDirectory {
                let path = (binDirectory as NSString).appendingPathComponent(name)
                if FileManager.default.isExecutableFile(atPath: path) { return path }
            }
            guard let path = Tooling.path(of: name) else {
                throw TestSupportError(
                    "PostgreSQL's \(name) was not found in /usr/lib/postgresql/*/bin or PATH "
                        + "(apt-get install postgresql, or run scripts/test)")
            }
            return path
        }
        let initdb = try tool("initdb"), postgres = try tool("postgres"), isReady = try tool("pg_isready")
        let account = try unprivilegedAccount()
        let directory = try makeDirectory(for: account)
        var started = false
        defer { if !started && !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) } }

        let data = (directory as NSString).appendingPathComponent("data")
        let sockets = (directory as NSString).appendingPathComponent("socket")
        try makePrivateDirectory(sockets, owner: account)
        let initialised = try PartnerProcess.run(
            account?.prefix.first ?? initdb,
            (account.map { Array($0.prefix.dropFirst()) + [initdb] } ?? [])
                + ["-D", data, "-U", "keyless", "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"],
            environment: ["LC_ALL": "C"], currentDirectory: directory, timeout: 60)
        guard initialised.status == 0 else {
            throw TestSupportError("initdb failed (status \(initialised.status)):\n\(initialised.output)")
        }
        // Trust only loopback TCP and the private socket directory.
        try """
        local all all trust
        host all all 127.0.0.1/32 trust
        """.write(toFile: (data as NSString).appendingPathComponent("pg_hba.conf"), atomically: false, encoding: .utf8)

        var settings = [
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_permissions=0700", "-c", "max_connections=300",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "log_min_messages=warning",
        ]
        var caCertificatePath: String?
        if tls {
            let files = try makeCertificates(in: directory, owner: account)
            caCertificatePath = files.ca
            settings += ["-c", "ssl=on", "-c", "ssl_cert_file=\(files.certificate)", "-c", "ssl_key_file=\(files.key)"]
        }

        let server = try await startOnFreePort { port -> PartnerStart<PostgresServer> in
            let arguments = ["-D", data, "-h", "127.0.0.1", "-p", String(port), "-k", sockets, "-F"] + settings
            let process = try PartnerProcess(
                executable: account?.prefix.first ?? postgres,
                arguments: (account.map { Array($0.prefix.dropFirst()) + [postgres] } ?? []) + arguments,
                environment: ["LC_ALL": "C"], currentDirectory: directory,
                logPath: (directory as NSString).appendingPathComponent("postgres-\(port).log"))
            let deadline = Date().addingTimeInterval(90)
            do {
                while Date() < deadline && process.isRunning {
                    let probe = try PartnerProcess.run(
                        isReady,
                        [
                            "-q", "-h", "127.0.0.1", "-p", String(port), "-U", "keyless",
                            "-d", "postgres", "-t", "1",
                        ], timeout: 10)
                    if probe.status == 0 {
                        return .started(
                            PostgresServer(
                                port: port, directory: directory, caCertificatePath: caCertificatePath,
                                process: process, binDirectory: binDirectory))
                    }
                    try await Task.sleep(for: .milliseconds(50))
                }
            } catch {
                shutDown(process)
                throw error
            }
            let why =
                process.isRunning
                ? "postgres did not accept connections on 127.0.0.1:\(port) within 90 s"
                : "postgres exited with status \(process.exitStatus ?? -1)"
            shutDown(process)
            let log = process.log()
            return .failed(
                why + "; log \(process.logPath):\n\(process.logTail())",
                portTaken: log.contains("could not bind") || log.contains("already in use"))
        }
        started = true
        return server
    }

    /// `postgres://keyless@127.0.0.1:PORT/DATABASE?sslmode=SSLMODE`.
    public func url(database: String, sslMode: String = "disable") -> String {
        "postgres://\(user)@127.0.0.1:\(port)/\(database)?sslmode=\(sslMode)"
    }

    /// Creates database `name` (letters, digits and `_`), owned by `keyless`.
    public func createDatabase(_ name: String) throws {
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw TestSupportError("database name \(name) must be letters, digits and _ only")
        }
        _ = try psql("CREATE DATABASE \(name)", database: "postgres")
    }

    /// Runs `sql` with psql in `database` (unaligned, tuples only) and returns its output; throws with psql's message on error.
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        let psql = try binary("psql")
        let result = try PartnerProcess.run(
            psql,
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                "-p", String(port), "-U", user, "-d", database, "-c", sql,
            ],
            environment: ["PGSSLMODE": "disable", "PGCONNECT_TIMEOUT": "10"], timeout: 30)
        guard result.status == 0 else {
            throw TestSupportError("psql -c \(sql) in \(database) failed (status \(result.status)):\n\(result.output)")
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops postgres (SIGINT, its fast shutdown; SIGKILL after 10 s) by its PID and deletes its directory, unless
    /// KEYLESS_KEEP_PARTNER_FILES is set. Idempotent.
    public func stop() {
        Self.shutDown(process)
        if !keepPartnerFiles { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Stops postgres and deletes its directory.
    deinit { stop() }

    /// Fast shutdown by PID: SIGINT, then SIGKILL after 10 s; waits until it has exited.
    private static func shutDown(_ process: PartnerProcess) {
        // Not yet reaped, so the PID is still our child's: postgres, not setpriv, which exec'd it.
        if process.isRunning {
            kill(process.pid, SIGINT)
            if process.waitForExit(timeout: 10) == nil { kill(process.pid, SIGKILL) }
        }
        process.stop()
    }

    private func binary(_ name: String) throws -> String {
        if let binDirectory {
            let path = (binDirectory as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        guard let path = Tooling.path(of: name) else { throw TestSupportError("PostgreSQL's \(name) was not found") }
        return path
    }

    // MARK: Setup

    /// The account initdb and postgres run as, and the setpriv command line that switches to it; nil when not root.
    private struct Account {
        let uid: uid_t
        let gid: gid_t
        let prefix: [String]
    }

    private static func unprivilegedAccount() throws -> Account? {
        guard geteuid() == 0 else { return nil }
        guard let setpriv = Tooling.path(of: "setpriv") else {
            throw TestSupportError(
                "running as root, PostgreSQL must run as another user, which needs setpriv "
                    + "(apt-get install util-linux, or run scripts/test), or run the tests as a non-root user")
        }
        for name in ["postgres", "nobody"] {
            var entry = passwd()
            var result: UnsafeMutablePointer<passwd>?
            var buffer = [CChar](repeating: 0, count: 4096)
            if getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil, entry.pw_uid != 0 {
                return Account(
                    uid: entry.pw_uid, gid: entry.pw_gid,
                    prefix: [setpriv, "--reuid=\(entry.pw_uid)", "--regid=\(entry.pw_gid)", "--clear-groups", "--"])
            }
        }
        throw TestSupportError(
            "running as root, PostgreSQL must run as another user, but neither postgres nor nobody exists")
    }

    /// The highest /usr/lib/postgresql/VERSION/bin holding initdb and postgres, else the directory of initdb in PATH
    /// (symbolic links resolved); nil to look each tool up in PATH.
    private static func findBinDirectory() -> String? {
        let fileManager = FileManager.default
        func holdsServer(_ directory: String) -> Bool {
            ["initdb", "postgres"].allSatisfy {
                fileManager.isExecutableFile(atPath: (directory as NSString).appendingPathComponent($0))
            }
        }
        let root = "/usr/lib/postgresql"
        let versions = ((try? fileManager.contentsOfDirectory(atPath: root)) ?? [])
            .map { ($0, $0.split(separator: ".").compactMap { Int($0) }) }
            .filter { !$0.1.isEmpty }
            .sorted { $0.1.lexicographicallyPrecedes($1.1) }
        for (version, _) in versions.reversed() {
            let directory = "\(root)/\(version)/bin"
            if holdsServer(directory) { return directory }
        }
        if let initdb = Tooling.path(of: "initdb") {
            let directory = URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent().path
            if holdsServer(directory) { return directory }
        }
        return nil
    }

    /// A new private directory for the cluster; when switching accounts, under /tmp (which every account can reach,
    /// unlike a TMPDIR under /root) and owned by that account.
    private static func makeDirectory(for account: Account?) throws -> String {
        guard let account else { return try makeTemporaryDirectory(prefix: "keyless-postgres") }
        var template = Array("/tmp/keyless-postgres-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestSupportError("mkdtemp in /tmp failed: \(String(cString: strerror(errno)))")
        }
        let directory = String(cString: made)
        guard chown(directory, account.uid, account.gid) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: directory)
            throw TestSupportError("cannot give \(directory) to uid \(account.uid): \(reason)")
        }
        return directory
    }

    private static func makePrivateDirectory(_ path: String, owner: Account?) throws {
        guard mkdir(path, 0o700) == 0 else {
            throw TestSupportError("mkdir \(path) failed: \(String(cString: strerror(errno)))")
        }
        if let owner, chown(path, owner.uid, owner.gid) != 0 {
            throw TestSupportError("cannot give \(path) to uid \(owner.uid): \(String(cString: strerror(errno)))")
        }
    }

    /// A throwaway CA and a server certificate for IP 127.0.0.1 it signed (ECDSA P-256, valid one day); the key is
    /// owned by the server's account, mode 0600, as postgres demands.
    private static func makeCertificates(in directory: String, owner: Account?) throws -> (
        ca: String, certificate: String, key: String
    ) {
        guard let openssl = Tooling.path(of: "openssl") else {
            throw TestSupportError(
                "openssl is needed for a TLS PostgreSQL server (apt-get install openssl, or run scripts/test)")
        }
        let tls = (directory as NSString).appendingPathComponent("tls")
        try makePrivateDirectory(tls, owner: nil)
        func path(_ name: String) -> String { (tls as NSString).appendingPathComponent(name) }
        func run(_ arguments: [String]) throws {
            let result = try PartnerProcess.run(openssl, arguments, timeout: 30)
            guard result.status == 0 else {
                throw TestSupportError(
                    "openssl \(arguments.joined(separator: " ")) failed (status \(result.status)):\n\(result.output)")
            }
        }
        try run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-keyout", path("ca.key"), "-out", path("ca.pem"), "-subj", "/CN=keyless test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        try run([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=127.0.0.1",
        ])
        try """
        basicConstraints=critical,CA:FALSE
        keyUsage=critical,digitalSignature
        extendedKeyUsage=serverAuth
        subjectAltName=IP:127.0.0.1
        """.write(toFile: path("server.ext"), atomically: false, encoding: .utf8)
        try run([
            "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
            "-CAcreateserial",
            "-days", "1", "-extfile", path("server.ext"), "-out", path("server.pem"),
        ])
        for file in ["server.key", "server.pem"] {
            chmod(path(file), 0o600)
            if let owner, chown(path(file), owner.uid, owner.gid) != 0 {
                throw TestSupportError(
                    "cannot give \(path(file)) to uid \(owner.uid): \(String(cString: strerror(errno)))")
            }
        }
        // The server's account must reach its files in the root-owned directory; the CA key stays unreadable to it.
        if owner != nil {
            chmod(tls, 0o711)
            chmod(path("ca.pem"), 0o644)
        }
        return (path("ca.pem"), path("server.pem"), path("server.key"))
    }
}
