#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Where keyless keeps its files: XDG base directories on Linux, `~/Library` on macOS.
public struct KeylessPaths: Sendable, Equatable {
    /// Configuration (`$XDG_CONFIG_HOME/keyless`).
    public var config: String
    /// Persistent state: the secret store with tokens and credentials (`$XDG_STATE_HOME/keyless`).
    public var state: String
    /// The user's home directory.
    public var home: String
    /// Data that is not a cache (`$XDG_DATA_HOME/keyless`): the embedded provider's database.
    public var data: String

    /// Creates paths from explicit directories; `data` defaults to a `data` folder in `state`.
    public init(config: String, state: String, home: String, data: String? = nil) {
        self.config = config
        self.state = state
        self.home = home
        self.data = data ?? state + "/data"
    }

    /// Resolves the directories from the environment (`KEYLESS_STATE_DIR` and `KEYLESS_DATA_DIR` override).
    public static func resolve(_ env: Environment) throws -> KeylessPaths {
        guard let home = env["HOME"] else {
            throw KeylessError(
                .configInvalid, "HOME is not set, so keyless cannot find its files.",
                hint: "Set HOME to your home directory.")
        }
        #if os(macOS)
            let configBase = env["XDG_CONFIG_HOME"] ?? home + "/Library/Application Support"
            let stateBase = env["XDG_STATE_HOME"] ?? home + "/Library/Application Support"
            let dataBase = env["XDG_DATA_HOME"] ?? home + "/Library/Application Support"
        #else
            let configBase = env["XDG_CONFIG_HOME"] ?? home + "/.config"
            let stateBase = env["XDG_STATE_HOME"] ?? home + "/.local/state"
            let dataBase = env["XDG_DATA_HOME"] ?? home + "/.local/share"
        #endif
        return KeylessPaths(
            config: configBase + "/keyless",
            state: env["KEYLESS_STATE_DIR"] ?? stateBase + "/keyless",
            home: home,
            data: env["KEYLESS_DATA_DIR"] ?? dataBase + "/keyless")
    }

    /// The AWS CLI's config file (`AWS_CONFIG_FILE` or `~/.aws/config`).
    public func awsConfigFile(_ env: Environment) -> String {
        env["AWS_CONFIG_FILE"] ?? home + "/.aws/config"
    }
}
