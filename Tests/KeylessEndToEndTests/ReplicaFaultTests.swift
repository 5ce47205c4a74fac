import Foundation
import KeylessTestSupport
import Testing

/// Two provider replicas and two access-server replicas behind nginx, on one PostgreSQL, with moto as STS, under load
/// and faults (scripts/partners/replica_faults.py): kill -9 of a replica of each, a PostgreSQL restart, a key rotation.
@Suite("replicas under load and faults", .serialized)
struct ReplicaFaultTests {
    @Test(
        "under kill -9, a PostgreSQL restart and a key rotation, no code, refresh token, one-time code or client assertion is accepted twice, across replicas"
    )
    func noSingleUseValueAcceptedTwice() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-replica-faults")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let report = directory + "/report.json"
        let run = try PartnerProcess.run(
            Tooling.python(),
            [
                repositoryRoot() + "/scripts/partners/replica_faults.py", "--keyless-cli", try EmbeddedIdP.keylessCLI(),
                "--duration", "40",
                "--json-out", report,
            ], timeout: 300)
        try #require(run.status == 0, "the harness failed (status \(run.status)):\n\(run.output.suffix(3000))")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])

        for count in [
            "codes_accepted_twice", "refresh_tokens_accepted_twice", "totp_replays_accepted",
            "assertion_replays_accepted",
        ] {
            #expect(json[count] as? Int == 0, "\(count): \(json[count] ?? "missing")")
        }
        // The checks ran: each kind of single-use value was tried across replicas.
        let checks = try #require(json["replay_checks"] as? [String: [String: Any]])
        // (Minimums low enough for a loaded machine: a run alone here makes 4-5 times as many.)
        for (kind, least) in [("code", 20), ("refresh_token", 20), ("assertion", 5), ("totp", 1)] {
            #expect((checks[kind]?["trials"] as? Int ?? 0) >= least, "\(kind): \(checks[kind] ?? [:])")
        }
        #expect((json["errors"] as? [Any])?.isEmpty == true, "\(json["errors"] ?? "missing")")
        let healthy = try #require(json["healthy_at_end"] as? [String: Bool])
        #expect(!healthy.isEmpty && healthy.values.allSatisfy { $0 }, "\(healthy)")
        // Requests in flight at a kill -9 or during the PostgreSQL restart may fail; no more than 5 % of the valid ones.
        let valid = try #require(json["valid_requests"] as? Int)
        let failed = try #require((json["valid_failed"] as? [String: Any])?["total"] as? Int)
        #expect(
            valid >= 100 && failed * 20 <= valid,
            "\(failed) of \(valid) valid requests failed: \(json["valid_failed"] ?? "")")

        let recovery = (json["recovery_seconds"] as? [String: Double] ?? [:]).sorted { $0.key < $1.key }
            .map { "\($0.key) \(String(format: "%.2f", $0.value)) s" }.joined(separator: ", ")
        print(
            "replica faults: \(json["requests_sent"] ?? "?") requests sent, \(failed) of \(valid) valid requests failed; "
                + "accepted twice: codes \(json["codes_accepted_twice"] ?? "?"), refresh tokens \(json["refresh_tokens_accepted_twice"] ?? "?"), "
                + "one-time codes \(json["totp_replays_accepted"] ?? "?"), client assertions \(json["assertion_replays_accepted"] ?? "?"); "
                + "recovery: \(recovery)")
    }
}
