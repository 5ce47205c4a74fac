import Crypto
import Foundation
import KeylessCore
import KeylessDirectory
import KeylessJOSE
import KeylessStorage

/// Signing in: passwords and one-time codes (throttled), form tokens, and sessions.
extension OAuthEngine {
    // MARK: Login

    /// Checks a username, password and (when the user has one) a one-time code against `connector` (an id of
    /// `connectors:`; nil: the first one), throttled as `ThrottleLimits` says. Unknown users cost the same as wrong
    /// passwords. A one-time code is spent in the store: no replica accepts it, or an earlier code of the same user,
    /// again.
    /// `phishingResistant`: the client asked for a passkey sign-in (`acr_values=phr`): a person with a passkey must use
    /// it, even when they also typed a one-time code.
    public func login(
        connector connectorID: String? = nil, username: String, password: String, otp: String?, address: String,
        phishingResistant: Bool = false
    ) async -> Result<Authentication, LoginFailure> {
        // Only password connectors take a password: an upstream provider's people sign in there, never here.
        let candidates = config.effectiveConnectors.filter { $0.type == "local" || $0.type == "ldap" }
        guard let connector = connectorID == nil ? candidates.first : candidates.first(where: { $0.id == connectorID })
        else { return .failure(.invalid) }
        if connector.type == "ldap" {
            return await directoryLogin(connector, username: username, password: password, address: address)
        }
        let now = clock.now()
        do {
            // The attempt counts before the password is checked, so parallel guesses cannot outrun the limit.
            if let wait = try await throttle.beginLogin(user: username, address: address, now: now) {
                return .failure(.throttled(retryAfter: wait))
            }
            let user = config.user(username)
            // Same cost for unknown users.
            let hash = user.flatMap { PasswordHash($0.passwordHash) } ?? ClientAuthenticator.dummyHash
            let valid: Bool
            do { valid = try await loginPool.run { await hash.verifyOffloaded(password) } } catch is WorkPoolFull {
                // Nothing was checked: the attempt is not a failure.
                try await throttle.loginNotAttempted(user: username, address: address, now: now)
                return .failure(.unavailable(retryAfter: 1))
            }
            guard valid, let user else { return .failure(.invalid) }
            let subject = user.subject ?? user.username
            var amr = ["pwd"]
            // A person with passkeys needs one after the password; a one-time code, when they also have one, may take
            // its place (a lost security key does not lock them out, and roles that need a passkey still refuse it).
            let codeGiven = !(otp ?? "").isEmpty
            let passkeys = try await hasPasskeys(subject)
            if let secretText = user.totpSecret, (codeGiven && !(phishingResistant && passkeys)) || !passkeys {
                // A secret that does not decode fails closed: never a login with the password alone.
                guard let secret = TOTP.base32Decode(secretText), secret.count >= 10 else { return .failure(.invalid) }
                guard let otp, codeGiven else { return .failure(.otpRequired) }
                guard let counter = TOTP.matchingCounter(secret: secret, candidate: otp, at: now),
                    try await spendOneTimeCode(user: user.username, counter: counter)
                else {
                    return .failure(.invalid)
                }
                amr = ["pwd", "otp", "mfa"]
            } else if passkeys,
                let step = try await passkeySecondFactorStart(
                    after: Authentication(subject: subject, authTime: now, amr: amr))
            {
                // The password was right: the throttle forgets the attempt; the passkey cannot be guessed.
                try await throttle.loginSucceeded(user: username, address: address, now: now)
                return .failure(.passkeyRequired(step))
            }
            try await throttle.loginSucceeded(user: username, address: address, now: now)
            return .success(Authentication(subject: subject, authTime: now, amr: amr))
        } catch {
            return .failure(.unavailable(retryAfter: 5))
        }
    }

    /// A login through a directory: the person's own bind checks the password, the entry gives the claims.
    func directoryLogin(
        _ connector: IdPConfiguration.Connector, username: String, password: String, address: String
    ) async -> Result<Authentication, LoginFailure> {
        let now = clock.now()
        // Directories match names without regard to case or surrounding spaces: so does the throttle, or "ALICE" and
        // " alice" would each get their own free guesses.
        let throttleName = connector.id + "\u{0}" + username.trimmingCharacters(in: .whitespaces).lowercased()
        do {
            if let wait = try await throttle.beginLogin(user: throttleName, address: address, now: now) {
                return .failure(.throttled(retryAfter: wait))
            }
            guard let directory = connectors.ldap[connector.id] else {
                try await throttle.loginNotAttempted(user: throttleName, address: address, now: now)
                return .failure(
                    .directoryUnavailable(connector: connector.displayName, reason: "the connector was not opened"))
            }
            let person: DirectoryIdentity
            do {
                person = try await directory.authenticate(username: username, password: password)
            } catch let error as DirectoryLoginError {
                switch error {
                case .invalidCredentials: return .failure(.invalid)
                case .unavailable(let reason):
                    try await throttle.loginNotAttempted(user: throttleName, address: address, now: now)
                    return .failure(.directoryUnavailable(connector: connector.displayName, reason: reason))
                case .accountDisabled, .accountLocked, .passwordExpired:
                    return .failure(.accountRefused(error.description))
                }
            }
            try await throttle.loginSucceeded(user: throttleName, address: address, now: now)
            return .success(
                Authentication(
                    subject: connector.subjectPrefix + person.subject, authTime: now, amr: ["pwd"],
                    identity: Self.connected(person, connector)))
        } catch {
            return .failure(.unavailable(retryAfter: 5))
        }
    }

    /// What tokens say about a person a directory describes.
    static func connected(_ person: DirectoryIdentity, _ connector: IdPConfiguration.Connector) -> ConnectedIdentity {
        let aws = AWSClaimValues.claims(connector.aws) { person.attributes[$0] }
        return ConnectedIdentity(
            connector: connector.id, reference: person.dn, username: person.username, email: person.email,
            name: person.name, groups: person.groups.map { connector.effectiveGroupsPrefix + $0 }, awsTags: aws.tags,
            awsSourceIdentity: aws.sourceIdentity,
            extraClaims: connector.extraClaims.map { $0.compactMapValues { person.attributes[$0] } })
    }

    /// Whether an authentication still stands, asked of its source: the users of idp.yaml, or the directory again
    /// (fresh email, name and groups; a person deleted, disabled, or whose entry now holds someone else, is gone).
    public enum Freshness: Sendable, Equatable {
        /// It stands, with what the source says now.
        case current(Authentication)
        /// It does not: the reason, for the client and the log.
        case gone(String)
        /// The source cannot be asked now: neither yes nor no.
        case unavailable(String)
    }

    /// Asks `authentication`'s source whether it still stands (every refresh, every reuse of a browser session).
    /// `askUpstream`: a brokered login asks the upstream provider (a refresh); a browser session does not.
    public func freshness(of authentication: Authentication, askUpstream: Bool = true) async -> Freshness {
        guard let identity = authentication.identity else {
            return config.user(subject: authentication.subject) == nil
                ? .gone("the user no longer exists.") : .current(authentication)
        }
        guard let connector = config.connector(identity.connector), connector.type != "local" else {
            return .gone("the connector '\(identity.connector)' that signed this user in is no longer configured.")
        }
        if connector.type == "oidc" {
            return await upstreamFreshness(
                authentication, identity: identity, connector: connector, askUpstream: askUpstream)
        }
        guard let directory = connectors.ldap[connector.id] else {
            return .gone("the connector '\(identity.connector)' that signed this user in is no longer configured.")
        }
        do {
            guard let person = try await directory.refresh(dn: identity.reference) else {
                return .gone("the user no longer exists in the directory.")
            }
            guard connector.subjectPrefix + person.subject == authentication.subject else {
                return .gone("the directory entry now belongs to someone else.")
            }
            var current = authentication
            current.identity = Self.connected(person, connector)
            return .current(current)
        } catch DirectoryLoginError.unavailable(let reason) {
            return .unavailable(reason)
        } catch {
            return .gone("\(error).")
        }
    }

    /// Spends a one-time code's time step for a user, and the step before it, so that neither that code nor an earlier
    /// one still inside the accepted window works again (RFC 6238 §5.2). Remembered until the step can no longer match.
    func spendOneTimeCode(user: String, counter: UInt64) async throws -> Bool {
        func key(_ step: UInt64) -> String { Throttle.key("otp", user.lowercased() + "\u{0}" + String(step)) }
        let until = Date(timeIntervalSince1970: TimeInterval(counter + 2) * 30)
        guard try await store.spendOnce(key: key(counter), expiresAt: until, now: clock.now()) else { return false }
        if counter > 0 { _ = try await store.spendOnce(key: key(counter - 1), expiresAt: until, now: clock.now()) }
        return true
    }

    // MARK: Form tokens

    /// The anti-forgery token of the provider's forms: an HMAC, under a key derived from the key-encryption key (so
    /// every replica computes the same), of the browser's random form cookie and of its session cookie. A token is
    /// thus good only for the browser that holds both cookies: someone who can plant a form cookie in a victim's
    /// browser still cannot make a token for the victim's session.
    public func formToken(binding: String, session: String?) -> String {
        let message = "keyless-form\u{0}" + binding + "\u{0}" + (session.map(Self.hash) ?? "")
        return Base64URL.encode(Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: formKey)))
    }

    /// Whether `token` is the form token for these cookies (compared in constant time).
    public func checkFormToken(_ token: String, binding: String, session: String?) -> Bool {
        constantTimeEqual(Array(token.utf8), Array(formToken(binding: binding, session: session).utf8))
    }

    /// Starts a browser session; returns the cookie value.
    public func startSession(_ authentication: Authentication) async throws -> String {
        let id = randomToken()
        try await store.insertSession(
            SessionRecord(
                idHash: Self.hash(id), authentication: authentication,
                expiresAt: clock.now().addingTimeInterval(TimeInterval(config.lifetimes.session))))
        return id
    }

    /// The authentication of a live session cookie.
    public func session(cookie: String?) async throws -> Authentication? {
        guard let cookie, !cookie.isEmpty, cookie.utf8.count < 200 else { return nil }
        guard let record = try await store.session(idHash: Self.hash(cookie), now: clock.now()) else { return nil }
        // A session is a login only while its source still vouches for the person; a directory that cannot be asked
        // sends the person to the login page, which says so.
        guard case .current(let authentication) = await freshness(of: record.authentication, askUpstream: false)
        else { return nil }
        return authentication
    }

    /// Ends a session.
    public func endSession(cookie: String?) async throws {
        guard let cookie, !cookie.isEmpty else { return }
        try await store.deleteSession(idHash: Self.hash(cookie))
    }
}
