import Foundation
import Testing
import KeylessCore

@Suite("KeylessPaths and Environment")
struct PathsAndEnvironmentTests {
    @Test("resolve falls back to ~/.config and ~/.local/state when no XDG variable is set")
    func homeDefaults() throws {
        let paths = try KeylessPaths.resolve(Environment(["HOME": "/home/ada"]))

        #if os(macOS)
            #expect(
                paths
                    == KeylessPaths(
                        config: "/home/ada/Library/Application Support/keyless",
                        state: "/home/ada/Library/Application Support/keyless", home: "/home/ada",
                        data: "/home/ada/Library/Application Support/keyless"))
        #else
            #expect(
                paths
                    == KeylessPaths(
                        config: "/home/ada/.config/keyless", state: "/home/ada/.local/state/keyless", home: "/home/ada",
                        data: "/home/ada/.local/share/keyless"))
        #endif
    }

    @Test("resolve puts config under XDG_CONFIG_HOME and state under XDG_STATE_HOME")
    func xdgDirectories() throws {
        let paths = try KeylessPaths.resolve(
            Environment([
                "HOME": "/home/ada", "XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/var/state",
                "XDG_DATA_HOME": "/var/data",
            ]))

        #expect(
            paths
                == KeylessPaths(
                    config: "/cfg/keyless", state: "/var/state/keyless", home: "/home/ada", data: "/var/data/keyless"))
    }

    @Test("KEYLESS_STATE_DIR replaces the state directory itself and wins over XDG_STATE_HOME")
    func stateDirOverride() throws {
        let paths = try KeylessPaths.resolve(
            Environment([
                "HOME": "/home/ada", "XDG_STATE_HOME": "/var/state", "KEYLESS_STATE_DIR": "/run/keyless-test",
            ]))

        #expect(paths.state == "/run/keyless-test")
        #expect(paths.config == "/home/ada/.config/keyless")
    }

    @Test("KEYLESS_DATA_DIR replaces the data directory itself")
    func dataDirOverride() throws {
        let paths = try KeylessPaths.resolve(
            Environment(["HOME": "/home/ada", "XDG_DATA_HOME": "/var/data", "KEYLESS_DATA_DIR": "/srv/idp"]))

        #expect(paths.data == "/srv/idp")
    }

    @Test("empty XDG and KEYLESS_STATE_DIR values count as unset")
    func emptyValuesIgnored() throws {
        let paths = try KeylessPaths.resolve(
            Environment([
                "HOME": "/home/ada", "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": "", "XDG_DATA_HOME": "",
                "KEYLESS_STATE_DIR": "", "KEYLESS_DATA_DIR": "",
            ]))

        #expect(
            paths
                == KeylessPaths(
                    config: "/home/ada/.config/keyless", state: "/home/ada/.local/state/keyless", home: "/home/ada",
                    data: "/home/ada/.local/share/keyless"))
    }

    @Test(
        "resolve throws configInvalid when HOME is missing or empty",
        arguments: [
            [:],
            ["HOME": ""],
            ["XDG_CONFIG_HOME": "/cfg", "XDG_STATE_HOME": "/state"],
        ] as [[String: String]])
    func missingHome(values: [String: String]) {
        #expect(throws: KeylessError(.configInvalid, "")) {
            try KeylessPaths.resolve(Environment(values))
        }
    }

    @Test("awsConfigFile is AWS_CONFIG_FILE when set, else ~/.aws/config")
    func awsConfigFile() throws {
        let paths = KeylessPaths(config: "/c", state: "/s", home: "/home/ada")

        #expect(paths.awsConfigFile(Environment()) == "/home/ada/.aws/config")
        #expect(paths.awsConfigFile(Environment(["AWS_CONFIG_FILE": ""])) == "/home/ada/.aws/config")
        #expect(paths.awsConfigFile(Environment(["AWS_CONFIG_FILE": "/etc/aws/config"])) == "/etc/aws/config")
    }

    @Test("the Environment subscript treats an empty value as unset")
    func emptyIsUnset() {
        var environment = Environment(["SET": "value", "EMPTY": ""])

        #expect(environment["SET"] == "value")
        #expect(environment["EMPTY"] == nil)
        #expect(environment["ABSENT"] == nil)
        // The raw value is still there for code that needs to tell the two apart.
        #expect(environment.values["EMPTY"] == "")

        environment["SET"] = nil
        #expect(environment["SET"] == nil)
        #expect(environment.values["SET"] == nil)
        environment["NEW"] = "x"
        #expect(environment["NEW"] == "x")
    }

    @Test("Environment values compare by their variables")
    func environmentEquality() {
        #expect(Environment(["A": "1"]) == Environment(["A": "1"]))
        #expect(Environment(["A": "1"]) != Environment(["A": "2"]))
        #expect(Environment(["A": ""]) != Environment())
    }

    @Test("a fixed WallClock always returns its date")
    func fixedClock() {
        let reference = Date(timeIntervalSince1970: 1_800_000_000)
        let clock = WallClock.fixed(reference)

        #expect(clock.now() == reference)
        #expect(clock.now() == reference)
    }
}
