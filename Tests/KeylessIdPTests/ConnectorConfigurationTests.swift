import Foundation
import KeylessCore
import KeylessDirectory
@testable import KeylessIdP
import KeylessTestSupport
import Testing

@Suite("idp.yaml connectors: the settings of a directory, checked with errors that name the line")
struct ConnectorConfigurationTests {
    static let hash = IdPConfigurationTests.hash

    /// A file with the local users and one Active Directory connector (line numbers matter to the tests below).
    static let valid = """
        issuer: https://idp.example.org
        users:
          - username: alice
            password_hash: "\(hash)"
        clients:
          - id: keyless-cli
            redirect_uris: ["http://127.0.0.1/callback"]
            grants: [authorization_code, refresh_token]
        connectors:
          - id: local
            type: local
          - id: corp
            type: ldap
            name: Example Corp
            url: ldaps://dc1.example.org
            bind_dn: CN=keyless,OU=Services,DC=example,DC=org
            bind_password_file: /etc/keyless/ad-password
            user_base: DC=example,DC=org
            active_directory: true
        """

    func expectError(
        _ old: String, _ new: String, line: Int, _ message: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let text = Self.valid.replacingOccurrences(of: old, with: new)
        #expect(text != Self.valid, "the test must really change the file", sourceLocation: sourceLocation)
        do {
            _ = try IdPConfiguration.parse(text, path: "idp.yaml")
            Issue.record("no error for: \(new)", sourceLocation: sourceLocation)
        } catch let error as KeylessError {
            #expect(error.reason.hasPrefix("idp.yaml:\(line):"), "\(error.reason)", sourceLocation: sourceLocation)
            #expect(error.reason.contains(message), "\(error.reason)", sourceLocation: sourceLocation)
            #expect(error.hint?.isEmpty == false, sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test("an Active Directory connector gets AD's defaults: sAMAccountName/UPN filter, objectGUID, in-chain groups")
    func activeDirectoryDefaults() throws {
        let config = try IdPConfiguration.parse(Self.valid, path: "idp.yaml")
        #expect(config.effectiveConnectors.map(\.id) == ["local", "corp"])
        let corp = try #require(config.connector("corp"))
        #expect(corp.displayName == "Example Corp" && corp.effectiveGroupsPrefix == "corp:")
        let ldap = corp.ldapConfiguration(bindPassword: "pw")
        #expect(ldap.userFilter.contains("(sAMAccountName={u})") && ldap.userFilter.contains("(userPrincipalName={u})"))
        #expect(ldap.subjectAttribute == "objectGUID" && ldap.usernameAttribute == "sAMAccountName")
        #expect(ldap.groups == .activeDirectoryInChain(base: "DC=example,DC=org"))
        #expect(ldap.activeDirectory && ldap.timeout == .seconds(5))
    }

    @Test("without connectors: the file's users are the one connector, with no group prefix")
    func implicitLocal() throws {
        let config = try IdPConfiguration.parse(IdPConfigurationTests.valid, path: "idp.yaml")
        #expect(config.effectiveConnectors.map(\.id) == ["local"])
        #expect(config.effectiveConnectors[0].effectiveGroupsPrefix == "")
    }

    @Test("plain ldap:// to another host without StartTLS is refused: people's passwords would cross in clear")
    func cleartextRefused() {
        expectError("ldaps://dc1.example.org", "ldap://dc1.example.org", line: 15, "in clear text")
        // Loopback, or StartTLS, is fine.
        #expect(
            (try? IdPConfiguration.parse(
                Self.valid.replacingOccurrences(of: "ldaps://dc1.example.org", with: "ldap://dc1.example.org")
                    .replacingOccurrences(of: "active_directory: true", with: "start_tls: true"), path: "idp.yaml"))
                != nil)
    }

    @Test("missing settings, a password in two places, a typo'd key and an unknown type are each refused at their line")
    func refusals() {
        expectError(
            "    bind_password_file: /etc/keyless/ad-password\n", "", line: 12, "no password for its service account")
        expectError(
            "bind_password_file: /etc/keyless/ad-password",
            "bind_password_file: /etc/keyless/ad-password\n    bind_password_env: AD_PW", line: 18, "both")
        expectError("bind_password_file:", "bind_pasword_file:", line: 17, "has no setting 'bind_pasword_file'")
        expectError("    user_base: DC=example,DC=org\n", "", line: 12, "needs user_base")
        expectError("type: ldap", "type: kerberos", line: 13, "unknown type 'kerberos'")
        expectError("id: corp", "id: corp:1", line: 12, "not a short name")
        expectError(
            "active_directory: true", "active_directory: true\n    user_filter: \"(uid={u}\"", line: 12,
            "connector 'corp'")
        expectError(
            "active_directory: true", "active_directory: true\n    groups: {from: magic}", line: 20, "unknown 'magic'")
        expectError(
            "url: ldaps://dc1.example.org", "url: ldaps://dc1.example.org\n    start_tls: true", line: 16, "together")
        expectError(
            "connectors:\n  - id: local\n    type: local\n", "connectors:\n", line: 3, "no connector of type local")
    }

    @Test("an upstream connector: a missing client_id, an http issuer, two secrets, an LDAP setting are refused")
    func upstreamRefusals() {
        let upstream = """
            issuer: https://idp.example.org
            clients:
              - id: keyless-cli
                redirect_uris: ["http://127.0.0.1/callback"]
                grants: [authorization_code]
            connectors:
              - id: google
                type: oidc
                issuer: https://accounts.google.com
                client_id: abc
            """
        func refused(_ old: String, _ new: String, _ message: String, sourceLocation: SourceLocation = #_sourceLocation)
        {
            let text = upstream.replacingOccurrences(of: old, with: new)
            #expect(text != upstream, sourceLocation: sourceLocation)
            do {
                _ = try IdPConfiguration.parse(text, path: "idp.yaml")
                Issue.record("accepted: \(new)", sourceLocation: sourceLocation)
            } catch let error as KeylessError {
                #expect(error.reason.contains(message), "\(error.reason)", sourceLocation: sourceLocation)
            } catch {
                Issue.record("\(error)", sourceLocation: sourceLocation)
            }
        }
        #expect((try? IdPConfiguration.parse(upstream, path: "idp.yaml")) != nil)
        refused("\n    client_id: abc", "", "needs client_id")
        refused("https://accounts.google.com", "http://accounts.google.com", "https issuer")
        refused("client_id: abc", "client_id: abc\n    client_secret_file: /a\n    client_secret_env: B", "both")
        refused("client_id: abc", "client_id: abc\n    bind_dn: cn=x", "has no setting 'bind_dn'")
        refused("client_id: abc", "client_id: abc\n    email_domains: [\"@example.org\"]", "is not a domain")
    }

    @Test("AWS claims: a tag key STS refuses, or a transitive key that is not mapped, is refused at the connector")
    func awsClaimsChecked() {
        expectError(
            "active_directory: true", "active_directory: true\n    aws: {principal_tags: {\"aws:x\": department}}",
            line: 20, "which STS refuses")
        expectError(
            "active_directory: true",
            "active_directory: true\n    aws: {principal_tags: {Dept: department}, transitive_tag_keys: [Team]}",
            line: 20, "transitive tag key 'Team'")
        expectError(
            "active_directory: true", "active_directory: true\n    extra_claims: {sub: employeeID}", line: 20,
            "maps the claim 'sub'")
        #expect(
            (try? IdPConfiguration.parse(
                Self.valid.replacingOccurrences(
                    of: "active_directory: true",
                    with:
                        "active_directory: true\n    aws: {principal_tags: {Dept: department}, source_identity: sAMAccountName}"
                ),
                path: "idp.yaml"))?.connector("corp")?.ldapConfiguration(bindPassword: "x").extraAttributes.sorted()
                == ["department", "sAMAccountName"])
    }

    @Test("a local user whose subject looks like a directory's subject is refused: tokens could confuse the two")
    func subjectCollision() {
        expectError(
            "  - username: alice\n", "  - username: alice\n    subject: corp:1234\n", line: 3, "connector 'corp'")
    }

    @Test("the service account's password: a 0600 file (trailing newline dropped) or a variable; others refused")
    func bindPassword() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-connector")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/pw"
        var connector = IdPConfiguration.Connector(id: "corp", type: "ldap")
        connector.bindPasswordFile = path
        #expect(throws: KeylessError.self) { try Connectors.bindPassword(connector, environment: Environment()) }
        try Files.writeAtomically(Array("s3cret\n".utf8), to: path, mode: 0o600)
        #expect(try Connectors.bindPassword(connector, environment: Environment()) == "s3cret")
        chmod(path, 0o644)
        let error = #expect(throws: KeylessError.self) {
            try Connectors.bindPassword(connector, environment: Environment())
        }
        #expect(error?.reason.contains(path) == true)
        try Files.writeAtomically(Array("\n".utf8), to: path, mode: 0o600)
        let empty = #expect(throws: KeylessError.self) {
            try Connectors.bindPassword(connector, environment: Environment())
        }
        #expect(empty?.reason.contains("empty") == true)
        connector.bindPasswordFile = nil
        connector.bindPasswordEnv = "AD_PW"
        #expect(try Connectors.bindPassword(connector, environment: Environment(["AD_PW": "from-env"])) == "from-env")
        #expect(throws: KeylessError.self) { try Connectors.bindPassword(connector, environment: Environment()) }
    }
}

@Suite("README: the idp.yaml examples with connectors are valid files")
struct ReadmeConnectorExampleTests {
    /// The YAML block after `<!-- readme-example: NAME -->` in README.md.
    static func example(_ name: String) throws -> String { try readmeExample(name) }

    @Test("the OpenLDAP example parses: one directory connector over StartTLS, groups from memberOf")
    func openLDAP() throws {
        let config = try IdPConfiguration.parse(try Self.example("connectors-openldap"), path: "README.md")
        #expect(config.effectiveConnectors.map(\.id) == ["corp"])
        let ldap = try #require(config.connector("corp")).ldapConfiguration(bindPassword: "x")
        #expect(ldap.startTLS && ldap.subjectAttribute == "entryUUID" && ldap.groups == .memberOf(nested: true))
    }

    @Test("the upstream example parses: Google with its hosted domain, Entra with tenant, groups and domains")
    func upstream() throws {
        let config = try IdPConfiguration.parse(try Self.example("connectors-upstream"), path: "README.md")
        #expect(config.effectiveConnectors.map(\.id) == ["google", "entra"])
        #expect(config.connector("google")?.hostedDomain == "example.org")
        #expect(config.connector("entra")?.allowedGroups == ["aws-developers", "aws-admins"])
    }

    @Test("the Active Directory example parses: the file's users as 'local' beside AD with its defaults")
    func activeDirectory() throws {
        let config = try IdPConfiguration.parse(try Self.example("connectors-active-directory"), path: "README.md")
        #expect(config.effectiveConnectors.map(\.id) == ["local", "ad"])
        let ad = try #require(config.connector("ad"))
        #expect(ad.bindPasswordEnv == "KEYLESS_AD_PASSWORD")
        #expect(ad.ldapConfiguration(bindPassword: "x").groups == .activeDirectoryInChain(base: "DC=example,DC=org"))
    }
}
