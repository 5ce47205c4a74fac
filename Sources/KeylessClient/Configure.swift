import Foundation
import KeylessAWSConfig
import KeylessCore
import KeylessWire

/// One profile `configure` will write.
public struct ProfilePlan: Sendable, Equatable {
    /// The profile name.
    public var name: String
    public var roleArn: String
    /// The account label (alias or id) and role name, for the summary.
    public var account: String
    public var roleName: String
    /// The profile's region.
    public var region: String
    /// The `credential_process` line.
    public var credentialProcess: String
}

/// Asks questions and shows text; the terminal in real use, a script in tests.
public protocol SurveyIO {
    /// Shows a question and returns the answer (nil: no more input).
    func ask(_ prompt: String) -> String?
    /// Shows text.
    func say(_ text: String)
}

extension Terminal: SurveyIO {}

/// Turns the server's answer and the person's choices into profiles, and writes them into `~/.aws/config`.
public enum ConfigurePlanner {
    /// Keys that would make botocore ignore `credential_process` (they take precedence), removed from a replaced profile.
    static let competingKeys = [
        "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "role_arn", "source_profile",
        "credential_source", "web_identity_token_file", "role_session_name", "sso_session", "sso_start_url",
        "sso_account_id", "sso_role_name", "sso_region", "login_session",
    ]

    /// A profile for every role, named `prefix + suggested name`.
    public static func allRoles(
        _ document: ServerConfigDocument, region: String?, prefix: String, command: String = "keyless"
    ) -> [ProfilePlan] {
        document.allRoles.map {
            plan(
                document, account: $0.account, role: $0.role, name: prefix + $0.role.profile, region: region,
                command: command)
        }
    }

    /// The plan for one role.
    public static func plan(
        _ document: ServerConfigDocument, account: ServerConfigDocument.Account, role: ServerConfigDocument.Role,
        name: String,
        region: String?, command: String = "keyless"
    ) -> ProfilePlan {
        let region = region ?? role.region
        var line = CredentialProcessLine.make(
            server: role.credentials == "server" ? document.serverURL : nil, issuer: document.issuer,
            clientID: document.clientID, roleArn: role.arn, region: region)
        if command != "keyless" { line = ShellWords.quote(command) + line.dropFirst("keyless".count) }
        return ProfilePlan(
            name: name, roleArn: role.arn, account: account.label, roleName: role.name, region: region,
            credentialProcess: line)
    }

    /// How profiles should start keyless: `keyless` when that name on PATH is this installation, else the launcher's
    /// absolute path (so the AWS CLI, which runs credential_process without a shell, finds it).
    public static func command(environment: Environment, executable: String) -> String {
        let directory = Files.parentDirectory(executable)
        let launcher = directory + "/keyless"
        guard Files.exists(launcher) else { return "keyless" }
        for entry in (environment["PATH"] ?? "").split(separator: ":") where Files.exists(entry + "/keyless") {
            return realpath(entry + "/keyless") == realpath(launcher) ? "keyless" : launcher
        }
        return launcher
    }

    static func realpath(_ path: String) -> String {
        guard let resolved = Foundation.realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Whether `name` can be a profile name keyless writes (botocore accepts more; these survive every shell and tool).
    public static func validName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
    }

    /// Applies the plans to `document`: each profile gets its credential_process and region, loses keys that would
    /// override them, and keeps everything else.
    public static func apply(_ plans: [ProfilePlan], to document: inout AWSConfigDocument) throws {
        for plan in plans {
            if document.values(profile: plan.name) != nil {
                for key in competingKeys { try document.removeValue(for: key, profile: plan.name) }
            }
            try document.upsertProfile(
                plan.name, values: [("credential_process", plan.credentialProcess), ("region", plan.region)])
        }
    }

    /// The shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    public static func credentialsFile(_ context: ClientContext) -> String {
        context.environment["AWS_SHARED_CREDENTIALS_FILE"] ?? context.paths.home + "/.aws/credentials"
    }

    /// The planned profiles that the credentials file also defines with static keys, which botocore prefers.
    public static func shadowedByCredentialsFile(_ plans: [ProfilePlan], context: ClientContext) -> [String] {
        guard let file = try? AWSConfigFile.load(credentialsFile(context)) else { return [] }
        return plans.map(\.name).filter { file.sections[$0]?["aws_access_key_id"] != nil }
    }

    /// The profiles as INI text (what --print-only shows).
    public static func snippet(_ plans: [ProfilePlan]) -> String {
        plans.map { "[profile \($0.name)]\ncredential_process = \($0.credentialProcess)\nregion = \($0.region)\n" }
            .joined(separator: "\n")
    }
}

/// The interactive survey: region, one profile per role or one at a time, account, role, profile name.
public struct ConfigureSurvey {
    let io: any SurveyIO
    let document: ServerConfigDocument
    let existing: Set<String>
    let command: String

    /// A survey over `document`; `existing` names the profiles already in the file; `command` starts keyless.
    public init(io: any SurveyIO, document: ServerConfigDocument, existing: Set<String>, command: String = "keyless") {
        self.io = io; self.document = document; self.existing = existing; self.command = command
    }

    /// Runs the questions; returns the plans, or nil when the person stopped (end of input).
    public func run(region suggestedRegion: String?, prefix: String) throws -> [ProfilePlan]? {
        let offered = suggestedRegion ?? document.defaultRegion
        guard
            let answer = ask(
                "Default region", default: offered, valid: Self.validRegion,
                problem: "A region looks like us-east-1 or eu-west-2.")
        else { return nil }
        // Accepting the server's default keeps each account's own suggested region, as --all-roles without --region does.
        let region: String? = suggestedRegion == nil && answer == offered ? nil : answer
        let total = document.allRoles.count
        io.say(
            "How should profiles be written?\n  1) one profile per role (\(total) role\(total == 1 ? "" : "s"))\n  2) pick roles one at a time"
        )
        guard let mode = choose("Choice", count: 2, default: 1) else { return nil }
        if mode == 1 { return ConfigurePlanner.allRoles(document, region: region, prefix: prefix, command: command) }
        var plans: [ProfilePlan] = []
        repeat {
            let account: ServerConfigDocument.Account
            if document.accounts.count == 1 {
                account = document.accounts[0]
                io.say("Account: \(account.heading)")
            } else {
                let lines = document.accounts.enumerated().map { offset, account in
                    "  \(offset + 1)) \(account.heading)"
                }
                io.say("Accounts:\n" + lines.joined(separator: "\n"))
                guard let index = choose("Account", count: document.accounts.count, default: 1) else { return nil }
                account = document.accounts[index - 1]
            }
            io.say(
                "Roles in \(account.label):\n"
                    + account.roles.enumerated().map { offset, role in
                        "  \(offset + 1)) \(role.name)" + (role.description.map { " — \($0)" } ?? "")
                            + (role.mfaRequired ? " (needs MFA)" : "")
                    }.joined(separator: "\n"))
            guard let roleIndex = choose("Role", count: account.roles.count, default: 1) else { return nil }
            let role = account.roles[roleIndex - 1]
            guard
                let name = ask(
                    "Profile name", default: prefix + role.profile, valid: ConfigurePlanner.validName,
                    problem: "Use letters, digits, - _ and . only.")
            else { return nil }
            if existing.contains(name) || plans.contains(where: { $0.name == name }) {
                guard
                    let replace = ask(
                        "Profile \(name) already exists; replace its credential settings? [y/N]", default: "n",
                        valid: Self.yesNo, problem: "Answer y or n.")
                else { return nil }
                if !replace.lowercased().hasPrefix("y") { continue }
                plans.removeAll { $0.name == name }
            }
            plans.append(
                ConfigurePlanner.plan(
                    document, account: account, role: role, name: name, region: region, command: command))
            guard
                let more = ask("Add another profile? [y/N]", default: "n", valid: Self.yesNo, problem: "Answer y or n.")
            else { return nil }
            if !more.lowercased().hasPrefix("y") { break }
        } while true
        return plans
    }

    func ask(_ question: String, default value: String, valid: (String) -> Bool, problem: String) -> String? {
        while true {
            let prompt = question.hasSuffix("]") ? "\(question): " : "\(question) [\(value)]: "
            guard let answer = io.ask(prompt)?.trimmingCharacters(in: .whitespaces) else { return nil }
            let chosen = answer.isEmpty ? value : answer
            if valid(chosen) { return chosen }
            io.say(problem)
        }
    }

    func choose(_ question: String, count: Int, default value: Int) -> Int? {
        guard
            let answer = ask(
                question, default: String(value), valid: { Int($0).map { (1...count).contains($0) } ?? false },
                problem: "Enter a number from 1 to \(count).")
        else { return nil }
        return Int(answer)
    }

    public static func validRegion(_ text: String) -> Bool {
        let parts = text.split(separator: "-")
        return parts.count >= 3 && text.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-") }
            && parts.last!.allSatisfy(\.isNumber)
    }

    static func yesNo(_ text: String) -> Bool { ["y", "yes", "n", "no"].contains(text.lowercased()) }
}
