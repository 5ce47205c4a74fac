import Foundation
import GRDB
#if canImport(Glibc)
    import Glibc
#endif
import KeylessStorage
@testable import KeylessStoragePostgres
@testable import KeylessStorageSQLite
import KeylessTestSupport
import Testing

extension StorageTests {
    /// What only the SQLite store promises.
    @Suite("the SQLite store")
    struct SQLite {
        @Test(
            "the database file and its -wal and -shm files are readable by their owner only, even if the file was not")
        func privateFiles() async throws {
            let directory = try makeTemporaryDirectory(prefix: "keyless-idp-sqlite")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let fresh = (directory as NSString).appendingPathComponent("fresh.sqlite")
            let lax = (directory as NSString).appendingPathComponent("lax.sqlite")
            _ = FileManager.default.createFile(atPath: lax, contents: nil, attributes: [.posixPermissions: 0o644])
            for path in [fresh, lax] {
                let store = try SQLiteIdPStore(path: path)
                try await store.migrate()
                try await store.insertSession(Fixture.session())
                for file in [path, path + "-wal", path + "-shm"] {
                    let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
                    #expect(mode == 0o600, "\(file) has mode \(String(mode ?? 0, radix: 8))")
                }
                try await store.close()
            }
        }

        @Test("three processes' stores migrating a new file at once all succeed, round after round")
        func migrationRace() async throws {
            // GRDB's migrator reads the applied migrations outside its transaction, so now and then one store's
            // migration runs into another's tables; 30 rounds make that likely enough to exercise the recovery.
            let directory = try makeTemporaryDirectory(prefix: "keyless-idp-sqlite")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            for round in 0..<30 {
                let path = (directory as NSString).appendingPathComponent("round-\(round).sqlite")
                let stores = [
                    try SQLiteIdPStore(path: path), try SQLiteIdPStore(path: path), try SQLiteIdPStore(path: path),
                ]
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for store in stores { group.addTask { try await store.migrate() } }
                    try await group.waitForAll()
                }
                let session = Fixture.session()
                try await stores[0].insertSession(session)
                #expect(try await stores[2].session(idHash: session.idHash, now: Fixture.at(0)) == session)
                for store in stores { try await store.close() }
            }
        }

        @Test(
            "commits are synced to disk (synchronous = FULL, 2), so a power loss cannot bring a spent code or refresh token back"
        )
        func durableCommits() async throws {
            let directory = try makeTemporaryDirectory(prefix: "keyless-idp-sqlite")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let store = try SQLiteIdPStore(path: (directory as NSString).appendingPathComponent("idp.sqlite"))
            try await store.migrate()
            #expect(try await store.pool.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
            #expect(try await store.pool.write { try String.fetchOne($0, sql: "PRAGMA journal_mode") } == "wal")
            try await store.close()
        }

        @Test("a database in a missing directory fails to open with an error naming the path")
        func missingDirectory() throws {
            let path = "/nonexistent-\(UUID().uuidString)/idp.sqlite"
            let error = #expect(throws: IdPStoreError.self) { try SQLiteIdPStore(path: path) }
            #expect(error?.description.contains(path) == true)
        }

        @Test("a database migrated by a newer keyless is refused")
        func newerSchema() async throws {
            let directory = try makeTemporaryDirectory(prefix: "keyless-idp-sqlite")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let path = (directory as NSString).appendingPathComponent("idp.sqlite")
            let store = try SQLiteIdPStore(path: path)
            try await store.migrate()
            try await store.close()
            let sqlite = try #require(Tooling.path(of: "sqlite3"), "the sqlite3 command is needed (run scripts/test)")
            let marked = try PartnerProcess.run(
                sqlite, [path, "INSERT INTO grdb_migrations VALUES ('v999-from-the-future')"])
            try #require(marked.status == 0, "sqlite3 failed: \(marked.output)")
            let reopened = try SQLiteIdPStore(path: path)
            let error = await #expect(throws: IdPStoreError.self) { try await reopened.migrate() }
            #expect(error?.description.contains("newer keyless") == true)
            try await reopened.close()
        }
    }

    /// What only the PostgreSQL store promises: URL handling, TLS, clear connection errors.
    @Suite("the PostgreSQL store")
    struct Postgres {
        @Test("the suite's server is postgres itself, unprivileged even when the tests run as root, on 127.0.0.1 only")
        func serverProcess() async throws {
            let server = try await PostgresPartner.shared().server()
            #expect(try await offCooperativePool { try server.psql("SHOW listen_addresses") } == "127.0.0.1")
            #if os(Linux)
                let comm = try String(contentsOfFile: "/proc/\(server.process.pid)/comm", encoding: .utf8)
                #expect(comm.trimmingCharacters(in: .whitespacesAndNewlines) == "postgres")
                let status = try String(contentsOfFile: "/proc/\(server.process.pid)/status", encoding: .utf8)
                let uid = status.split(separator: "\n").first { $0.hasPrefix("Uid:") }?.split(separator: "\t")
                    .dropFirst().first
                #expect(uid != nil && uid != "0", "postgres runs as uid \(uid ?? "?")")
            #endif
        }

        @Test("stopping a server ends postgres by its PID and deletes its directory")
        func stopServer() async throws {
            let server = try await PostgresServer.start()
            let pid = server.process.pid
            try await offCooperativePool { try server.createDatabase("scratch") }
            server.stop()
            #expect(server.process.isRunning == false)
            #expect(kill(pid, 0) == -1)
            #expect(FileManager.default.fileExists(atPath: server.directory) == false)
        }

        @Test(
            "a password given apart (a file or PGPASSWORD) is used for a URL without one; with one in the URL too it is refused"
        )
        func passwordApart() async throws {
            let store = try PostgresIdPStore(url: "postgres://keyless@127.0.0.1:1/idp", password: "from-a-file")
            #expect(store.settings.password == "from-a-file")
            #expect(store.endpoint.contains("from-a-file") == false)
            let error = #expect(throws: IdPStoreError.self) {
                try PostgresIdPStore(url: "postgres://keyless:in-url@127.0.0.1:1/idp", password: "from-a-file")
            }
            #expect(error?.description.contains("give it once") == true)
            #expect(
                error?.description.contains("in-url") == false && error?.description.contains("from-a-file") == false)
            try await store.close()
        }

        @Test("a URL gives user, password, host, port, database and TLS settings, percent-decoded")
        func parsesURL() throws {
            let full = try PostgresURL(
                parsing:
                    "postgres://idp%40svc:p%3Ass%2Fw@db.example.com:6543/keyless_idp?sslmode=verify-full&sslrootcert=/etc/ca.pem"
            )
            #expect(
                full
                    == PostgresURL(
                        host: "db.example.com", port: 6543, username: "idp@svc", password: "p:ss/w",
                        database: "keyless_idp", sslMode: .verifyFull, sslRootCertificate: "/etc/ca.pem"))
            #expect(full.description == "idp@svc@db.example.com:6543/keyless_idp")
            let minimal = try PostgresURL(parsing: "postgresql://keyless@[::1]")
            #expect(
                minimal
                    == PostgresURL(
                        host: "::1", port: 5432, username: "keyless", password: nil, database: nil,
                        sslMode: .disable, sslRootCertificate: nil))
            #expect(try PostgresURL(parsing: "postgres://u@h/d?sslmode=require").sslMode == .require)
        }

        @Test(
            "a URL that is not a usable postgres:// URL is refused with the expected form",
            arguments: [
                "mysql://u@h/d", "postgres:///d", "postgres://h/d", "postgres://u@h/d?sslmode=maybe",
                "postgres://u@h/d?application_name=x", "not a url",
            ])
        func refusesURL(url: String) throws {
            let error = #expect(throws: IdPStoreError.self) { try PostgresIdPStore(url: url) }
            #expect(error?.description.contains("postgres://USER") == true)
        }

        @Test("sslmode=verify-full with the server's CA connects over TLS; sslmode=disable does not")
        func connectsOverTLS() async throws {
            let server = try await PostgresPartner.shared().server()
            let ca = try #require(server.caCertificatePath)
            for (sslMode, encrypted) in [
                ("verify-full&sslrootcert=\(ca)", true), ("require", true), ("disable", false),
            ] {
                let url = try await PostgresPartner.freshDatabase(sslMode: sslMode)
                let database = try #require(URLComponents(string: url)?.path.dropFirst()).description
                let store = try PostgresIdPStore(url: url)
                try await store.migrate()
                try await store.insertSession(Fixture.session())
                // The pool keeps its connection open, so the server lists it with its TLS state.
                let states = try await offCooperativePool {
                    try server.psql(
                        "SELECT DISTINCT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                            + "WHERE a.datname = '\(database)'")
                }
                #expect(states == (encrypted ? "t" : "f"), "sslmode=\(sslMode)")
                try await store.close()
            }
        }

        @Test("sslmode=verify-full refuses a server whose certificate no trusted CA signed")
        func refusesUnknownCA() async throws {
            let url = try await PostgresPartner.freshDatabase(sslMode: "verify-full")
            let store = try PostgresIdPStore(url: url)
            let started = Date()
            let error = await #expect(throws: IdPStoreError.self) { try await store.migrate() }
            #expect(
                Date().timeIntervalSince(started) < 45,
                "refused, not retried until a long timeout (generous for a loaded CI machine)")
            #expect(
                error?.description.contains("PostgreSQL keyless@127.0.0.1") == true
                    && error?.description.contains("cannot connect") == true, "\(String(describing: error))")
            try await store.close()
        }

        @Test("migrate fails at once, naming the endpoint, when nothing listens there")
        func unreachable() async throws {
            let port = try freePort()
            let store = try PostgresIdPStore(url: "postgres://keyless@127.0.0.1:\(port)/idp")
            let started = Date()
            let error = await #expect(throws: IdPStoreError.self) { try await store.migrate() }
            #expect(
                Date().timeIntervalSince(started) < 45,
                "refused, not retried until a long timeout (generous for a loaded CI machine)")
            #expect(
                error?.description.contains("keyless@127.0.0.1:\(port)/idp") == true, "\(String(describing: error))")
            try await store.close()
        }

        @Test("a schema migrated by a newer keyless is refused")
        func newerSchema() async throws {
            let server = try await PostgresPartner.shared().server()
            let url = try await PostgresPartner.freshDatabase()
            let database = try #require(URLComponents(string: url)?.path.dropFirst()).description
            let store = try PostgresIdPStore(url: url)
            try await store.migrate()
            _ = try await offCooperativePool {
                try server.psql(
                    "INSERT INTO idp_schema_migrations VALUES ('v999-from-the-future', 0)", database: database)
            }
            let error = await #expect(throws: IdPStoreError.self) { try await store.migrate() }
            #expect(error?.description.contains("newer keyless") == true)
            try await store.close()
        }
    }
}
