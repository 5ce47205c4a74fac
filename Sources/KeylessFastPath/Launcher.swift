import KeylessCore
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where the launcher finds the full command-line program.
public enum Launcher {
    /// The companion executable's name.
    public static let companionName = "keyless-cli"

    /// Where packages install the companion, relative to the launcher's directory (`/usr/bin` → `/usr/libexec/keyless`):
    /// people never run it themselves, so it stays off `PATH`.
    public static let packagedRelativePath = "../libexec/keyless/" + companionName

    /// `KEYLESS_CLI` when set; else `keyless-cli` beside the running executable (a build directory) when it is
    /// there; else the packaged place, `../libexec/keyless/keyless-cli` from the launcher's directory (the `.deb`, and the
    /// tarball unpacked anywhere).
    public static func companionPath(
        environment: Environment, launcher: String? = executablePath(),
        isExecutable: (String) -> Bool = { access($0, X_OK) == 0 }
    ) -> String {
        if let explicit = environment["KEYLESS_CLI"] { return explicit }
        let directory = Files.parentDirectory(launcher ?? CommandLine.arguments[0])
        let beside = directory + "/" + companionName
        let packaged = directory + "/" + packagedRelativePath
        return isExecutable(beside) || !isExecutable(packaged) ? beside : packaged
    }

    /// The running executable's path (nil when the platform cannot tell).
    public static func executablePath() -> String? {
        #if os(Linux)
            var buffer = [CChar](repeating: 0, count: 4096)
            let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #elseif canImport(Darwin)
            var size: UInt32 = 4096
            var buffer = [CChar](repeating: 0, count: Int(size))
            guard _NSGetExecutablePath(&buffer, &size) == 0, let resolved = realpath(buffer, nil) else { return nil }
            defer { free(resolved) }
            return String(cString: resolved)
        #else
            return nil
        #endif
    }
}
