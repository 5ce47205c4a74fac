import Foundation
import KeylessStorage
import KeylessStoragePostgres
import KeylessStorageSQLite
import KeylessTestSupport
import Testing

/// The stores every conformance test runs against.
enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, sqlite, postgres

    var testDescription: String { rawValue }
}

/// Runs `body` with two handles on one fresh store (migrated unless `migrated` is false). SQLite and PostgreSQL give two
/// separate store objects on the same file or database, as two replicas would have; the memory store is one actor, twice.
func withStores(
    _ backend: Backend, migrated: Bool = true,
    _ body: (_ store: any IdPStore, _ replica: any IdPStore) async throws -> Void
) async throws {
    try await withStorePair(
        backend, migrated: migrated, memory: { MemoryIdPStore() }, sqlite: { try SQLiteIdPStore(path: $0) },
        postgres: { try PostgresIdPStore(url: $0) }, migrate: { try await $0.migrate() },
        close: { try await $0.close() },
        body)
}

/// Two handles on one fresh store of `backend`, made by the given openers (one memory store, twice; two objects on one
/// SQLite file or PostgreSQL database), migrated unless `migrated` is false, closed and removed afterwards.
func withStorePair<Store>(
    _ backend: Backend, migrated: Bool, memory: () -> Store, sqlite: (String) throws -> Store,
    postgres: (String) throws -> Store, migrate: (Store) async throws -> Void, close: (Store) async throws -> Void,
    _ body: (_ store: Store, _ replica: Store) async throws -> Void
) async throws {
    let stores: (Store, Store)
    var cleanup: @Sendable () -> Void = {}
    switch backend {
    case .memory:
        let store = memory()
        stores = (store, store)
    case .sqlite:
        let directory = try makeTemporaryDirectory(prefix: "keyless-store")
        cleanup = { try? FileManager.default.removeItem(atPath: directory) }
        let path = (directory as NSString).appendingPathComponent("store.sqlite")
        do {
            stores = (try sqlite(path), try sqlite(path))
        } catch {
            cleanup()
            throw error
        }
    case .postgres:
        let url = try await PostgresPartner.freshDatabase()
        stores = (try postgres(url), try postgres(url))
    }
    do {
        if migrated { try await migrate(stores.0) }
        try await body(stores.0, stores.1)
    } catch {
        try? await close(stores.0)
        try? await close(stores.1)
        cleanup()
        throw error
    }
    try await close(stores.0)
    try await close(stores.1)
    cleanup()
}

/// The PostgreSQL server the suite shares: started on first use, stopped by PID when the suite's scope ends.
actor PostgresPartner {
    /// The partner of the running suite (set by `PostgresPartnerTrait`).
    @TaskLocal static var current: PostgresPartner?

    private enum State {
        case idle
        case starting(Task<PostgresServer, any Error>)
        case running(PostgresServer)
        case failed(any Error)
        case stopped
    }

    private var state = State.idle

    /// The server, started (with TLS offered) on the first call; a failed start fails every later call the same way.
    func server() async throws -> PostgresServer {
        switch state {
        case .idle:
            let starting = Task { try await PostgresServer.start(tls: true) }
            state = .starting(starting)
            do {
                let server = try await starting.value
                if case .starting = state { state = .running(server) }
                return server
            } catch {
                if case .starting = state { state = .failed(error) }
                throw error
            }
        case .starting(let starting):
            return try await starting.value
        case .running(let server):
            return server
        case .failed(let error):
            throw error
        case .stopped:
            throw TestSupportError("the suite's PostgreSQL server has already been stopped")
        }
    }

    /// Stops the server (SIGINT to its PID) and deletes its directory.
    func stop() async {
        let previous = state
        state = .stopped
        switch previous {
        case .starting(let starting):
            (try? await starting.value)?.stop()
        case .running(let server):
            server.stop()
        case .idle, .failed, .stopped:
            break
        }
    }

    /// The URL of a new, empty database on the suite's server.
    static func freshDatabase(sslMode: String = "disable") async throws -> String {
        let server = try await shared().server()
        let name = "idp_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await offCooperativePool { try server.createDatabase(name) }
        return server.url(database: name, sslMode: sslMode)
    }

    /// The running suite's partner.
    static func shared() throws -> PostgresPartner {
        guard let current else {
            throw TestSupportError("PostgreSQL-backed tests must run inside a suite with the .postgresPartner trait")
        }
        return current
    }
}

/// Gives a suite one lazily started PostgreSQL server, stopped when the suite ends, whatever its tests did.
struct PostgresPartnerTrait: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(
        for test: Test, testCase: Test.Case?,
        performing function: @Sendable () async throws -> Void
    ) async throws {
        let partner = PostgresPartner()
        do {
            try await PostgresPartner.$current.withValue(partner) { try await function() }
        } catch {
            await partner.stop()
            throw error
        }
        await partner.stop()
    }
}

extension Trait where Self == PostgresPartnerTrait {
    /// One PostgreSQL server for the suite, started on first use and stopped at its end.
    static var postgresPartner: Self { Self() }
}

/// Runs blocking work (a psql child process) on a thread outside Swift's cooperative pool.
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try work() }) }
    }
}

/// Records built around a fixed reference time, 2026-01-01T00:00:00Z, at whole milliseconds.
enum Fixture {
    static let reference: Int64 = 1_767_225_600_000

    /// The reference time plus `milliseconds`.
    static func at(milliseconds: Int64) -> Date { Date(millisecondsSince1970: reference + milliseconds) }

    /// The reference time plus `seconds`.
    static func at(_ seconds: Int64) -> Date { at(milliseconds: seconds * 1000) }

    /// A fresh 64-hex-digit value, shaped like the SHA-256 hashes the provider stores.
    static func hash() -> String {
        (UUID().uuidString + UUID().uuidString).replacingOccurrences(of: "-", with: "").lowercased()
    }

    /// A fresh family id.
    static func family() -> String { "fam-" + UUID().uuidString.lowercased() }

    /// A password-and-OTP login a minute before the reference time, by a user with a non-ASCII name.
    static let alice = Authentication(subject: "alice-Zoë-東京", authTime: at(-60), amr: ["pwd", "otp", "mfa"])

    /// A directory login: the connector's identity with a non-ASCII DN, an email, a name and groups.
    static let carol = Authentication(
        subject: "corp-ldap:6f1c2a-ü", authTime: at(-30), amr: ["pwd"],
        identity: ConnectedIdentity(
            connector: "corp-ldap", reference: "uid=carol,ou=Menschen,dc=example,dc=org", username: "carol",
            email: "carol@example.org", name: "Carol Ø. Smith", groups: ["corp-ldap:developers", "corp-ldap:ops"],
            awsTags: ["CostCenter": "4711", "Department": "Entwicklung"], awsSourceIdentity: "carol"))

    static func key(
        _ kid: String = "kid-" + UUID().uuidString, createdAt: Date = at(0), retiresAt: Date? = nil,
        expiresAt: Date? = nil
    ) -> SigningKeyRecord {
        SigningKeyRecord(
            kid: kid, algorithm: "ES256", sealedPrivateKey: Data((0...255).map { UInt8($0) } + [0, 0]),
            publicJWK:
                #"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","note":"clé ✓"}"#,
            createdAt: createdAt, activatesAt: Date(millisecondsSince1970: createdAt.millisecondsSince1970 + 3_600_000),
            retiresAt: retiresAt,
            expiresAt: expiresAt)
    }

    static func session(expiresAt: Date = at(3600), authentication: Authentication = alice) -> SessionRecord {
        SessionRecord(idHash: hash(), authentication: authentication, expiresAt: expiresAt)
    }

    static func code(family: String = family(), expiresAt: Date = at(60)) -> AuthorizationCodeRecord {
        AuthorizationCodeRecord(
            codeHash: hash(), clientID: "cli-ünïcode", redirectURI: "http://127.0.0.1:8400/callback?q=ä",
            scope: "openid email aws", nonce: "n-0S6_WzA2Mj",
            codeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            codeChallengeMethod: "S256", authentication: alice, familyID: family, expiresAt: expiresAt)
    }

    static func token(family: String, issuedAt: Date = at(0), expiresAt: Date = at(86_400)) -> RefreshTokenRecord {
        RefreshTokenRecord(
            tokenHash: hash(), familyID: family, clientID: "keyless-cli", scope: "openid offline_access aws",
            authentication: alice, issuedAt: issuedAt, expiresAt: expiresAt)
    }

    /// A successor for a rotation, with a fresh hash.
    static func successor(issuedAt: Date = at(1), expiresAt: Date = at(86_401)) -> RefreshSuccessor {
        RefreshSuccessor(tokenHash: hash(), issuedAt: issuedAt, expiresAt: expiresAt)
    }

    static func device(interval: Int = 5, expiresAt: Date = at(600)) -> DeviceCodeRecord {
        let letters = Array("BCDFGHJKLMNPQRSTVWXZ")
        let userCode = String((0..<8).map { _ in letters.randomElement()! })
        return DeviceCodeRecord(
            deviceCodeHash: hash(), userCode: userCode, clientID: "keyless-cli", scope: "openid aws → tout",
            interval: interval, expiresAt: expiresAt)
    }

    static func approval(family: String = family()) -> DeviceApproval {
        DeviceApproval(authentication: Authentication(subject: "bob-Ærø", authTime: at(-5), amr: []), familyID: family)
    }
}
