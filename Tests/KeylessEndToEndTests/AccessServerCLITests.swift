import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import KeylessAWSConfig
import KeylessCLI
import KeylessClient
import KeylessTestSupport
import KeylessWire
import Testing

/// The partners the access-server commands talk to, started once for the suite and stopped by PID after it:
/// keyless idp (alice logged in with the device flow), moto as IAM/STS, the console federation stub, a keyless
/// server whose policy grants alice three roles in two accounts, and one whose policy grants her nothing.
final class AccessServerPartners: Sendable {
    let idp: EmbeddedIdP
    let moto: MotoServer
    let federation: FederationStub
    let server: AccessServer
    let emptyServer: AccessServer
    let harness: KeylessHarness

    static let devRole = "arn:aws:iam::123456789012:role/dev"
    static let deployRole = "arn:aws:iam::123456789012:role/deploy"
    static let adminRole = "arn:aws:iam::123456789012:role/admin"
    static let readonlyRole = "arn:aws:iam::210987654321:role/readonly"

    /// The partners of the running suite.
    @TaskLocal static var current: AccessServerPartners?

    /// dev is assumed with alice's ID token (web identity), deploy by the server (AssumeRole); admin is for admins only.
    static let policyYAML = """
        defaults:
          region: us-east-1
        accounts:
          - id: "123456789012"
            alias: demo
          - id: "210987654321"
            alias: sandbox
            region: eu-west-1
        roles:
          - arn: \(devRole)
            description: Developer access
          - arn: \(deployRole)
            description: Deployments, issued by the server
            credentials: server
            max_session: 1h
          - arn: \(adminRole)
            description: Administrator
            mfa_required: true
          - arn: \(readonlyRole)
            description: Read-only sandbox
        grants:
          - groups: [developers]
            roles: [demo/dev, demo/deploy, sandbox/readonly]
          - groups: [admins]
            roles: ["demo/*"]
        """

    /// The same roles, granted to admins only: alice (developers) gets nothing.
    static let adminsOnlyPolicyYAML = """
        defaults:
          region: us-east-1
        accounts:
          - id: "123456789012"
            alias: demo
        roles:
          - arn: \(adminRole)
            description: Administrator
        grants:
          - groups: [admins]
            roles: ["demo/*"]
        """

    init(
        idp: EmbeddedIdP, moto: MotoServer, federation: FederationStub, server: AccessServer, emptyServer: AccessServer,
        harness: KeylessHarness
    ) {
        self.idp = idp; self.moto = moto; self.federation = federation; self.server = server;
        self.emptyServer = emptyServer; self.harness = harness
    }

    static func start() async throws -> AccessServerPartners {
        var started: [() -> Void] = []
        do {
            let moto = try await MotoServer.start()
            started.append { moto.stop() }
            for name in ["dev", "deploy", "admin"] { _ = try await moto.createRole(name: name) }
            let idp = try await EmbeddedIdP.start()
            started.append { idp.stopAndRemove() }
            let federation = try await FederationStub.start(stsEndpoint: moto.endpoint)
            started.append { federation.stop() }
            let serverYAML = """
                listen: 127.0.0.1:PORT
                policy: policy.yaml
                audit_log: audit.log
                issuers:
                  - issuer: \(idp.issuer)
                    audiences: [\(idp.clientID)]
                aws:
                  region: us-east-1
                  sts_endpoint: \(moto.endpoint)
                console:
                  federation_endpoint: \(federation.endpoint)
                  destination: \(federation.baseURL)/console
                """
            // The server's own AWS identity: moto accepts any access key (tests only; deployments use a web-identity token).
            let environment = [
                "AWS_ACCESS_KEY_ID": "server-testing", "AWS_SECRET_ACCESS_KEY": "server-testing",
                "AWS_SESSION_TOKEN": "",
                "AWS_PROFILE": "", "AWS_CONFIG_FILE": "/nonexistent/keyless-server-config",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/keyless-server-credentials",
            ]
            let server = try await AccessServer.start(
                serverYAML: serverYAML, policyYAML: policyYAML, environment: environment)
            started.append { server.stopAndRemove() }
            let emptyServer = try await AccessServer.start(
                serverYAML: serverYAML, policyYAML: adminsOnlyPolicyYAML, environment: environment)
            started.append { emptyServer.stopAndRemove() }

            let harness = try KeylessHarness(moto: moto)
            let result = try await harness.deviceLogin(idp)
            guard result.status == 0 else { throw TestSupportError("alice's device login failed: \(result)") }
            return AccessServerPartners(
                idp: idp, moto: moto, federation: federation, server: server, emptyServer: emptyServer, harness: harness
            )
        } catch {
            for stop in started.reversed() { stop() }
            throw error
        }
    }

    func stop() {
        emptyServer.stopAndRemove()
        server.stopAndRemove()
        federation.stop()
        idp.stopAndRemove()
        moto.stop()
    }

    /// `--config-url`/`--server` and the login flags for `server` (default: the one that grants alice roles).
    func serverArguments(_ server: AccessServer? = nil) -> [String] {
        ["--config-url", (server ?? self.server).baseURL, "--issuer-url", idp.issuer, "--client-id", idp.clientID]
    }

    var configPath: String { harness.environment["AWS_CONFIG_FILE"]! }

    /// Replaces ~/.aws/config with `text` (nil: no file) and removes any backup, so each test starts from a known file.
    func resetConfig(_ text: String?) throws {
        try? FileManager.default.removeItem(atPath: configPath)
        try? FileManager.default.removeItem(atPath: configPath + ".keyless-backup")
        if let text { try text.write(toFile: configPath, atomically: true, encoding: .utf8) }
    }

    func configText() -> String? { try? String(contentsOfFile: configPath, encoding: .utf8) }

    /// The assumed-role ARN the AWS CLI sees for a profile.
    func callerArn(profile: String) throws -> KeylessHarness.Run {
        try harness.runProgram(
            "aws", ["sts", "get-caller-identity", "--profile", profile, "--query", "Arn", "--output", "text"])
    }
}

/// Starts the partners once around the whole suite and stops them after its last test.
struct SharedAccessServerPartners: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void)
        async throws
    {
        let partners = try await AccessServerPartners.start()
        defer { partners.stop() }
        try await AccessServerPartners.$current.withValue(partners) { try await function() }
    }
}

extension Trait where Self == SharedAccessServerPartners {
    static var accessServerPartners: Self { Self() }
}

/// One GET without cookies, cache or proxies: (status, body).
func fetch(_ url: String) async throws -> (status: Int, body: String) {
    let configuration = URLSessionConfiguration.ephemeral
    configuration.connectionProxyDictionary = [:]
    configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
    let session = URLSession(configuration: configuration)
    defer { session.finishTasksAndInvalidate() }
    let (data, response) = try await session.data(from: try #require(URL(string: url)))
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}

/// A program running in a real terminal: a private tmux server (its own socket under the harness HOME) with one
/// 200×50 session. The person's side is `send` and `waitForPrompt`; `stop` kills the tmux server and, if it lingers,
/// its process by PID.
final class TmuxTerminal {
    let harness: KeylessHarness
    let socket: String
    let session = "keyless"
    private(set) var serverPID: Int32?

    init(harness: KeylessHarness, command: String) throws {
        self.harness = harness
        socket = harness.home + "/tmux-\(UUID().uuidString.prefix(8)).sock"
        let started = try tmux([
            "-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command,
        ])
        try #require(started.status == 0, "tmux new-session failed: \(started)")
        let pid = try tmux(["display-message", "-p", "-t", session, "#{pid}"])
        serverPID = Int32(pid.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        if serverPID == nil { stop() }
        try #require(serverPID != nil, "tmux did not say its PID: \(pid)")
    }

    @discardableResult
    func tmux(_ arguments: [String]) throws -> KeylessHarness.Run {
        try harness.runProgram("tmux", ["-S", socket] + arguments, timeout: 30)
    }

    /// The screen and its scrollback, trailing blank lines dropped.
    func screen() throws -> String {
        let run = try tmux(["capture-pane", "-p", "-J", "-S", "-500", "-t", session])
        return run.stdout.split(separator: "\n", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        .reversed().drop { $0.isEmpty }.reversed().joined(separator: "\n")
    }

    /// Waits until the last line on screen ends with `prompt` (a question waiting for its answer); polls with a deadline.
    @discardableResult
    func waitForPrompt(_ prompt: String, timeout: TimeInterval = 60) throws -> String {
        let wanted = prompt.trimmingCharacters(in: .whitespaces)
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        while Date() < deadline {
            text = try screen()
            if let last = text.split(separator: "\n").last, last.hasSuffix(wanted) { return text }
            usleep(100_000)
        }
        throw TestSupportError("the terminal never showed \"\(wanted)\" as its last line; screen:\n\(text)")
    }

    /// Types `text` (literally) and Enter.
    func answer(_ text: String) throws {
        if !text.isEmpty { try tmux(["send-keys", "-t", session, "-l", text]) }
        try tmux(["send-keys", "-t", session, "Enter"])
    }

    /// Answers `prompt` once it is shown.
    func answer(_ prompt: String, with text: String) throws {
        try waitForPrompt(prompt)
        try answer(text)
    }

    func stop() {
        _ = try? tmux(["kill-server"])
        if let pid = serverPID {
            let deadline = Date().addingTimeInterval(5)
            while kill(pid, 0) == 0 && Date() < deadline { usleep(50_000) }
            if kill(pid, 0) == 0 { kill(pid, SIGKILL) }
        }
        try? FileManager.default.removeItem(atPath: socket)
    }

    /// The number a menu on `screen` gives `item` (its last listing: "  N) item ...").
    static func number(of item: String, in screen: String) throws -> String {
        let line = try #require(
            screen.split(separator: "\n").last {
                $0.range(
                    of: "^ *[0-9]+\\) \(NSRegularExpression.escapedPattern(for: item))( |$)",
                    options: .regularExpression) != nil
            },
            "no menu line for \(item) on screen:\n\(screen)")
        return String(line.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber })
    }

    /// A word for the shell tmux runs the command with.
    static func quote(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }
}

@Suite("keyless configure, roles, console and creds-process against keyless server", .serialized, .accessServerPartners)
struct AccessServerCLITests {
    let partners: AccessServerPartners
    init() throws { partners = try #require(AccessServerPartners.current, "the suite's partners are not running") }

    var harness: KeylessHarness { partners.harness }

    /// The server's answer for alice, as `keyless roles --json` prints it.
    func rolesDocument() throws -> ServerConfigDocument {
        let run = try harness.run(["roles", "--json"] + partners.serverArguments())
        try #require(run.status == 0, "\(run)")
        return try JSONDecoder().decode(ServerConfigDocument.self, from: Data(run.stdout.utf8))
    }

    /// The words of a credential_process line, its program resolved to a real path.
    func words(_ line: String) throws -> [String] {
        var words = try ShellWords.split(line)
        try #require(!words.isEmpty)
        words[0] = URL(fileURLWithPath: words[0]).resolvingSymlinksInPath().path
        return words
    }

    // MARK: - configure, non-interactive

    @Test(
        "configure --all-roles --yes writes one profile per granted role, each with the server's line and region, and keeps the other profiles"
    )
    func allRoles() throws {
        let document = try rolesDocument()
        try partners.resetConfig("# mine\n[profile keep]\nregion = us-west-2\n")
        let run = try harness.run(["configure", "--all-roles", "--yes"] + partners.serverArguments())
        #expect(run.status == 0, "\(run)")
        #expect(run.stderr.contains("Wrote 3 profile(s) to \(partners.configPath)"), "\(run)")

        let config = try AWSConfigDocument.load(partners.configPath)
        #expect(config.text.hasPrefix("# mine\n[profile keep]\nregion = us-west-2\n"))
        #expect(Set(document.allRoles.map(\.role.profile)) == ["demo-dev", "demo-deploy", "sandbox-readonly"])
        #expect(
            config.profileNames == ["keep"] + document.allRoles.map(\.role.profile),
            "in the server's order, after the existing profile")
        let launcher = URL(fileURLWithPath: harness.binary).resolvingSymlinksInPath().path
        for (_, role) in document.allRoles {
            let written = try #require(config.value("credential_process", profile: role.profile))
            // The server suggests `keyless ...`; configure writes this launcher's path, as PATH has no keyless.
            var expected = try ShellWords.split(role.credentialProcess)
            expected[0] = launcher
            #expect(try words(written) == expected, "\(role.profile)")
            #expect(config.value("region", profile: role.profile) == role.region)
        }
        #expect(config.value("region", profile: "sandbox-readonly") == "eu-west-1")
        #expect(
            try words(try #require(config.value("credential_process", profile: "demo-deploy"))).contains(
                partners.server.baseURL))
        #expect(try !words(try #require(config.value("credential_process", profile: "demo-dev"))).contains("--server"))
        #expect(FileManager.default.fileExists(atPath: partners.configPath + ".keyless-backup"))
    }

    @Test("the AWS CLI runs the written profiles: a web-identity role and a role the server issues, each as alice")
    func writtenProfilesWork() throws {
        try partners.resetConfig(nil)
        let run = try harness.run(["configure", "--all-roles", "--yes"] + partners.serverArguments())
        try #require(run.status == 0, "\(run)")
        #expect(
            !run.stderr.contains("keyless-backup")
                || FileManager.default.fileExists(atPath: partners.configPath + ".keyless-backup"),
            "the message names a backup that does not exist:\n\(run.stderr)")

        let dev = try partners.callerArn(profile: "demo-dev")
        #expect(dev.status == 0, "\(dev)")
        #expect(
            dev.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com")
        let deploy = try partners.callerArn(profile: "demo-deploy")
        #expect(deploy.status == 0, "\(deploy)")
        #expect(
            deploy.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/deploy/alice@example.com")
        let granted = try partners.server.auditRecords().filter {
            $0["action"] as? String == "credentials" && $0["outcome"] as? String == "granted"
        }
        #expect(
            granted.contains { $0["role"] as? String == AccessServerPartners.deployRole },
            "the server recorded the deploy credentials")
    }

    @Test("configure --all-roles --print-only prints the profiles and leaves ~/.aws/config as it was, without a backup")
    func printOnly() throws {
        let original = "[profile keep]\nregion = us-west-2\n"
        try partners.resetConfig(original)
        let run = try harness.run(["configure", "--all-roles", "--print-only"] + partners.serverArguments())
        #expect(run.status == 0, "\(run)")
        let printed = AWSConfigDocument(text: run.stdout)
        #expect(printed.problems.isEmpty)
        #expect(Set(printed.profileNames) == ["demo-dev", "demo-deploy", "sandbox-readonly"])
        #expect(printed.profileNames.count == 3)
        #expect(
            try words(try #require(printed.value("credential_process", profile: "demo-deploy"))).contains(
                AccessServerPartners.deployRole))
        #expect(partners.configText() == original)
        #expect(!FileManager.default.fileExists(atPath: partners.configPath + ".keyless-backup"))
    }

    @Test("a server that grants alice no roles: configure changes nothing and says why and what to do")
    func noRoles() throws {
        let original = "[profile keep]\nregion = us-west-2\n"
        try partners.resetConfig(original)
        let run = try harness.run(
            ["configure", "--all-roles", "--yes"] + partners.serverArguments(partners.emptyServer))
        #expect(run.status == 0, "\(run)")
        #expect(
            run.stderr.contains("grants alice@example.com no roles, so \(partners.configPath) was not changed"),
            "\(run)")
        #expect(run.stderr.contains("Ask an administrator to add you to a group"), "\(run)")
        #expect(partners.configText() == original)
        #expect(!FileManager.default.fileExists(atPath: partners.configPath + ".keyless-backup"))

        let roles = try harness.run(["roles"] + partners.serverArguments(partners.emptyServer))
        #expect(roles.status == 0, "\(roles)")
        #expect(roles.stdout.contains("No roles are granted to you."), "\(roles)")
    }

    @Test(
        "without a terminal, configure without --all-roles, or without --yes, is a usage error (exit 2) that names the flags to use"
    )
    func noTerminal() throws {
        let original = "[profile keep]\nregion = us-west-2\n"
        try partners.resetConfig(original)
        let survey = try harness.run(["configure"] + partners.serverArguments())
        #expect(survey.status == 2, "\(survey)")
        #expect(survey.stderr.contains("configure needs a terminal"), "\(survey)")
        #expect(survey.stderr.contains("--all-roles --yes"), "\(survey)")
        #expect(
            survey.stderr.contains("--all-roles --print-only"),
            "the alternative the hint offers works without a terminal too: \(survey)")
        let confirm = try harness.run(["configure", "--all-roles"] + partners.serverArguments())
        #expect(confirm.status == 2, "\(confirm)")
        #expect(confirm.stderr.contains("Pass --yes"), "\(confirm)")
        #expect(partners.configText() == original)
    }

    // MARK: - configure in a real terminal

    @Test(
        "configure's survey in a real terminal (tmux): a typed region, two roles picked one at a time from two accounts, one renamed; the AWS CLI uses the result"
    )
    func surveyInTerminal() throws {
        try #require(Tooling.have("tmux"), "tmux is missing: scripts/test must install it")
        try partners.resetConfig("[profile keep]\nregion = us-west-2\n")
        let command =
            (["env", "-u", "KEYLESS_NO_TTY", "NO_COLOR=1", harness.binary, "configure"] + partners.serverArguments())
            .map(TmuxTerminal.quote).joined(separator: " ") + "; echo \"[configure exited $?]\"; exec cat"
        let terminal = try TmuxTerminal(harness: harness, command: command)
        defer { terminal.stop() }

        let greeting = try terminal.waitForPrompt("Default region [us-east-1]: ")
        #expect(
            greeting.contains("Signed in as alice@example.com. The server grants you 3 role(s) in 2 account(s)."),
            "\(greeting)")
        try terminal.answer("eu-north-1")
        try terminal.answer("Choice [1]: ", with: "2")
        try terminal.answer(
            "Account [1]: ",
            with: try TmuxTerminal.number(of: "demo (123456789012)", in: terminal.waitForPrompt("Account [1]: ")))
        try terminal.answer(
            "Role [1]: ", with: try TmuxTerminal.number(of: "deploy", in: terminal.waitForPrompt("Role [1]: ")))
        try terminal.answer("Profile name [demo-deploy]: ", with: "team-deploy")
        try terminal.answer("Add another profile? [y/N]: ", with: "y")
        try terminal.answer(
            "Account [1]: ",
            with: try TmuxTerminal.number(of: "sandbox (210987654321)", in: terminal.waitForPrompt("Account [1]: ")))
        try terminal.answer("Role [1]: ", with: "1")
        try terminal.answer("Profile name [sandbox-readonly]: ", with: "")
        try terminal.answer("Add another profile? [y/N]: ", with: "n")
        let summary = try terminal.waitForPrompt("Write them? [Y/n]: ")
        #expect(summary.contains("  team-deploy  \(AccessServerPartners.deployRole)  eu-north-1"), "\(summary)")
        #expect(summary.contains("  sandbox-readonly  \(AccessServerPartners.readonlyRole)  eu-north-1"), "\(summary)")
        try terminal.answer("y")
        let done = try terminal.waitForPrompt("[configure exited 0]")
        #expect(done.contains("Wrote 2 profile(s) to \(partners.configPath)"), "\(done)")

        let config = try AWSConfigDocument.load(partners.configPath)
        #expect(config.profileNames == ["keep", "team-deploy", "sandbox-readonly"])
        #expect(config.value("region", profile: "keep") == "us-west-2")
        let deploy = try words(try #require(config.value("credential_process", profile: "team-deploy")))
        #expect(
            Array(deploy.dropFirst()) == [
                "creds-process", "--server", partners.server.baseURL, "--issuer-url", partners.idp.issuer,
                "--client-id", partners.idp.clientID, "--role-arn", AccessServerPartners.deployRole, "--region",
                "eu-north-1",
            ])
        #expect(config.value("region", profile: "team-deploy") == "eu-north-1")
        let readonly = try words(try #require(config.value("credential_process", profile: "sandbox-readonly")))
        #expect(!readonly.contains("--server") && readonly.contains(AccessServerPartners.readonlyRole), "\(readonly)")
        #expect(config.value("region", profile: "sandbox-readonly") == "eu-north-1")

        let arn = try partners.callerArn(profile: "team-deploy")
        #expect(arn.status == 0, "\(arn)")
        #expect(
            arn.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "arn:aws:sts::123456789012:assumed-role/deploy/alice@example.com")
    }

    // MARK: - roles

    @Test(
        "keyless roles --json gives the server's view of alice: her groups, two accounts, only the roles her group is granted"
    )
    func rolesJSON() throws {
        let document = try rolesDocument()
        #expect(document.issuer == partners.idp.issuer)
        #expect(document.clientID == partners.idp.clientID)
        #expect(document.serverURL == partners.server.baseURL)
        #expect(document.defaultRegion == "us-east-1")
        #expect(document.caller.name == "alice@example.com")
        #expect(document.caller.groups == ["developers"])
        #expect(document.caller.mfa == false)
        #expect(document.accounts.map(\.heading) == ["demo (123456789012)", "sandbox (210987654321)"])
        #expect(
            document.accounts.map { Set($0.roles.map(\.arn)) } == [
                [AccessServerPartners.devRole, AccessServerPartners.deployRole], [AccessServerPartners.readonlyRole],
            ])
        let roles = Dictionary(uniqueKeysWithValues: document.allRoles.map { ($0.role.name, $0.role) })
        #expect(roles["dev"]?.credentials == "web-identity")
        #expect(roles["deploy"]?.credentials == "server")
        #expect(roles["readonly"]?.credentials == "web-identity")
        #expect(roles.mapValues(\.region) == ["dev": "us-east-1", "deploy": "us-east-1", "readonly": "eu-west-1"])
        #expect(
            roles.mapValues(\.profile) == ["dev": "demo-dev", "deploy": "demo-deploy", "readonly": "sandbox-readonly"])
        #expect(roles["deploy"]?.maxSessionSeconds == 3600)
        #expect(roles["deploy"]?.description == "Deployments, issued by the server")
    }

    @Test(
        "keyless roles lists accounts and roles for people, the same from --server flags and from a profile configure wrote"
    )
    func rolesListing() throws {
        let run = try harness.run(["roles"] + partners.serverArguments())
        #expect(run.status == 0, "\(run)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "Signed in as alice@example.com at \(partners.idp.issuer)")
        #expect(lines.contains("demo (123456789012)"))
        #expect(lines.contains("sandbox (210987654321)"))
        #expect(
            lines.contains {
                $0.hasPrefix("  deploy  \(AccessServerPartners.deployRole)  up to 60 min")
                    && $0.hasSuffix("— Deployments, issued by the server")
            },
            "\(run.stdout)")
        #expect(lines.contains { $0.hasPrefix("  dev     \(AccessServerPartners.devRole)  up to") }, "\(run.stdout)")
        #expect(!run.stdout.contains("role/admin"))

        try partners.resetConfig(nil)
        let configure = try harness.run(["configure", "--all-roles", "--yes"] + partners.serverArguments())
        try #require(configure.status == 0, "\(configure)")
        let fromProfile = try harness.run(["roles", "--profile", "demo-deploy"])
        #expect(fromProfile.status == 0, "\(fromProfile)")
        #expect(fromProfile.stdout == run.stdout)
        let webIdentity = try harness.run(["roles", "--profile", "demo-dev"])
        #expect(webIdentity.status == 2, "a profile without --server names no server: \(webIdentity)")
        #expect(webIdentity.stderr.contains("does not name a keyless server"), "\(webIdentity)")
    }

    // MARK: - console

    @Test(
        "keyless console --print for a server-issued profile prints a sign-in URL the federation endpoint accepts once, as the role"
    )
    func consoleThroughServer() async throws {
        try partners.resetConfig(nil)
        let configure = try harness.run(["configure", "--all-roles", "--yes"] + partners.serverArguments())
        try #require(configure.status == 0, "\(configure)")
        let run = try harness.run(["console", "--profile", "demo-deploy", "--print"])
        #expect(run.status == 0, "\(run)")
        let url = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(url.hasPrefix(partners.federation.endpoint + "?"), "\(run)")
        let components = try #require(URLComponents(string: url))
        #expect(components.queryItems?.first { $0.name == "Action" }?.value == "login")
        #expect(
            components.queryItems?.first { $0.name == "Destination" }?.value == partners.federation.baseURL + "/console"
        )

        let first = try await fetch(url)
        #expect(first.status == 200, "\(first.body)")
        #expect(
            first.body.contains("Signed in as arn:aws:sts::123456789012:assumed-role/deploy/alice@example.com"),
            "\(first.body)")
        let again = try await fetch(url)
        #expect(again.status == 403, "a sign-in token works once: \(again.body)")
        let consoles = try partners.server.auditRecords().filter {
            $0["action"] as? String == "console" && $0["outcome"] as? String == "granted"
        }
        #expect(consoles.contains { $0["role"] as? String == AccessServerPartners.deployRole })
    }

    @Test(
        "keyless console --print for a web-identity profile federates directly with KEYLESS_FEDERATION_ENDPOINT, and the URL works once"
    )
    func consoleDirect() async throws {
        try partners.resetConfig(nil)
        let configure = try harness.run(["configure", "--all-roles", "--yes"] + partners.serverArguments())
        try #require(configure.status == 0, "\(configure)")
        let serverConsoles = try partners.server.auditRecords().filter { $0["action"] as? String == "console" }.count
        let run = try harness.run(
            ["console", "--profile", "demo-dev", "--print"],
            extra: ["KEYLESS_FEDERATION_ENDPOINT": partners.federation.endpoint])
        #expect(run.status == 0, "\(run)")
        let url = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(url.hasPrefix(partners.federation.endpoint + "?"), "\(run)")
        let first = try await fetch(url)
        #expect(first.status == 200, "\(first.body)")
        #expect(
            first.body.contains("Signed in as arn:aws:sts::123456789012:assumed-role/dev/alice@example.com"),
            "\(first.body)")
        let again = try await fetch(url)
        #expect(again.status == 403, "a sign-in token works once: \(again.body)")
        #expect(
            try partners.server.auditRecords().filter { $0["action"] as? String == "console" }.count == serverConsoles,
            "the server was not asked")
    }

    // MARK: - creds-process through the server

    @Test(
        "creds-process --server for a role the policy does not grant alice exits 4 and says not_granted; the server audits the refusal"
    )
    func credsProcessNotGranted() throws {
        let run = try harness.run([
            "creds-process", "--server", partners.server.baseURL, "--issuer-url", partners.idp.issuer,
            "--client-id", partners.idp.clientID, "--role-arn", AccessServerPartners.adminRole,
        ])
        #expect(run.status == 4, "\(run)")
        #expect(run.stdout.isEmpty, "no credentials on stdout: \(run)")
        #expect(run.stderr.contains("not_granted"), "\(run)")
        #expect(run.stderr.contains("keyless roles"), "the hint says how to see what is granted: \(run)")
        let denied = try partners.server.auditRecords().filter {
            $0["outcome"] as? String == "denied" && $0["role"] as? String == AccessServerPartners.adminRole
        }
        #expect(!denied.isEmpty)

        let granted = try harness.run([
            "creds-process", "--server", partners.server.baseURL, "--issuer-url", partners.idp.issuer,
            "--client-id", partners.idp.clientID, "--role-arn", AccessServerPartners.deployRole,
        ])
        #expect(granted.status == 0, "\(granted)")
        #expect(try credentialJSON(granted.stdout)["AccessKeyId"] as? String != nil)
    }
}
