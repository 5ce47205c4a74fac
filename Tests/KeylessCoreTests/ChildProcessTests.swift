import Foundation
import KeylessCore
import KeylessTestFakes
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// keyless's one way to start a child, judged with real children of /bin/sh.
@Suite("ChildProcess: how every child is started")
struct ChildProcessTests {
    /// Runs `script` in /bin/sh with stdout into a file; returns (exit status as a shell reports it, stdout).
    static func run(_ script: String, configure: (inout ChildProcess) -> Void = { _ in }) throws -> (Int32, String) {
        let scratch = try Scratch("child")
        defer { scratch.remove() }
        let outPath = scratch.file("out")
        let out = open(outPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        #expect(out >= 0)
        defer { close(out) }
        var child = ChildProcess(
            executable: "/bin/sh", argv: ["/bin/sh", "-c", script], environment: ["PATH": "/usr/bin:/bin"])
        child.standardOutput = out
        configure(&child)
        let pid = try child.spawn()
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        return (ChildProcess.exitStatus(raw), try String(contentsOfFile: outPath, encoding: .utf8))
    }

    @Test("the exit status reads as a shell reports it: the code, or 128 + the signal that ended the child")
    func exitStatus() throws {
        #expect(try Self.run("exit 7").0 == 7)
        #expect(try Self.run("exit 0").0 == 0)
        #expect(try Self.run("kill -KILL $$").0 == 128 + 9)
        #expect(try Self.run("kill -TERM $$").0 == 128 + 15)
    }

    @Test("the child sees only the environment it is given, and argv as given")
    func environmentAndArguments() throws {
        let (status, out) = try Self.run(#"echo "$0|$1|${HOME-unset}|$KEYLESS_CHILD""#) { child in
            child.argv += ["zero", "one word"]
            child.environment["KEYLESS_CHILD"] = "yes"
        }
        #expect(status == 0)
        #expect(out == "zero|one word|unset|yes\n")
    }

    @Test("no descriptor above 2 of this process reaches the child, even one without close-on-exec")
    func descriptorsClosed() throws {
        let inherited = open("/dev/null", O_RDONLY)  // deliberately without O_CLOEXEC
        #expect(inherited > 2)
        defer { close(inherited) }
        let (status, out) = try Self.run("if [ -e /proc/self/fd/\(inherited) ]; then echo open; else echo closed; fi")
        #expect(status == 0)
        #expect(out == "closed\n")
    }

    @Test("a signal this process ignores is back at its default action in the child")
    func signalsReset() throws {
        let previous = signal(SIGUSR1, SIG_IGN)
        defer { signal(SIGUSR1, previous) }
        #expect(try Self.run("kill -USR1 $$; exit 3").0 == 128 + SIGUSR1)
    }

    @Test("ownProcessGroup makes the child a group leader; currentDirectory moves it")
    func groupAndDirectory() throws {
        let scratch = try Scratch("child")
        defer { scratch.remove() }
        let (status, out) = try Self.run(#"ps -o pgid= -p $$ | tr -d ' '; echo $$; pwd -P"#) { child in
            child.ownProcessGroup = true
            child.currentDirectory = scratch.path
        }
        #expect(status == 0)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines.count == 3 && lines[0] == lines[1], "the child's group is its own pid: \(out)")
        let real = try #require(realpath(scratch.path, nil))
        defer { free(real) }
        #expect(lines.last == String(cString: real))
    }

    @Test("a program that cannot be started is an error with the reason, not a child")
    func spawnFailure() {
        let child = ChildProcess(executable: "/nonexistent/keyless-child", argv: ["x"], environment: [:])
        let failure = #expect(throws: SpawnFailure.self) { try child.spawn() }
        #expect(failure?.code == ENOENT)
        #expect(failure?.description == "No such file or directory")
    }

    @Test("executablePath finds regular executable files in PATH order, takes a slashed path as is, skips directories")
    func executablePath() throws {
        let scratch = try Scratch("child")
        defer { scratch.remove() }
        let first = scratch.path + "/a"
        let second = scratch.path + "/b"
        for directory in [first, second] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        // In the first directory "tool" is a directory, in the second an executable file.
        try FileManager.default.createDirectory(atPath: first + "/tool", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: second + "/tool", contents: Data("#!/bin/sh\n".utf8))
        FileManager.default.createFile(atPath: first + "/plain", contents: Data())  // not executable
        chmod(second + "/tool", 0o755)
        let path = "\(first):\(second)"
        #expect(ChildProcess.executablePath("tool", searchPath: path) == second + "/tool")
        #expect(ChildProcess.executablePath("plain", searchPath: path) == nil)
        #expect(ChildProcess.executablePath(second + "/tool", searchPath: "") == second + "/tool")
        #expect(ChildProcess.executablePath(first + "/tool", searchPath: path) == nil)
        #expect(ChildProcess.executablePath("sh", searchPath: nil) != nil)
    }
}
