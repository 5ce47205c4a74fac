import Foundation
import GRDB
import KeylessStorage
#if canImport(Glibc)
    import Glibc
    private let closeDescriptor = Glibc.close
#elseif canImport(Darwin)
    import Darwin
    private let closeDescriptor = Darwin.close
#endif

/// The SQLite file a store keeps its tables in, and what every SQLite store does with it the same way: open it private
/// and durable, migrate it while other processes may do the same, and turn SQLite's errors into `IdPStoreError`s that
/// name the file and the action.
struct SQLiteFile: Sendable {
    /// The database file.
    let path: String
    /// What the file holds, as messages name it ("IdP database").
    let what: String
    let pool: DatabasePool

    /// Opens (creating it if needed, mode 0600) the database at `path` in WAL mode, each commit synced to disk; the
    /// directory must exist. `label` names the connections in GRDB's diagnostics.
    init(path: String, label: String, what: String) throws {
        self.path = path
        self.what = what
        // SQLite creates the -wal and -shm files with the database file's mode, so creating the file 0600 first keeps
        // all three private; files left by an older, laxer version are tightened.
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw IdPStoreError(
                "cannot create the \(what) \(path): \(String(cString: strerror(errno))); "
                    + "check that its directory exists and is writable")
        }
        _ = closeDescriptor(descriptor)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.foreignKeysEnabled = true
        configuration.label = label
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
        } catch {
            throw IdPStoreError("cannot open the \(what) \(path): \(error)")
        }
        for file in [path, path + "-wal", path + "-shm"] { Self.makePrivate(file) }
        // GRDB's WAL set-up leaves synchronous = NORMAL, under which a power loss can undo the last commits: a spent code
        // or refresh token could be accepted again, a decided access request decided a second time. FULL syncs the WAL at
        // every commit (all writes go through the one writer connection, where this is set).
        do {
            try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        } catch {
            throw IdPStoreError("cannot configure the \(what) \(path): \(error)")
        }
    }

    private static func makePrivate(_ file: String) {
        var status = stat()
        guard stat(file, &status) == 0, status.st_mode & 0o077 != 0 else { return }
        chmod(file, 0o600)
    }

    /// Applies `migrator`'s migrations not applied yet; refuses a file a newer keyless migrated further.
    func migrate(_ migrator: DatabaseMigrator) async throws {
        try await wrapping("check the schema version") {
            if try await pool.read({ try migrator.hasBeenSuperseded($0) }) {
                throw IdPStoreError(
                    "the \(what) \(path) was upgraded by a newer keyless; run that version, "
                        + "or restore a backup made before the upgrade")
            }
        }
        // GRDB's migrator reads the applied migrations before it opens each migration's transaction, so a process
        // migrating the same file at the same moment can apply one first; ours then fails on an existing table. The
        // schema is then what we wanted once every migration is recorded; retry while the other process finishes.
        var attempt = 1
        while true {
            do {
                try await run(migrator)
                return
            } catch {
                if (try? await pool.read({ try migrator.hasCompletedMigrations($0) })) == true { return }
                guard attempt < 5 else { throw IdPStoreError("cannot migrate the \(what) \(path): \(error)") }
                attempt += 1
                try await Task.sleep(for: .milliseconds(50 * attempt))
            }
        }
    }

    private func run(_ migrator: DatabaseMigrator) async throws {
        let pool = self.pool
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            migrator.asyncMigrate(pool) { result in
                continuation.resume(with: result.map { _ in })
            }
        }
    }

    /// Runs `body` in a read-only transaction.
    func read<T: Sendable>(_ action: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await wrapping(action) { try await pool.read(body) }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction: SQLite lets one writer in at a time across processes, so what
    /// `body` reads stays true until it commits. A constraint violation throws `duplicate` when given.
    func write<T: Sendable>(
        _ action: String, duplicate: IdPStoreError? = nil,
        _ body: @escaping @Sendable (Database) throws -> T
    ) async throws -> T {
        try await wrapping(action, duplicate: duplicate) { try await pool.write(body) }
    }

    /// Runs `body`, turning SQLite errors into `IdPStoreError`s that name the file and the action.
    func wrapping<T>(_ action: String, duplicate: IdPStoreError? = nil, _ body: () async throws -> T)
        async throws -> T
    {
        do {
            return try await body()
        } catch let error as IdPStoreError {
            throw error
        } catch let error as DatabaseError {
            if let duplicate, error.resultCode == .SQLITE_CONSTRAINT { throw duplicate }
            let hint =
                error.resultCode == .SQLITE_BUSY
                ? " (another process held the database for more than 10 s)" : ""
            throw IdPStoreError("cannot \(action) in the \(what) \(path): \(error.message ?? "\(error)")\(hint)")
        }
    }
}

/// The stores' statements go through the connection's statement cache: each is prepared once per connection instead of
/// at every call (preparing had cost about an eighth of the provider's CPU on the token endpoint).
extension Database {
    func run(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }

    func row(sql: String, arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try Row.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }

    func rows(sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try Row.fetchAll(cachedStatement(sql: sql), arguments: arguments)
    }

    func value<Value: DatabaseValueConvertible & StatementColumnConvertible>(
        _ type: Value.Type, sql: String,
        arguments: StatementArguments = StatementArguments()
    ) throws -> Value? {
        try Value.fetchOne(cachedStatement(sql: sql), arguments: arguments)
    }
}
