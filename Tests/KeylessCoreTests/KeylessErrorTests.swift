import Testing
import KeylessCore

@Suite("KeylessError: codes, equality and exit codes")
struct KeylessErrorTests {
    /// The documented exit codes: 2 usage/config, 3 login, 4 STS refusal, 5 unreachable, 6 local store, 7 nesting.
    static let documentedExitCodes: [KeylessError.Code: Int32] = [
        .usage: 2, .configInvalid: 2,
        .loginRequired: 3, .loginFailed: 3, .stateMismatch: 3, .tokenInvalid: 3, .passphraseRequired: 3,
        .stsAccessDenied: 4, .stsExpiredToken: 4, .stsInvalidIdentityToken: 4, .stsError: 4,
        .idpUnreachable: 5, .idpError: 5, .stsUnreachable: 5,
        .cacheCorrupt: 6, .cacheInsecure: 6, .secretStoreUnavailable: 6, .lockTimeout: 6, .io: 6,
        .nested: 7,
    ]

    @Test("errors are equal when their codes are, whatever their reasons and hints")
    func equalityByCode() {
        #expect(KeylessError(.cacheCorrupt, "one reason") == KeylessError(.cacheCorrupt, "another", hint: "a hint"))
        #expect(KeylessError(.cacheCorrupt, "same") != KeylessError(.cacheInsecure, "same"))
    }

    @Test("every code has its documented exit code, never 0 or 1", arguments: KeylessError.Code.allCases)
    func exitCodes(code: KeylessError.Code) throws {
        let exitCode = KeylessError(code, "reason").exitCode
        let documented = try #require(
            Self.documentedExitCodes[code], "code \(code.rawValue) has no documented exit code")

        #expect(exitCode == documented)
        #expect((2...7).contains(exitCode))
    }

    @Test("the documented table lists exactly the codes that exist")
    func tableIsComplete() {
        #expect(Set(Self.documentedExitCodes.keys) == Set(KeylessError.Code.allCases))
    }

    @Test("code names are stable snake_case strings")
    func codeNames() {
        #expect(KeylessError.Code.configInvalid.rawValue == "config_invalid")
        #expect(KeylessError.Code.passphraseRequired.rawValue == "passphrase_required")
        #expect(KeylessError.Code.lockTimeout.rawValue == "lock_timeout")
        for code in KeylessError.Code.allCases {
            #expect(code.rawValue.allSatisfy { $0.isLowercase || $0 == "_" }, "\(code.rawValue)")
        }
        #expect(Set(KeylessError.Code.allCases.map(\.rawValue)).count == KeylessError.Code.allCases.count)
    }

    @Test(
        "a reason or hint quoting a peer cannot drive the terminal: escape sequences, carriage returns and bidi overrides are shown escaped"
    )
    func terminalSafeDescription() {
        let error = KeylessError(
            .idpError, "rejected: \u{1B}]0;owned\u{07}\u{1B}[2Jgone\rfake \u{202E}txt.exe",
            hint: "try \u{1B}[31mred\nnext line\tok é 東京")
        #expect(
            error.description
                == "rejected: \\u{1B}]0;owned\\u{07}\\u{1B}[2Jgone\\rfake \\u{202E}txt.exe (idp_error)\n  → try \\u{1B}[31mred\nnext line\tok é 東京"
        )
        #expect(!error.description.unicodeScalars.contains { $0.value == 0x1B || $0 == "\r" || $0.value == 0x202E })
    }

    @Test("the description gives the reason, the code and the hint")
    func description() {
        let withHint = KeylessError(.lockTimeout, "Another process holds the lock.", hint: "Retry.")
        #expect(withHint.description == "Another process holds the lock. (lock_timeout)\n  → Retry.")
        #expect(KeylessError(.io, "Disk full.").description == "Disk full. (io)")
    }
}
