import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore

extension Keyless {
    /// `keyless status`: who is logged in and what is cached, without decrypting anything.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show who is logged in and what is cached (no secrets; nothing is decrypted).")

        @Option(name: .customLong("secret-store"), help: "The secret store to inspect.")
        var secretStore: String?

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                let store = try context.store(secretStore)
                let headers = try store.headers()
                let now = context.clock.now()
                var out = "store: \(store.backendName)\n"
                if headers.isEmpty { out += "nothing cached; run keyless login\n" }
                for header in headers {
                    let remaining = header.expiresAt.map { Self.describe($0.timeIntervalSince(now)) } ?? "no expiry"
                    let labels = header.labels
                    if labels["kind"] == "oidc-tokens" {
                        out +=
                            "login  \(labels["subject"] ?? "?")  at \(labels["issuer"] ?? "?") (client \(labels["client_id"] ?? "?")): ID token \(remaining), refresh token: \(labels["refresh_token"] ?? "?")\n"
                    } else {
                        out +=
                            "aws    \(labels["role_arn"] ?? "?") via \(labels["issuer"] ?? "?"): credentials \(remaining)\n"
                    }
                }
                FileHandle.standardOutput.write(Data(out.utf8))
            }
        }

        static func describe(_ seconds: TimeInterval) -> String {
            // Bounded before Int(_:), which traps on what no Int holds.
            let minutes = Int(min(abs(seconds), 1e12) / 60)
            return seconds <= 0 ? "expired \(minutes) min ago" : "valid for \(minutes) min"
        }
    }
}
