import Foundation
import KeylessCore
import KeylessHTTP
import KeylessSecrets
import Logging

/// Everything the client and the commands need from the outside world, injected so they run under test.
public struct ClientContext: Sendable {
    public var environment: Environment
    /// Where files live.
    public var paths: KeylessPaths
    /// Prompts and progress.
    public var terminal: Terminal
    /// Wall-clock time.
    public var clock: WallClock
    /// The HTTP transport.
    public var http: any HTTPTransport
    /// The logger (stderr).
    public var logger: Logger

    public init(
        environment: Environment, paths: KeylessPaths, terminal: Terminal, clock: WallClock, http: any HTTPTransport,
        logger: Logger
    ) {
        self.environment = environment
        self.paths = paths
        self.terminal = terminal
        self.clock = clock
        self.http = http
        self.logger = logger
    }

    /// The real world: process environment, XDG paths, /dev/tty, system clock, AsyncHTTPClient, stderr logging.
    public static func live(verbose: Int = 0) throws -> ClientContext {
        let environment = Environment.process
        let level: Logger.Level
        switch verbose {
        case 0: level = Logger.Level(rawValue: environment["KEYLESS_LOG_LEVEL"] ?? "") ?? .warning
        case 1: level = .info
        case 2: level = .debug
        default: level = .trace
        }
        var logger = Logger(label: "keyless") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        logger.logLevel = level
        return ClientContext(
            environment: environment, paths: try KeylessPaths.resolve(environment),
            terminal: Terminal(environment: environment),
            clock: .system, http: AsyncHTTPTransport(), logger: logger)
    }

    /// The secret store chosen by `--secret-store`, else `KEYLESS_SECRET_STORE`, else the encrypted file.
    public func store(_ name: String?) throws -> any SecretStore {
        try SecretStoreFactory.make(
            try SecretStoreKind.parse(name ?? environment["KEYLESS_SECRET_STORE"]),
            paths: paths, environment: environment, terminal: terminal)
    }
}
