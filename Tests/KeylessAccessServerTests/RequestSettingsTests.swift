import Foundation
import KeylessCore
@testable import KeylessAccessServer
import KeylessTestSupport
import Testing

/// server.yaml's `requests:`: where requests are kept, how long they wait, and the webhook; every mistake at its line.
@Suite("Access server: server.yaml requests and webhook")
struct RequestSettingsTests {
    static let base =
        "policy: policy.yaml\naudit_log: logs/audit.log\nissuers:\n  - issuer: https://idp.example.com\n    audiences: [keyless-cli]\n"

    static func parse(_ requests: String, in directory: String = "/etc/keyless") throws -> RequestSettings {
        try ServerConfiguration.parse(base + requests, file: directory + "/server.yaml").requests
    }

    /// The error's text when parsing `requests` fails.
    static func problem(_ requests: String, in directory: String = "/etc/keyless") -> String {
        do {
            _ = try parse(requests, in: directory)
            return "(parsed)"
        } catch let error as KeylessError {
            return error.reason
        } catch {
            return "\(error)"
        }
    }

    @Test("without requests: the store is requests.sqlite beside the audit log, requests wait 24 h, no webhook")
    func defaults() throws {
        let settings = try Self.parse("")
        #expect(settings.store == .sqlite(path: "/etc/keyless/logs/requests.sqlite"))
        #expect(settings.pendingSeconds == 86400 && settings.sweepInterval == 30 && settings.webhook == nil)
    }

    @Test("a postgres:// store with a password file, a relative SQLite path, pending_for and sweep_interval")
    func stores() throws {
        let postgres = try Self.parse(
            "requests:\n  store: postgres://keyless@db:5432/keyless\n  password_file: pg.password\n  pending_for: 2h\n  sweep_interval: 5s\n"
        )
        #expect(
            postgres.store
                == .postgres(url: "postgres://keyless@db:5432/keyless", passwordFile: "/etc/keyless/pg.password"))
        #expect(postgres.pendingSeconds == 7200 && postgres.sweepInterval == 5)
        #expect(
            try Self.parse("requests:\n  store: state/r.sqlite\n").store == .sqlite(path: "/etc/keyless/state/r.sqlite")
        )
    }

    @Test(
        "mistakes are refused at their line: another URL scheme, a password file for SQLite, pending_for out of range, an unknown key"
    )
    func mistakes() {
        #expect(Self.problem("requests:\n  store: mysql://db/keyless\n").contains("server.yaml:7:"))
        #expect(Self.problem("requests:\n  store: mysql://db/keyless\n").contains("not mysql://"))
        #expect(Self.problem("requests:\n  password_file: pw\n").contains("postgres:// store only"))
        #expect(Self.problem("requests:\n  pending_for: 10s\n").contains("from 1m to 30d"))
        #expect(Self.problem("requests:\n  pending_for: 31d\n").contains("from 1m to 30d"))
        #expect(Self.problem("requests:\n  stor: x\n").contains("unknown key stor"))
    }

    @Test(
        "the webhook: an https URL (http only to this machine), a private key file of at least 16 bytes, timeout and attempts in range"
    )
    func webhook() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-webhook-settings")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let key = directory + "/hook.key"
        FileManager.default.createFile(
            atPath: key, contents: Data("0123456789abcdef0123\n".utf8), attributes: [.posixPermissions: 0o600])
        let hook = { (url: String, extra: String) in
            "requests:\n  webhook:\n    url: \(url)\n    secret_file: hook.key\n" + extra
        }
        let parsed = try #require(
            try Self.parse(hook("https://hooks.example.com/x", "    timeout: 2s\n    attempts: 3\n"), in: directory)
                .webhook)
        #expect(parsed.url == "https://hooks.example.com/x" && parsed.timeout == 2 && parsed.attempts == 3)
        #expect(parsed.secret == Array("0123456789abcdef0123".utf8), "the newline is not part of the key")
        #expect(try Self.parse(hook("http://127.0.0.1:9/hook", ""), in: directory).webhook != nil)

        #expect(Self.problem(hook("http://hooks.example.com/x", ""), in: directory).contains("must be an https:// URL"))
        #expect(Self.problem(hook("https://h.example.com", "    attempts: 0\n"), in: directory).contains("1 to 20"))
        #expect(Self.problem(hook("https://h.example.com", "    timeout: 2m\n"), in: directory).contains("at most 60s"))
        #expect(
            Self.problem("requests:\n  webhook:\n    url: https://h.example.com\n", in: directory).contains(
                "needs secret_file"))
        #expect(
            Self.problem(
                hook("https://h.example.com", "").replacingOccurrences(of: "hook.key", with: "nope"), in: directory
            )
            .contains("does not exist"))
        FileManager.default.createFile(
            atPath: directory + "/short.key", contents: Data("short\n".utf8), attributes: [.posixPermissions: 0o600])
        #expect(
            Self.problem(
                hook("https://h.example.com", "").replacingOccurrences(of: "hook.key", with: "short.key"), in: directory
            )
            .contains("shorter than 16 bytes"))
        FileManager.default.createFile(
            atPath: directory + "/open.key", contents: Data("0123456789abcdef0123".utf8),
            attributes: [.posixPermissions: 0o644])
        let open = Self.problem(
            hook("https://h.example.com", "").replacingOccurrences(of: "hook.key", with: "open.key"), in: directory)
        #expect(open != "(parsed)" && open.contains("server.yaml:"), "\(open)")
    }
}
