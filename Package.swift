// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "keyless",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "keyless", targets: ["keyless"]),
        .executable(name: "keyless-cli", targets: ["keyless-cli"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
    ],
    targets: [
        // Errors with codes, clocks, environment, XDG paths, atomic writes, file locks, starting a child process, random
        // tokens; JSON (escaping, the one encoder, peers' JSON as JSONValue, JWK sets), HTML escaping, form decoding.
        // FoundationEssentials only: it sits on the cached credential_process path.
        .target(name: "KeylessCore"),
        // The version, and the commit and toolchain scripts/package stamps into a release build.
        .target(name: "KeylessBuildInfo"),
        // Syscalls Swift cannot call (variadic) and libsecret loaded with dlopen.
        .target(name: "CKeylessSys", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Secret-store protocol and backends (encrypted file, Secret Service, Keychain, memory, plaintext).
        .target(
            name: "KeylessSecrets",
            dependencies: [
                "KeylessCore", "CKeylessSys",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // What the access server writes and the CLI reads: the credential_process line, creds-process's flag table and
        // the /api/v1 bodies. No dependency, no Foundation: the launcher links it.
        .target(name: "KeylessWire"),
        // How every YAML configuration file is read: bounded before it is composed (no aliases, limits on size, nodes
        // and depth), and every mistake reported as file:line:column.
        .target(name: "KeylessYAML", dependencies: ["KeylessCore", .product(name: "Yams", package: "Yams")]),
        // The cached credential_process answer: no event loop, no network, no full Foundation.
        .target(
            name: "KeylessFastPath",
            dependencies: [
                "KeylessCore", "KeylessSecrets", "KeylessWire", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // AWS Signature Version 4: pure, deterministic, checked against AWS's example and botocore.
        .target(name: "KeylessSigV4", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // `~/.aws/config` reading (profiles and their credential_process lines).
        .target(name: "KeylessAWSConfig", dependencies: ["KeylessCore"]),
        // The HTTP transport protocol and its AsyncHTTPClient implementation; form and base64url encoding.
        .target(
            name: "KeylessHTTP",
            dependencies: [
                "KeylessCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        // STS clients, endpoint resolution and the AWS credential-provider chain (env, profile, web identity, container, IMDS).
        .target(
            name: "KeylessAWS",
            dependencies: [
                "KeylessCore", "KeylessHTTP", "KeylessSigV4", "KeylessAWSConfig",
                .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // OIDC discovery, JWKS, ID-token verification, PKCE, authorization-code, device and refresh flows.
        .target(
            name: "KeylessOIDC",
            dependencies: [
                "KeylessCore", "KeylessHTTP",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // JOSE: signing keys (RS256 through the system's OpenSSL when present, ES256), JWS compact signing and parsing,
        // JWK import and RFC 7638 thumbprints; for the provider and for the CLI's private_key_jwt assertions.
        .target(
            name: "KeylessJOSE",
            dependencies: [
                "KeylessCore", "CKeylessSys",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // The embedded OpenID Provider's protocol logic: configuration, password hashes, TOTP, signing keys, client
        // authentication and every grant, free of HTTP.
        .target(
            name: "KeylessIdP",
            dependencies: [
                "KeylessCore", "KeylessStorage", "KeylessJOSE", "KeylessYAML", "KeylessDirectory", "KeylessLDAP",
                "KeylessOIDC", "KeylessHTTP", "KeylessWebAuthn",
                .product(name: "Logging", package: "swift-log"), .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Yams", package: "Yams"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // The storage protocols (the embedded provider's, the access server's requests), their records and in-memory
        // stores.
        .target(name: "KeylessStorage"),
        // The SQLite store (GRDB), the default: one file under the XDG data directory.
        .target(
            name: "KeylessStorageSQLite",
            dependencies: [
                "KeylessStorage", .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        // The PostgreSQL store (postgres-nio), for replicas sharing one database.
        .target(
            name: "KeylessStoragePostgres",
            dependencies: [
                "KeylessStorage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // What both servers share (Hummingbird): security headers, the request log and JSON log lines, metrics and who
        // may read them, trusted proxies, the connection limit. Neither server depends on the other.
        .target(
            name: "KeylessHTTPServer",
            dependencies: [
                "KeylessCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        // The provider's HTTP server (Hummingbird): pages and endpoints over the provider's logic.
        .target(
            name: "KeylessIdPServer",
            dependencies: [
                "KeylessIdP", "KeylessStorage", "KeylessHTTPServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // An LDAP client for directory logins: the messages a login needs (bind, search, StartTLS, unbind) in BER with
        // SwiftASN1, RFC 4515 filters and their escaping, one connection with timeouts and TLS (NIOSSL).
        // CBOR (RFC 8949) as WebAuthn authenticators send it (definite lengths, limits on depth and size), and the
        // COSE keys in it (ES256, RS256, EdDSA) with signature checks.
        .target(
            name: "KeylessCBOR",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        // The relying party's checks of WebAuthn Level 3 registrations and sign-ins (authenticator data, client data,
        // none and packed attestation, signatures, counters), over KeylessCBOR's keys.
        .target(
            name: "KeylessWebAuthn",
            dependencies: [
                "KeylessCBOR", "KeylessCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]),
        .target(
            name: "KeylessLDAP",
            dependencies: [
                "KeylessCore",
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]),
        // People in an organisation's directory: the LDAP / Active Directory connector (the service account finds the
        // entry, the person's own bind checks the password, groups read at every login and refresh), pooled connections.
        .target(
            name: "KeylessDirectory",
            dependencies: ["KeylessCore", "KeylessLDAP", .product(name: "NIOCore", package: "swift-nio")]),
        // The certificate chain a TLS server presents, and the SHA-1 thumbprint IAM expects for an OIDC provider.
        .target(
            name: "KeylessTLS",
            dependencies: [
                "KeylessCore",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // IAM trust policies: how STS evaluates one for a web-identity principal, explained statement by statement.
        .target(name: "KeylessTrust", dependencies: ["KeylessCore"]),
        // The access server's policy: accounts, roles, grants from groups and claims, session tags; parsed with
        // line numbers and reloaded on change.
        .target(
            name: "KeylessPolicy",
            dependencies: ["KeylessCore", "KeylessYAML", .product(name: "Yams", package: "Yams")]),
        // The access server (Hummingbird): bearer authentication, config, credentials, console links, audit, web page.
        .target(
            name: "KeylessAccessServer",
            dependencies: [
                "KeylessCore", "KeylessHTTP", "KeylessOIDC", "KeylessPolicy", "KeylessAWS", "KeylessSigV4",
                "KeylessHTTPServer", "KeylessWire", "KeylessYAML", "KeylessStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The client side, free of both servers and of the provider: the injected world (ClientContext), the credential
        // broker (cache, refresh, STS, login under a lock), workload token sources, the access-server client, the
        // container-credentials server, configure's planner, login diagnostics and the terminal presenter.
        .target(
            name: "KeylessClient",
            dependencies: [
                "KeylessCore", "KeylessHTTP", "KeylessSecrets", "KeylessAWS", "KeylessAWSConfig", "KeylessOIDC",
                "KeylessFastPath", "KeylessWire", "KeylessJOSE",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Every command as a library type (thin: parse, call, present); the one target that wires every part together.
        .target(
            name: "KeylessCLI",
            dependencies: [
                "KeylessClient", "KeylessCore", "KeylessHTTP", "KeylessSecrets", "KeylessAWS", "KeylessAWSConfig",
                "KeylessOIDC", "KeylessFastPath", "KeylessWire", "KeylessIdP", "KeylessJOSE",
                "KeylessIdPServer", "KeylessHTTPServer", "KeylessStorage", "KeylessStorageSQLite",
                "KeylessStoragePostgres", "KeylessAccessServer", "KeylessPolicy", "KeylessTrust", "KeylessTLS",
                "KeylessBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The launcher users run: the cached answer, else execv of keyless-cli. Deliberately small.
        .executableTarget(name: "keyless", dependencies: ["KeylessCore", "KeylessFastPath"]),
        // Every command.
        .executableTarget(name: "keyless-cli", dependencies: ["KeylessCLI"]),
        // Partner launchers for tests (moto, glewlwyd, LemonLDAP, PostgreSQL, the provider zoo, keyless idp and server,
        // Chromium), all through one start-on-a-free-port helper, and the fuzzer.
        .target(name: "KeylessTestSupport", dependencies: ["KeylessCore"]),
        // Fakes and helpers every test suite shares: a clock moved by hand, a log capture, a scratch directory, a stub HTTP
        // transport.
        .target(
            name: "KeylessTestFakes",
            dependencies: [
                "KeylessCore", "KeylessHTTP", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "KeylessCoreTests", dependencies: ["KeylessCore", "KeylessTestFakes"]),
        .testTarget(name: "KeylessWireTests", dependencies: ["KeylessWire", "KeylessTestSupport"]),
        .testTarget(
            name: "KeylessYAMLTests",
            dependencies: ["KeylessYAML", "KeylessCore", .product(name: "Yams", package: "Yams")]),
        .testTarget(
            name: "KeylessSecretsTests",
            dependencies: ["KeylessSecrets", "KeylessFastPath", "KeylessTestSupport", "KeylessTestFakes"]),
        .testTarget(
            name: "KeylessAWSTests",
            dependencies: [
                "KeylessAWS", "KeylessAWSConfig", "KeylessTestSupport", "KeylessTestFakes", "KeylessCore",
                "KeylessHTTP", "KeylessSigV4", "KeylessFastPath",
                .product(name: "Logging", package: "swift-log"),
            ], exclude: ["Fixtures"]),
        .testTarget(
            name: "KeylessOIDCTests",
            dependencies: [
                "KeylessOIDC", "KeylessTestSupport", "KeylessTestFakes", "KeylessCore", "KeylessHTTP",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "KeylessCBORTests",
            dependencies: [
                "KeylessCBOR", "KeylessTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "KeylessWebAuthnTests",
            dependencies: [
                "KeylessWebAuthn", "KeylessCBOR", "KeylessCore", "KeylessTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            exclude: ["Vectors"]),
        .testTarget(
            name: "KeylessIdPTests",
            dependencies: [
                "KeylessIdP", "KeylessJOSE", "KeylessCore", "KeylessStorage", "KeylessTestSupport", "KeylessTestFakes",
                "KeylessDirectory", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]),
        .testTarget(
            name: "KeylessHTTPServerTests",
            dependencies: [
                "KeylessHTTPServer", "KeylessCore", "KeylessTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "KeylessIdPServerTests",
            dependencies: [
                "KeylessIdPServer", "KeylessHTTPServer", "KeylessIdP", "KeylessStorage", "KeylessCore",
                "KeylessTestSupport", "KeylessTestFakes",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "KeylessSigV4Tests", dependencies: ["KeylessSigV4", "KeylessTestSupport"]),
        .testTarget(
            name: "KeylessStorageTests",
            dependencies: [
                "KeylessStorage", "KeylessStorageSQLite", "KeylessStoragePostgres", "KeylessTestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]),
        .testTarget(name: "KeylessTrustTests", dependencies: ["KeylessTrust", "KeylessCore"]),
        .testTarget(
            name: "KeylessLDAPTests",
            dependencies: [
                "KeylessLDAP", "KeylessCore", "KeylessTestSupport", .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(
            name: "KeylessDirectoryTests", dependencies: ["KeylessDirectory", "KeylessLDAP", "KeylessTestSupport"]),
        .testTarget(
            name: "KeylessPolicyTests",
            dependencies: ["KeylessPolicy", "KeylessCore", "KeylessTestSupport", "KeylessTestFakes"]),
        .testTarget(
            name: "KeylessAccessServerTests",
            dependencies: [
                "KeylessAccessServer", "KeylessPolicy", "KeylessOIDC", "KeylessAWS", "KeylessCore", "KeylessHTTP",
                "KeylessTestSupport", "KeylessTestFakes", "KeylessStorage", "KeylessWire",
                "KeylessHTTPServer", "KeylessSigV4",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "KeylessCLITests",
            dependencies: ["KeylessCLI", "KeylessClient", "KeylessWire", "KeylessTestSupport", "KeylessTestFakes"]),
        // End to end: the built binaries as people and pipelines run them, with their partners (moto, keyless idp and
        // server, glewlwyd, LemonLDAP, Chromium, Terraform, tmux). scripts/test runs this target in a pass of its own.
        .testTarget(
            name: "KeylessEndToEndTests",
            dependencies: [
                "KeylessCLI", "KeylessClient", "KeylessTestSupport", "KeylessTestFakes", "KeylessWire",
                "KeylessFastPath",
            ]),
    ]
)
