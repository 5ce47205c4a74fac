import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessWire

/// Which keyless server to ask, and as whom: `--server` with the provider flags, or a profile written by configure.
struct ServerTarget: ParsableArguments {
    @Option(name: [.customLong("server"), .customLong("config-url")], help: "The keyless server's URL.")
    var server: String?

    @Option(
        name: .customLong("profile"), help: "Take the server, issuer and client id from this profile in ~/.aws/config.")
    var profile: String?

    /// The server URL and a broker for the caller's login.
    func resolve(provider: ProviderOptions, context: ClientContext) throws -> (
        server: String, broker: CredentialBroker, profile: KeylessProfile?
    ) {
        if let profile {
            let loaded = try KeylessProfile.load(profile, context: context)
            guard let server = server ?? loaded.role.server else {
                throw KeylessError(
                    .usage,
                    "Profile '\(profile)' does not name a keyless server (its credential_process has no --server).",
                    hint: "Pass --server URL as well.")
            }
            return (
                server,
                CredentialBroker(
                    login: try loaded.provider.settings(),
                    store: try context.store(provider.secretStore ?? loaded.provider.secretStore),
                    context: context), loaded
            )
        }
        guard let server else {
            throw KeylessError(
                .usage,
                "Which keyless server? Pass --server URL (with --issuer-url and --client-id), or --profile NAME.",
                hint: "The URL is the one your administrator gave you for `keyless configure --config-url`.")
        }
        return (
            server,
            CredentialBroker(
                login: try provider.settings(), store: try context.store(provider.secretStore), context: context), nil
        )
    }
}

extension Keyless {
    /// `keyless roles`: what the server lets you assume.
    struct Roles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the AWS roles the keyless server grants you, by account.")

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        @Flag(name: .customLong("json"), help: "Print the server's answer as JSON.")
        var json = false

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let (server, broker, _) = try target.resolve(provider: provider, context: context)
                let document = try await ServerSession(server: server, broker: broker, context: context).config()
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                    FileHandle.standardOutput.write(try encoder.encode(document) + Data("\n".utf8))
                    return
                }
                print(Self.render(document), terminator: "")
            }
        }

        /// The human listing: accounts, then each role with its profile name, longest session and MFA need.
        static func render(_ document: ServerConfigDocument) -> String {
            var text = "Signed in as \(document.caller.name) at \(document.issuer)\n"
            if document.accounts.isEmpty {
                return text
                    + "No roles are granted to you. Ask an administrator to add you to a group in the keyless policy.\n"
            }
            for account in document.accounts {
                text += "\n\(account.alias.map { "\($0) (\(account.id))" } ?? account.id)\n"
                let width = account.roles.map(\.name.count).max() ?? 0
                for role in account.roles {
                    let padded = role.name.padding(toLength: width, withPad: " ", startingAt: 0)
                    var line = "  \(padded)  \(role.arn)  up to \(role.maxSessionSeconds / 60) min"
                    if let onRequest = role.onRequest {
                        line += "  on request (up to \(DurationText.describe(seconds: onRequest.maxDurationSeconds))"
                        if !onRequest.approverGroups.isEmpty {
                            line += ", approved by \(onRequest.approverGroups.joined(separator: ", "))"
                        }
                        if onRequest.selfApproval { line += ", break-glass self-approval" }
                        line += ")"
                    }
                    if role.passkeyRequired == true {
                        line += "  needs a passkey"
                    } else if role.mfaRequired {
                        line += "  needs MFA"
                    }
                    if let description = role.description { line += "  — \(description)" }
                    text += line + "\n"
                }
            }
            return text
        }
    }
}

/// A logged-in conversation with the server: retries once with a fresh ID token when the server refuses the cached one.
struct ServerSession {
    let server: String
    let broker: CredentialBroker
    let context: ClientContext

    func config() async throws -> ServerConfigDocument {
        try await withToken { client, token in try await client.config(idToken: token) }
    }

    func console(roleArn: String, destination: String?) async throws -> String {
        try await withToken { client, token in
            try await client.console(idToken: token, roleArn: roleArn, destination: destination)
        }
    }

    func withToken<T>(_ body: (AccessServerClient, String) async throws -> T) async throws -> T {
        let client = try AccessServerClient(baseURL: server, http: context.http)
        do {
            return try await body(client, try await broker.tokens().idToken)
        } catch let error as KeylessError where error.code == .tokenInvalid {
            return try await body(client, try await broker.tokens(forceRefresh: true).idToken)
        }
    }
}
