import Foundation
import KeylessStorage
import Logging
import PostgresNIO

/// The PostgreSQL database a store keeps its tables in, and what every PostgreSQL store does with it the same way: connect
/// from a `postgres://` URL, check the connection, migrate a schema once across replicas, and turn PostgresNIO's errors
/// into `IdPStoreError`s.
final class PostgresDatabase: Sendable {
    /// Where the store connects, without the password (for messages).
    let endpoint: String
    let settings: PostgresURL
    let client: PostgresClient
    let logger: Logger
    private let tls: PostgresURL.TLS
    private let runner: Task<Void, Never>

    /// Connects to `url` (see `PostgresIdPStore.init(url:password:logger:)`); `password`, when given, is used for a URL
    /// without one.
    /// The stores' default logger: PostgresNIO's messages below warning level (such as connections abandoned at
    /// `close()`) are dropped.
    static func quietLogger() -> Logger {
        var logger = Logger(label: "keyless.storage.postgres")
        logger.logLevel = .warning
        return logger
    }

    init(url: String, password: String?, logger: Logger) throws {
        var settings = try PostgresURL(parsing: url)
        if let password {
            guard settings.password == nil || settings.password == "" else {
                throw IdPStoreError(
                    "the PostgreSQL URL carries a password and another was given apart (a file or PGPASSWORD); give it once"
                )
            }
            settings.password = password
        }
        let tls = try settings.tls()
        let clientTLS: PostgresClient.Configuration.TLS =
            switch tls {
            case .disable: .disable
            case .prefer(let configuration): .prefer(configuration)
            case .require(let configuration): .require(configuration)
            }
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database,
            tls: clientTLS)
        configuration.options.connectTimeout = .seconds(10)
        self.settings = settings
        self.tls = tls
        self.endpoint = settings.description
        self.logger = logger
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        // PostgresClient leases connections only while run() runs; close() cancels it.
        self.runner = Task { await client.run() }
    }

    deinit { runner.cancel() }

    /// Closes every connection; the database cannot be used afterwards.
    func close() async {
        runner.cancel()
        await runner.value
    }

    // MARK: Schema

    /// Applies the `migrations` not recorded in `table` yet, under the advisory lock `lock`, after checking the connection;
    /// refuses a schema (`schema` in messages: "IdP schema") a newer keyless migrated further.
    func migrate(
        _ migrations: [PostgresSchema.Migration], recordedIn table: String, lock: Int64, schema: String
    ) async throws {
        try await checkConnection()
        try await run("migrate the schema") {
            try await client.withTransaction(logger: logger) { connection in
                // Replicas starting together wait here for each other, so each migration runs exactly once.
                try await connection.query("SELECT pg_advisory_xact_lock(\(lock))", logger: logger)
                try await connection.query(
                    PostgresQuery(
                        unsafeSQL: """
                            CREATE TABLE IF NOT EXISTS \(table) (
                                identifier TEXT PRIMARY KEY, applied_at BIGINT NOT NULL
                            )
                            """), logger: logger)
                var applied = Set<String>()
                for try await identifier in try await connection.query(
                    PostgresQuery(unsafeSQL: "SELECT identifier FROM \(table)"),
                    logger: logger
                ).decode(String.self) {
                    applied.insert(identifier)
                }
                let known = Set(migrations.map(\.identifier))
                guard applied.isSubset(of: known) else {
                    throw IdPStoreError(
                        "the \(schema) in \(endpoint) was upgraded by a newer keyless "
                            + "(migrations \(applied.subtracting(known).sorted().joined(separator: ", "))); run that version"
                    )
                }
                let now = Date().millisecondsSince1970
                for migration in migrations where !applied.contains(migration.identifier) {
                    for statement in migration.statements {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        """
                        INSERT INTO \(unescaped: table) (identifier, applied_at)
                        VALUES (\(migration.identifier), \(now))
                        """, logger: logger)
                }
            }
        }
    }

    /// Opens and closes one connection of its own: the pool retries a failing connection for a minute before it fails
    /// the queries waiting for it, while a direct connection says at once why it cannot connect (refused, password,
    /// certificate).
    private func checkConnection() async throws {
        try await run("connect") {
            let tls: PostgresConnection.Configuration.TLS =
                switch self.tls {
                case .disable: .disable
                case .prefer(let configuration): .prefer(try NIOSSLContext(configuration: configuration))
                case .require(let configuration): .require(try NIOSSLContext(configuration: configuration))
                }
            var configuration = PostgresConnection.Configuration(
                host: settings.host, port: settings.port,
                username: settings.username, password: settings.password,
                database: settings.database, tls: tls)
            configuration.options.connectTimeout = .seconds(10)
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try await connection.close()
        }
    }

    // MARK: Errors

    /// Runs `body`, turning PostgresNIO's errors (whose descriptions hide everything) into `IdPStoreError`s that say
    /// what failed, where, and the server's message; a unique violation throws `duplicate` when given.
    @discardableResult
    func run<T>(_ action: String, duplicate: IdPStoreError? = nil, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            var error: any Error = error
            if let transaction = error as? PostgresTransactionError {
                error =
                    transaction.closureError ?? transaction.beginError ?? transaction.commitError ?? transaction
                    .rollbackError
                    ?? error
            }
            if let storeError = error as? IdPStoreError { throw storeError }
            if let psql = error as? PSQLError {
                let state = psql.serverInfo?[.sqlState]
                if let duplicate, state == "23505" { throw duplicate }  // unique_violation
                var detail: String
                if let message = psql.serverInfo?[.message] {
                    detail = "\(message) (SQLSTATE \(state ?? "?"))"
                } else {
                    detail = "\(psql.code)"
                    if let underlying = psql.underlying { detail += ": \(underlying)" }
                }
                throw IdPStoreError("PostgreSQL \(endpoint): cannot \(action): \(detail)\(hint(action))")
            }
            if error is CancellationError { throw error }
            throw IdPStoreError("PostgreSQL \(endpoint): cannot \(action): \(String(reflecting: error))\(hint(action))")
        }
    }

    private func hint(_ action: String) -> String {
        guard action == "connect" else { return "" }
        return "; check the URL (host, port, user, password, database, sslmode) and that the server accepts this client"
    }
}
