import ArgumentParser
import Foundation

extension Keyless {
    /// `keyless completion bash|zsh|fish`: the shell completion script, from ArgumentParser's generator.
    struct Completion: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the shell completion script for bash, zsh or fish.",
            discussion: """
                bash:  keyless completion bash > ~/.local/share/bash-completion/completions/keyless
                zsh:   keyless completion zsh > "${fpath[1]}/_keyless"
                fish:  keyless completion fish > ~/.config/fish/completions/keyless.fish
                """)

        @Argument(help: "The shell: bash, zsh or fish.")
        var shell: String

        func validate() throws {
            guard CompletionShell(rawValue: shell) != nil else {
                throw ValidationError(
                    "'\(shell)' is not a shell keyless writes completions for: use bash, zsh or fish.")
            }
        }

        func run() throws {
            let script = Keyless.completionScript(for: CompletionShell(rawValue: shell)!)
            FileHandle.standardOutput.write(Data((script.hasSuffix("\n") ? script : script + "\n").utf8))
        }
    }
}
