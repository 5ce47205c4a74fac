/// What this build of keyless is: its version, and the commit and toolchain `scripts/package` stamped into it
/// (`BuildStamp.swift`, rewritten in the package's own copy of the sources). A plain `swift build` is a development
/// build: the commit reads "unknown".
public enum BuildInfo {
    /// The release version (semantic versioning); the Debian package's version comes from here.
    public static let version = "0.1.0"

    /// The commit the build was made from: 40 hex digits, or nil for a development build.
    public static let commit: String? = BuildStamp.commit

    /// The Swift toolchain that compiled it (`swift --version`'s first line when stamped).
    public static let swiftVersion: String = BuildStamp.swiftVersion ?? compilerVersion

    /// `--version`'s line: `0.1.0 (commit 0123456789ab)`, or `0.1.0 (development build, commit unknown)`.
    public static var versionLine: String {
        guard let commit else { return "\(version) (development build, commit unknown)" }
        return "\(version) (commit \(commit.prefix(12)))"
    }

    /// The compiler's version as far as a conditional compilation block can tell it.
    static var compilerVersion: String {
        #if compiler(>=6.4)
            return "Swift 6.4 or later"
        #elseif compiler(>=6.3)
            return "Swift 6.3"
        #else
            return "Swift 6.2 or earlier"
        #endif
    }

    /// The operating system and processor it was built for, as `uname` would name them.
    public static var platform: String {
        #if os(Linux)
            let system = "linux"
        #elseif os(macOS)
            let system = "macos"
        #else
            let system = "unknown"
        #endif
        #if arch(x86_64)
            return system + "-x86_64"
        #elseif arch(arm64)
            return system + "-aarch64"
        #else
            return system + "-unknown"
        #endif
    }
}
