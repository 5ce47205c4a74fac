import ArgumentParser
import Foundation
import KeylessAWS
import KeylessClient
import KeylessCore
import KeylessHTTP
import KeylessHTTPServer
import KeylessOIDC
import KeylessPolicy
import KeylessStorage
import KeylessStoragePostgres
import KeylessStorageSQLite
import KeylessAccessServer
import Logging

extension Keyless {
    /// `keyless server`: the access server.
    struct Server: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run the access server: who may assume which role, credentials and console links on demand, and a web page.",
            discussion:
                "See docs/server.example.yaml and docs/policy.example.yaml. Logs are JSON lines on stderr; the audit log is a file."
        )

        @Option(name: .customLong("config"), help: "The server's configuration (server.yaml).")
        var config: String

        @Option(name: .customLong("listen"), help: "HOST:PORT to listen on; overrides listen: in the configuration.")
        var listen: String?

        @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning or error.")
        var logLevel = "info"

        @Flag(name: .customLong("check"), help: "Check the configuration and the policy, print a summary and exit.")
        var check = false

        func validate() throws {
            if let listen, ListenAddress.parse(listen) == nil {
                throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:8080")
            }
            guard Logger.Level(rawValue: logLevel) != nil else {
                throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error")
            }
        }

        /// Opens and migrates the access-request store server.yaml names.
        static func openRequestStore(_ store: RequestSettings.Store, context: ClientContext) async throws
            -> any AccessRequestStore
        {
            let opened: any AccessRequestStore
            switch store {
            case .sqlite(let path):
                do {
                    opened = try SQLiteAccessRequestStore(path: path)
                } catch {
                    throw KeylessError(
                        .io, "cannot open the access-request database \(path): \(error)",
                        hint: "Check that its directory exists and the server may write it, or set requests.store.")
                }
            case .postgres(let url, let passwordFile):
                do {
                    opened = try PostgresAccessRequestStore(
                        url: url, password: try IdPRuntime.databasePassword(file: passwordFile, context: context),
                        logger: context.logger)
                } catch let error as KeylessError {
                    throw error
                } catch {
                    throw KeylessError(
                        .configInvalid, "cannot use requests.store's PostgreSQL URL: \(error)",
                        hint:
                            "Use postgres://USER@HOST:PORT/DATABASE with the password in requests.password_file or PGPASSWORD."
                    )
                }
            }
            do {
                try await opened.migrate()
            } catch {
                try? await opened.close()
                throw KeylessError(
                    .io, "the access-request store cannot be used: \(error)",
                    hint: "Check requests.store in server.yaml (the database must be reachable and writable).")
            }
            return opened
        }

        func run() async throws {
            try await reporting {
                let level = Logger.Level(rawValue: logLevel)!
                var logger = Logger(label: "keyless.server") { JSONLogHandler(label: $0, level: level) }
                logger.logLevel = level
                var configuration = try ServerConfiguration.load(path: config)
                if let listen, let (host, port) = ListenAddress.parse(listen) {
                    configuration.listen(on: host, port: port)
                }
                let policy = try PolicyStore(path: configuration.policyPath)
                if check {
                    let current = policy.current
                    print(
                        "ok: \(configuration.issuers.count) trusted issuer(s); policy \(configuration.policyPath): \(current.accounts.count) account(s), \(current.roles.count) role(s)"
                    )
                    return
                }
                let context = try ClientContext.live()
                let http = AsyncHTTPTransport()
                let verifier = BearerVerifier(
                    issuers: configuration.issuers.map(\.trusted), http: http, clock: context.clock, logger: logger,
                    minimumRefetchInterval: configuration.jwksRefetchInterval)
                let chain = DefaultCredentialChain(
                    environment: context.environment, home: context.paths.home, http: http, clock: context.clock,
                    profile: configuration.awsProfile)
                let sts = STSClient(
                    endpoint: STSEndpoint.resolve(
                        explicit: configuration.stsEndpoint, region: configuration.region,
                        environment: context.environment),
                    http: http, logger: logger)
                let requests = try await Self.openRequestStore(configuration.requests.store, context: context)
                let service = AccessService(
                    configuration: configuration, policy: policy, verifier: verifier,
                    awsCredentials: RefreshingCredentialProvider(chain, clock: context.clock), sts: sts,
                    federation: ConsoleFederation(
                        endpoint: configuration.federationEndpoint, issuerName: configuration.consoleIssuerName,
                        http: http),
                    audit: try AuditLog(path: configuration.auditLogPath), clock: context.clock, logger: logger,
                    requests: requests,
                    events: configuration.requests.webhook.map {
                        WebhookNotifier(settings: $0, clock: context.clock, logger: logger)
                    })
                let web = try configuration.web.map {
                    try WebPage(service: service, login: $0, http: http, logger: logger)
                }
                let listenLogger = logger
                let publicURL = configuration.publicURL
                let systemd = ServiceManagerNotifier(environment: context.environment)
                let app = buildServerApplication(service: service, metrics: .accessServer(), logger: logger, web: web) {
                    address in
                    let bound = address.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
                    listenLogger.notice(
                        "listening", metadata: ["address": .string(bound), "public_url": .string(publicURL)])
                    systemd.ready(status: "listening on \(bound), public URL \(publicURL)")
                }
                do {
                    try await app.runService()
                } catch {
                    systemd.stopping()
                    throw KeylessError(.io, "the server stopped: \(error)", hint: "See the log lines above.")
                }
                systemd.stopping()
                try? await requests.close()
                logger.notice("stopped")
            }
        }
    }
}
