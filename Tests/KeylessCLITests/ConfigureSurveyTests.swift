import Foundation
import KeylessAWSConfig
import KeylessCLI
import KeylessClient
import KeylessCore
import KeylessTestSupport
import KeylessWire
import Testing

/// A person at the terminal, scripted: answers in order, then end of input; records everything shown.
final class ScriptedSurvey: SurveyIO {
    private var answers: [String]
    /// Every prompt and message, in order, as the person would have seen them.
    private(set) var transcript: [String] = []
    /// The prompts alone.
    private(set) var prompts: [String] = []

    init(_ answers: [String]) { self.answers = answers }

    func ask(_ prompt: String) -> String? {
        transcript.append(prompt)
        prompts.append(prompt)
        return answers.isEmpty ? nil : answers.removeFirst()
    }

    func say(_ text: String) { transcript.append(text) }

    /// Whether every answer was used.
    var exhausted: Bool { answers.isEmpty }
    /// How many times `text` was shown as a message.
    func said(_ text: String) -> Int { transcript.filter { $0 == text }.count }
}

/// The server's answer for alice: two accounts, one with its own suggested region; one role issued by the server.
let surveyDocumentJSON = """
    {"issuer":"https://idp.example.com","client_id":"keyless-cli","server_url":"https://keyless.example.com","default_region":"us-east-1",
     "caller":{"subject":"u-1","name":"alice@example.com","groups":["developers"],"mfa":false},
     "accounts":[
      {"id":"123456789012","alias":"demo","roles":[
        {"arn":"arn:aws:iam::123456789012:role/dev","name":"dev","description":"Developer access","max_session_seconds":3600,"mfa_required":false,
         "credentials":"web-identity","region":"us-east-1","profile":"demo-dev","credential_process":"keyless creds-process"},
        {"arn":"arn:aws:iam::123456789012:role/deploy","name":"deploy","max_session_seconds":3600,"mfa_required":false,
         "credentials":"server","region":"us-east-1","profile":"demo-deploy","credential_process":"keyless creds-process"}]},
      {"id":"210987654321","alias":null,"roles":[
        {"arn":"arn:aws:iam::210987654321:role/audit","name":"audit","description":"Read-only audit","max_session_seconds":3600,"mfa_required":true,
         "credentials":"web-identity","region":"eu-west-1","profile":"210987654321-audit","credential_process":"keyless creds-process"}]}]}
    """

func surveyDocument() throws -> ServerConfigDocument {
    try JSONDecoder().decode(ServerConfigDocument.self, from: Data(surveyDocumentJSON.utf8))
}

@Suite("configure's survey and planner")
struct ConfigureSurveyTests {
    let document: ServerConfigDocument
    init() throws { document = try surveyDocument() }

    func survey(_ answers: [String], existing: Set<String> = []) -> (ScriptedSurvey, ConfigureSurvey) {
        let io = ScriptedSurvey(answers)
        return (io, ConfigureSurvey(io: io, document: document, existing: existing))
    }

    // MARK: - The survey

    @Test(
        "accepting every default gives one profile per role, the same profiles --all-roles writes (each account's suggested region kept)"
    )
    func defaultsAccepted() throws {
        let (io, survey) = survey(["", ""])
        let plans = try #require(try survey.run(region: nil, prefix: ""))
        #expect(io.exhausted)
        #expect(io.prompts == ["Default region [us-east-1]: ", "Choice [1]: "])
        #expect(plans.map(\.name) == ["demo-dev", "demo-deploy", "210987654321-audit"])
        #expect(plans.map(\.roleArn) == document.allRoles.map(\.role.arn))
        #expect(plans == ConfigurePlanner.allRoles(document, region: nil, prefix: ""))
        #expect(plans.map(\.region) == ["us-east-1", "us-east-1", "eu-west-1"])
        #expect(
            io.transcript.contains(
                "How should profiles be written?\n  1) one profile per role (3 roles)\n  2) pick roles one at a time"))
    }

    @Test("a region typed in the survey goes into every profile, and --profile-prefix prefixes every name")
    func typedRegionAndPrefix() throws {
        let (_, survey) = survey(["ap-southeast-2", "1"])
        let plans = try #require(try survey.run(region: nil, prefix: "work-"))
        #expect(plans.map(\.name) == ["work-demo-dev", "work-demo-deploy", "work-210987654321-audit"])
        #expect(plans.allSatisfy { $0.region == "ap-southeast-2" })
        #expect(plans.allSatisfy { $0.credentialProcess.hasSuffix("--region ap-southeast-2") })
    }

    @Test(
        "picking one at a time across two accounts: a custom profile name, then a default one; only the server-issued role's line names the server"
    )
    func pickOneAtATime() throws {
        let (io, survey) = survey(["eu-central-1", "2", "2", "1", "audit-ro", "y", "1", "2", "", "n"])
        let plans = try #require(try survey.run(region: nil, prefix: ""))
        #expect(io.exhausted)
        #expect(plans.map(\.name) == ["audit-ro", "demo-deploy"])
        #expect(
            plans.map(\.roleArn) == ["arn:aws:iam::210987654321:role/audit", "arn:aws:iam::123456789012:role/deploy"])
        #expect(plans.map(\.account) == ["210987654321", "demo"])
        #expect(plans.allSatisfy { $0.region == "eu-central-1" })
        #expect(
            plans[0].credentialProcess
                == "keyless creds-process --issuer-url https://idp.example.com --client-id keyless-cli "
                + "--role-arn arn:aws:iam::210987654321:role/audit --region eu-central-1")
        #expect(
            plans[1].credentialProcess
                == "keyless creds-process --server https://keyless.example.com --issuer-url https://idp.example.com "
                + "--client-id keyless-cli --role-arn arn:aws:iam::123456789012:role/deploy --region eu-central-1")
        #expect(io.transcript.contains("Accounts:\n  1) demo (123456789012)\n  2) 210987654321"))
        #expect(io.transcript.contains("Roles in 210987654321:\n  1) audit — Read-only audit (needs MFA)"))
        #expect(io.prompts.contains("Profile name [210987654321-audit]: "))
        #expect(io.prompts.contains("Profile name [demo-deploy]: "))
    }

    @Test(
        "a bad region, an out-of-range number, a bad profile name and a non-yes/no answer are each explained and asked again"
    )
    func invalidAnswersReasked() throws {
        let (io, survey) = survey([
            "US-EAST-1", "useast1", "us-west-2", "3", "0", "2", "9", "1", "x", "1", "my profile", "prod/admin",
            "ok_name.1", "maybe", "n",
        ])
        let plans = try #require(try survey.run(region: nil, prefix: ""))
        #expect(io.exhausted)
        #expect(plans.map(\.name) == ["ok_name.1"])
        #expect(plans.map(\.roleArn) == ["arn:aws:iam::123456789012:role/dev"])
        #expect(plans.map(\.region) == ["us-west-2"])
        #expect(io.said("A region looks like us-east-1 or eu-west-2.") == 2)
        #expect(io.said("Enter a number from 1 to 2.") == 4)  // choice 3 and 0, account 9, role x
        #expect(io.prompts.filter { $0 == "Role [1]: " }.count == 2)  // "x", then 1
        #expect(io.said("Use letters, digits, - _ and . only.") == 2)
        #expect(io.said("Answer y or n.") == 1)
        #expect(io.prompts.filter { $0 == "Default region [us-east-1]: " }.count == 3)
    }

    @Test(
        "a name that is already a profile asks before replacing it; declining goes back to choosing, accepting keeps the name"
    )
    func replacingAnExistingProfile() throws {
        let question = "Profile demo-dev already exists; replace its credential settings? [y/N]: "
        let (declinedIO, declined) = survey(
            ["", "2", "1", "1", "", "n", "1", "1", "demo-dev-2", "n"], existing: ["demo-dev", "unrelated"])
        let kept = try #require(try declined.run(region: nil, prefix: ""))
        #expect(declinedIO.exhausted)
        #expect(declinedIO.prompts.filter { $0 == question }.count == 1)
        #expect(kept.map(\.name) == ["demo-dev-2"])

        let (acceptedIO, accepted) = survey(["", "2", "1", "1", "", "y", "n"], existing: ["demo-dev"])
        let replaced = try #require(try accepted.run(region: nil, prefix: ""))
        #expect(acceptedIO.exhausted)
        #expect(replaced.map(\.name) == ["demo-dev"])

        // Picking the same name twice in one survey counts as existing too; the second choice replaces the first.
        let (twiceIO, twice) = survey(["", "2", "1", "1", "same", "y", "1", "2", "same", "y", "n"])
        let once = try #require(try twice.run(region: nil, prefix: ""))
        #expect(twiceIO.prompts.contains("Profile same already exists; replace its credential settings? [y/N]: "))
        #expect(once.map(\.name) == ["same"])
        #expect(once.map(\.roleArn) == ["arn:aws:iam::123456789012:role/deploy"])
    }

    /// A complete "pick one at a time" script: region, mode, account, role, name, no more.
    static let completeScript = ["", "2", "1", "1", "", "n"]

    @Test(
        "end of input before the last answer stops the survey with nil, whichever question it comes at",
        arguments: 0..<6)
    func endOfInput(answered: Int) throws {
        let (io, survey) = survey(Array(Self.completeScript.prefix(answered)))
        #expect(try survey.run(region: nil, prefix: "") == nil)
        #expect(io.prompts.count == answered + 1)
        // The whole script, by contrast, gives a plan: the prefixes fail for lack of input, not for a bad answer.
        let (_, complete) = self.survey(Self.completeScript)
        #expect(try complete.run(region: nil, prefix: "")?.map(\.name) == ["demo-dev"])
    }

    @Test("with --region given, the survey offers it as the default")
    func regionFlagIsTheDefault() throws {
        let (io, survey) = survey(["", ""])
        let plans = try #require(try survey.run(region: "sa-east-1", prefix: ""))
        #expect(io.prompts.first == "Default region [sa-east-1]: ")
        #expect(plans.allSatisfy { $0.region == "sa-east-1" })
    }

    // MARK: - The planner

    @Test("a launcher path with a space is quoted so botocore's shell-like splitting gives it back as one word")
    func quotedCommand() throws {
        let role = document.accounts[0].roles[1]
        let plan = ConfigurePlanner.plan(
            document, account: document.accounts[0], role: role, name: "p", region: nil,
            command: "/opt/key less/keyless")
        let words = try ShellWords.split(plan.credentialProcess)
        #expect(words.first == "/opt/key less/keyless")
        #expect(
            Array(words.dropFirst()) == [
                "creds-process", "--server", "https://keyless.example.com", "--issuer-url", "https://idp.example.com",
                "--client-id", "keyless-cli", "--role-arn", role.arn, "--region", "us-east-1",
            ])
    }

    @Test(
        "the command is keyless when PATH's first keyless is this installation (directly or through a symlink), else the launcher's absolute path"
    )
    func commandForProfiles() throws {
        let root = try makeTemporaryDirectory(prefix: "keyless-command")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        for directory in ["install", "other", "links", "empty", "bare"] {
            try fm.createDirectory(atPath: "\(root)/\(directory)", withIntermediateDirectories: true)
        }
        for file in ["install/keyless", "install/keyless-cli", "other/keyless", "bare/keyless-cli"] {
            #expect(
                fm.createFile(
                    atPath: "\(root)/\(file)", contents: Data("#!/bin/sh\n".utf8),
                    attributes: [.posixPermissions: 0o755]))
        }
        try fm.createSymbolicLink(atPath: "\(root)/links/keyless", withDestinationPath: "\(root)/install/keyless")
        let executable = "\(root)/install/keyless-cli"
        let launcher = "\(root)/install/keyless"
        func command(_ path: String) -> String {
            ConfigurePlanner.command(environment: Environment(["PATH": path]), executable: executable)
        }

        #expect(command("\(root)/empty:\(root)/install") == "keyless")
        #expect(command("\(root)/links:/usr/bin") == "keyless")
        #expect(command("\(root)/other:\(root)/install") == launcher, "another keyless comes first on PATH")
        #expect(command("\(root)/empty") == launcher, "no keyless on PATH")
        #expect(command("") == launcher)
        #expect(
            ConfigurePlanner.command(
                environment: Environment(["PATH": "\(root)/other"]), executable: "\(root)/bare/keyless-cli")
                == "keyless",
            "without a launcher next to the executable there is no better path to give")
    }

    /// A config a person has lived with: comments, a default profile, a nested s3 block, an SSO profile about to be
    /// replaced, its sso-session, and profiles after it.
    static let before = """
        # ~/.aws/config — edited by hand; keep these notes
        [default]
        region = us-east-1
        output = json

        ; the team's read-only profile
        [profile readonly]
        role_arn = arn:aws:iam::111111111111:role/readonly
        source_profile = default
        s3 =
          max_concurrent_requests = 20
          addressing_style = path

        """
    static let replacedSection = """
        # set up by `aws configure sso` last year
        [profile demo-dev]
        sso_session = corp
        sso_account_id = 123456789012
        sso_role_name = Developer
        region = eu-west-1
        output = table
        Role_Arn = arn:aws:iam::123456789012:role/old
        credential_process = /usr/local/bin/old-helper

        """
    static let after = """
        [sso-session corp]
        sso_start_url = https://corp.awsapps.com/start
        sso_region = eu-west-1
        sso_registration_scopes = sso:account:access

        [profile zeta]\u{20}\u{20}
        region = ap-northeast-1
        # trailing comment
        """

    @Test(
        "applying plans onto a lived-in ~/.aws/config keeps every other byte, removes keys that would override credential_process, and botocore reads it as intended"
    )
    func applyOntoExistingConfig() throws {
        let directory = try makeTemporaryDirectory(prefix: "keyless-apply")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let original = Self.before + Self.replacedSection + Self.after + "\n"
        var config = AWSConfigDocument(text: original)
        #expect(config.problems.isEmpty)
        let plans = [
            ConfigurePlanner.plan(
                document, account: document.accounts[0], role: document.accounts[0].roles[0], name: "demo-dev",
                region: nil),
            ConfigurePlanner.plan(
                document, account: document.accounts[0], role: document.accounts[0].roles[1], name: "demo-deploy",
                region: "eu-west-2"),
        ]
        try ConfigurePlanner.apply(plans, to: &config)
        let text = config.text

        // Everything outside the replaced profile, byte for byte, in place; the new profile at the end.
        #expect(text.hasPrefix(Self.before + "# set up by `aws configure sso` last year\n[profile demo-dev]\n"))
        #expect(text.contains("\n" + Self.after + "\n"))
        #expect(
            text.hasSuffix(
                Self.after
                    + "\n\n[profile demo-deploy]\ncredential_process = \(plans[1].credentialProcess)\nregion = eu-west-2\n"
            ))
        for gone in ["sso_session", "sso_account_id", "sso_role_name", "Role_Arn", "old-helper"] {
            let section = text.components(separatedBy: "[profile demo-dev]")[1].components(
                separatedBy: "[sso-session corp]")[0]
            #expect(!section.contains(gone), "\(gone) should be gone from the replaced profile:\n\(section)")
        }

        // botocore, as the AWS CLI reads the file.
        let before = directory + "/before", written = directory + "/after"
        try original.write(toFile: before, atomically: true, encoding: .utf8)
        try config.write(to: written)
        #expect(try String(contentsOfFile: written, encoding: .utf8) == text)
        let views = try botocore([before, written])
        let old = try #require(views[0]["profiles"] as? [String: [String: Any]])
        let new = try #require(views[1]["profiles"] as? [String: [String: Any]])
        #expect(views[1]["error"] == nil)
        #expect(
            new["demo-dev"] as? [String: String] == [
                "credential_process": plans[0].credentialProcess, "region": "us-east-1", "output": "table",
            ])
        #expect(
            new["demo-deploy"] as? [String: String] == [
                "credential_process": plans[1].credentialProcess, "region": "eu-west-2",
            ])
        for name in ["default", "zeta"] {
            #expect(new[name] as? [String: String] == old[name] as? [String: String], "\(name)")
        }
        let readonly = try #require(old["readonly"])
        #expect(new["readonly"].map(NSDictionary.init(dictionary:)) == NSDictionary(dictionary: readonly))
        let sessions = try #require(views[0]["sso_sessions"] as? [String: Any])
        #expect(
            (views[1]["sso_sessions"] as? [String: Any]).map(NSDictionary.init(dictionary:))
                == NSDictionary(dictionary: sessions))
        #expect(Set(new.keys) == Set(old.keys).union(["demo-deploy"]))
    }

    /// Profiles as other tools set them up, each with a key that outranks credential_process in botocore's chain.
    static let previousSetups: [(kind: String, profile: String, extra: String)] = [
        (
            "aws configure sso", "sso_session = corp\nsso_account_id = 123456789012\nsso_role_name = Developer\n",
            "[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n"
        ),
        (
            "legacy SSO",
            "sso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\nsso_account_id = 123456789012\nsso_role_name = Developer\n",
            ""
        ),
        ("aws login", "login_session = arn:aws:iam::123456789012:user/alice\n", ""),
        (
            "role_arn with source_profile", "role_arn = arn:aws:iam::123456789012:role/old\nsource_profile = base\n",
            "[profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base-secret\n"
        ),
        (
            "role_arn with credential_source",
            "role_arn = arn:aws:iam::123456789012:role/old\ncredential_source = Environment\n", ""
        ),
        (
            "web identity token file",
            "role_arn = arn:aws:iam::123456789012:role/old\nweb_identity_token_file = /var/run/token\n", ""
        ),
        ("static keys", "aws_access_key_id = AKIDSTATIC\naws_secret_access_key = static-secret\n", ""),
    ]

    @Test(
        "a replaced profile gets its credentials from credential_process in botocore's own chain, whatever set it up before",
        arguments: previousSetups.map(\.kind))
    func replacedProfileResolvesThroughProcess(kind: String) throws {
        let setup = try #require(Self.previousSetups.first { $0.kind == kind })
        let directory = try makeTemporaryDirectory(prefix: "keyless-replace")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Stands in for keyless: prints fixed credential_process JSON whatever its arguments.
        let fake = directory + "/fake-keyless"
        let json =
            #"{"Version":1,"AccessKeyId":"AKIDFROMPROCESS","SecretAccessKey":"process-secret","SessionToken":"process-token"}"#
        try "#!/bin/sh\necho '\(json)'\n".write(toFile: fake, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)

        var config = AWSConfigDocument(
            text: "[profile demo-dev]\nregion = eu-west-1\n" + setup.profile + "\n" + setup.extra)
        let plan = ConfigurePlanner.plan(
            document, account: document.accounts[0], role: document.accounts[0].roles[0], name: "demo-dev", region: nil,
            command: fake)
        try ConfigurePlanner.apply([plan], to: &config)
        try config.write(to: directory + "/config")

        let script = """
            import sys, botocore.session
            credentials = botocore.session.Session(profile="demo-dev").get_credentials()
            print("RESULT", credentials.method, credentials.get_frozen_credentials().access_key)
            """
        let process = try PartnerProcess(
            executable: Tooling.python(), arguments: ["-c", script],
            environment: [
                "AWS_CONFIG_FILE": directory + "/config", "AWS_SHARED_CREDENTIALS_FILE": directory + "/credentials",
                "HOME": directory, "PATH": "/usr/bin:/bin",
            ],
            inheritEnvironment: false, logPath: directory + "/botocore.log")
        let status = process.waitForExit(timeout: 60)
        if status == nil { process.stop() }
        let output = process.log()
        #expect(status == 0, "botocore failed:\n\(output)\nconfig:\n\(config.text)")
        #expect(
            output.contains("RESULT custom-process AKIDFROMPROCESS"),
            "botocore did not use credential_process:\n\(output)\nconfig:\n\(config.text)")
    }

    /// botocore's view of each file (scripts/partners/botocore_config.py).
    func botocore(_ paths: [String]) throws -> [[String: Any]] {
        let script = repositoryRoot() + "/scripts/partners/botocore_config.py"
        let (status, output) = try PartnerProcess.run(Tooling.python(), [script] + paths, timeout: 120)
        try #require(status == 0, "botocore_config.py failed: \(output)")
        let json = output.split(separator: "\n").last.map(String.init) ?? ""
        return try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
    }
}
