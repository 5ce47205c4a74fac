import Foundation
import KeylessCore

/// Where the tools the tests drive live: Python, the Playwright venv, the BROWSER command, executables in PATH.
public enum Tooling {
    /// The real Python 3 interpreter (a pyenv shim resolved to the interpreter it runs), or "/usr/bin/python3".
    public static func python() -> String { resolvedPython }

    private static let resolvedPython: String = {
        if let explicit = ProcessInfo.processInfo.environment["KEYLESS_PYTHON"], isExecutable(explicit) {
            return explicit
        }
        guard let onPath = path(of: "python3") else { return "/usr/bin/python3" }
        // pyenv shims are scripts; ask the interpreter for its own path so a PID we hold is the interpreter's.
        if let answer = try? PartnerProcess.run(onPath, ["-c", "import sys; print(sys.executable)"], timeout: 30),
            answer.status == 0
        {
            let real = answer.output.trimmingCharacters(in: .whitespacesAndNewlines)
            if isExecutable(real) { return real }
        }
        return onPath
    }()

    /// The venv Python with Playwright: `$KEYLESS_PYTHON_VENV/bin/python`, else the repository's `.venv/bin/python`; nil if neither exists.
    public static func venvPython() -> String? {
        var candidates: [String] = []
        if let venv = ProcessInfo.processInfo.environment["KEYLESS_PYTHON_VENV"], !venv.isEmpty {
            candidates.append((venv as NSString).appendingPathComponent("bin/python"))
        }
        candidates.append((repositoryRoot() as NSString).appendingPathComponent(".venv/bin/python"))
        return candidates.first(where: isExecutable)
    }

    /// The system Chromium binary (the real one, not the /usr/bin wrapper, when present), or nil.
    public static func chromium() -> String? {
        ["/usr/lib/chromium/chromium", "/usr/bin/chromium"].first(where: isExecutable)
    }

    /// Whether `browserLoginCommand` can work here: a venv with Playwright and a system Chromium.
    public static func browserLoginAvailable() -> Bool {
        guard let python = venvPython(), chromium() != nil,
            let check = try? PartnerProcess.run(python, ["-c", "import playwright.sync_api"], timeout: 60)
        else { return false }
        return check.status == 0
    }

    /// The BROWSER command line that logs `user` in with scripts/partners/browser_login.py (venv Python), and the
    /// environment it needs (KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD, and BROWSER set to the command).
    public static func browserLoginCommand(user: String, password: String) -> (
        command: String, environment: [String: String]
    ) {
        let script = (repositoryRoot() as NSString).appendingPathComponent("scripts/partners/browser_login.py")
        let command = [venvPython() ?? python(), script].map(shellQuoted).joined(separator: " ")
        return (command, ["KEYLESS_TEST_USER": user, "KEYLESS_TEST_PASSWORD": password, "BROWSER": command])
    }

    /// Whether `executable` (a path, or a name looked up in PATH) exists and is executable.
    public static func have(_ executable: String) -> Bool { path(of: executable) != nil }

    /// The full path of `executable` (a path is checked as is; a name is looked up in PATH), or nil.
    public static func path(of executable: String) -> String? {
        ChildProcess.executablePath(executable, searchPath: ProcessInfo.processInfo.environment["PATH"])
    }

    private static func isExecutable(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && FileManager.default.isExecutableFile(atPath: path)
    }

    /// `text` quoted for /bin/sh when it holds anything but safe characters.
    static func shellQuoted(_ text: String) -> String {
        let safe = CharacterSet(
            charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-")
        if !text.isEmpty && text.unicodeScalars.allSatisfy({ safe.contains($0) }) { return text }
        return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
