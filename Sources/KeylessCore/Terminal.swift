#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where prompts and progress go: the controlling terminal when there is one, else stderr.
/// stdout is never touched, because `credential_process` and `env` own it.
public final class Terminal: @unchecked Sendable {
    // @unchecked: the descriptors are fixed at init and writes are whole-line syscalls.
    private let ttyFD: Int32
    /// Whether a person is at a terminal (prompts are possible).
    public let isInteractive: Bool
    /// Whether colour may be used (`NO_COLOR` unset and output is a terminal).
    public let useColor: Bool

    /// Opens `/dev/tty` unless `KEYLESS_NO_TTY` is set or there is no controlling terminal.
    public init(environment: Environment) {
        let fd = environment["KEYLESS_NO_TTY"] == nil ? open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY) : -1
        ttyFD = fd
        isInteractive = fd >= 0
        useColor = fd >= 0 && environment["NO_COLOR"] == nil && environment["TERM"] != "dumb"
    }

    deinit { if ttyFD >= 0 { close(ttyFD) } }

    /// Writes a message for the person (the terminal, else stderr).
    public func say(_ text: String) {
        write(text.hasSuffix("\n") ? text : text + "\n")
    }

    /// Writes raw text without a newline.
    public func write(_ text: String) {
        let fd = ttyFD >= 0 ? ttyFD : 2
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc_write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
        bytes.removeAll()
    }

    /// Text in bold when colour is allowed.
    public func bold(_ text: String) -> String { useColor ? "\u{1B}[1m\(text)\u{1B}[0m" : text }

    /// Reads a line from the terminal with echo off; `nil` without a terminal.
    public func readSecret(prompt: String) -> String? {
        guard ttyFD >= 0 else { return nil }
        write(prompt)
        var saved = termios()
        let haveTermios = tcgetattr(ttyFD, &saved) == 0
        if haveTermios {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(ttyFD, TCSAFLUSH, &quiet)
        }
        defer {
            if haveTermios { tcsetattr(ttyFD, TCSAFLUSH, &saved) }
            write("\n")
        }
        return readLineFromTTY()
    }

    /// Asks a question on the terminal and reads the answer with echo; `nil` without a terminal or at end of input.
    public func ask(_ prompt: String) -> String? {
        guard ttyFD >= 0 else { return nil }
        write(prompt)
        return readLineFromTTY()
    }

    private func readLineFromTTY() -> String? {
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(ttyFD, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }
}

private func Glibc_write(_ fd: Int32, _ buf: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(fd, buf, count)
    #else
        return Darwin.write(fd, buf, count)
    #endif
}
