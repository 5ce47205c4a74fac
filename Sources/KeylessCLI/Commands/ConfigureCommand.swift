import ArgumentParser
import Foundation
import KeylessAWSConfig
import KeylessClient
import KeylessCore
import KeylessFastPath

extension Keyless {
    /// `keyless configure`: profiles for every role the server grants.
    struct Configure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write ~/.aws/config profiles for the roles a keyless server grants you (logs in if needed).",
            discussion: """
                Interactive: asks for the region and which roles to add. For scripts: --all-roles --yes (with --region and \
                --profile-prefix as needed). --print-only shows the profiles and changes nothing.
                """)

        @Option(name: [.customLong("config-url"), .customLong("server")], help: "The keyless server's URL.")
        var server: String

        @OptionGroup var provider: ProviderOptions

        @Option(
            name: .customLong("region"),
            help: "The region for every profile (default: the server's suggestion per role).")
        var region: String?

        @Flag(name: .customLong("all-roles"), help: "A profile for every granted role, without asking which.")
        var allRoles = false

        @Option(name: .customLong("profile-prefix"), help: "Put this in front of every suggested profile name.")
        var profilePrefix = ""

        @Flag(name: .customLong("yes"), help: "Write without asking for confirmation.")
        var yes = false

        @Flag(name: .customLong("print-only"), help: "Print the profiles instead of writing them.")
        var printOnly = false

        func validate() throws {
            if let region, !ConfigureSurvey.validRegion(region) {
                throw ValidationError("--region \(region) is not a region (e.g. us-east-1)")
            }
            if !profilePrefix.isEmpty && !ConfigurePlanner.validName(profilePrefix) {
                throw ValidationError("--profile-prefix may hold letters, digits, - _ and . only")
            }
        }

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let broker = CredentialBroker(
                    login: try provider.settings(), store: try context.store(provider.secretStore), context: context)
                let document = try await ServerSession(server: server, broker: broker, context: context).config()
                let path = context.paths.awsConfigFile(context.environment)
                let terminal = context.terminal
                guard !document.allRoles.isEmpty else {
                    terminal.say(
                        "The keyless server at \(server) grants \(document.caller.name) no roles, so \(path) was not changed.\n"
                            + "Ask an administrator to add you to a group in the server's policy, then run this again.")
                    return
                }
                var config = try AWSConfigDocument.load(path)
                let existing = Set(config.profileNames)
                let command = ConfigurePlanner.command(
                    environment: context.environment, executable: Launcher.executablePath() ?? CommandLine.arguments[0])
                let plans: [ProfilePlan]
                if allRoles {
                    plans = ConfigurePlanner.allRoles(document, region: region, prefix: profilePrefix, command: command)
                } else {
                    guard terminal.isInteractive else {
                        throw KeylessError(
                            .usage, "configure needs a terminal to ask which roles to add.",
                            hint:
                                "In scripts pass --all-roles --yes (and --region / --profile-prefix as needed), or --all-roles --print-only to only see them."
                        )
                    }
                    terminal.say(
                        "Signed in as \(document.caller.name). The server grants you \(document.allRoles.count) role(s) in \(document.accounts.count) account(s)."
                    )
                    guard
                        let chosen = try ConfigureSurvey(
                            io: terminal, document: document, existing: existing, command: command
                        ).run(region: region, prefix: profilePrefix)
                    else {
                        terminal.say("Stopped; \(path) was not changed.")
                        return
                    }
                    plans = chosen
                }
                for plan in plans where !ConfigurePlanner.validName(plan.name) {
                    throw KeylessError(
                        .configInvalid, "The profile name \(plan.name) is not usable.",
                        hint: "Choose another --profile-prefix, or pick roles one at a time.")
                }
                if printOnly {
                    print(ConfigurePlanner.snippet(plans), terminator: "")
                    return
                }
                terminal.say("These profiles will be written to \(path):")
                for plan in plans {
                    terminal.say(
                        "  \(plan.name)  \(plan.roleArn)  \(plan.region)"
                            + (existing.contains(plan.name) ? "  (replaces the existing profile's credentials)" : ""))
                }
                if !yes {
                    guard terminal.isInteractive else {
                        throw KeylessError(
                            .usage, "configure asks before writing, and there is no terminal to ask on.",
                            hint: "Pass --yes to write without asking.")
                    }
                    let answer =
                        terminal.ask("Write them? [Y/n]: ")?.trimmingCharacters(in: .whitespaces).lowercased() ?? "n"
                    guard answer.isEmpty || answer.hasPrefix("y") else {
                        terminal.say("Nothing was written.")
                        return
                    }
                }
                let hadFile = Files.exists(path)  // write(to:) keeps a backup only of a file that was there
                try ConfigurePlanner.apply(plans, to: &config)
                try config.write(to: path)
                let backup = hadFile ? " (the previous file is \(path).keyless-backup)" : ""
                terminal.say(
                    "Wrote \(plans.count) profile(s) to \(path)\(backup). Try: aws sts get-caller-identity --profile \(plans[0].name)"
                )
                let shadowed = ConfigurePlanner.shadowedByCredentialsFile(plans, context: context)
                if !shadowed.isEmpty {
                    terminal.say(
                        "warning: \(shadowed.joined(separator: ", ")) also have static keys in \(ConfigurePlanner.credentialsFile(context)); the AWS CLI and SDKs use "
                            + "those before credential_process. Remove those sections there to use keyless.")
                }
            }
        }
    }
}
