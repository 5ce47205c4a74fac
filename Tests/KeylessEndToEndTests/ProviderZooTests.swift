import Foundation
import KeylessTestSupport
import Testing

/// keyless against the providers engineers log in with, each reproduced as documented (scripts/partners/provider_zoo.py,
/// Authlib): a browser login through headless Chromium, a refresh (ID tokens live 100 s, inside keyless's 120 s margin,
/// so the next call must refresh), and `aws sts get-caller-identity` through credential_process against moto.
@Suite("provider zoo: Google, Entra ID, Okta, Auth0 and Keycloak as they document themselves", .serialized)
struct ProviderZooTests {
    /// One persona with moto and a role, and a harness to run keyless in.
    struct Run {
        let zoo: ProviderZoo
        let moto: MotoServer
        let roleArn: String
        let harness: KeylessHarness

        static func start(_ persona: ProviderZoo.Persona, zooFlags: [String] = []) async throws -> Run {
            let moto = try await MotoServer.start()
            do {
                let zoo = try await ProviderZoo.start(persona, flags: ["--token-lifetime", "100"] + zooFlags)
                let role = try await moto.createRole(name: "zoo-\(persona.rawValue)")
                return Run(zoo: zoo, moto: moto, roleArn: role, harness: try KeylessHarness(moto: moto))
            } catch {
                moto.stop()
                throw error
            }
        }

        func stop() {
            zoo.stop()
            moto.stop()
        }

        /// `keyless login` through Chromium as `user` (alice), with the provider flags.
        func login(issuer: String, _ flags: [String], user: String = "alice") throws -> KeylessHarness.Run {
            let browser = Tooling.browserLoginCommand(user: user, password: "\(user)-password-1")
            return try harness.run(
                [
                    "login", "--issuer-url", issuer, "--client-id", "keyless-cli", "--browser", browser.command,
                    "--timeout", "90",
                ] + flags,
                extra: browser.environment, timeout: 150)
        }

        /// Writes a profile whose credential_process carries the same provider flags, and asks the AWS CLI who it is.
        func awsCallerArn(issuer: String, _ flags: [String]) throws -> KeylessHarness.Run {
            let words =
                [
                    harness.binary, "creds-process", "--issuer-url", issuer, "--client-id", "keyless-cli",
                    "--aws-role-arn", roleArn, "--no-browser",
                ] + flags
            let line = words.map { $0.contains(" ") ? "\"\($0)\"" : $0 }.joined(separator: " ")
            try "[profile zoo]\nregion = us-east-1\ncredential_process = \(line)\n".write(
                toFile: harness.environment["AWS_CONFIG_FILE"]!, atomically: true, encoding: .utf8)
            return try harness.runProgram(
                "aws", ["sts", "get-caller-identity", "--profile", "zoo", "--query", "Arn", "--output", "text"])
        }
    }

    static func available() -> Bool {
        guard Tooling.browserLoginAvailable(), Tooling.have("aws"),
            let check = try? PartnerProcess.run(
                Tooling.python(), ["-c", "import authlib, flask, joserfc"], timeout: 60), check.status == 0
        else {
            Issue.record(
                "Chromium, the Playwright venv, the AWS CLI or Authlib is missing: run scripts/test, which installs them"
            )
            return false
        }
        return true
    }

    @Test(
        "Google: no offline_access, access_type=offline and prompt=consent, the Desktop app's secret by Basic, the scheme-less iss of refreshed tokens accepted"
    )
    func google() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.google)
        defer { run.stop() }
        let flags = ["--client-secret", "zoo-installed-secret", "--provider", "google"]

        // Without the Desktop app's secret Google refuses the code exchange; the message says which flag fixes it.
        let noSecret = try run.login(issuer: run.zoo.issuer, ["--provider", "google"])
        #expect(noSecret.status == 5, "\(noSecret)")
        #expect(noSecret.stderr.contains("client_secret is missing"), "\(noSecret)")
        #expect(noSecret.stderr.contains("--client-secret"), "\(noSecret)")

        let login = try run.login(issuer: run.zoo.issuer, flags + ["-vvv"])
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")
        #expect(login.stderr.contains("debug") || login.stderr.contains("trace"), "the most verbose level really logs")
        #expect(!login.stderr.contains("zoo-installed-secret"), "--client-secret is never logged: \(login)")
        let cli = try run.awsCallerArn(issuer: run.zoo.issuer, flags)
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/zoo-google/alice@example.com")

        let requests = try await run.zoo.requests()
        let authorizations = requests.filter {
            $0.endpoint == "authorize" && $0.params["client_id"] == "keyless-cli" && $0.params["access_type"] != nil
        }
        let authorize = try #require(authorizations.last, "\(requests)")
        #expect(authorize.params["scope"] == "openid email profile")
        #expect(authorize.params["access_type"] == "offline")
        #expect(authorize.params["prompt"] == "consent")
        let tokens = requests.filter { $0.endpoint == "token" && $0.outcome == "ok" }
        #expect(tokens.map { $0.params["grant_type"] } == ["authorization_code", "refresh_token"], "\(tokens)")
        #expect(tokens.allSatisfy { $0.clientAuth == "client_secret_basic" }, "\(tokens)")
    }

    @Test(
        "Entra ID: the multi-tenant common issuer verified against tid, no email (preferred_username names the session), domain_hint passed, a public client"
    )
    func entra() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.entra)
        defer { run.stop() }
        let flags = ["--scopes", "openid profile offline_access", "--auth-param", "domain_hint=contoso.example"]
        let login = try run.login(issuer: run.zoo.entraCommonIssuer, flags)
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as alice@contoso.example"), "\(login)")
        #expect(
            login.stderr.contains("issued by \(run.zoo.issuer)"),
            "the tenant's issuer, the one AWS must trust, is named: \(login)")
        let cli = try run.awsCallerArn(issuer: run.zoo.entraCommonIssuer, flags)
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/zoo-entra/alice@contoso.example")

        let requests = try await run.zoo.requests()
        #expect(
            requests.contains { $0.endpoint == "authorize" && $0.params["domain_hint"] == "contoso.example" },
            "\(requests)")
        let tokens = requests.filter { $0.endpoint == "token" && $0.outcome == "ok" }
        #expect(tokens.map { $0.params["grant_type"] } == ["authorization_code", "refresh_token"], "\(tokens)")
        #expect(tokens.allSatisfy { $0.clientAuth == "none" }, "a public client sends no secret: \(tokens)")
    }

    @Test("Entra ID: a secret sent by a public client is refused (AADSTS700025) and the message says to drop it")
    func entraPublicClientSecret() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.entra)
        defer { run.stop() }
        let login = try run.login(issuer: run.zoo.issuer, ["--client-secret", "not-for-public-clients"])
        #expect(login.status == 5, "\(login)")
        #expect(login.stderr.contains("AADSTS700025"), "\(login)")
        #expect(login.stderr.contains("drop --client-secret"), "\(login)")
    }

    @Test(
        "Okta: offline_access and groups, the idp parameter kept with the login, a kid-less JWKS, aud as an array, no id_token on refresh"
    )
    func okta() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.okta, zooFlags: ["--no-kid", "--aud-array", "--no-id-token-on-refresh"])
        defer { run.stop() }
        let login = try run.login(issuer: run.zoo.issuer, ["--auth-param", "idp=0oa1upstreamidp"])
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")
        // The profile carries no --auth-param: the login remembers it.
        let cli = try run.awsCallerArn(issuer: run.zoo.issuer, [])
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/zoo-okta/alice@example.com")

        let requests = try await run.zoo.requests()
        let authorize = try #require(
            requests.last { $0.endpoint == "authorize" && $0.params["idp"] != nil }, "\(requests)")
        // Okta lists groups, and releases the groups claim only for that scope.
        #expect(authorize.params["scope"] == "openid email profile groups offline_access")
        #expect(authorize.params["idp"] == "0oa1upstreamidp")
        #expect(
            requests.contains {
                $0.endpoint == "token" && $0.params["grant_type"] == "refresh_token" && $0.outcome == "ok"
            }, "\(requests)")
    }

    @Test("Auth0: the issuer's trailing slash, audience as --auth-param, refresh with offline_access")
    func auth0() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.auth0)
        defer { run.stop() }
        let flags = ["--auth-param", "audience=https://api.zoo.example"]
        let login = try run.login(issuer: run.zoo.issuer, flags)
        #expect(login.status == 0, "\(login)")
        let cli = try run.awsCallerArn(issuer: run.zoo.issuer, flags)
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/zoo-auth0/alice@example.com")
        let requests = try await run.zoo.requests()
        #expect(
            requests.contains { $0.endpoint == "authorize" && $0.params["audience"] == "https://api.zoo.example" },
            "\(requests)")
        #expect(
            requests.contains {
                $0.endpoint == "token" && $0.params["grant_type"] == "refresh_token" && $0.outcome == "ok"
            }, "\(requests)")
    }

    @Test(
        "Keycloak, as the README's recipe registers it (http://127.0.0.1/callback, any port): offline_access for a user with the role; without it, a refusal that names the role"
    )
    func keycloak() async throws {
        guard Self.available() else { return }
        let run = try await Run.start(.keycloak, zooFlags: ["--redirect-uri", "http://127.0.0.1/callback"])
        defer { run.stop() }
        let login = try run.login(issuer: run.zoo.issuer, [])
        #expect(login.status == 0, "\(login)")
        #expect(login.stderr.contains("Logged in as alice@example.com"), "\(login)")
        let cli = try run.awsCallerArn(issuer: run.zoo.issuer, [])
        #expect(cli.status == 0, "\(cli)")
        #expect(
            cli.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/zoo-keycloak/alice@example.com")
        let requests = try await run.zoo.requests()
        #expect(
            requests.contains {
                $0.endpoint == "authorize" && $0.params["scope"] == "openid email profile offline_access"
            }, "\(requests)")
        #expect(
            requests.contains {
                $0.endpoint == "token" && $0.params["grant_type"] == "refresh_token" && $0.outcome == "ok"
            }, "\(requests)")

        // bob lacks Keycloak's offline_access role: the code exchange is refused, and the message says what to do.
        let bob = try run.login(issuer: run.zoo.issuer, [], user: "bob")
        #expect(bob.status == 5, "\(bob)")
        #expect(bob.stderr.contains("offline_access role"), "\(bob)")
    }
}
