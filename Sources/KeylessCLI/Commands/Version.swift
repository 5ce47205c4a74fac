import ArgumentParser
import Foundation
import KeylessBuildInfo
import KeylessClient
import KeylessCore
import KeylessSecrets

extension Keyless {
    /// `keyless version [--json]`: what this build is, for bug reports.
    struct Version: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the version, the commit it was built from and, with --json, what a bug report needs.",
            discussion: """
                --json adds the Swift toolchain, the platform and the secret-store backends this machine offers \
                (the OS secret store is asked whether it answers; nothing is read or decrypted).
                """)

        @Flag(name: .customLong("json"), help: "Print JSON: version, commit, swift, platform, secret_stores.")
        var json = false

        func run() throws {
            guard json else {
                FileHandle.standardOutput.write(Data("keyless \(BuildInfo.versionLine)\n".utf8))
                return
            }
            let report = VersionReport(environment: Environment.process)
            FileHandle.standardOutput.write(Data((try JSONWriter.text(report) + "\n").utf8))
        }
    }
}

/// `keyless version --json`'s document.
struct VersionReport: Encodable {
    struct Store: Encodable {
        let available: Bool
        let detail: String
    }
    let version: String
    let commit: String?
    let swift: String
    let platform: String
    let secretStores: [String: Store]

    init(environment: Environment) {
        version = BuildInfo.version
        commit = BuildInfo.commit
        swift = BuildInfo.swiftVersion
        platform = BuildInfo.platform
        secretStores = Dictionary(
            uniqueKeysWithValues: SecretStoreFactory.availability(environment).map {
                ($0.kind.rawValue, Store(available: $0.available, detail: $0.detail))
            })
    }

    enum CodingKeys: String, CodingKey {
        case version, commit, swift, platform
        case secretStores = "secret_stores"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(version, forKey: .version)
        try container.encode(commit, forKey: .commit)  // null for a development build, never left out
        try container.encode(swift, forKey: .swift)
        try container.encode(platform, forKey: .platform)
        try container.encode(secretStores, forKey: .secretStores)
    }
}
