import Crypto
import Foundation
import JWTKit
import KeylessCore
@testable import KeylessIdP
import KeylessStorage
import KeylessTestFakes
import Testing

@Suite("login: passwords, one-time codes and throttling")
struct LoginTests {
    @Test("the right password logs in with amr [pwd] at the clock's time; a wrong one or an unknown user is .invalid")
    func password() async throws {
        let f = try await EngineFixture()
        let auth = try await f.engine.login(
            username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.1"
        ).get()
        #expect(auth == Authentication(subject: "alice", authTime: Fixture.reference, amr: ["pwd"]))
        #expect(
            await f.engine.login(username: "alice", password: "wrong", otp: nil, address: "192.0.2.1")
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "mallory", password: Fixture.alicePassword, otp: nil, address: "192.0.2.1")
                == .failure(.invalid))
        let carol = try await f.engine.login(
            username: "carol", password: Fixture.carolPassword, otp: nil, address: "192.0.2.1"
        ).get()
        #expect(carol.subject == "u-carol-7")
    }

    @Test(
        "a user with a TOTP secret needs the code: none is .otpRequired, the right one adds otp and mfa, the same code again is .invalid"
    )
    func totp() async throws {
        let f = try await EngineFixture()
        let address = "192.0.2.2"
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: nil, address: address)
                == .failure(.otpRequired))
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: "", address: address)
                == .failure(.otpRequired))
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        let auth = try await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: address)
            .get()
        #expect(auth.amr == ["pwd", "otp", "mfa"])
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: address)
                == .failure(.invalid))
        // The next step's code works.
        f.clock.advance(by: 30)
        let next = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        #expect(next != code)
        #expect(
            try await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: next, address: address).get()
                .amr == ["pwd", "otp", "mfa"])
    }

    @Test("a wrong one-time code is .invalid, and so is a right code with a wrong password")
    func wrongOTP() async throws {
        let f = try await EngineFixture()
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: f.clock.now)
        let wrong = String(format: "%06d", (try #require(Int(code)) + 1) % 1_000_000)
        #expect(
            await f.engine.login(username: "bob", password: Fixture.bobPassword, otp: wrong, address: "192.0.2.3")
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "bob", password: "wrong", otp: code, address: "192.0.2.3")
                == .failure(.invalid))
    }

    @Test(
        "wrong passwords from one address delay that address's next attempts for the user, doubling each time; the user signs in from elsewhere meanwhile"
    )
    func delaysPerUserAndAddress() async throws {
        let f = try await EngineFixture()
        let attacker = "198.51.100.7", office = "203.0.113.9"
        for _ in 0..<3 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.invalid))
        }
        // Even the right password waits out the delay from the attacker's address.
        #expect(
            await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: attacker)
                == .failure(.throttled(retryAfter: 2)))
        for delay in [2, 4, 8, 16] {
            f.clock.advance(by: TimeInterval(delay))
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.invalid))
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                    == .failure(.throttled(retryAfter: delay * 2)))
        }
        // The user is not locked out: from another address the right password works at once.
        #expect(
            try await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: office)
                .get().amr == ["pwd"])
        // After the delay, the right password from the attacker's address works too, and clears that address's count.
        f.clock.advance(by: 32)
        #expect(
            try await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: attacker)
                .get().amr == ["pwd"])
        #expect(
            await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                == .failure(.invalid))
        #expect(
            await f.engine.login(username: "alice", password: "guess", otp: nil, address: attacker)
                == .failure(.invalid))
    }

    @Test("one guess a minute from one address, for an hour, never keeps the user from signing in elsewhere")
    func slowGuessingLocksNoOneOut() async throws {
        let f = try await EngineFixture()
        for minute in 0..<60 {
            _ = await f.engine.login(username: "alice", password: "guess-\(minute)", otp: nil, address: "198.51.100.7")
            if minute % 10 == 9 {
                let result = await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "203.0.113.\(minute)")
                #expect((try? result.get().amr) == ["pwd"], "minute \(minute): \(result)")
            }
            f.clock.advance(by: 60)
        }
    }

    @Test(
        "twelve parallel guesses for one user from one address: only the free three reach the password check, the rest are throttled"
    )
    func parallelGuessesCannotOutrunTheLimit() async throws {
        let f = try await EngineFixture()
        let results = await withTaskGroup(of: LoginFailure?.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    if case .failure(let failure) = await f.engine.login(
                        username: "alice", password: "guess", otp: nil, address: "198.51.100.8")
                    {
                        return failure
                    }
                    return nil
                }
            }
            return await group.reduce(into: [LoginFailure?]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == .invalid }.count == 3, "\(results)")
        #expect(results.filter { if case .throttled? = $0 { return true } else { return false } }.count == 9)
    }

    @Test("successful logins from one address do not count against it")
    func successesDoNotThrottleTheAddress() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(failuresPerAddress: 3))
        for _ in 0..<6 {
            #expect(
                try await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.9"
                ).get().amr == ["pwd"])
        }
    }

    @Test(
        "failures from one address over many users throttle every user from it for the window, and no one from elsewhere"
    )
    func throttlingPerAddress() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(failuresPerAddress: 3, window: 300))
        for user in ["alice", "bob", "mallory"] {
            #expect(
                await f.engine.login(username: user, password: "guess", otp: nil, address: "198.51.100.66")
                    == .failure(.invalid))
        }
        #expect(
            await f.engine.login(username: "carol", password: Fixture.carolPassword, otp: nil, address: "198.51.100.66")
                == .failure(.throttled(retryAfter: 300)))
        #expect(
            try await f.engine.login(
                username: "carol", password: Fixture.carolPassword, otp: nil, address: "198.51.100.67"
            ).get().amr == ["pwd"])
        #expect(
            try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.67"
            ).get().amr == ["pwd"])
    }

    @Test("failures for one user from many addresses reach the per-user limit, which then holds for every address")
    func throttlingPerUser() async throws {
        let f = try await EngineFixture(limits: ThrottleLimits(freeFailures: 10, failuresPerUser: 4, window: 600))
        for index in 0..<4 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: "198.51.100.\(index)")
                    == .failure(.invalid))
        }
        f.clock.advance(by: 100)
        #expect(
            await f.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: "203.0.113.1")
                == .failure(.throttled(retryAfter: 500)))
        #expect(
            try await f.engine.login(
                username: "carol", password: Fixture.carolPassword, otp: nil, address: "203.0.113.1"
            ).get().amr == ["pwd"])
    }

    @Test(
        "replicas sharing a store share the throttle and the one-time-code guard: a code used on one is refused on the other"
    )
    func replicasShareGuards() async throws {
        let store = MemoryIdPStore(), kek = SymmetricKey(size: .bits256)
        let a = try await EngineFixture(store: store, kek: kek), b = try await EngineFixture(store: store, kek: kek)
        let code = TOTP.code(secret: Fixture.bobTOTPSecret, at: a.clock.now)
        #expect(
            try await a.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: "192.0.2.10")
                .get().amr.contains("otp"))
        #expect(
            await b.engine.login(username: "bob", password: Fixture.bobPassword, otp: code, address: "192.0.2.11")
                == .failure(.invalid))
        // The code of the step before is spent with it: an older code cannot be used after a newer one.
        let earlier = TOTP.code(secret: Fixture.bobTOTPSecret, at: a.clock.now.addingTimeInterval(-30))
        #expect(
            await b.engine.login(username: "bob", password: Fixture.bobPassword, otp: earlier, address: "192.0.2.11")
                == .failure(.invalid))
        for _ in 0..<3 {
            _ = await a.engine.login(username: "alice", password: "guess", otp: nil, address: "198.51.100.5")
        }
        #expect(
            await b.engine.login(username: "alice", password: Fixture.alicePassword, otp: nil, address: "198.51.100.5")
                == .failure(.throttled(retryAfter: 2)))
    }

    @Test(
        "when every password-check slot and its queue are taken, a login is .unavailable at once and is not counted as a failure"
    )
    func busyPasswordChecks() async throws {
        let f = try await EngineFixture(loginPool: WorkPool(limit: 1, queue: 0))
        let gate = AsyncGate()
        let holder = Task { try await f.engine.loginPool.run { await gate.wait() } }
        while await f.engine.loginPool.busy == 0 { await Task.yield() }
        for _ in 0..<5 {
            #expect(
                await f.engine.login(
                    username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.12")
                    == .failure(.unavailable(retryAfter: 1)))
        }
        await gate.open()
        try await holder.value
        #expect(
            try await f.engine.login(
                username: "alice", password: Fixture.alicePassword, otp: nil, address: "192.0.2.12"
            ).get().amr == ["pwd"])
        for _ in 0..<3 {
            #expect(
                await f.engine.login(username: "alice", password: "guess", otp: nil, address: "192.0.2.12")
                    == .failure(.invalid))
        }
    }

    @Test("a TOTP secret that is not base32 refuses the login instead of dropping the second factor")
    func brokenTOTPSecretFailsClosed() async throws {
        // idp.yaml's checks refuse such a secret; a configuration built in code (IdPConfiguration.init) does not.
        let dave = IdPConfiguration.User(username: "dave", passwordHash: Fixture.bobHash, totpSecret: "not base32!")
        let f = try await EngineFixture(config: Fixture.config(extraUsers: [dave]))
        let result = await f.engine.login(
            username: "dave", password: Fixture.bobPassword, otp: nil, address: "192.0.2.4")
        if case .success(let auth) = result { Issue.record("logged in with the password alone: amr \(auth.amr)") }
    }

    @Test("a browser session lasts lifetimes.session and ends on logout")
    func sessions() async throws {
        let f = try await EngineFixture()
        let auth = f.authentication()
        let cookie = try await f.engine.startSession(auth)
        #expect(try await f.engine.session(cookie: cookie) == auth)
        #expect(try await f.engine.session(cookie: cookie + "x") == nil)
        f.clock.advance(by: TimeInterval(Fixture.lifetimes.session - 1))
        #expect(try await f.engine.session(cookie: cookie) == auth)
        f.clock.advance(by: 1)
        #expect(try await f.engine.session(cookie: cookie) == nil)
        let second = try await f.engine.startSession(auth)
        try await f.engine.endSession(cookie: second)
        #expect(try await f.engine.session(cookie: second) == nil)
    }
}
