import Foundation
import KeylessTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The artifacts `scripts/package` wrote: `KEYLESS_PACKAGE_DIR` (scripts/test builds them and sets it).
struct PackageArtifacts {
    let directory: String
    let deb: String
    let tarball: String

    static let directory = ProcessInfo.processInfo.environment["KEYLESS_PACKAGE_DIR"]

    /// Why these tests cannot run here, or nil when they can.
    static var unavailable: String? {
        guard let directory else {
            return "KEYLESS_PACKAGE_DIR is not set: scripts/test runs scripts/package and then these tests with it"
        }
        guard (try? find(in: directory)) != nil else { return "no keyless .deb and tarball in \(directory)" }
        return nil
    }

    static func find(in directory: String = directory ?? "") throws -> PackageArtifacts {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        guard let deb = names.first(where: { $0.hasPrefix("keyless_") && $0.hasSuffix(".deb") }),
            let tarball = names.first(where: {
                $0.hasPrefix("keyless-") && $0.hasSuffix(".tar.gz") && !$0.hasSuffix("-debug.tar.gz")
            })
        else { throw TestSupportError("no keyless_*.deb or keyless-*.tar.gz in \(directory)") }
        return PackageArtifacts(directory: directory, deb: directory + "/" + deb, tarball: directory + "/" + tarball)
    }
}

/// A clean Debian root made by debootstrap (stable, minbase, plus systemd, man-db and bash-completion, no Swift), with /proc
/// mounted while it is in use. Programs run in it through chroot(8), as root or as a user, with only the environment
/// given; processes started in it are stopped by PID. Removed (after /proc is unmounted) when released.
final class DebianRoot: @unchecked Sendable {
    // @unchecked: used from one test task.
    let path: String
    private var procMounted = false
    static let systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static var unavailable: String? {
        if getuid() != 0 { return "debootstrap and chroot need root" }
        for tool in ["debootstrap", "chroot", "mount"] where Tooling.path(of: tool) == nil {
            return "\(tool) is not installed (scripts/test installs it)"
        }
        return nil
    }

    init() throws {
        path = try makeTemporaryDirectory(prefix: "keyless-debian")
        let environment = ProcessInfo.processInfo.environment
        let suite = environment["KEYLESS_DEBIAN_SUITE"] ?? "stable"
        let mirror = environment["KEYLESS_DEBIAN_MIRROR"] ?? "http://deb.debian.org/debian"
        let made = try PartnerProcess.run(
            "debootstrap", ["--variant=minbase", "--include=systemd,man-db,bash-completion", suite, path, mirror],
            timeout: 1200)
        guard made.status == 0 else {
            throw TestSupportError("debootstrap \(suite) failed (status \(made.status)):\n\(made.output.suffix(3000))")
        }
        chmod(path, 0o755)  // its "/": the services' user must be able to traverse it
        let mounted = try PartnerProcess.run("mount", ["-t", "proc", "proc", path + "/proc"], timeout: 30)
        guard mounted.status == 0 else { throw TestSupportError("mount proc in \(path): \(mounted.output)") }
        procMounted = true
    }

    deinit {
        if procMounted, (try? PartnerProcess.run("umount", [path + "/proc"], timeout: 30))?.status != 0 {
            _ = try? PartnerProcess.run("umount", ["-l", path + "/proc"], timeout: 30)
        }
        // Never remove a tree that still has something mounted in it.
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        if !mounts.contains(" \(path)/") { try? FileManager.default.removeItem(atPath: path) }
    }

    /// chroot's arguments for `argv` in this root as `user` (nil: root), with exactly `environment`.
    func chrootArguments(_ argv: [String], user: String? = nil) -> [String] {
        (user.map { ["--userspec=\($0):\($0)"] } ?? []) + [path] + argv
    }

    /// The environment programs in the root get: a system PATH, a UTF-8 locale, HOME and what the test adds.
    func environment(home: String = "/root", _ extra: [String: String] = [:]) -> [String: String] {
        ["PATH": Self.systemPath, "HOME": home, "LANG": "C.UTF-8"].merging(extra) { _, new in new }
    }

    /// Runs `argv` in the root and returns its status and output (stdout and stderr together).
    func run(
        _ argv: [String], user: String? = nil, environment extra: [String: String] = [:], timeout: TimeInterval = 120
    ) throws -> (status: Int32, output: String) {
        let child = try start(argv, user: user, environment: extra)
        defer { try? FileManager.default.removeItem(atPath: child.logPath) }
        guard let status = child.waitForExit(timeout: timeout) else {
            child.stop()
            throw TestSupportError("\(argv.joined(separator: " ")) in the root did not finish in \(Int(timeout)) s")
        }
        return (status, child.log())
    }

    /// Starts `argv` in the root (stdout and stderr to one log, or stderr apart with `stderrPath`).
    func start(
        _ argv: [String], user: String? = nil, environment extra: [String: String] = [:], stderrPath: String? = nil
    ) throws -> PartnerProcess {
        try PartnerProcess(
            executable: "chroot", arguments: chrootArguments(argv, user: user),
            environment: environment(home: user == nil ? "/root" : "/var/lib/keyless", extra),
            inheritEnvironment: false, stderrPath: stderrPath)
    }

    /// A file in the root, by its path inside it.
    func file(_ inside: String) -> String { path + inside }

    func exists(_ inside: String) -> Bool { FileManager.default.fileExists(atPath: file(inside)) }
}

/// A systemd unit file read as the service manager would need it here: ExecStartPre, ExecStart, User, Environment.
struct UnitFile {
    let execStartPre: [[String]]
    let execStart: [String]
    let user: String?
    let environment: [String: String]
    /// What systemd creates for the service user before starting it: StateDirectory= under /var/lib, LogsDirectory=
    /// under /var/log.
    let directories: [String]
    let text: String

    init(path: String) throws {
        text = try String(contentsOfFile: path, encoding: .utf8)
        var pre: [[String]] = []
        var start: [String] = []
        var user: String?
        var environment: [String: String] = [:]
        var directories: [String] = []
        for line in text.split(separator: "\n").map(String.init) where !line.hasPrefix("#") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = String(line[..<equals])
            let value = String(line[line.index(after: equals)...])
            let words = value.split(separator: " ").map(String.init)
            switch key {
            case "ExecStartPre": pre.append(words)
            case "ExecStart": start = words
            case "User": user = value
            case "StateDirectory": directories.append("/var/lib/" + value)
            case "LogsDirectory": directories.append("/var/log/" + value)
            case "Environment":
                for word in words {
                    let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                    if parts.count == 2 { environment[parts[0]] = parts[1] }
                }
            default: break
            }
        }
        (execStartPre, execStart, self.user, self.environment, self.directories) = (
            pre, start, user, environment, directories
        )
    }
}

@Suite(
    "the installed package: .deb in a clean Debian root, the tarball anywhere, the same bytes again",
    .serialized, .enabled(if: PackageArtifacts.unavailable == nil, "\(PackageArtifacts.unavailable ?? "")"))
struct InstalledPackageTests {
    @Test(
        "dpkg -i in debootstrap's stable minbase (no Swift): version, man pages, bash completion, idp check, both units started as their user with READY=1, a device login, creds-process from the cache with the partners stopped, the AWS CLI through credential_process; remove keeps /etc/keyless, purge clears it",
        .enabled(if: DebianRoot.unavailable == nil, "\(DebianRoot.unavailable ?? "")"))
    func debianInstall() async throws {
        let artifacts = try PackageArtifacts.find()
        let root = try DebianRoot()
        // No Swift toolchain or runtime inside: what runs below runs on the package alone.
        #expect(try root.run(["sh", "-c", "command -v swift"]).status != 0)
        #expect(try root.run(["sh", "-c", "find / -xdev -name 'libswiftCore*' | head -1"]).output.isEmpty)

        try FileManager.default.copyItem(atPath: artifacts.deb, toPath: root.file("/tmp/keyless.deb"))
        let installed = try root.run(["dpkg", "-i", "/tmp/keyless.deb"], timeout: 300)
        try #require(installed.status == 0, "dpkg -i: \(installed.output)")

        // The launcher on PATH finds keyless-cli in /usr/libexec/keyless; the packaged build names its commit.
        let version = try root.run(["keyless", "--version"])
        #expect(version.status == 0, "\(version.output)")
        #expect(
            version.output.wholeMatch(of: /keyless \d+\.\d+\.\d+ \(commit [0-9a-f]{12}\)\n/) != nil, "\(version.output)"
        )
        #expect(try root.run(["keyless", "version", "--json"]).output.contains(#""commit":""#))
        #expect(root.exists("/usr/libexec/keyless/keyless-cli") && !root.exists("/usr/bin/keyless-cli"))

        for page in ["keyless", "keyless-login", "keyless-creds-process", "keyless-idp-serve", "keyless-server"] {
            let man = try root.run(["man", "-w", page])
            #expect(man.output == "/usr/share/man/man1/\(page).1.gz\n", "man -w \(page): \(man.output)")
        }
        let rendered = try root.run(["sh", "-c", "MANWIDTH=100 man keyless-login 2>&1 | head -20"])
        #expect(rendered.output.contains(/keyless\s+login\s+\[--issuer-url/), "\(rendered.output)")
        let completion = try root.run([
            "bash", "-c",
            ". /usr/share/bash-completion/bash_completion; { _comp_load keyless || __load_completion keyless; } 2>/dev/null; complete -p keyless",
        ])
        #expect(completion.status == 0 && completion.output.contains("keyless"), "\(completion.output)")
        #expect(root.exists("/usr/share/zsh/vendor-completions/_keyless"))
        #expect(root.exists("/usr/share/fish/vendor_completions.d/keyless.fish"))

        // The configuration: conffiles readable by the services' group only; the system user exists.
        let check = try root.run(["keyless", "idp", "check", "--config", "/etc/keyless/idp.yaml"])
        #expect(check.status == 0 && check.output.contains("ok"), "\(check.output)")
        #expect(try root.run(["stat", "-c", "%a %U %G", "/etc/keyless/idp.yaml"]).output == "640 root keyless\n")
        #expect(try root.run(["getent", "passwd", "keyless"]).output.contains(":/usr/sbin/nologin"))

        // The units: the root's own systemd-analyze verify (its systemd, its binaries, its users).
        for unit in ["keyless-idp.service", "keyless-server.service"] {
            let verify = try root.run(["systemd-analyze", "verify", "--man=no", "/usr/lib/systemd/system/\(unit)"])
            #expect(verify.status == 0 && verify.output.isEmpty, "\(unit): \(verify.output)")
        }

        // The admin enables both services (offline, as in an image build: the [Install] sections are valid).
        let enabled = try root.run(["systemctl", "enable", "keyless-idp.service", "keyless-server.service"])
        #expect(enabled.status == 0, "\(enabled.output)")
        for unit in ["keyless-idp.service", "keyless-server.service"] {
            let link = try? FileManager.default.destinationOfSymbolicLink(
                atPath: root.file("/etc/systemd/system/multi-user.target.wants/\(unit)"))
            #expect(link == "/usr/lib/systemd/system/\(unit)")
        }

        // An admin adds a person and starts the provider with the unit's own commands, as its user, where systemd
        // would (StateDirectory made 0700 for the user; NOTIFY_SOCKET set): it says READY=1 once it listens.
        let hash = try root.run(
            [
                "sh", "-c", "printf '%s\\n' \"$PASSWORD\" | keyless idp hash-password --stdin",
            ], environment: ["PASSWORD": EmbeddedIdPUser.alice.password])
        try #require(hash.status == 0, "\(hash.output)")
        let idpPort = try freePort()
        var idpYAML = try String(contentsOfFile: root.file("/etc/keyless/idp.yaml"), encoding: .utf8)
        idpYAML = idpYAML.replacingOccurrences(of: "http://127.0.0.1:9000", with: "http://127.0.0.1:\(idpPort)")
            .replacingOccurrences(
                of: "groups: []\nusers: []\n",
                with: """
                    groups: [engineers]
                    users:
                      - username: alice
                        password_hash: "\(hash.output.trimmingCharacters(in: .whitespacesAndNewlines))"
                        email: alice@example.com
                        groups: [engineers]

                    """)
        try idpYAML.write(toFile: root.file("/etc/keyless/idp.yaml"), atomically: false, encoding: .utf8)
        let idpUnit = try UnitFile(path: root.file("/usr/lib/systemd/system/keyless-idp.service"))
        #expect(idpUnit.text.contains("Type=notify") && idpUnit.text.contains("ProtectSystem=strict"))
        let idp = try await startService(
            idpUnit, in: root, listen: ("127.0.0.1:9000", "127.0.0.1:\(idpPort)"), health: "http://127.0.0.1:\(idpPort)"
        )
        defer { idp.stop() }
        #expect(try root.run(["stat", "-c", "%U %a", "/var/lib/keyless/idp/idp.sqlite"]).output == "keyless 600\n")

        // A person logs in (device flow, approved on the provider's page) and gets credentials from moto's STS.
        let moto = try await MotoServer.start()
        defer { moto.stop() }
        let role = try await moto.createRole(name: "readonly")
        let person = [
            "KEYLESS_NO_TTY": "1", "KEYLESS_FILE_PASSPHRASE": "installed-\(UUID().uuidString)",
            "KEYLESS_KEYRING_TTL": "0",
        ]
        let issuer = "http://127.0.0.1:\(idpPort)"
        let loginErr = root.file("/tmp/login.err")
        let login = try root.start(
            ["keyless", "login", "--issuer-url", issuer, "--client-id", "keyless-cli", "--device"],
            environment: person, stderrPath: loginErr)
        defer { login.stop() }
        let started = KeylessHarness.Started(process: login, out: login.logPath, err: loginErr)
        let code = try started.waitForStderr("enter the code ([A-Z0-9-]+)", timeout: 60)
        try await EmbeddedIdP.approveDevice(at: issuer, userCode: code)
        #expect(
            login.waitForExit(timeout: 60) == 0, "\((try? String(contentsOfFile: loginErr, encoding: .utf8)) ?? "")")
        let credsArguments = [
            "creds-process", "--issuer-url", issuer, "--client-id", "keyless-cli", "--aws-role-arn", role,
            "--sts-endpoint", moto.endpoint,
        ]
        let first = try root.run(["keyless"] + credsArguments, environment: person)
        #expect(first.status == 0 && first.output.contains("\"AccessKeyId\""), "\(first.output)")

        // The AWS CLI (on this machine) with a profile whose credential_process is the installed keyless.
        let aws = try makeTemporaryDirectory(prefix: "keyless-installed-aws")
        defer { try? FileManager.default.removeItem(atPath: aws) }
        let line = (["chroot", root.path, "/usr/bin/keyless"] + credsArguments).joined(separator: " ")
        try "[profile installed]\nregion = us-east-1\ncredential_process = \(line)\n"
            .write(toFile: aws + "/config", atomically: true, encoding: .utf8)
        let identity = try PartnerProcess.run(
            "aws",
            [
                "sts", "get-caller-identity", "--profile", "installed", "--endpoint-url", moto.endpoint, "--query",
                "Arn",
                "--output", "text",
            ],
            environment: root.environment(person).merging([
                "PATH": ProcessInfo.processInfo.environment["PATH"] ?? DebianRoot.systemPath,
                "AWS_CONFIG_FILE": aws + "/config", "AWS_SHARED_CREDENTIALS_FILE": aws + "/credentials",
            ]) { _, new in new })
        #expect(
            identity.output.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/readonly/alice@example.com", "\(identity.output)")

        // The access server, started the same way, trusts the provider and grants alice by her group.
        let serverPort = try freePort()
        var serverYAML = try String(contentsOfFile: root.file("/etc/keyless/server.yaml"), encoding: .utf8)
        serverYAML = serverYAML.replacingOccurrences(of: "127.0.0.1:9000", with: "127.0.0.1:\(idpPort)")
            .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(serverPort)")
        try serverYAML.write(toFile: root.file("/etc/keyless/server.yaml"), atomically: false, encoding: .utf8)
        let server = try await startService(
            try UnitFile(path: root.file("/usr/lib/systemd/system/keyless-server.service")), in: root, listen: nil,
            health: "http://127.0.0.1:\(serverPort)")
        defer { server.stop() }
        let roles = try root.run(
            [
                "keyless", "roles", "--server", "http://127.0.0.1:\(serverPort)", "--issuer-url", issuer, "--client-id",
                "keyless-cli",
            ], environment: person)
        #expect(roles.status == 0 && roles.output.contains("readonly"), "\(roles.output)")
        server.stop()

        // With the provider and STS stopped, the answer comes from the encrypted cache, byte for byte.
        idp.stop()
        moto.stop()
        let cached = try root.run(["keyless"] + credsArguments, environment: person)
        #expect(cached.status == 0 && cached.output == first.output, "\(cached.output)")

        // Remove: the programs go, the configuration (conffiles, one edited) stays; purge clears it and the state.
        let removed = try root.run(["dpkg", "-r", "keyless"], timeout: 300)
        #expect(removed.status == 0, "\(removed.output)")
        #expect(!root.exists("/usr/bin/keyless") && !root.exists("/usr/libexec/keyless/keyless-cli"))
        #expect(!root.exists("/usr/share/man/man1/keyless.1.gz"))
        #expect(root.exists("/etc/keyless/idp.yaml") && root.exists("/etc/keyless/server.yaml"))
        #expect(root.exists("/var/lib/keyless/idp/idp.sqlite"), "remove keeps the provider's store")
        let purged = try root.run(["dpkg", "--purge", "keyless"], timeout: 300)
        #expect(purged.status == 0, "\(purged.output)")
        #expect(!root.exists("/etc/keyless") && !root.exists("/var/lib/keyless"))
        #expect(
            (try? FileManager.default.destinationOfSymbolicLink(
                atPath: root.file("/etc/systemd/system/multi-user.target.wants/keyless-idp.service"))) == nil)
    }

    /// The tarball unpacked into a new temporary directory: that directory, and its one top directory (keyless-VERSION).
    func unpackTarball(prefix: String) throws -> (directory: String, top: String) {
        let artifacts = try PackageArtifacts.find()
        let directory = try makeTemporaryDirectory(prefix: prefix)
        let unpacked = try PartnerProcess.run("tar", ["-xzf", artifacts.tarball, "-C", directory])
        try #require(unpacked.status == 0, "\(unpacked.output)")
        let top = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first)
        return (directory, directory + "/" + top)
    }

    @Test(
        "the tarball unpacked anywhere: bin/keyless finds libexec/keyless/keyless-cli beside it, man pages and completions in share/"
    )
    func tarballAnywhere() throws {
        let (directory, prefix) = try unpackTarball(prefix: "keyless-tarball")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let environment = ["HOME": directory, "PATH": "/usr/bin:/bin"]
        let version = try PartnerProcess.run(prefix + "/bin/keyless", ["version"], environment: environment)
        #expect(
            version.output.wholeMatch(of: /keyless \d+\.\d+\.\d+ \(commit [0-9a-f]{12}\)\n/) != nil, "\(version.output)"
        )
        // Through a symbolic link elsewhere (as ~/.local/bin/keyless), the launcher still finds its companion.
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/keyless", withDestinationPath: prefix + "/bin/keyless")
        #expect(
            try PartnerProcess.run(directory + "/keyless", ["version"], environment: environment).output
                == version.output)
        let man = try PartnerProcess.run(
            "man", ["-w", "keyless-login"], environment: ["MANPATH": prefix + "/share/man"])
        #expect(man.output == prefix + "/share/man/man1/keyless-login.1.gz\n", "\(man.output)")
        let completion = try PartnerProcess.run(
            "bash", ["-c", ". \"$0\"; complete -p keyless", prefix + "/share/bash-completion/completions/keyless"])
        #expect(completion.status == 0 && completion.output.contains("keyless"), "\(completion.output)")
        #expect(FileManager.default.fileExists(atPath: prefix + "/share/zsh/site-functions/_keyless"))
        #expect(FileManager.default.fileExists(atPath: prefix + "/etc/keyless/idp.yaml"))
    }

    @Test(
        "the binaries load no C++ runtime and no libgcc_s (linked in: loading them cost every start 0.6 ms) and need glibc 2.35 at most (Ubuntu 22.04, Debian 12)"
    )
    func dependencies() throws {
        let (directory, prefix) = try unpackTarball(prefix: "keyless-dependencies")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let system: Set = ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"]
        for (binary, allowed) in [
            ("bin/keyless", system), ("libexec/keyless/keyless-cli", system.union(["libsqlite3.so.0", "libz.so.1"])),
        ] {
            let path = prefix + "/" + binary
            let dynamic = try PartnerProcess.run("readelf", ["-dW", path])
            try #require(dynamic.status == 0, "\(dynamic.output)")
            let needed = dynamic.output.split(separator: "\n").filter { $0.contains("(NEEDED)") }
                .compactMap { $0.firstMatch(of: /\[(.+)\]/).map { String($0.1) } }
            #expect(!needed.isEmpty && Set(needed).isSubset(of: allowed), "\(binary) needs \(needed)")
            let symbols = try PartnerProcess.run("objdump", ["-T", path])
            try #require(symbols.status == 0, "\(symbols.output.prefix(500))")
            let versions = symbols.output.matches(of: /GLIBC_2\.(\d+)/).compactMap { Int($0.1) }
            #expect(!versions.isEmpty && versions.max()! <= 35, "\(binary) needs glibc 2.\(versions.max() ?? 0)")
        }
    }

    @Test(
        "scripts/package from another clone of the same commit, in another directory, from an empty scratch, writes the same bytes (SHA256SUMS equal)"
    )
    func reproducible() throws {
        let artifacts = try PackageArtifacts.find()
        let directory = try makeTemporaryDirectory(prefix: "keyless-package-again")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let checkout = directory + "/another/checkout"
        let head = try PartnerProcess.run("git", ["-C", repositoryRoot(), "rev-parse", "HEAD"])
        let cloned = try PartnerProcess.run("git", ["clone", "-q", repositoryRoot(), checkout])
        try #require(cloned.status == 0, "\(cloned.output)")
        let checkedOut = try PartnerProcess.run(
            "git",
            ["-C", checkout, "checkout", "-q", "--detach", head.output.trimmingCharacters(in: .whitespacesAndNewlines)])
        try #require(checkedOut.status == 0, "\(checkedOut.output)")
        // Every checkout builds in the same work directory (scripts/package says why); its scratch is emptied so that
        // this is a build from nothing, not an incremental one that finds everything done.
        let work = ProcessInfo.processInfo.environment["KEYLESS_PACKAGE_WORK"] ?? "/var/tmp/keyless-package"
        try? FileManager.default.removeItem(atPath: work + "/scratch")
        let again = try PartnerProcess.run(
            checkout + "/scripts/package", ["--out", directory + "/dist"], currentDirectory: checkout, timeout: 3600)
        try #require(again.status == 0, "\(again.output.suffix(3000))")
        let first = try String(contentsOfFile: artifacts.directory + "/SHA256SUMS", encoding: .utf8)
        let second = try String(contentsOfFile: directory + "/dist/SHA256SUMS", encoding: .utf8)
        #expect(first == second)
        // swiftc's module hashes (each object's own path goes into them) are zeroes.
        let modhash = try PartnerProcess.run("readelf", ["-x", ".swift_modhash", work + "/normalized/keyless"])
        let bytes = modhash.output.split(separator: "\n").filter { $0.hasPrefix("  0x") }
            .flatMap { $0.split(separator: " ").dropFirst().filter { $0.wholeMatch(of: /[0-9a-f]{2,8}/) != nil } }
        #expect(!bytes.isEmpty && bytes.allSatisfy { $0.allSatisfy { $0 == "0" } }, "\(modhash.output.prefix(500))")
    }
}

/// Starts a unit's service in `root` as systemd would: its ExecStartPre commands first, then ExecStart as the unit's
/// user with the unit's Environment=, its StateDirectory made for that user, and NOTIFY_SOCKET set; returns once the
/// service has sent READY=1 and `health`/healthz answers. `listen` replaces an address in ExecStart (as `systemctl
/// edit` would for another port).
func startService(_ unit: UnitFile, in root: DebianRoot, listen: (String, String)?, health: String) async throws
    -> PartnerProcess
{
    let user = try #require(unit.user)
    for pre in unit.execStartPre {
        let ran = try root.run(pre, user: user, environment: unit.environment)
        try #require(ran.status == 0, "ExecStartPre \(pre.joined(separator: " ")): \(ran.output)")
    }
    for directory in unit.directories {
        let made = try root.run(["install", "-d", "-o", user, "-g", user, "-m", "0700", directory])
        try #require(made.status == 0, "\(made.output)")
    }
    let notifyName = "/run/notify-\(UUID().uuidString.prefix(8))"
    let notify = try NotifySocket(path: root.file(notifyName), mode: 0o777)
    var command = unit.execStart
    if let listen { command = command.map { $0 == listen.0 ? listen.1 : $0 } }
    let service = try root.start(
        command, user: user, environment: unit.environment.merging(["NOTIFY_SOCKET": notifyName]) { _, new in new })
    let ready = notify.receive(timeout: 60)
    guard let ready, ready.hasPrefix("READY=1\n") else {
        service.stop()
        throw TestSupportError(
            "\(command.joined(separator: " ")) sent no READY=1 (got \(ready ?? "nothing")):\n\(service.logTail(30))")
    }
    guard try await service.waitUntilHealthy(health + "/healthz", timeout: 30) else {
        service.stop()
        throw TestSupportError("\(health)/healthz did not answer after READY=1:\n\(service.logTail(30))")
    }
    return service
}
