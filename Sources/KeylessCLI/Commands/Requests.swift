import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessWire

extension Keyless {
    /// `keyless request ROLE --for 1h --reason "..."`: ask for a role on request.
    struct Request: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ask the keyless server for a role you may have on request (an approver decides).",
            discussion: """
                The role is its ARN or ACCOUNT/NAME as `keyless roles` lists it ("on request"). Once approved, \
                creds-process, exec, env and console give you the role until the grant ends.
                """)

        @Argument(help: "The role: its ARN, or ACCOUNT/NAME (e.g. prod/admin).")
        var role: String

        @Option(
            name: .customLong("for"), help: "How long you need it once approved (15m to the role's limit; default 1h).")
        var duration: String?

        @Option(name: .customLong("reason"), help: "Why: the approver reads it, the audit log keeps it.")
        var reason: String?

        @Flag(name: .customLong("json"), help: "Print the request as JSON.")
        var json = false

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await reporting {
                let seconds = try duration.map(RequestsRendering.seconds)
                let context = try ClientContext.live(verbose: provider.verbose)
                let (server, broker, _) = try target.resolve(provider: provider, context: context)
                let created = try await ServerSession(server: server, broker: broker, context: context).withToken {
                    try await $0.createRequest(
                        idToken: $1, AccessRequestCreate(roleArn: role, durationSeconds: seconds, reason: reason))
                }
                if json { return try RequestsRendering.printJSON(created) }
                let name = created.role ?? created.roleArn
                print(
                    KeylessError.printable(
                        "Asked for \(name) for \(DurationText.describe(seconds: created.durationSeconds)): request \(created.id), waiting for an approver until \(created.pendingUntil)."
                    ))
                print("`keyless requests` shows its state; `keyless revoke \(created.id)` withdraws it.")
            }
        }
    }

    /// `keyless requests`: yours, those waiting for you, and grants in force you may end.
    struct Requests: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List your access requests, those waiting for your approval, and grants you may end.")

        @Flag(name: .customLong("json"), help: "Print the server's answer as JSON.")
        var json = false

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: provider.verbose)
                let (server, broker, _) = try target.resolve(provider: provider, context: context)
                let document = try await ServerSession(server: server, broker: broker, context: context).withToken {
                    try await $0.requests(idToken: $1)
                }
                if json { return try RequestsRendering.printJSON(document) }
                // What others wrote (reasons, names) is shown with control characters escaped.
                print(KeylessError.printable(RequestsRendering.render(document)), terminator: "")
            }
        }
    }

    /// `keyless approve ID`.
    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Approve an access request waiting for you (`keyless requests` lists them).")

        @Argument(help: "The request's id.")
        var id: String

        @Option(name: .customLong("note"), help: "A note for the requester and the audit log.")
        var note: String?

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await RequestsRendering.act(id: id, verb: "approve", reason: note, target: target, provider: provider)
        }
    }

    /// `keyless deny ID --reason`.
    struct Deny: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deny an access request waiting for you; the requester is shown the reason.")

        @Argument(help: "The request's id.")
        var id: String

        @Option(name: .customLong("reason"), help: "Why (required): the requester is shown it.")
        var reason: String

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await RequestsRendering.act(id: id, verb: "deny", reason: reason, target: target, provider: provider)
        }
    }

    /// `keyless revoke ID`: end a grant early, or withdraw one's own pending request.
    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End an approved grant early (yours, or one you approve), or withdraw your pending request.")

        @Argument(help: "The request's id.")
        var id: String

        @Option(name: .customLong("reason"), help: "Why, for the audit log (and the requester).")
        var reason: String?

        @OptionGroup var target: ServerTarget
        @OptionGroup var provider: ProviderOptions

        func run() async throws {
            try await RequestsRendering.act(id: id, verb: "revoke", reason: reason, target: target, provider: provider)
        }
    }
}

/// How the request commands read flags and print answers.
enum RequestsRendering {
    /// `--for`: "1h", "90m", "3600" (seconds).
    static func seconds(_ text: String) throws -> Int {
        guard let value = DurationText.seconds(text), value >= 1, value <= 30 * 86400 else {
            throw KeylessError(
                .usage, "--for \(text) is not a duration.", hint: "Write it as 1h, 90m or 3600 (seconds).")
        }
        return Int(value)
    }

    static func printJSON(_ value: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        FileHandle.standardOutput.write(try encoder.encode(value) + Data("\n".utf8))
    }

    /// approve, deny or revoke, then one line saying what the request is now.
    static func act(id: String, verb: String, reason: String?, target: ServerTarget, provider: ProviderOptions)
        async throws
    {
        try await reporting {
            let context = try ClientContext.live(verbose: provider.verbose)
            let (server, broker, _) = try target.resolve(provider: provider, context: context)
            let changed = try await ServerSession(server: server, broker: broker, context: context).withToken {
                try await $0.act(idToken: $1, id: id, verb: verb, reason: reason)
            }
            print(
                KeylessError.printable(
                    "Request \(changed.id) (\(changed.role ?? changed.roleArn) for \(changed.requester.name)): \(state(changed))."
                ))
        }
    }

    /// Three sections: waiting for you, in force that you may end, yours.
    static func render(_ document: AccessRequestsDocument) -> String {
        var text = ""
        if !document.toApprove.isEmpty {
            text += "Waiting for your approval (keyless approve ID, keyless deny ID --reason \"...\"):\n"
            for request in document.toApprove {
                text +=
                    "  \(request.id)  \(request.role ?? request.roleArn) for \(DurationText.describe(seconds: request.durationSeconds)), asked by \(request.requester.name) at \(request.createdAt)\n"
                if !request.reason.isEmpty { text += "              reason: \(request.reason)\n" }
            }
            text += "\n"
        }
        if !document.active.isEmpty {
            text += "In force, which you may end early (keyless revoke ID):\n"
            for request in document.active {
                text +=
                    "  \(request.id)  \(request.role ?? request.roleArn) for \(request.requester.name), \(state(request))\n"
            }
            text += "\n"
        }
        if document.mine.isEmpty {
            text +=
                "You have asked for nothing yet. `keyless roles` lists the roles you may ask for (\"on request\").\n"
        } else {
            text += "Your requests:\n"
            for request in document.mine {
                text +=
                    "  \(request.id)  \(request.role ?? request.roleArn) for \(DurationText.describe(seconds: request.durationSeconds)): \(state(request))\n"
            }
        }
        return text
    }

    /// The request's state in words, with who decided and until when.
    static func state(_ request: AccessRequestDocument) -> String {
        switch request.status {
        case "pending": return "waiting for an approver until \(request.pendingUntil)"
        case "approved":
            let by = request.selfApproved ? "the requester (break-glass)" : request.decidedBy?.name ?? "?"
            return "approved by \(by), in force until \(request.endsAt ?? "?")"
        case "denied":
            return "denied by \(request.decidedBy?.name ?? "?")" + (request.decisionNote.map { ": \($0)" } ?? "")
        case "cancelled": return "withdrawn"
        case "revoked":
            return "ended early at \(request.endedAt ?? "?") by \(request.endedBy?.name ?? "?")"
                + (request.endNote.map { ": \($0)" } ?? "")
        case "expired":
            return request.decidedBy == nil
                ? "expired without a decision at \(request.pendingUntil)" : "ended at \(request.endsAt ?? "?")"
        default: return request.status
        }
    }
}
