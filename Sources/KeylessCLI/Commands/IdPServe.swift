import ArgumentParser
import Foundation
import KeylessClient
import KeylessCore
import KeylessHTTPServer
import KeylessIdP
import KeylessIdPServer
import Logging

/// Flags every provider command shares: configuration, issuer, database and key-encryption key.
struct IdPStoreOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "The provider's configuration (idp.yaml).")
    var config: String

    @Option(name: .customLong("issuer"), help: "The issuer URL tokens carry; overrides issuer: in the configuration.")
    var issuer: String?

    @Option(
        name: .customLong("database"),
        help:
            "postgres://USER@HOST:PORT/DB, sqlite:PATH or a path (default: $KEYLESS_IDP_DATABASE, else idp.sqlite in the data directory). Keep a password out of this URL: process listings show it; use --database-password-file or PGPASSWORD."
    )
    var database: String?

    @Option(
        name: .customLong("database-password-file"),
        help: "A file (mode 0600) holding the PostgreSQL password, used when the URL has none (default: $PGPASSWORD).")
    var databasePasswordFile: String?

    @Option(
        name: .customLong("key-encryption-key"),
        help:
            "File with the key that seals signing keys in the database; replicas must share it (default: idp-kek in the data directory)."
    )
    var kek: String?
}

extension Keyless.IdP {
    /// `keyless idp serve`: runs the OpenID Provider.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run the OpenID Provider: discovery, JWKS, login and device pages, token, userinfo and revocation endpoints."
        )

        @OptionGroup var store: IdPStoreOptions

        @Option(name: .customLong("listen"), help: "HOST:PORT to listen on.")
        var listen = "127.0.0.1:9000"

        @Option(
            name: .customLong("key-reload-interval"),
            help: "Seconds between re-reads of the signing keys (to see rotations by other replicas).")
        var keyReload: Double = 10

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error.")
        var logLevel = "info"

        @Option(
            name: .customLong("idle-timeout"),
            help:
                "Seconds a connection may stay silent (between requests, or before its request head is complete) before it is closed."
        )
        var idleTimeout: Double = 30

        @Option(
            name: .customLong("metrics"),
            help:
                "Who may read /metrics: off (404), open (anyone who reaches the listener), or token-file:PATH (a 0600 file holding the token a scraper sends as Authorization: Bearer)."
        )
        var metrics = "off"

        @Option(
            name: .customLong("trusted-proxy"),
            help:
                "A load balancer's address or CIDR block (repeatable) whose X-Forwarded-For names the client; behind one, throttles per address need it. From anyone else the header is ignored."
        )
        var trustedProxies: [String] = []

        @Option(
            name: .customLong("max-connections"),
            help:
                "Connections taken at once; more wait in the listen backlog (default: the descriptor limit, raised to its maximum, less 64 kept for the database and files)."
        )
        var maxConnections: Int?

        func validate() throws {
            guard ListenAddress.parse(listen) != nil else {
                throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:9000")
            }
            guard idleTimeout.isFinite, (0.1...3600).contains(idleTimeout) else {
                throw ValidationError("--idle-timeout must be between 0.1 and 3600 seconds")
            }
            if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error")
            }
        }

        func run() async throws {
            try await reporting {
                let level = Logger.Level(rawValue: logLevel)!
                var logger = Logger(label: "keyless.idp") { JSONLogHandler(label: $0, level: level) }
                logger.logLevel = level
                var context = try ClientContext.live()
                context.logger = logger
                let (host, port) = ListenAddress.parse(listen)!
                let metricsAccess = try MetricsAccess.parse(metrics, what: "--metrics")
                let proxies = try TrustedProxies(trustedProxies, what: "--trusted-proxy")
                let runtime = try await IdPRuntime.open(
                    configPath: store.config, issuer: store.issuer, listen: port == 0 ? nil : listen,
                    database: store.database, databasePasswordFile: store.databasePasswordFile,
                    kekPath: store.kek, keyReload: keyReload, context: context)
                let connectors: Connectors
                do {
                    connectors = try Connectors.open(
                        runtime.config, environment: context.environment, http: context.http, clock: context.clock,
                        logger: logger)
                } catch {
                    try? await runtime.store.close()
                    throw error
                }
                let engine = try OAuthEngine(
                    config: runtime.config, issuer: runtime.issuer, store: runtime.store, keys: runtime.keys,
                    clock: context.clock, connectors: connectors)
                let issuer = runtime.issuer
                let listenLogger = logger
                let systemd = ServiceManagerNotifier(environment: context.environment)
                let app = buildIdPApplication(
                    engine: engine,
                    configuration: IdPServerConfiguration(
                        host: host, port: port, secureCookies: issuer.hasPrefix("https://"),
                        idleTimeout: idleTimeout, metrics: metricsAccess,
                        trustedProxies: proxies, maxConnections: maxConnections),
                    logger: logger
                ) { address in
                    let bound = address.map { "\($0.ipAddress ?? host):\($0.port ?? port)" } ?? listen
                    listenLogger.notice("listening", metadata: ["address": .string(bound), "issuer": .string(issuer)])
                    systemd.ready(status: "listening on \(bound), issuer \(issuer)")
                }
                do {
                    try await app.runService()
                    systemd.stopping()
                } catch {
                    systemd.stopping()
                    await connectors.shutdown()
                    try? await runtime.store.close()
                    throw KeylessError(.io, "the provider stopped: \(error)", hint: "See the log lines above.")
                }
                await connectors.shutdown()
                try? await runtime.store.close()
                logger.notice("stopped")
            }
        }
    }

    /// `keyless idp publish`: the discovery document and JWKS as static files.
    struct Publish: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Write the discovery document and JWKS as static files, at the paths AWS fetches, for hosting on S3 or any static host."
        )

        @OptionGroup var store: IdPStoreOptions

        @Option(
            name: .customLong("out"), help: "The directory to write into (its contents are the root of the issuer URL)."
        )
        var out: String

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                let runtime = try await IdPRuntime.open(
                    configPath: store.config, issuer: store.issuer, listen: nil, database: store.database,
                    databasePasswordFile: store.databasePasswordFile, kekPath: store.kek, keyReload: 0,
                    context: context)
                let engine = try OAuthEngine(
                    config: runtime.config, issuer: runtime.issuer, store: runtime.store, keys: runtime.keys,
                    clock: context.clock)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
                let discovery = try encoder.encode(engine.discoveryDocument())
                let jwks: [UInt8]
                do {
                    jwks = try await runtime.keys.jwks()
                    try await runtime.store.close()
                } catch {
                    try? await runtime.store.close()
                    throw error
                }
                do {
                    try FileManager.default.createDirectory(
                        atPath: out + "/.well-known", withIntermediateDirectories: true)
                } catch {
                    throw KeylessError(
                        .io, "cannot create \(out)/.well-known: \(error.localizedDescription)",
                        hint: "Check that --out names a writable directory.")
                }
                try Files.writeAtomically(
                    Array(discovery) + [0x0a], to: out + "/.well-known/openid-configuration", mode: 0o644)
                try Files.writeAtomically(jwks + [0x0a], to: out + "/jwks.json", mode: 0o644)
                FileHandle.standardOutput.write(
                    Data(
                        """
                        wrote \(out)/.well-known/openid-configuration  (served as \(runtime.issuer)/.well-known/openid-configuration)
                        wrote \(out)/jwks.json  (served as \(runtime.issuer)/jwks.json)
                        Serve both with Content-Type: application/json; publish again after every rotate-keys.

                        """.utf8))
            }
        }
    }

    /// `keyless idp rotate-keys`: publish the next key, then switch to it.
    struct RotateKeys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-keys",
            abstract:
                "Add the next signing key: published now, signing after --publish-for seconds; the old key stays published until its last token expires."
        )

        @OptionGroup var store: IdPStoreOptions

        @Option(
            name: .customLong("publish-for"),
            help: "Seconds the new key is published before it signs (verifiers' JWKS caches refresh in that time).")
        var publishFor: Double = 600

        func run() async throws {
            try await reporting {
                let context = try ClientContext.live()
                let runtime = try await IdPRuntime.open(
                    configPath: store.config, issuer: store.issuer, listen: nil, database: store.database,
                    databasePasswordFile: store.databasePasswordFile, kekPath: store.kek, keyReload: 0,
                    context: context)
                let (new, retiring) = try await runtime.keys.rotate(publishFor: publishFor)
                try await runtime.store.close()
                let when = publishFor <= 0 ? "now" : "in \(Int(publishFor)) s"
                FileHandle.standardOutput.write(
                    Data("new key \(new) (\(runtime.config.signingAlgorithm)) signs \(when)\n".utf8))
                for kid in retiring {
                    FileHandle.standardOutput.write(
                        Data(
                            "key \(kid) stops signing then and leaves the JWKS \(Int(OAuthEngine.maxTokenLifetime(runtime.config))) s later\n"
                                .utf8))
                }
            }
        }
    }
}
