import ArgumentParser
import Foundation
import KeylessAWS
import KeylessAWSConfig
import KeylessClient
import KeylessCore
import KeylessFastPath

/// A profile in `~/.aws/config` whose `credential_process` runs `keyless creds-process`.
struct KeylessProfile {
    let name: String
    let provider: ProviderOptions
    let role: RoleOptions
    let region: String?

    /// Reads profile `name` and parses its `credential_process` line with the same flags as `creds-process`.
    static func load(_ name: String, context: ClientContext) throws -> KeylessProfile {
        let path = context.paths.awsConfigFile(context.environment)
        let config = try AWSConfigFile.load(path)
        guard let section = config.profile(name) else {
            throw KeylessError(
                .configInvalid, "There is no profile '\(name)' in \(path).",
                hint:
                    "Profiles there: \(config.profileNames.joined(separator: ", ")). Add one with credential_process = keyless creds-process ..."
            )
        }
        guard let line = section["credential_process"] else {
            throw KeylessError(
                .configInvalid, "Profile '\(name)' in \(path) has no credential_process line.",
                hint:
                    "Add: credential_process = keyless creds-process --issuer-url URL --client-id ID --aws-role-arn ARN"
            )
        }
        let words = try ShellWords.split(line)
        guard let index = words.firstIndex(of: "creds-process") else {
            throw KeylessError(
                .configInvalid, "Profile '\(name)' does not use keyless creds-process (credential_process = \(line)).",
                hint: "Point it at keyless, or use that tool directly.")
        }
        let command: Keyless.CredsProcess
        do {
            command = try Keyless.CredsProcess.parse(Array(words[(index + 1)...]))
        } catch {
            throw KeylessError(
                .configInvalid,
                "Profile '\(name)' has a credential_process line keyless cannot parse: \(Keyless.CredsProcess.message(for: error))",
                hint: "Fix the flags in \(path); `keyless creds-process --help` lists them.")
        }
        return KeylessProfile(
            name: name, provider: command.provider, role: command.role, region: command.role.region ?? section["region"]
        )
    }

    /// The credentials for this profile; `scope`, when not empty, narrows them instead of the profile's own.
    func credentials(context: ClientContext, secretStore: String?, scope: SessionScope = .none) async throws
        -> CachedCredentialsWithRegion
    {
        var role = try self.role.settings()
        role.region = region
        if !scope.isEmpty { role.scope = scope }
        // An agent is read-only unless told otherwise: AWS's ReadOnlyAccess in the role's partition.
        if role.scope.agent != nil && role.scope.policy == nil && role.scope.policyArns.isEmpty {
            let partition = role.roleArn.split(separator: ":", omittingEmptySubsequences: false).dropFirst().first
            role.scope.policyArns = ["arn:\(partition ?? "aws"):iam::aws:policy/ReadOnlyAccess"]
        }
        let broker = CredentialBroker(
            login: try provider.settings(), store: try context.store(secretStore ?? provider.secretStore),
            context: context)
        return CachedCredentialsWithRegion(credentials: try await broker.credentials(for: role), region: region)
    }
}

extension ProviderOptions {
    /// A broker for these flags, or for the provider of `profile` when one is named (its flags win;
    /// `--secret-store` given here overrides the profile's).
    func broker(profile: String?, context: ClientContext) throws -> CredentialBroker {
        let options = try profile.map { try KeylessProfile.load($0, context: context).provider } ?? self
        return CredentialBroker(
            login: try options.settings(), store: try context.store(secretStore ?? options.secretStore),
            context: context)
    }
}

/// Credentials and the region they are for.
struct CachedCredentialsWithRegion {
    let credentials: CachedCredentials
    let region: String?

    /// The variables every AWS SDK reads.
    var variables: [(String, String)] {
        var pairs = [
            ("AWS_ACCESS_KEY_ID", credentials.accessKeyId), ("AWS_SECRET_ACCESS_KEY", credentials.secretAccessKey),
            ("AWS_SESSION_TOKEN", credentials.sessionToken),
            ("AWS_CREDENTIAL_EXPIRATION", rfc3339(credentials.expiration)),
        ]
        if let region { pairs += [("AWS_REGION", region), ("AWS_DEFAULT_REGION", region)] }
        return pairs
    }
}

/// `--profile NAME`, shared by exec and env.
struct ProfileOption: ParsableArguments {
    @Option(name: .customLong("profile"), help: "The profile in ~/.aws/config whose credential_process runs keyless.")
    var profile: String?

    @Option(name: .customLong("secret-store"), help: "Override the profile's secret store.")
    var secretStore: String?

    @OptionGroup var scope: ScopeOptions

    @Flag(name: .shortAndLong, help: "More logging on stderr.")
    var verbose: Int

    func resolvedName(_ context: ClientContext) throws -> String {
        if let profile { return profile }
        if let profile = context.environment["AWS_PROFILE"] { return profile }
        throw KeylessError(.usage, "No profile given.", hint: "Pass --profile NAME (or set AWS_PROFILE).")
    }
}
