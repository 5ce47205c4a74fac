import Foundation
import KeylessTestSupport
import Testing

/// A CA → intermediate → leaf chain made with openssl in a temporary directory.
private struct TestPKI {
    let directory: String

    init() throws {
        directory = try makeTemporaryDirectory(prefix: "keyless-pki")
        try sh(
            """
            set -e
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=Keyless Test Root" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout int.key -out int.csr -subj "/CN=Keyless Test Intermediate" 2>/dev/null
            printf 'basicConstraints=critical,CA:TRUE\\nkeyUsage=critical,keyCertSign,cRLSign\\n' > int.ext
            openssl x509 -req -in int.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out int.pem -days 2 -extfile int.ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=127.0.0.1" 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1\\n' > leaf.ext
            openssl x509 -req -in leaf.csr -CA int.pem -CAkey int.key -CAcreateserial -out leaf.pem -days 2 -extfile leaf.ext 2>/dev/null
            cat int.pem > chain-int.pem
            cat int.pem ca.pem > chain-full.pem
            """)
    }

    func sh(_ script: String) throws {
        let result = try PartnerProcess.run("/bin/sh", ["-c", "cd \"$0\" && " + script, directory], timeout: 60)
        guard result.status == 0 else { throw TestSupportError("openssl failed: \(result.output)") }
    }

    /// openssl's SHA-1 fingerprint of a PEM file, in IAM's form (lower-case hex, no colons).
    func fingerprint(_ file: String) throws -> String {
        let result = try PartnerProcess.run(
            "/usr/bin/openssl", ["x509", "-noout", "-fingerprint", "-sha1", "-in", directory + "/" + file], timeout: 30)
        let hex = result.output.split(separator: "=").last.map(String.init) ?? ""
        return hex.replacingOccurrences(of: ":", with: "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    /// `openssl s_server` presenting the leaf with `chainFile` (nil: the leaf alone).
    func serve(chainFile: String?) async throws -> (PartnerProcess, Int) {
        try await startOnFreePort { port in
            var arguments = [
                "s_server", "-accept", "127.0.0.1:\(port)", "-cert", directory + "/leaf.pem", "-key",
                directory + "/leaf.key", "-www", "-quiet",
            ]
            if let chainFile { arguments += ["-cert_chain", directory + "/" + chainFile] }
            let process = try PartnerProcess(
                executable: "/usr/bin/openssl", arguments: arguments, logPath: directory + "/s_server-\(port).log")
            for _ in 0..<100 where process.isRunning {
                let probe = try PartnerProcess.run(
                    "/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 5)
                if probe.status == 0 { return .started((process, port)) }
                try await Task.sleep(for: .milliseconds(100))
            }
            let log = process.logTail()
            process.stop()
            return .failed("openssl s_server did not listen: \(log)", portTaken: log.contains("in use"))
        }
    }
}

@Suite("keyless thumbprint against openssl s_server with a generated chain", .serialized)
struct ThumbprintTests {
    @Test(
        "the thumbprint is the last certificate presented: the intermediate, or the root when the server sends it; it equals openssl's fingerprint"
    )
    func chainOrder() async throws {
        let pki = try TestPKI()
        defer { try? FileManager.default.removeItem(atPath: pki.directory) }
        let harness = try KeylessHarness(moto: nil)
        for (chain, expected) in [("chain-int.pem", "int.pem"), ("chain-full.pem", "ca.pem"), (nil, "leaf.pem")]
            as [(String?, String)]
        {
            let (server, port) = try await pki.serve(chainFile: chain)
            defer { server.stop() }
            let quiet = try harness.run(
                ["thumbprint", "--quiet", "--no-discovery", "https://127.0.0.1:\(port)"], timeout: 60)
            #expect(quiet.status == 0, "\(quiet)")
            #expect(
                quiet.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == (try pki.fingerprint(expected)),
                "chain \(chain ?? "leaf only"): \(quiet)")
            let full = try harness.run(["thumbprint", "https://127.0.0.1:\(port)"], timeout: 60)
            #expect(full.status == 0, "\(full)")
            #expect(full.stdout.contains("1. CN=127.0.0.1"), "\(full)")
            #expect(full.stdout.contains("Thumbprint: \(try pki.fingerprint(expected))"), "\(full)")
            if chain != nil { #expect(full.stdout.contains("CN=Keyless Test Intermediate"), "\(full)") }
        }
    }

    @Test("nothing listening and plain http are clear errors")
    func errors() throws {
        let harness = try KeylessHarness(moto: nil)
        let closed = try harness.run(
            ["thumbprint", "--no-discovery", "https://127.0.0.1:\(try freePort())"], timeout: 60)
        #expect(closed.status == 5, "\(closed)")
        #expect(closed.stderr.contains("Cannot connect"), "\(closed)")
        let http = try harness.run(["thumbprint", "http://example.com"])
        #expect(http.status == 2, "\(http)")
    }
}
