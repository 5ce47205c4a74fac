import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessFastPath

extension Keyless {
    /// `keyless env`: print credentials for a shell or a tool.
    struct Env: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the profile's AWS credentials as environment variables.")

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case env, export, fish, powershell, json, dotenv
        }

        @OptionGroup var options: ProfileOption

        @Option(name: .customLong("format"), help: "env, export, fish, powershell, json or dotenv.")
        var format: Format = .export

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live(verbose: options.verbose)
                let profile = try KeylessProfile.load(try options.resolvedName(context), context: context)
                let resolved = try await profile.credentials(
                    context: context, secretStore: options.secretStore, scope: try options.scope.sessionScope())
                FileHandle.standardOutput.write(Data(Self.render(resolved.variables, format: format).utf8))
            }
        }

        static func single(_ value: String) -> String { "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'" }

        static func render(_ variables: [(String, String)], format: Format) -> String {
            switch format {
            case .env: return variables.map { "\($0.0)=\($0.1)\n" }.joined()
            case .export: return variables.map { "export \($0.0)=\(single($0.1))\n" }.joined()
            case .fish: return variables.map { "set -gx \($0.0) \(single($0.1));\n" }.joined()
            case .powershell:
                return variables.map { "$Env:\($0.0) = '\($0.1.replacingOccurrences(of: "'", with: "''"))'\n" }.joined()
            case .dotenv: return variables.map { "\($0.0)=\(jsonString($0.1))\n" }.joined()
            case .json:
                return "{" + variables.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",") + "}\n"
            }
        }
    }
}
