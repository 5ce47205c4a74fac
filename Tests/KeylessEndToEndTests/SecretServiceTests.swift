import Foundation
import KeylessTestSupport
import Testing

/// The Secret Service backends against a real gnome-keyring daemon in a private D-Bus session.
@Suite("Secret Service through gnome-keyring", .serialized)
struct SecretServiceTests {
    @Test(
        "tokens and credentials live in gnome-keyring, and the encrypted file store keeps its key there when no passphrase is set"
    )
    func gnomeKeyring() async throws {
        guard Tooling.have("dbus-run-session"), Tooling.have("gnome-keyring-daemon"), Tooling.have("gdbus") else {
            Issue.record(
                "dbus-run-session, gnome-keyring-daemon or gdbus is missing: run scripts/test, which installs them")
            return
        }
        let partners = try await Partners.start()
        defer { partners.stop() }
        let harness = try KeylessHarness(moto: partners.moto)
        try FileManager.default.createDirectory(atPath: harness.home + "/run", withIntermediateDirectories: true)
        chmod(harness.home + "/run", 0o700)
        let keyless = harness.binary
        let login = "\(keyless) login --issuer-url \(partners.idp.issuer) --client-id \(partners.idp.clientID) --device"
        let creds = harness.credsProcessArguments(partners.idp, roleArn: partners.roleArn, extra: ["--no-browser"]).map
        { "'\($0)'" }.joined(separator: " ")
        // gnome-keyring unlocked with a password on stdin creates the login collection; gdbus waits until it owns its name.
        let script = """
            set -eu
            unset KEYLESS_FILE_PASSPHRASE
            printf %s keyring-password | gnome-keyring-daemon --unlock --components=secrets --daemonize >/dev/null
            gdbus wait --session --timeout 10 org.freedesktop.secrets
            \(login) --secret-store secret-service
            \(keyless) \(creds) --secret-store secret-service > "$HOME/ss.json"
            \(keyless) status --secret-store secret-service > "$HOME/ss-status.txt"
            \(login)
            \(keyless) \(creds) > "$HOME/file.json"
            \(keyless) \(creds) --secret-store secret-service > "$HOME/ss-again.json"
            """
        let session = try harness.start(
            "dbus-run-session", ["--", "bash", "-c", script], extra: ["XDG_RUNTIME_DIR": harness.home + "/run"])
        let first = try session.waitForStderr("enter the code ([A-Z0-9-]+)", occurrence: 1, timeout: 60)
        try await partners.idp.approveDevice(userCode: first, user: "alice", password: "alice-password-1")
        let second = try session.waitForStderr("enter the code ([A-Z0-9-]+)", occurrence: 2, timeout: 60)
        try await partners.idp.approveDevice(userCode: second, user: "alice", password: "alice-password-1")
        let run = try session.wait(timeout: 120)
        #expect(run.status == 0, "\(run)")

        let viaSecretService = try credentialJSON(
            try String(contentsOfFile: harness.home + "/ss.json", encoding: .utf8))
        #expect((viaSecretService["AccessKeyId"] as? String)?.hasPrefix("ASIA") == true)
        let again = try credentialJSON(try String(contentsOfFile: harness.home + "/ss-again.json", encoding: .utf8))
        #expect(
            again["AccessKeyId"] as? String == viaSecretService["AccessKeyId"] as? String,
            "the second call is served from the Secret Service cache")
        #expect(
            try String(contentsOfFile: harness.home + "/ss-status.txt", encoding: .utf8).contains("alice@example.com"))

        // Only headers are on disk for the secret-service backend.
        let ssDir = harness.stateDirectory + "/store-secret-service"
        for file in try FileManager.default.contentsOfDirectory(atPath: ssDir) where file.hasSuffix(".entry") {
            let body = try String(contentsOfFile: ssDir + "/" + file, encoding: .utf8).split(separator: "\n")
            #expect(body.count == 2 && body[1] == "os-store", "\(file) must hold only a header and a marker")
        }
        // The file store's key came from the Secret Service, not a passphrase.
        let record = try credentialJSON(
            try String(contentsOfFile: harness.storeDirectory + "/key.json", encoding: .utf8))
        #expect(record["source"] as? String == "os-store")
        #expect(record["salt"] == nil)
        #expect(
            (try credentialJSON(try String(contentsOfFile: harness.home + "/file.json", encoding: .utf8)))[
                "AccessKeyId"] is String)
    }
}
