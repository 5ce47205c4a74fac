import Foundation
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

/// What an upstream provider's (verified) ID token becomes, and which tokens a connector's restrictions refuse. The
/// providers that cannot run here are reproduced by their documented claims, cited beside each case.
@Suite("brokering: upstream claims, groups and restrictions")
struct UpstreamIdentityTests {
    static func connector(_ edit: (inout IdPConfiguration.Connector) -> Void = { _ in }) -> IdPConfiguration.Connector {
        var connector = IdPConfiguration.Connector(id: "up", type: "oidc", name: "Upstream")
        connector.issuer = "https://upstream.example"
        connector.clientID = "keyless"
        edit(&connector)
        return connector
    }

    /// A compact JWS whose payload is `claims` (the signature is not looked at: the caller verified it).
    static func token(_ claims: [String: Any]) throws -> String {
        var all: [String: Any] = ["iss": "https://upstream.example", "aud": "keyless", "exp": 1_900_000_000]
        all.merge(claims) { _, new in new }
        let payload = try JSONSerialization.data(withJSONObject: all, options: [.sortedKeys])
        return base64url(Data(#"{"alg":"RS256"}"#.utf8)) + "." + base64url(payload) + ".c2ln"
    }

    func identity(_ connector: IdPConfiguration.Connector, _ claims: [String: Any]) async throws -> Result<
        (String, ConnectedIdentity, [String]), OAuthEngine.UpstreamRefusal
    > {
        let f = try await EngineFixture()
        return f.engine.upstreamIdentity(connector, idToken: try Self.token(claims), refreshToken: "rt-1")
    }

    func refusal(_ connector: IdPConfiguration.Connector, _ claims: [String: Any]) async throws -> String? {
        if case .failure(let refusal) = try await identity(connector, claims) { return refusal.message }
        return nil
    }

    @Test("sub gets the connector's prefix, groups theirs (sorted, once), amr keeps only RFC 8176 values")
    func mapping() async throws {
        let result = try await identity(
            Self.connector(),
            [
                "sub": "248289761001", "email": "jane@example.org", "email_verified": true, "name": "Jane Doe",
                "preferred_username": "jane", "groups": ["ops", "dev", "ops"], "amr": ["pwd", "mfa", "password"],
            ])
        guard case .success(let (subject, identity, amr)) = result else {
            Issue.record("refused: \(result)")
            return
        }
        #expect(subject == "up:248289761001")
        #expect(identity.groups == ["up:dev", "up:ops"])
        #expect(identity.email == "jane@example.org" && identity.name == "Jane Doe" && identity.username == "jane")
        #expect(amr == ["pwd", "mfa"])
        #expect(identity.reference != "rt-1" && !identity.reference.contains("rt-1"), "the refresh token is sealed")
    }

    @Test("an address the provider marks unverified is not used, and so cannot pass email_domains (OIDC Core §5.7)")
    func unverifiedEmail() async throws {
        let connector = Self.connector { $0.emailDomains = ["example.org"] }
        // Okta and Auth0 send email_verified; some send it as the string "false".
        for verified in [false, "false"] as [Any] {
            let message = try await refusal(
                connector, ["sub": "1", "email": "jane@example.org", "email_verified": verified])
            #expect(message?.contains("Only verified addresses at example.org") == true)
        }
        #expect(try await refusal(connector, ["sub": "1", "email": "jane@example.org", "email_verified": true]) == nil)
        #expect(try await refusal(connector, ["sub": "1", "email": "jane@other.org"]) != nil)
    }

    /// Google: "hd: The domain associated with the Google Workspace or Cloud organization of the user. Provided only if
    /// the user belongs to a Google Cloud organization. You must check this claim when restricting access to a
    /// resource to only members of certain domains." (developers.google.com/identity/openid-connect/openid-connect,
    /// "An ID token's payload"). A personal gmail.com account has no hd.
    @Test(
        "hosted_domain: a Google Workspace account of the domain passes; another domain or a gmail.com account is refused"
    )
    func googleHostedDomain() async throws {
        let connector = Self.connector { $0.hostedDomain = "example.org" }
        let base: [String: Any] = [
            "iss": "https://accounts.google.com", "sub": "1", "email": "a@example.org", "email_verified": true,
        ]
        #expect(try await refusal(connector, base.merging(["hd": "example.org"]) { _, b in b }) == nil)
        #expect(try await refusal(connector, base.merging(["hd": "evil.example"]) { _, b in b }) != nil)
        let gmail = try await refusal(connector, base.merging(["email": "a@gmail.com"]) { _, b in b })
        #expect(gmail?.contains("Only accounts of example.org") == true)
    }

    /// Entra ID: "tid: Represents the tenant that the user is signing in to … the GUID that represents the tenant"
    /// (learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference). The /common endpoint signs in
    /// any tenant, so the tenant must be checked.
    @Test("tenant_id: a token from the organisation's Entra tenant passes, one from another tenant is refused")
    func entraTenant() async throws {
        let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad"
        let connector = Self.connector { $0.tenantID = tenant }
        #expect(try await refusal(connector, ["sub": "1", "tid": tenant.uppercased()]) == nil)
        #expect(try await refusal(connector, ["sub": "1", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47"]) != nil)
        #expect(try await refusal(connector, ["sub": "1"]) != nil)
    }

    /// Entra ID's groups overage: a person in more than 200 groups gets `_claim_names: {groups: "src1"}` and no
    /// groups claim (learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference#groups-overage-claim).
    @Test(
        "allowed_groups: only members pass and only allowed groups are kept; Entra's groups overage is refused with the reason"
    )
    func allowedGroups() async throws {
        let connector = Self.connector { $0.allowedGroups = ["aws-admins", "aws-developers"] }
        let result = try await identity(connector, ["sub": "1", "groups": ["aws-developers", "payroll"]])
        guard case .success(let (_, identity, _)) = result else {
            Issue.record("refused: \(result)")
            return
        }
        #expect(identity.groups == ["up:aws-developers"])
        let outsider = try await refusal(connector, ["sub": "2", "groups": ["payroll"]])
        #expect(outsider?.contains("none of the groups allowed") == true)
        let overage = try await refusal(
            connector,
            ["sub": "3", "_claim_names": ["groups": "src1"], "_claim_sources": ["src1": ["endpoint": "https://graph"]]]
        )
        #expect(overage?.contains("no group list") == true)
    }

    @Test("a password posted for an upstream connector is refused, even one a local user has: they sign in upstream")
    func noPasswordForUpstream() async throws {
        var config = Fixture.config()
        config.connectors = [Self.connector(), IdPConfiguration.Connector(id: "local", type: "local")]
        let f = try await EngineFixture(config: config)
        #expect(
            await f.engine.login(
                connector: "up", username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address)
                == .failure(.invalid))
        // With no connector named, the first password connector (here the local users) is used.
        let local = try await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: Fixture.address
        ).get()
        #expect(local.subject == "alice")
    }

    @Test("AWS claims from upstream claims: tags STS would refuse are left out, the source identity checked")
    func awsClaims() async throws {
        let connector = Self.connector {
            $0.aws = .init(
                principalTags: ["Department": "department", "Badge": "badge", "Odd": "odd"],
                transitiveTagKeys: ["Department"], sourceIdentity: "preferred_username")
        }
        let result = try await identity(
            connector,
            ["sub": "1", "department": "R&D", "badge": 4711, "odd": "semi;colon", "preferred_username": "jane.doe"])
        guard case .success(let (_, mapped, _)) = result else {
            Issue.record("refused: \(result)")
            return
        }
        #expect(mapped.awsTags == ["Badge": "4711"], "'R&D' and 'semi;colon' have characters STS refuses")
        #expect(mapped.awsSourceIdentity == "jane.doe")
        let spaced = try await identity(connector, ["sub": "1", "preferred_username": "jane doe"])
        guard case .success(let (_, other, _)) = spaced else { return }
        #expect(other.awsSourceIdentity == nil, "a space is not allowed in a source identity")
    }

    @Test("an ID token without a subject is refused")
    func noSubject() async throws {
        #expect(try await refusal(Self.connector(), ["email": "a@example.org"]) != nil)
    }
}
