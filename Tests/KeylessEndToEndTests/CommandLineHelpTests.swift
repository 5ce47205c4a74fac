import Foundation
import KeylessTestSupport
import Testing

/// Help and shell completion, as a person meets them on the first day.
@Suite("help and shell completion")
struct CommandLineHelpTests {
    @Test("keyless exec --help shows exec's help (the pass-through argument does not swallow it), and exits 0")
    func execHelp() throws {
        let harness = try KeylessHarness(moto: nil)
        for flag in ["--help", "-h"] {
            let run = try harness.run(["exec", flag])
            #expect(run.status == 0, "\(run)")
            #expect(run.stdout.contains("USAGE: keyless exec"), "\(run)")
            #expect(!run.stderr.contains("No profile given"), "\(run)")
        }
        // After --, --help belongs to the command: keyless still wants a profile first.
        let passed = try harness.run(["exec", "--", "--help"])
        #expect(passed.status == 2, "\(passed)")
        #expect(passed.stderr.contains("No profile given"), "\(passed)")
    }

    @Test("the bash completion script loads (complete -p keyless) and completes subcommands and flags")
    func bashCompletion() throws {
        let harness = try KeylessHarness(moto: nil)
        let script = try harness.run(["completion", "bash"])
        #expect(script.status == 0, "\(script)")
        let path = harness.home + "/keyless.bash"
        try script.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        // Drive the completion function as bash does on <TAB>: COMP_WORDS/COMP_CWORD, then read COMPREPLY.
        let probe = """
            source "$1" || exit 9
            complete -p keyless || exit 8
            function_name=$(complete -p keyless | sed -E 's/.*-F ([^ ]+).*/\\1/')
            complete_words() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=(); "$function_name" keyless "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"; printf '%s\\n' "${COMPREPLY[@]}"; }
            echo "--- subcommands"; complete_words keyless lo
            echo "--- login flags"; complete_words keyless login --issuer
            """
        let run = try harness.runProgram("bash", ["--norc", "--noprofile", "-c", probe, "probe", path])
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout.contains("-F _keyless keyless"), "\(run)")
        let sections = run.stdout.components(separatedBy: "--- login flags")
        #expect(sections.count == 2, "\(run)")
        let subcommands = sections.first?.components(separatedBy: .newlines) ?? []
        #expect(subcommands.contains("login") && subcommands.contains("logout"), "\(run)")
        #expect(sections.last?.contains("--issuer-url") == true, "\(run)")
    }

    @Test("zsh and fish scripts are printed; an unknown shell is a command-line error that names the choices")
    func otherShells() throws {
        let harness = try KeylessHarness(moto: nil)
        let zsh = try harness.run(["completion", "zsh"])
        #expect(zsh.status == 0 && zsh.stdout.hasPrefix("#compdef keyless"), "\(zsh)")
        let fish = try harness.run(["completion", "fish"])
        #expect(fish.status == 0 && fish.stdout.contains("complete -c 'keyless'"), "\(fish)")
        let unknown = try harness.run(["completion", "tcsh"])
        #expect(unknown.status == 64, "\(unknown)")
        #expect(unknown.stderr.contains("bash, zsh or fish"), "\(unknown)")
        #expect(unknown.stdout.isEmpty)
    }
}
