import Foundation
import KeylessTestSupport
import Testing

/// oidc-agent (Debian oidc-agent-cli), a third-party client people already use, against keyless idp: the code and
/// device flows with a public client (which sends `Authorization: Basic base64("id:")`, an empty secret) and a
/// confidential one, each followed by a forced refresh (scripts/partners/oidc_agent_flow.sh).
@Suite("oidc-agent as a client of keyless idp", .serialized)
struct OIDCAgentTests {
    static let secret = "oidc-agent-secret-123"

    /// A port oidc-agent accepts for its redirect (1024–49151), free and out of the kernel's ephemeral range.
    static func redirectPort() throws -> Int { try freeFixedPort() }

    @Test(
        "code and device flow, public and confidential client: oidc-agent gets alice's ID token and refreshes it",
        arguments: [("code", false), ("device", false), ("code", true), ("device", true)])
    func flows(flow: String, confidential: Bool) async throws {
        guard Tooling.have("oidc-agent"), Tooling.have("oidc-gen") else {
            Issue.record("oidc-agent-cli is missing: run scripts/test, which installs it")
            return
        }
        let redirect = "http://localhost:\(try Self.redirectPort())/redirect"
        let hash = try EmbeddedIdP.hashSecret(Self.secret)
        let idp = try await EmbeddedIdP.start(
            extraClients: """
                  - id: oidc-agent-public
                    redirect_uris: [\(redirect)]
                    grants: [authorization_code, refresh_token, device_code]
                  - id: oidc-agent-confidential
                    secret_hash: "\(hash)"
                    redirect_uris: [\(redirect)]
                    grants: [authorization_code, refresh_token, device_code]
                """)
        defer { idp.stopAndRemove() }
        let work = try makeTemporaryDirectory(prefix: "keyless-oidc-agent")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/oidc_agent_flow.sh")
        let client = confidential ? "oidc-agent-confidential" : "oidc-agent-public"
        let run = try PartnerProcess.run(
            "/bin/bash", [script, work + "/run", idp.issuer, client, flow] + (confidential ? [Self.secret] : []),
            environment: [
                "OIDC_AGENT_REDIRECT_URI": redirect, "KEYLESS_TEST_USER": "alice",
                "KEYLESS_TEST_PASSWORD": EmbeddedIdPUser.alice.password,
            ],
            timeout: 180)
        #expect(run.status == 0, "\(run.output)")
        let kind = confidential ? "confidential" : "public"
        #expect(run.output.contains("oidc_agent_flow: OK \(flow) \(kind) sub=alice aud=\(client)"), "\(run.output)")
        #expect(!run.output.contains(Self.secret), "the secret is never printed")
    }

    @Test("a public client that sends a real secret, and a confidential client with a wrong one, are refused")
    func wrongSecrets() async throws {
        guard Tooling.have("oidc-agent"), Tooling.have("oidc-gen") else {
            Issue.record("oidc-agent-cli is missing: run scripts/test, which installs it")
            return
        }
        let hash = try EmbeddedIdP.hashSecret(Self.secret)
        let idp = try await EmbeddedIdP.start(
            extraClients: """
                  - id: oidc-agent-public
                    redirect_uris: [http://localhost:43817/redirect]
                    grants: [authorization_code, refresh_token, device_code]
                  - id: oidc-agent-confidential
                    secret_hash: "\(hash)"
                    redirect_uris: [http://localhost:43817/redirect]
                    grants: [authorization_code, refresh_token, device_code]
                """)
        defer { idp.stopAndRemove() }
        let work = try makeTemporaryDirectory(prefix: "keyless-oidc-agent")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/oidc_agent_flow.sh")
        for (client, secret) in [("oidc-agent-public", "a-guess"), ("oidc-agent-confidential", "not-the-secret")] {
            let run = try PartnerProcess.run(
                "/bin/bash", [script, work + "/" + client, idp.issuer, client, "device", secret],
                environment: ["OIDC_AGENT_TIMEOUT": "30"], timeout: 120)
            #expect(run.status != 0, "\(run.output)")
            #expect(run.output.contains("invalid_client"), "\(run.output)")
        }
    }
}
