import Foundation
import Testing
import KeylessCore
import KeylessSecrets
@testable import KeylessFastPath

private let issuer = "https://idp.example.com/realms/dev"
private let clientID = "keyless-cli"
private let role = "arn:aws:iam::123456789012:role/Dev"

/// Credentials expiring `remaining` seconds after the reference time.
private func credentials(remaining: Double) -> CachedCredentials {
    CachedCredentials(
        accessKeyId: "ASIAEXAMPLEKEY000001", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        sessionToken: "IQoJb3JpZ2luX2VjE+token/with=chars", expiration: reference.timeIntervalSince1970 + remaining,
        assumedRoleArn: "arn:aws:sts::123456789012:assumed-role/Dev/ada")
}

/// Puts `payload` into `store` under the credentials entry of `key`, with the header expiring `headerRemaining` seconds after the reference time.
private func cache(
    _ payload: CachedCredentials, in store: any SecretStore, key: CacheKey, headerRemaining: Double? = nil
) throws {
    guard let headerRemaining else {
        try storeCredentials(payload, store: store, key: key, updatedAt: reference, labels: ["role": role])
        return
    }
    // A header that disagrees with its payload, which storeCredentials never writes.
    try store.write(
        SecretEntry(
            header: EntryHeader(
                name: key.credentialsEntry, expiresAt: reference.addingTimeInterval(headerRemaining),
                updatedAt: reference, labels: ["role": role], backend: "memory"),
            secret: Array(try JSONEncoder().encode(payload))))
}

@Suite("CacheKey entry names")
struct CacheKeyTests {
    @Test("entry names are pinned: SHA-256 of the NUL-joined parts, first 16 bytes in hex")
    func pinnedNames() {
        // Values from Python: hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        let key = CacheKey(issuer: issuer, clientID: clientID, roleArn: role)
        #expect(key.tokenEntry == "oidc/8448587b62c800751624349cd9a9de75")
        #expect(key.credentialsEntry == "sts/f696d50735c4c293cc1a98e7f81abac1")
        #expect(key.lockName == "8448587b62c800751624349cd9a9de75.lock")
        #expect(
            CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 3600).credentialsEntry
                == "sts/71e00ed2b855a0d292608b6d926f7b6f")
    }

    @Test("a trailing slash on the issuer does not change the entries")
    func trailingSlash() {
        let plain = CacheKey(issuer: issuer, clientID: clientID, roleArn: role)
        let slashed = CacheKey(issuer: issuer + "//", clientID: clientID, roleArn: role)

        #expect(slashed.issuer == issuer)
        #expect(slashed.tokenEntry == plain.tokenEntry)
        #expect(slashed.credentialsEntry == plain.credentialsEntry)
    }

    @Test("roles and durations get distinct credentials entries but share the token entry and lock")
    func distinctPerRoleAndDuration() {
        let keys = [
            CacheKey(issuer: issuer, clientID: clientID, roleArn: role),
            CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 3600),
            CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 7200),
            CacheKey(issuer: issuer, clientID: clientID, roleArn: role + "Admin"),
            CacheKey(
                issuer: issuer, clientID: clientID, roleArn: "arn:aws:iam::210987654321:role/Dev", durationSeconds: 3600
            ),
        ]

        #expect(Set(keys.map(\.credentialsEntry)).count == keys.count)
        #expect(Set(keys.map(\.tokenEntry)).count == 1)
        #expect(Set(keys.map(\.lockName)).count == 1)
    }

    @Test("another client or issuer gets another token entry and lock")
    func distinctPerClient() {
        let base = CacheKey(issuer: issuer, clientID: clientID)
        let otherClient = CacheKey(issuer: issuer, clientID: "other")
        let otherIssuer = CacheKey(issuer: "https://idp.example.org", clientID: clientID)

        #expect(Set([base, otherClient, otherIssuer].map(\.tokenEntry)).count == 3)
        #expect(Set([base, otherClient, otherIssuer].map(\.lockName)).count == 3)
    }

    @Test("parts cannot run into each other: moving text between issuer and client changes the entry")
    func noConcatenationCollision() {
        #expect(
            CacheKey(issuer: "https://a.example/x", clientID: "y").tokenEntry
                != CacheKey(issuer: "https://a.example/", clientID: "xy").tokenEntry)
    }

    @Test("entry names are kind/hex, which the file store maps to one file per entry")
    func entryShape() {
        let key = CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 900)
        for (entry, kind) in [(key.tokenEntry, "oidc/"), (key.credentialsEntry, "sts/")] {
            #expect(entry.hasPrefix(kind))
            let hex = entry.dropFirst(kind.count)
            #expect(hex.count == 32)
            #expect(hex.allSatisfy { "0123456789abcdef".contains($0) })
        }
    }
}

@Suite("freshCredentials: serving cached credentials only while enough time remains")
struct FreshCredentialsTests {
    let key = CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 3600)

    @Test("credentials with more than 15 minutes left are returned as cached")
    func fresh() throws {
        let store = MemorySecretStore()
        try cache(credentials(remaining: 16 * 60), in: store, key: key)

        #expect(try freshCredentials(store: store, key: key, now: reference) == credentials(remaining: 16 * 60))
    }

    @Test("storeCredentials writes what freshCredentials reads: the expiry in the header, the labels kept")
    func storeThenRead() throws {
        let store = MemorySecretStore()
        let stored = CachedCredentials(
            accessKeyId: "ASIASTORED", secretAccessKey: "s\"e/c", sessionToken: "t", expiration: 1_800_003_600,
            assumedRoleArn: "arn:aws:sts::123456789012:assumed-role/Dev/alice")
        try storeCredentials(stored, store: store, key: key, updatedAt: reference, labels: ["kind": "aws-credentials"])
        let entry = try #require(try store.read(key.credentialsEntry, if: { _ in true }))
        #expect(entry.header.expiresAt == Date(timeIntervalSince1970: 1_800_003_600))
        #expect(entry.header.labels == ["kind": "aws-credentials"])
        #expect(try freshCredentials(store: store, key: key, now: reference) == stored)
    }

    @Test(
        "credentials with 15 minutes or less left are not returned",
        arguments: [14 * 60, 15 * 60, 60, 0, -3600] as [Double])
    func stale(remaining: Double) throws {
        let store = MemorySecretStore()
        try cache(credentials(remaining: remaining), in: store, key: key)

        #expect(try freshCredentials(store: store, key: key, now: reference) == nil)
    }

    @Test("a header claiming more time than the payload does not make stale credentials fresh")
    func payloadExpiryWins() throws {
        let store = MemorySecretStore()
        try cache(credentials(remaining: 10 * 60), in: store, key: key, headerRemaining: 3600)

        #expect(try freshCredentials(store: store, key: key, now: reference) == nil)
    }

    @Test("nothing cached, or a header without expiry, gives nil")
    func nothingCached() throws {
        let store = MemorySecretStore()
        #expect(try freshCredentials(store: store, key: key, now: reference) == nil)

        try store.write(
            SecretEntry(
                header: EntryHeader(
                    name: key.credentialsEntry, expiresAt: nil, updatedAt: reference, labels: [:], backend: "memory"),
                secret: Array(try JSONEncoder().encode(credentials(remaining: 3600)))))
        #expect(try freshCredentials(store: store, key: key, now: reference) == nil)
    }

    @Test("credentials cached for another duration are not served")
    func otherDuration() throws {
        let store = MemorySecretStore()
        try cache(
            credentials(remaining: 3600), in: store,
            key: CacheKey(issuer: issuer, clientID: clientID, roleArn: role, durationSeconds: 7200))

        #expect(try freshCredentials(store: store, key: key, now: reference) == nil)
    }

    @Test("a payload that is not credentials JSON throws cacheCorrupt")
    func corruptPayload() throws {
        let store = MemorySecretStore()
        try store.write(
            SecretEntry(
                header: EntryHeader(
                    name: key.credentialsEntry, expiresAt: reference.addingTimeInterval(3600),
                    updatedAt: reference, labels: [:], backend: "memory"),
                secret: Array("not json".utf8)))

        #expect(throws: KeylessError(.cacheCorrupt, "")) {
            try freshCredentials(store: store, key: key, now: reference)
        }
    }

    @Test("fresh credentials come back through the encrypted file store")
    func throughEncryptedStore() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        try cache(credentials(remaining: 3600), in: fixture.encrypted(), key: key)

        #expect(
            try freshCredentials(store: fixture.encrypted(), key: key, now: reference) == credentials(remaining: 3600))
        // Stale credentials are recognised from the header alone: no passphrase needed to say "not fresh".
        #expect(
            try freshCredentials(
                store: fixture.encrypted(passphrase: nil), key: key, now: reference.addingTimeInterval(3000)) == nil)
    }
}

@Suite("credential_process output")
struct CredentialProcessOutputTests {
    @Test("the credential_process JSON has Version 1 and exactly the four credential fields")
    func shape() throws {
        let payload = credentials(remaining: 3600)
        let json = payload.credentialProcessJSON

        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])

        #expect(Set(object.keys) == ["Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"])
        #expect(object["Version"] as? Int == 1)
        #expect(object["AccessKeyId"] as? String == payload.accessKeyId)
        #expect(object["SecretAccessKey"] as? String == payload.secretAccessKey)
        #expect(object["SessionToken"] as? String == payload.sessionToken)
        #expect(object["Expiration"] as? String == "2027-01-15T09:00:00Z")
        #expect(!json.contains("\n"))
    }

    @Test("Expiration is RFC 3339 UTC with a Z and whole seconds, rounded down")
    func expirationFormat() throws {
        var payload = credentials(remaining: 0)
        payload.expiration = reference.timeIntervalSince1970 + 59.999

        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(payload.credentialProcessJSON.utf8)) as? [String: Any])
        let expiration = try #require(object["Expiration"] as? String)

        #expect(expiration == "2027-01-15T08:00:59Z")
        #expect(expiration.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z/) != nil)
        let parsed = try #require(ISO8601DateFormatter().date(from: expiration))
        #expect(parsed == reference.addingTimeInterval(59))
    }

    @Test(
        "rfc3339 formats known instants",
        arguments: [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_800_000_000, "2027-01-15T08:00:00Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
        ] as [(Double, String)])
    func rfc3339Values(seconds: Double, text: String) {
        #expect(rfc3339(seconds) == text)
    }

    @Test(
        "jsonString output parses back to the original string",
        arguments: [
            "plain",
            "quote \" inside",
            "back\\slash",
            "line\nfeed, carriage\rreturn, tab\t",
            "\u{0}\u{1}\u{8}\u{B}\u{C}\u{1F}",
            "\u{7F} delete and \u{2028} line separator",
            "unicode é ☃ 😀",
            "</script> and / slash",
            "",
        ])
    func jsonStringRoundTrip(text: String) throws {
        let encoded = jsonString(text)

        let decoded = try #require(
            try JSONSerialization.jsonObject(with: Data(("[" + encoded + "]").utf8)) as? [String])
        #expect(decoded == [text])
        #expect(
            encoded.unicodeScalars.allSatisfy { $0.value >= 0x20 },
            "raw control character in \(encoded.debugDescription)")
    }

    @Test("credentials with quotes and control characters still give valid JSON")
    func hostileCredentials() throws {
        let payload = CachedCredentials(
            accessKeyId: "A\"B", secretAccessKey: "s\\e\nc", sessionToken: "\u{1}t", expiration: 0, assumedRoleArn: nil)

        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(payload.credentialProcessJSON.utf8)) as? [String: Any])

        #expect(object["AccessKeyId"] as? String == "A\"B")
        #expect(object["SecretAccessKey"] as? String == "s\\e\nc")
        #expect(object["SessionToken"] as? String == "\u{1}t")
    }
}

@Suite("FastPath argument parsing and fall-through")
struct FastPathTests {
    @Test("parse accepts --flag value, --flag=value and the flags without values")
    func parseAccepts() throws {
        let options = try #require(
            FastPath.parse([
                "--issuer-url", issuer, "--client-id=\(clientID)", "--aws-role-arn", role, "--duration=3600",
                "--device", "--no-browser",
                "--scopes", "openid email",
            ]))

        #expect(
            options == [
                "--issuer-url": issuer, "--client-id": clientID, "--aws-role-arn": role, "--duration": "3600",
                "--scopes": "openid email",
            ])
    }

    @Test("a value containing = is kept whole")
    func valueWithEquals() {
        #expect(FastPath.parse(["--client-secret-file=/tmp/a=b"]) == ["--client-secret-file": "/tmp/a=b"])
    }

    @Test("parse accepts no arguments at all")
    func parseEmpty() {
        #expect(FastPath.parse([]) == [:])
    }

    @Test(
        "parse rejects what it does not understand",
        arguments: [
            ["--unknown"],
            ["--unknown=value"],
            ["--issuer-url"],
            ["positional"],
            ["--device=yes"],
            ["--issuer-url", issuer, "--verbose"],
            ["-v"],
        ])
    func parseRejects(arguments: [String]) {
        #expect(FastPath.parse(arguments) == nil)
    }

    @Test(
        "run falls through (nil) whenever it cannot answer from the cache",
        arguments: [
            ["login"],
            ["creds-process", "--issuer-url", "https://idp.example.com", "--client-id", "c"],
            [
                "creds-process", "--issuer-url", "https://idp.example.com", "--client-id", "c", "--aws-role-arn",
                "arn:x", "--duration", "soon",
            ],
            [
                "creds-process", "--issuer-url", "https://idp.example.com", "--client-id", "c", "--aws-role-arn",
                "arn:x", "--bogus",
            ],
            [
                "creds-process", "--issuer-url", "https://idp.example.com", "--client-id", "c", "--aws-role-arn",
                "arn:x", "--secret-store", "nonsense",
            ],
            [
                "creds-process", "--issuer-url", "https://idp.example.com", "--client-id", "c", "--aws-role-arn",
                "arn:x", "--secret-store", "plaintext",
            ],
        ])
    func runFallsThrough(arguments: [String]) throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let environment = Environment([
            "HOME": fixture.root, "KEYLESS_STATE_DIR": fixture.root + "/state", "KEYLESS_KEYRING_TTL": "0",
        ])

        #expect(FastPath.run(arguments, environment: environment, now: reference) == nil)
    }

    @Test("KEYLESS_NO_FAST_PATH makes run fall through even with fresh credentials cached")
    func disabled() throws {
        let fixture = try StoreFixture()
        defer { fixture.remove() }
        let key = CacheKey(issuer: issuer, clientID: clientID, roleArn: role)
        let store = FileBackedStore(directory: fixture.root + "/state/store", sealer: PlaintextSealer())
        try cache(credentials(remaining: 3600), in: store, key: key)
        #expect(try freshCredentials(store: store, key: key, now: reference) != nil)
        let environment = Environment([
            "HOME": fixture.root, "KEYLESS_STATE_DIR": fixture.root + "/state", "KEYLESS_NO_FAST_PATH": "1",
        ])

        let status = FastPath.run(
            [
                "creds-process", "--issuer-url", issuer, "--client-id", clientID, "--aws-role-arn", role,
                "--secret-store", "plaintext",
            ],
            environment: environment, now: reference)

        #expect(status == nil)
    }
}

@Suite("Launcher: where keyless finds keyless-cli")
struct LauncherCompanionTests {
    @Test("KEYLESS_CLI wins over every place on disk")
    func explicitPathWins() {
        let path = Launcher.companionPath(
            environment: Environment(["KEYLESS_CLI": "/opt/k/keyless-cli"]), launcher: "/usr/bin/keyless",
            isExecutable: { _ in true })
        #expect(path == "/opt/k/keyless-cli")
    }

    @Test("a build directory: keyless-cli beside the launcher")
    func besideTheLauncher() {
        let path = Launcher.companionPath(
            environment: Environment([:]), launcher: "/src/.build/release/keyless",
            isExecutable: { $0 == "/src/.build/release/keyless-cli" })
        #expect(path == "/src/.build/release/keyless-cli")
    }

    @Test("an installed package or unpacked tarball: ../libexec/keyless/keyless-cli from the launcher's directory")
    func packagedPlace() {
        let path = Launcher.companionPath(
            environment: Environment([:]), launcher: "/usr/bin/keyless",
            isExecutable: { $0 == "/usr/bin/../libexec/keyless/keyless-cli" })
        #expect(path == "/usr/bin/../libexec/keyless/keyless-cli")
    }

    @Test("neither there: the path beside the launcher, so the error names where a build puts it")
    func neitherThere() {
        let path = Launcher.companionPath(
            environment: Environment([:]), launcher: "/usr/local/bin/keyless", isExecutable: { _ in false })
        #expect(path == "/usr/local/bin/keyless-cli")
    }

    @Test("a real directory: the launcher's lookup finds an executable file in libexec")
    func realDirectory() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("launcher-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/libexec/keyless", withIntermediateDirectories: true)
        let companion = root + "/libexec/keyless/keyless-cli"
        try Data("#!/bin/sh\n".utf8).write(to: URL(fileURLWithPath: companion))
        #expect(
            Launcher.companionPath(environment: Environment([:]), launcher: root + "/bin/keyless") == root
                + "/bin/keyless-cli")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: companion)
        #expect(
            Launcher.companionPath(environment: Environment([:]), launcher: root + "/bin/keyless") == root
                + "/bin/../libexec/keyless/keyless-cli")
    }
}
