// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "keyless",
    platforms: [.macOS(.v14)],
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
    ],
    targets: [
        // Errors with codes, clocks, environment, XDG paths, atomic writes and file locks.
        // FoundationEssentials only: it sits on the cached credential_process path.
        .target(name: "KeylessCore"),
        // Syscalls Swift cannot call (variadic) and libsecret loaded with dlopen.
        .target(name: "CKeylessSys", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // Secret-store protocol and backends (encrypted file, Secret Service, Keychain, memory, plaintext).
        .target(name: "KeylessSecrets", dependencies: [
            "KeylessCore", "CKeylessSys",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // The cached credential_process answer: no event loop, no network, no full Foundation.
        .target(name: "KeylessFastPath", dependencies: [
            "KeylessCore", "KeylessSecrets", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // `~/.aws/config` reading (profiles and their credential_process lines).
        .target(name: "KeylessAWSConfig", dependencies: ["KeylessCore"]),
        // The HTTP transport protocol and its AsyncHTTPClient implementation; form and base64url encoding.
        .target(name: "KeylessHTTP", dependencies: [
            "KeylessCore",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        // STS clients and endpoint resolution.
        .target(name: "KeylessAWS", dependencies: [
            "KeylessCore", "KeylessHTTP",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // OIDC discovery, JWKS, ID-token verification, PKCE, authorization-code, device and refresh flows.
        .target(name: "KeylessOIDC", dependencies: [
            "KeylessCore", "KeylessHTTP",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The embedded OpenID Provider: configuration, password hashes (more to come: keys, tokens, server, storage).
        .target(name: "KeylessIdP", dependencies: [
            "KeylessCore",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // Every command as a library type.
        .target(name: "KeylessCLI", dependencies: [
            "KeylessCore", "KeylessHTTP", "KeylessSecrets", "KeylessAWS", "KeylessAWSConfig", "KeylessOIDC", "KeylessFastPath", "KeylessIdP",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The launcher users run: the cached answer, else execv of keyless-cli. Deliberately small.
        .executableTarget(name: "keyless", dependencies: ["KeylessCore", "KeylessFastPath"]),
        // Every command.
        .executableTarget(name: "keyless-cli", dependencies: ["KeylessCLI"]),
        // Partner launchers (moto, glewlwyd, Chromium) and fixtures for tests.
        .target(name: "KeylessTestSupport", dependencies: ["KeylessCore"]),
        .testTarget(name: "KeylessCoreTests", dependencies: ["KeylessCore"]),
        .testTarget(name: "KeylessSecretsTests", dependencies: ["KeylessSecrets", "KeylessFastPath", "KeylessTestSupport"]),
        .testTarget(name: "KeylessAWSTests", dependencies: [
            "KeylessAWS", "KeylessAWSConfig", "KeylessTestSupport", "KeylessCore", "KeylessHTTP",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "KeylessOIDCTests", dependencies: [
            "KeylessOIDC", "KeylessTestSupport", "KeylessCore", "KeylessHTTP",
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "KeylessIdPTests", dependencies: ["KeylessIdP", "KeylessCore"]),
        .testTarget(name: "KeylessCLITests", dependencies: ["KeylessCLI", "KeylessTestSupport"]),
    ]
)
