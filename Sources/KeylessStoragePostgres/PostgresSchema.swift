/// The PostgreSQL stores' schemas. Each store prefixes its tables and records its migrations in a table of its own, so
/// the stores (and other applications) can share one database.
enum PostgresSchema {
    /// One migration: an identifier and its statements.
    typealias Migration = (identifier: String, statements: [String])

    /// The provider's migrations (tables prefixed `idp_`), in order; each runs once, in the transaction that records it.
    static let idpMigrations: [Migration] = [
        (
            "v1",
            [
                """
                CREATE TABLE IF NOT EXISTS idp_signing_keys (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    kid TEXT NOT NULL UNIQUE,
                    algorithm TEXT NOT NULL,
                    sealed_private_key BYTEA NOT NULL,
                    public_jwk TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    activates_at BIGINT NOT NULL,
                    retires_at BIGINT,
                    expires_at BIGINT
                )
                """,
                """
                CREATE TABLE IF NOT EXISTS idp_sessions (
                    id_hash TEXT PRIMARY KEY,
                    subject TEXT NOT NULL,
                    auth_time BIGINT NOT NULL,
                    amr TEXT[] NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_sessions_expires_at ON idp_sessions (expires_at)",
                """
                CREATE TABLE IF NOT EXISTS idp_authorization_codes (
                    code_hash TEXT PRIMARY KEY,
                    client_id TEXT NOT NULL,
                    redirect_uri TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    nonce TEXT,
                    code_challenge TEXT,
                    code_challenge_method TEXT,
                    subject TEXT NOT NULL,
                    auth_time BIGINT NOT NULL,
                    amr TEXT[] NOT NULL,
                    family_id TEXT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    used_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_authorization_codes_expires_at ON idp_authorization_codes (expires_at)",
                "CREATE INDEX IF NOT EXISTS idp_authorization_codes_family_id ON idp_authorization_codes (family_id)",
                """
                CREATE TABLE IF NOT EXISTS idp_refresh_families (
                    id TEXT PRIMARY KEY,
                    revoked BOOLEAN NOT NULL DEFAULT FALSE,
                    expires_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_refresh_families_expires_at ON idp_refresh_families (expires_at)",
                """
                CREATE TABLE IF NOT EXISTS idp_refresh_tokens (
                    token_hash TEXT PRIMARY KEY,
                    family_id TEXT NOT NULL REFERENCES idp_refresh_families (id) ON DELETE CASCADE,
                    client_id TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    subject TEXT NOT NULL,
                    auth_time BIGINT NOT NULL,
                    amr TEXT[] NOT NULL,
                    issued_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    used_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_refresh_tokens_family_id ON idp_refresh_tokens (family_id)",
                """
                CREATE TABLE IF NOT EXISTS idp_device_codes (
                    device_code_hash TEXT PRIMARY KEY,
                    user_code TEXT NOT NULL UNIQUE,
                    client_id TEXT NOT NULL,
                    scope TEXT NOT NULL,
                    poll_interval BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    status TEXT NOT NULL,
                    approval_subject TEXT,
                    approval_auth_time BIGINT,
                    approval_amr TEXT[],
                    approval_family_id TEXT,
                    last_polled_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_device_codes_expires_at ON idp_device_codes (expires_at)",
                "CREATE INDEX IF NOT EXISTS idp_device_codes_approval_family_id ON idp_device_codes (approval_family_id)",
            ]
        ),
        (
            "v2",
            [
                "CREATE TABLE IF NOT EXISTS idp_single_use (key TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS idp_single_use_expires_at ON idp_single_use (expires_at)",
                """
                CREATE TABLE IF NOT EXISTS idp_counters (
                    key TEXT PRIMARY KEY,
                    count BIGINT NOT NULL,
                    last_increase BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_counters_expires_at ON idp_counters (expires_at)",
            ]
        ),
        (
            // Who a connector (a directory) says the person is, as JSON; NULL for the users of idp.yaml.
            "v3",
            [
                "ALTER TABLE idp_sessions ADD COLUMN IF NOT EXISTS identity TEXT",
                "ALTER TABLE idp_authorization_codes ADD COLUMN IF NOT EXISTS identity TEXT",
                "ALTER TABLE idp_refresh_tokens ADD COLUMN IF NOT EXISTS identity TEXT",
                "ALTER TABLE idp_device_codes ADD COLUMN IF NOT EXISTS approval_identity TEXT",
            ]
        ),
        (
            // Passkeys (WebAuthn credentials); `seq` orders those registered in the same millisecond, as SQLite's rowid
            // does. `transports` is a JSON list.
            "v4",
            [
                """
                CREATE TABLE IF NOT EXISTS idp_passkeys (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY,
                    credential_id TEXT PRIMARY KEY,
                    subject TEXT NOT NULL,
                    user_handle TEXT NOT NULL,
                    name TEXT NOT NULL,
                    public_key BYTEA NOT NULL,
                    sign_count BIGINT NOT NULL,
                    aaguid TEXT NOT NULL,
                    backup_eligible BOOLEAN NOT NULL,
                    backed_up BOOLEAN NOT NULL,
                    transports TEXT NOT NULL,
                    attestation TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    last_used_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS idp_passkeys_subject ON idp_passkeys (subject)",
            ]
        ),
    ]

    /// The access server's migrations (tables prefixed `access_`). `seq` orders requests made in the same millisecond, as
    /// SQLite's does; each actor is three columns (issuer, subject, name), NULL when there is none.
    static let accessRequestMigrations: [Migration] = [
        (
            "v1",
            [
                """
                CREATE TABLE IF NOT EXISTS access_requests (
                    seq BIGINT GENERATED ALWAYS AS IDENTITY,
                    id TEXT PRIMARY KEY,
                    requester_issuer TEXT NOT NULL,
                    requester_subject TEXT NOT NULL,
                    requester_name TEXT NOT NULL,
                    role_arn TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    duration_seconds BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    pending_until BIGINT NOT NULL,
                    status TEXT NOT NULL,
                    decided_by_issuer TEXT,
                    decided_by_subject TEXT,
                    decided_by_name TEXT,
                    decided_at BIGINT,
                    decision_note TEXT,
                    self_approved BOOLEAN NOT NULL,
                    starts_at BIGINT,
                    ends_at BIGINT,
                    ended_by_issuer TEXT,
                    ended_by_subject TEXT,
                    ended_by_name TEXT,
                    end_note TEXT,
                    ended_at BIGINT
                )
                """,
                "CREATE INDEX IF NOT EXISTS access_requests_status ON access_requests (status)",
                """
                CREATE INDEX IF NOT EXISTS access_requests_requester_role
                ON access_requests (requester_issuer, requester_subject, role_arn, status)
                """,
            ]
        )
    ]
}
