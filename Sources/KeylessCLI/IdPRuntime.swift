import Crypto
import Foundation
import KeylessClient
import KeylessCore
import KeylessIdP
import KeylessStorage
import KeylessStoragePostgres
import KeylessStorageSQLite
import Logging

/// Opens what `keyless idp serve`, `publish` and `rotate-keys` share: the configuration, the store, the
/// key-encryption key and the key ring.
struct IdPRuntime {
    let config: IdPConfiguration
    let issuer: String
    let store: any IdPStore
    let keys: KeyRing

    /// Where the store lives: `--database`, else `KEYLESS_IDP_DATABASE`, else SQLite under the data directory.
    /// Accepts `postgres://…`, `sqlite:PATH` or a plain path. A PostgreSQL password is best kept out of the URL (process
    /// listings show arguments): `--database-password-file` (mode 0600), else `PGPASSWORD`, are used when the URL has none.
    static func openStore(_ database: String?, passwordFile: String? = nil, context: ClientContext) throws
        -> any IdPStore
    {
        let spec = database ?? context.environment["KEYLESS_IDP_DATABASE"] ?? (context.paths.data + "/idp.sqlite")
        if spec.hasPrefix("postgres://") || spec.hasPrefix("postgresql://") {
            let password = try databasePassword(file: passwordFile, context: context)
            if database != nil, (URLComponents(string: spec)?.password).map({ !$0.isEmpty }) == true {
                context.logger.warning(
                    "the --database URL carries a password, which other users of this machine can read in its process list; use --database-password-file or PGPASSWORD"
                )
            }
            do {
                return try PostgresIdPStore(url: spec, password: password, logger: context.logger)
            } catch {
                throw KeylessError(
                    .configInvalid, "cannot use the PostgreSQL URL: \(error)",
                    hint:
                        "Use postgres://USER@HOST:PORT/DATABASE with the password in --database-password-file or PGPASSWORD."
                )
            }
        }
        let path = spec.hasPrefix("sqlite:") ? String(spec.dropFirst("sqlite:".count)) : spec
        try Files.ensurePrivateDirectory(Files.parentDirectory(path))
        do {
            return try SQLiteIdPStore(path: path)
        } catch {
            throw KeylessError(
                .io, "cannot open the SQLite database \(path): \(error)",
                hint: "Check the path and its permissions, or pass --database.")
        }
    }

    /// A PostgreSQL password from `file` (which must be private, mode 0600), else `PGPASSWORD`, else none.
    static func databasePassword(file: String?, context: ClientContext) throws -> String? {
        if let file {
            guard let bytes = try Files.read(file, requirePrivate: true) else {
                throw KeylessError(
                    .configInvalid, "the database password file \(file) does not exist.",
                    hint: "Create it with mode 0600 holding the password, or leave the password file out.")
            }
            return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        if let fromEnvironment = context.environment["PGPASSWORD"], !fromEnvironment.isEmpty { return fromEnvironment }
        return nil
    }

    static func open(
        configPath: String, issuer issuerFlag: String?, listen: String?, database: String?,
        databasePasswordFile: String? = nil,
        kekPath: String?, keyReload: Double, context: ClientContext
    ) async throws -> IdPRuntime {
        let config = try IdPConfiguration.load(path: configPath)
        var issuer = issuerFlag ?? config.issuer ?? listen.map { "http://" + $0 }
        while issuer?.hasSuffix("/") == true { issuer?.removeLast() }
        guard let issuer,
            issuer.hasPrefix("https://") || issuer.hasPrefix("http://127.0.0.1") || issuer.hasPrefix("http://localhost")
                || issuer.hasPrefix("http://[::1]")
        else {
            throw KeylessError(
                .configInvalid, "the issuer is missing or not https.",
                hint: "Pass --issuer https://… (plain http only on loopback), or set issuer: in \(configPath).")
        }
        let store = try openStore(database, passwordFile: databasePasswordFile, context: context)
        do {
            try await store.migrate()
        } catch {
            try? await store.close()
            throw KeylessError(
                .io, "cannot prepare the provider's database: \(error)",
                hint: "Check that the database is reachable and writable.")
        }
        let kek = try KeyEncryptionKey.loadOrCreate(
            path: kekPath ?? context.environment["KEYLESS_IDP_KEK_FILE"] ?? (context.paths.data + "/idp-kek"))
        let keys = KeyRing(
            store: store, kek: kek, algorithm: config.signingAlgorithm, clock: context.clock,
            maxTokenLifetime: OAuthEngine.maxTokenLifetime(config), reloadInterval: keyReload)
        do {
            try await keys.start()
        } catch let error as KeylessError {
            try? await store.close()
            throw error
        } catch {
            try? await store.close()
            throw KeylessError(
                .io, "cannot load the signing keys: \(error)", hint: "Check that the database is reachable.")
        }
        return IdPRuntime(config: config, issuer: issuer, store: store, keys: keys)
    }
}
