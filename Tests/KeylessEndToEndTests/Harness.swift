import Foundation
import KeylessTestSupport
import Testing

/// The built `keyless` binary, run as a person's tools run it: its own HOME, state and AWS config.
final class KeylessHarness: @unchecked Sendable {
    // @unchecked: fields are fixed at init; tests use one harness from one task at a time.
    let home: String
    let binary: String
    var environment: [String: String]

    /// The result of one run.
    struct Run: CustomStringConvertible {
        let status: Int32
        let stdout: String
        let stderr: String
        var description: String { "status \(status)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }
    }

    init(moto: MotoServer?, extra: [String: String] = [:]) throws {
        home = try makeTemporaryDirectory(prefix: "keyless-home")
        binary = try builtBinary("keyless")
        var env: [String: String] = [
            "HOME": home,
            "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
            "KEYLESS_FILE_PASSPHRASE": "test-passphrase-\(UUID().uuidString)",
            "KEYLESS_NO_TTY": "1",
            "KEYLESS_KEYRING_TTL": "0",
            "AWS_CONFIG_FILE": home + "/.aws/config",
            "AWS_SHARED_CREDENTIALS_FILE": home + "/.aws/credentials",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LANG": "C.UTF-8",
        ]
        if let moto { env["AWS_ENDPOINT_URL"] = moto.endpoint }
        env.merge(extra) { _, new in new }
        environment = env
        try FileManager.default.createDirectory(atPath: home + "/.aws", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: home) }

    /// keyless's state directory under this harness's HOME (XDG default).
    var stateDirectory: String { home + "/.local/state/keyless" }
    /// The default (encrypted file) store's entries.
    var storeDirectory: String { stateDirectory + "/store" }

    /// Runs keyless with `arguments`; stdout and stderr are captured separately.
    func run(_ arguments: [String], extra: [String: String] = [:], timeout: TimeInterval = 120) throws -> Run {
        try runProgram(binary, arguments, extra: extra, timeout: timeout)
    }

    /// Runs any program with the harness environment.
    func runProgram(
        _ program: String, _ arguments: [String], extra: [String: String] = [:], timeout: TimeInterval = 120
    ) throws -> Run {
        let started = try start(program, arguments, extra: extra)
        return try started.wait(timeout: timeout)
    }

    /// Starts keyless (or another program) without waiting; stdout and stderr go to separate files.
    func start(_ program: String? = nil, _ arguments: [String], extra: [String: String] = [:]) throws -> Started {
        let out = home + "/out-\(UUID().uuidString)"
        let err = home + "/err-\(UUID().uuidString)"
        // PartnerProcess spawns with default signal handling and reaps by PID: Foundation's Process on Linux
        // leaves children with signals blocked (dbus-daemon then outlives its session) and can miss their exit.
        let process = try PartnerProcess(
            executable: program ?? binary, arguments: arguments,
            environment: environment.merging(extra) { _, new in new },
            inheritEnvironment: false, logPath: out, stderrPath: err)
        return Started(process: process, out: out, err: err)
    }

    /// A running program.
    final class Started: @unchecked Sendable {
        // @unchecked: the process is used from one test task.
        let process: PartnerProcess
        let out: String
        let err: String
        init(process: PartnerProcess, out: String, err: String) {
            self.process = process
            self.out = out
            self.err = err
        }

        var stderrSoFar: String { (try? String(contentsOfFile: err, encoding: .utf8)) ?? "" }

        func wait(timeout: TimeInterval) throws -> Run {
            guard let status = process.waitForExit(timeout: timeout) else {
                process.stop()
                throw TestSupportError("timed out after \(Int(timeout)) s; stderr:\n\(stderrSoFar)")
            }
            return Run(
                status: status, stdout: (try? String(contentsOfFile: out, encoding: .utf8)) ?? "", stderr: stderrSoFar)
        }

        /// Waits until stderr matches `pattern` for the `occurrence`-th time and returns that match's first capture group.
        func waitForStderr(_ pattern: String, occurrence: Int = 1, timeout: TimeInterval = 30) throws -> String {
            let regex = try NSRegularExpression(pattern: pattern)
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                let text = stderrSoFar
                let matches = regex.matches(in: text, range: NSRange(text.startIndex..., in: text))
                if matches.count >= occurrence, let range = Range(matches[occurrence - 1].range(at: 1), in: text) {
                    return String(text[range])
                }
                if !process.isRunning { break }
                usleep(50_000)
            }
            throw TestSupportError("stderr never matched \(pattern):\n\(stderrSoFar)")
        }
    }

    /// Logs in with the device flow, approving the code through glewlwyd's API as `user`.
    func deviceLogin(_ idp: GlewlwydServer, user: GlewlwydUser = .alice, extraArguments: [String] = []) async throws
        -> Run
    {
        let login = try start(
            nil, ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--device"] + extraArguments)
        let code = try login.waitForStderr("enter the code ([A-Z0-9-]+)")
        try await idp.approveDevice(userCode: code, user: user.name, password: user.password)
        return try login.wait(timeout: 60)
    }

    /// Logs in with the device flow against `keyless idp`, approving the code on its device page as alice.
    func deviceLogin(_ idp: EmbeddedIdP) async throws -> Run {
        let login = try start(nil, ["login", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--device"])
        try await idp.approveDevice(userCode: try login.waitForStderr("enter the code ([A-Z0-9-]+)"))
        return try login.wait(timeout: 60)
    }

    /// The `creds-process` arguments for a role.
    func credsProcessArguments(_ idp: GlewlwydServer, roleArn: String, extra: [String] = []) -> [String] {
        [
            "creds-process", "--issuer-url", idp.issuer, "--client-id", idp.clientID, "--aws-role-arn", roleArn,
            "--redirect-port", String(idp.redirectPort),
        ] + extra
    }

    /// Writes `~/.aws/config` with one keyless profile.
    func writeProfile(_ name: String, _ idp: GlewlwydServer, roleArn: String, extra: String = "") throws {
        let line = ([binary] + credsProcessArguments(idp, roleArn: roleArn)).joined(separator: " ") + extra
        let text = "[profile \(name)]\nregion = us-east-1\ncredential_process = \(line)\n"
        try text.write(toFile: environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
    }
}

/// Partners for one test: moto, glewlwyd, and a role; stopped by PID when the test ends.
struct Partners {
    let moto: MotoServer
    let idp: GlewlwydServer
    let roleArn: String

    static func start(accessTTL: Int = 3600, refreshTTL: Int = 1_209_600) async throws -> Partners {
        let moto = try await MotoServer.start()
        do {
            let idp = try await GlewlwydServer.start(
                redirectPort: try freeFixedPort(), accessTTL: accessTTL, refreshTTL: refreshTTL)
            let role = try await moto.createRole(name: "dev")
            return Partners(moto: moto, idp: idp, roleArn: role)
        } catch {
            moto.stop()
            throw error
        }
    }

    func stop() {
        idp.stopAndRemove()
        moto.stop()
    }
}

/// Parses credential_process JSON.
func credentialJSON(_ text: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(object as? [String: Any])
}
