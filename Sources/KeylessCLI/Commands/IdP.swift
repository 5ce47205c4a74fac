import ArgumentParser
import Foundation
import KeylessCore
import KeylessHTTP
import KeylessIdP
import KeylessAccessServer
import KeylessClient

extension Keyless {
    /// `keyless idp`: the embedded OpenID Provider.
    struct IdP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "idp",
            abstract:
                "The embedded OpenID Provider: run it, publish its keys, rotate them, and prepare its configuration.",
            subcommands: [Serve.self, Publish.self, RotateKeys.self, HashPassword.self, Check.self, EnrolLink.self])

        /// `keyless idp hash-password`: the only form in which passwords and client secrets enter idp.yaml.
        struct HashPassword: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "hash-password",
                abstract:
                    "Hash a password or client secret for idp.yaml (scrypt); asks on the terminal, or reads one line with --stdin."
            )

            @Flag(name: .customLong("stdin"), help: "Read the password from the first line of stdin (for scripts).")
            var stdin = false

            func run() async throws {
                try await reporting {
                    let environment = Environment.process
                    let password: String
                    if stdin {
                        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                            throw KeylessError(
                                .usage, "No password on stdin.",
                                hint: "Pipe it in: printf %s \"$PASSWORD\" | keyless idp hash-password --stdin")
                        }
                        password = line
                    } else {
                        let terminal = Terminal(environment: environment)
                        guard terminal.isInteractive else {
                            throw KeylessError(
                                .usage, "No terminal to ask for the password on.",
                                hint: "Use --stdin and pipe the password in.")
                        }
                        guard let first = terminal.readSecret(prompt: "Password: "),
                            let second = terminal.readSecret(prompt: "Repeat: "), !first.isEmpty
                        else {
                            throw KeylessError(.usage, "No password was entered.", hint: "Run the command again.")
                        }
                        guard first == second else {
                            throw KeylessError(.usage, "The two passwords differ.", hint: "Run the command again.")
                        }
                        password = first
                    }
                    guard password.count >= 8 else {
                        throw KeylessError(
                            .usage, "The password has fewer than 8 characters.", hint: "Choose a longer one.")
                    }
                    FileHandle.standardOutput.write(Data((try PasswordHash.make(password).description + "\n").utf8))
                }
            }
        }

        /// `keyless idp check`: validate idp.yaml without starting anything.
        struct Check: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check idp.yaml and say what is wrong, with file and line.")

            @Option(name: .customLong("config"), help: "The configuration file.")
            var config: String

            func run() async throws {
                try await reporting {
                    let parsed = try IdPConfiguration.load(path: config)
                    // Each directory is asked once, as the service account, so a wrong password or base shows now
                    // rather than at the first person's login.
                    let connectors = try Connectors.open(
                        parsed, environment: .process, http: AsyncHTTPTransport(timeout: .seconds(10)))
                    var lines: [String] = []
                    var failed = false
                    for connector in parsed.effectiveConnectors where connector.type != "local" {
                        do {
                            if let directory = connectors.ldap[connector.id] {
                                try await directory.probe()
                                lines.append(
                                    "connector \(connector.id): \(connector.url ?? "") reachable, user base found")
                            } else if let upstream = connectors.upstream[connector.id] {
                                // Its discovery document and keys: what every sign-in through it needs.
                                _ = try await upstream.metadata()
                                lines.append(
                                    "connector \(connector.id): \(connector.issuer ?? "") answers discovery; register the redirect URI <issuer>/callback/\(connector.id) there"
                                )
                            }
                        } catch {
                            failed = true
                            lines.append("connector \(connector.id): \(error)")
                        }
                    }
                    await connectors.shutdown()
                    if let off = parsed.issuer.flatMap({ parsed.passkeysOff(issuer: $0) }) { lines.append(off) }
                    let summary =
                        "\(config): \(failed ? "valid, but a connector cannot be used" : "ok") (\(parsed.users.count) users, \(parsed.groups.count) groups, \(parsed.clients.count) clients, \(parsed.signingAlgorithm))"
                    FileHandle.standardOutput.write(Data(([summary] + lines).joined(separator: "\n").utf8 + [0x0a]))
                    if failed {
                        throw KeylessError(
                            .configInvalid, "a connector of \(config) cannot be used (see above).",
                            hint:
                                "Check its url or issuer, its CA file, its account and secret, and that the directory or provider is up."
                        )
                    }
                }
            }
        }
    }
}

extension Keyless.IdP {
    /// `keyless idp enrol-link --user U`: a one-time link for a person to register a passkey (a first one, or after
    /// losing every passkey), recorded in the provider's audit log.
    struct EnrolLink: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enrol-link",
            abstract:
                "Print a one-time link with which a user of idp.yaml registers a passkey; the issuing is written to the audit log.",
            discussion: """
                The link works once and until --valid-for has passed (at most 7 days). Hand it to the person over a channel you \
                trust: whoever opens it first can add a passkey to the account. Recovery from lost passkeys works the same way; \
                keyless never recovers an account by email or by questions.
                """)

        @OptionGroup var store: IdPStoreOptions

        @Option(name: .customLong("user"), help: "The username (in idp.yaml) the passkey is for.")
        var user: String

        @Option(
            name: .customLong("valid-for"), help: "How long the link works: seconds, or 30m, 24h, 7d (default 24h).")
        var validFor: String = "24h"

        @Option(
            name: .customLong("audit-log"),
            help:
                "The provider's audit log (JSON lines, appended and synced; default: idp-audit.log in the data directory)."
        )
        var auditLog: String?

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                guard let seconds = DurationText.seconds(validFor), seconds > 0 else {
                    throw KeylessError(
                        .usage, "--valid-for \(validFor) is not a duration.", hint: "Use seconds or 30m, 24h, 7d.")
                }
                let runtime = try await IdPRuntime.open(
                    configPath: store.config, issuer: store.issuer, listen: nil, database: store.database,
                    databasePasswordFile: store.databasePasswordFile, kekPath: store.kek, keyReload: 0,
                    context: context)
                let engine = try OAuthEngine(
                    config: runtime.config, issuer: runtime.issuer, store: runtime.store, keys: runtime.keys,
                    clock: context.clock)
                let link = try engine.enrolmentLink(username: user, validFor: seconds)
                try await runtime.store.close()
                let path = auditLog ?? (context.paths.data + "/idp-audit.log")
                let record: [String: String] = [
                    "time": ISO8601DateFormatter().string(from: context.clock.now()), "action": "enrolment_link",
                    "outcome": "issued", "subject": link.subject, "username": user, "link": link.id,
                    "expires": ISO8601DateFormatter().string(from: link.expires),
                    "by": context.environment["SUDO_USER"] ?? context.environment["USER"] ?? "unknown",
                ]
                let line = String(
                    decoding: try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]), as: UTF8.self)
                // No link is printed unless its issuing is on disk.
                let audit = try AuditLog(path: path)
                try await audit.append(line: line + "\n")
                await audit.close()
                FileHandle.standardError.write(
                    Data(
                        "keyless idp: enrolment link \(link.id) for \(user), valid until \(ISO8601DateFormatter().string(from: link.expires)); recorded in \(path)\n"
                            .utf8))
                FileHandle.standardOutput.write(Data((link.url + "\n").utf8))
            }
        }
    }
}
