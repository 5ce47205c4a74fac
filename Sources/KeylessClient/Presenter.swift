import Foundation
import KeylessCore
import KeylessOIDC

/// Shows logins on the terminal (or stderr) and starts the browser.
public struct TerminalPresenter: LoginPresenter {
    let terminal: Terminal
    let environment: Environment
    /// `--browser CMD`, else `$BROWSER`, else the platform opener.
    let browserCommand: String?
    /// `--no-browser`: print the URL only.
    let noBrowser: Bool

    public init(terminal: Terminal, environment: Environment, browserCommand: String?, noBrowser: Bool) {
        self.terminal = terminal
        self.environment = environment
        self.browserCommand = browserCommand
        self.noBrowser = noBrowser
    }

    /// The command that opens a URL, or nil when none is available.
    func resolvedBrowser() -> String? {
        if noBrowser { return nil }
        if let browserCommand, !browserCommand.isEmpty { return browserCommand }
        if let browser = environment["BROWSER"] { return browser.split(separator: ":").first.map(String.init) }
        #if os(macOS)
            return "open"
        #else
            let path = environment["PATH"] ?? "/usr/bin:/bin"
            for directory in path.split(separator: ":")
            where FileManager.default.isExecutableFile(atPath: "\(directory)/xdg-open") {
                return "xdg-open"
            }
            return nil
        #endif
    }

    public func openBrowser(_ url: String) -> Bool {
        guard let command = resolvedBrowser() else { return false }
        // The URL is passed as a positional parameter, never spliced into the shell text.
        let script =
            command.contains("%s") ? command.replacingOccurrences(of: "%s", with: "\"$1\"") : command + " \"$1\""
        var childEnvironment = environment.values
        childEnvironment.removeValue(forKey: "KEYLESS_FILE_PASSPHRASE")
        var child = ChildProcess(
            executable: "/bin/sh", argv: ["/bin/sh", "-c", script, "keyless-browser", url],
            environment: childEnvironment)
        let null = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if null >= 0 { close(null) } }
        // The browser must never write to our stdout: credential_process owns it.
        (child.standardInput, child.standardOutput) = (null >= 0 ? null : nil, STDERR_FILENO)
        do {
            let pid = try child.spawn()
            // Reaped on a thread of its own: the opener may outlive the login, and must not stay a zombie.
            Thread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            }.start()
            return true
        } catch {
            terminal.say("Could not start the browser (\(command)): \(error).")
            return false
        }
    }

    public func showLoginURL(_ url: String, browserOpened: Bool) {
        if browserOpened {
            terminal.say("Opening your browser to log in. If it does not open, visit:\n  \(url)")
        } else {
            terminal.say("To log in, open this URL in a browser:\n  \(url)")
        }
    }

    public func showDeviceCode(userCode: String, verificationURI: String, verificationURIComplete: String?) {
        terminal.say("To log in, open \(terminal.bold(verificationURI)) and enter the code \(terminal.bold(userCode))")
        if let verificationURIComplete { terminal.say("  (or open \(verificationURIComplete) directly)") }
    }

    public func waiting(_ message: String) -> @Sendable () -> Void {
        guard terminal.isInteractive else {
            terminal.say(message + "…")
            return {}
        }
        let terminal = self.terminal
        let spinner = Task {
            let frames =
                terminal.useColor ? ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"] : ["-", "\\", "|", "/"]
            var index = 0
            while !Task.isCancelled {
                terminal.write("\r\(frames[index % frames.count]) \(message)… (Ctrl-C to cancel)")
                index += 1
                try? await Task.sleep(nanoseconds: 100_000_000)
            }
        }
        return {
            spinner.cancel()
            terminal.write("\r\u{1B}[K")
        }
    }
}
