import Foundation

/// What the embedded OpenID Provider keeps between requests: signing keys, browser sessions, authorization codes,
/// refresh-token families and device codes.
///
/// Secrets never reach a store in the clear: codes, refresh tokens, device codes and session ids are stored as
/// their SHA-256 (hex), and private signing keys sealed by the caller. Every method that spends something
/// (`consumeCode`, `rotateRefreshToken`, `pollDevice`) is atomic across processes sharing the store, so a code is
/// redeemed once even when two replicas race for it. All times are passed in (`now:`); stores keep millisecond
/// precision (rounding to the nearest millisecond).
///
/// A record with an `expiresAt` is live while `now < expiresAt`: at its expiry instant it has expired. Storing a record
/// whose key (hash, kid, user code) is already stored throws `IdPStoreError`.
public protocol IdPStore: Sendable {
    /// Creates or upgrades the schema; safe to call from several processes at once.
    func migrate() async throws
    /// Releases connections.
    func close() async throws

    // MARK: Signing keys

    /// Every stored key, oldest first (keys made in the same millisecond in the order they were stored).
    func signingKeys() async throws -> [SigningKeyRecord]
    /// Adds `key`. With `onlyIfEmpty`, adds it only when the store holds no key at all (first start of several
    /// replicas at once) and returns whether it was added.
    @discardableResult
    func insertSigningKey(_ key: SigningKeyRecord, onlyIfEmpty: Bool) async throws -> Bool
    /// Sets when `kid` stops signing and when it leaves the JWKS; an unknown `kid` changes nothing.
    func retireSigningKey(kid: String, retiresAt: Date, expiresAt: Date) async throws
    /// Deletes keys whose `expiresAt` is before `now`.
    func deleteExpiredSigningKeys(now: Date) async throws

    // MARK: Browser sessions

    /// Stores a login session (the cookie holds the id, the store its hash).
    func insertSession(_ session: SessionRecord) async throws
    /// The session with this id hash, unless it has expired.
    func session(idHash: String, now: Date) async throws -> SessionRecord?
    /// Ends a session.
    func deleteSession(idHash: String) async throws

    // MARK: Authorization codes

    /// Stores a new code.
    func insertCode(_ code: AuthorizationCodeRecord) async throws
    /// Spends a code: the first call returns `.redeemed`; any later call, from any process, `.replayed` with the
    /// refresh family the code started (so its tokens can be revoked); an unknown or expired code `.notFound`.
    /// A spent code stays `.replayed` after its expiry, until `purgeExpired` deletes it. The store does not revoke the
    /// family itself: the caller does, with `revokeFamily`.
    func consumeCode(hash: String, now: Date) async throws -> CodeRedemption

    // MARK: Refresh tokens

    /// Stores a refresh token; the first token of a family creates the family.
    func insertRefreshToken(_ token: RefreshTokenRecord) async throws
    /// Spends a refresh token for rotation and stores its `successor` in the same transaction, so no failure or crash
    /// can leave a login with its token spent and no successor stored. The first use returns `.valid` (the spent
    /// token's record; the successor inherits its family, client, scope and authentication); a second use of the same
    /// token revokes its whole family in the same transaction and returns `.reused`; tokens of a revoked family give
    /// `.revoked`; unknown or expired ones `.notFound`. Only `.valid` stores the successor; a successor whose hash is
    /// already stored throws `IdPStoreError` and spends nothing.
    /// The checks run in that order: a revoked family gives `.revoked` (so a third use of a reused token is `.revoked`),
    /// then a used token `.reused` (even past its expiry), then an expired token `.notFound`. A token has expired when
    /// its own `expiresAt` or its family's (the first token's `expiresAt`) has passed. Only `.valid` spends the token.
    func rotateRefreshToken(hash: String, now: Date, successor: RefreshSuccessor) async throws -> RefreshRedemption
    /// Revokes a whole family: none of its tokens works again, including tokens stored for it afterwards (a family
    /// not yet stored is remembered as revoked, for a code replayed while its first redemption is issuing tokens).
    func revokeFamily(id: String) async throws
    /// A refresh token's record as stored (used or not, expired or not, until purged), without spending it: the token
    /// endpoint checks a request against it before rotating.
    func refreshToken(hash: String) async throws -> RefreshTokenRecord?
    /// The family of a refresh token (used or not, expired or not, until purged), for RFC 7009 revocation.
    func familyOfRefreshToken(hash: String) async throws -> String?

    // MARK: Device codes

    /// Stores a device authorization (RFC 8628).
    func insertDeviceCode(_ device: DeviceCodeRecord) async throws
    /// The pending or decided (approved, denied or consumed) device authorization with this user code, unless it has
    /// expired. User codes are compared as given: the caller normalises them.
    func deviceCode(userCode: String, now: Date) async throws -> DeviceCodeRecord?
    /// Approves a pending, unexpired device authorization for a user; false when there is none.
    func approveDevice(userCode: String, approval: DeviceApproval, now: Date) async throws -> Bool
    /// Denies a pending, unexpired device authorization; false when there is none.
    func denyDevice(userCode: String, now: Date) async throws -> Bool
    /// One poll of the token endpoint: enforces the interval (a poll sooner than `interval` seconds after the
    /// previous one gives `.slowDown` and adds 5 s to the interval), and hands out an approval exactly once.
    /// In order: unknown or already collected → `.notFound`; expired (whatever its state) → `.expired`; denied →
    /// `.denied`; approved → `.approved` with the record as now stored (status `.consumed`). Only a pending
    /// authorization is held to the interval (RFC 8628 makes `slow_down` a kind of `authorization_pending`), measured
    /// from the previous poll whatever that poll answered; the first poll is never too soon.
    func pollDevice(deviceCodeHash: String, now: Date) async throws -> DevicePoll

    // MARK: Single-use values and throttle counters
    // Keys are short printable text without NUL (callers hash what they count); PostgreSQL refuses NUL in text.

    /// Spends a single-use value (a one-time code's time step, a client assertion's `jti`), remembered until
    /// `expiresAt`: true the first time, false while it is remembered, whichever process sharing the store asks. Of
    /// concurrent spends of one key exactly one is true. Once `expiresAt` has passed the key may be spent again.
    func spendOnce(key: String, expiresAt: Date, now: Date) async throws -> Bool

    /// Adds `delta` to each of `keys`' counters in one atomic step and returns them as they are afterwards, in the order
    /// of `keys`. A positive `delta` sets the counter's last increase to `now`; a negative one takes attempts back
    /// (never below zero) and leaves it. A counter lives until `window` seconds after its last increase; an expired or
    /// absent counter counts from zero. Replicas share the counters, so throttles hold across them.
    func addToCounters(_ keys: [String], delta: Int, window: TimeInterval, now: Date) async throws -> [ThrottleCounter]
    /// The counters of `keys` as they are at `now` (zero for absent or expired ones), in the order of `keys`.
    func counters(_ keys: [String], now: Date) async throws -> [ThrottleCounter]
    /// Deletes a counter (after a successful login, its user-and-address counter).
    func deleteCounter(_ key: String) async throws

    // MARK: Passkeys

    /// Stores a newly registered passkey: false (and nothing stored) when a passkey with its credential id exists,
    /// whoever's it is (WebAuthn §7.1: credential ids are unique; another account's id is never taken over).
    func insertPasskey(_ passkey: PasskeyRecord) async throws -> Bool
    /// The passkeys of `subject`, oldest first.
    func passkeys(subject: String) async throws -> [PasskeyRecord]
    /// The passkey with `credentialID` (base64url), whoever's it is.
    func passkey(credentialID: String) async throws -> PasskeyRecord?
    /// Records a sign-in with a passkey: sets its counter to `signCount`, its backed-up state and its last use, only if
    /// its counter is still `previousSignCount` (a compare-and-set: of two sign-ins racing with one counter value, one
    /// wins). False when the passkey is gone or its counter moved.
    func recordPasskeyUse(
        credentialID: String, previousSignCount: Int64, signCount: Int64, backedUp: Bool, at: Date
    ) async throws -> Bool
    /// Deletes `subject`'s passkey `credentialID`; false when `subject` has no such passkey.
    func deletePasskey(credentialID: String, subject: String) async throws -> Bool

    // MARK: Housekeeping

    /// Deletes expired sessions, codes (spent or not), device codes, single-use values and counters, and refresh
    /// families whose absolute expiry has passed (with their tokens); a family revoked before it had tokens is deleted
    /// once no stored code or device approval names it.
    func purgeExpired(now: Date) async throws
}

/// A registered passkey (a WebAuthn credential) of a person of the provider.
public struct PasskeyRecord: Sendable, Equatable {
    /// The credential id, base64url (unique across the store).
    public var credentialID: String
    /// Whose it is: the `sub` of the person's tokens.
    public var subject: String
    /// The user handle (`user.id`) it was created with, base64url: what a sign-in without a user name returns.
    public var userHandle: String
    /// The name the person gave it ("YubiKey 5C", "MacBook").
    public var name: String
    /// The COSE_Key bytes as the authenticator encoded them.
    public var publicKey: [UInt8]
    /// The signature counter last seen (0 for authenticators without one).
    public var signCount: Int64
    /// The authenticator model's AAGUID as a UUID's text (all zeros when it did not say).
    public var aaguid: String
    /// Whether it may be synced to other devices (BE): a synced passkey is software-held, a device-bound one hardware.
    public var backupEligible: Bool
    /// Whether it was backed up at its last use (BS).
    public var backedUp: Bool
    /// Where the browser can find it (usb, nfc, ble, internal, hybrid).
    public var transports: [String]
    /// What its attestation proved: `none`, `self`, or `certified` (with the certificate's subject).
    public var attestation: String
    public var createdAt: Date
    public var lastUsedAt: Date?

    public init(
        credentialID: String, subject: String, userHandle: String, name: String, publicKey: [UInt8], signCount: Int64,
        aaguid: String, backupEligible: Bool, backedUp: Bool, transports: [String], attestation: String,
        createdAt: Date, lastUsedAt: Date? = nil
    ) {
        self.credentialID = credentialID
        self.subject = subject
        self.userHandle = userHandle
        self.name = name
        self.publicKey = publicKey
        self.signCount = signCount
        self.aaguid = aaguid
        self.backupEligible = backupEligible
        self.backedUp = backedUp
        self.transports = transports
        self.attestation = attestation
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }
}

/// A throttle counter: how many attempts, and when the last one was counted.
public struct ThrottleCounter: Sendable, Equatable {
    /// Attempts counted and not taken back.
    public var count: Int
    /// When the count last went up; nil for an absent or expired counter.
    public var lastIncrease: Date?

    /// A counter.
    public init(count: Int, lastIncrease: Date?) { self.count = count; self.lastIncrease = lastIncrease }

    /// An absent or expired counter.
    public static let zero = ThrottleCounter(count: 0, lastIncrease: nil)
}

/// A signing key as stored: the private key sealed by the caller, the public JWK in the clear.
public struct SigningKeyRecord: Sendable, Equatable {
    /// Key id (`kid`).
    public var kid: String
    /// `RS256` or `ES256`.
    public var algorithm: String
    /// The private key, sealed (AES-GCM) by the key ring; opaque to the store.
    public var sealedPrivateKey: Data
    /// The public key as a JWK (JSON object text).
    public var publicJWK: String
    /// When it was made.
    public var createdAt: Date
    /// When it starts signing; until then it is only published.
    public var activatesAt: Date
    /// When it stopped signing (its successor activated), if it has.
    public var retiresAt: Date?
    /// When it leaves the JWKS (every token it signed has expired), if retired.
    public var expiresAt: Date?

    /// A key record.
    public init(
        kid: String, algorithm: String, sealedPrivateKey: Data, publicJWK: String, createdAt: Date, activatesAt: Date,
        retiresAt: Date? = nil, expiresAt: Date? = nil
    ) {
        self.kid = kid; self.algorithm = algorithm; self.sealedPrivateKey = sealedPrivateKey; self.publicJWK = publicJWK
        self.createdAt = createdAt; self.activatesAt = activatesAt; self.retiresAt = retiresAt;
        self.expiresAt = expiresAt
    }
}

/// How a user authenticated, carried from the login into codes, tokens and sessions.
public struct Authentication: Sendable, Equatable, Codable {
    /// The user's subject (`sub`).
    public var subject: String
    /// When the user authenticated.
    public var authTime: Date
    /// Authentication methods (`pwd`, `otp`, `mfa`).
    public var amr: [String]
    /// Who the person is in the connector that signed them in (a directory); nil for the users of `idp.yaml`.
    public var identity: ConnectedIdentity?

    /// An authentication.
    public init(subject: String, authTime: Date, amr: [String], identity: ConnectedIdentity? = nil) {
        self.subject = subject; self.authTime = authTime; self.amr = amr; self.identity = identity
    }
}

/// A person as a connector (an LDAP directory, Active Directory) described them at sign-in: what tokens say about them
/// until the connector is asked again (every refresh, every reuse of a browser session). Stored as JSON.
public struct ConnectedIdentity: Sendable, Equatable, Codable {
    /// The connector's id in `idp.yaml`.
    public var connector: String
    /// Where the connector finds the person again (a directory entry's DN).
    public var reference: String
    /// `preferred_username`.
    public var username: String?
    public var email: String?
    /// `name`.
    public var name: String?
    /// `groups`, as released (already prefixed).
    public var groups: [String]
    /// AWS session tags from the person's attributes (`https://aws.amazon.com/tags`), when the connector maps some.
    public var awsTags: [String: String]?
    /// AWS source identity (`https://aws.amazon.com/source_identity`), when the connector maps one.
    public var awsSourceIdentity: String?
    /// More claims the connector maps (claim name → value), released with the `profile` scope.
    public var extraClaims: [String: String]?

    /// An identity.
    public init(
        connector: String, reference: String, username: String?, email: String?, name: String?, groups: [String],
        awsTags: [String: String]? = nil, awsSourceIdentity: String? = nil, extraClaims: [String: String]? = nil
    ) {
        self.connector = connector; self.reference = reference; self.username = username; self.email = email
        self.name = name; self.groups = groups; self.awsTags = awsTags; self.awsSourceIdentity = awsSourceIdentity
        self.extraClaims = extraClaims
    }

    /// The JSON kept in a store's `identity` column.
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Reads a store's `identity` column (nil when it is NULL).
    public static func fromStore(_ text: String?) throws -> ConnectedIdentity? {
        guard let text else { return nil }
        do {
            return try JSONDecoder().decode(ConnectedIdentity.self, from: Data(text.utf8))
        } catch {
            throw IdPStoreError("the IdP database holds an unreadable connector identity \(text.prefix(40)): \(error)")
        }
    }
}

/// A browser login session.
public struct SessionRecord: Sendable, Equatable {
    /// SHA-256 (hex) of the session id in the cookie.
    public var idHash: String
    /// Who logged in, when and how.
    public var authentication: Authentication
    /// When it ends.
    public var expiresAt: Date

    /// A session record.
    public init(idHash: String, authentication: Authentication, expiresAt: Date) {
        self.idHash = idHash; self.authentication = authentication; self.expiresAt = expiresAt
    }
}

/// An authorization code and everything the token endpoint must check when it is redeemed.
public struct AuthorizationCodeRecord: Sendable, Equatable {
    /// SHA-256 (hex) of the code.
    public var codeHash: String
    /// The client it was issued to.
    public var clientID: String
    /// The redirect URI of the authorization request (must match at the token endpoint).
    public var redirectURI: String
    /// Granted scopes, space separated.
    public var scope: String
    /// The request's nonce, echoed into the ID token.
    public var nonce: String?
    /// PKCE challenge and method (`S256` or `plain`).
    public var codeChallenge: String?
    /// PKCE method.
    public var codeChallengeMethod: String?
    /// Who authenticated.
    public var authentication: Authentication
    /// The refresh family its tokens will belong to (revoked if the code is replayed).
    public var familyID: String
    /// When it stops being redeemable.
    public var expiresAt: Date

    /// A code record.
    public init(
        codeHash: String, clientID: String, redirectURI: String, scope: String, nonce: String?, codeChallenge: String?,
        codeChallengeMethod: String?, authentication: Authentication, familyID: String, expiresAt: Date
    ) {
        self.codeHash = codeHash; self.clientID = clientID; self.redirectURI = redirectURI; self.scope = scope;
        self.nonce = nonce
        self.codeChallenge = codeChallenge; self.codeChallengeMethod = codeChallengeMethod;
        self.authentication = authentication
        self.familyID = familyID; self.expiresAt = expiresAt
    }
}

/// What spending a code gave.
public enum CodeRedemption: Sendable, Equatable {
    /// First use: here is the code.
    case redeemed(AuthorizationCodeRecord)
    /// Already used: the family its tokens belong to.
    case replayed(familyID: String)
    /// Unknown or expired.
    case notFound
}

/// A refresh token of a family. Families end together: on reuse, revocation or the family's absolute expiry.
public struct RefreshTokenRecord: Sendable, Equatable {
    /// SHA-256 (hex) of the token.
    public var tokenHash: String
    /// The family (one login).
    public var familyID: String
    public var clientID: String
    /// Granted scopes.
    public var scope: String
    /// Who authenticated, when, how.
    public var authentication: Authentication
    /// When this token was issued.
    public var issuedAt: Date
    /// When it (and, for the first token, the family) stops working.
    public var expiresAt: Date

    /// A refresh-token record.
    public init(
        tokenHash: String, familyID: String, clientID: String, scope: String, authentication: Authentication,
        issuedAt: Date, expiresAt: Date
    ) {
        self.tokenHash = tokenHash; self.familyID = familyID; self.clientID = clientID; self.scope = scope
        self.authentication = authentication; self.issuedAt = issuedAt; self.expiresAt = expiresAt
    }
}

/// The token that replaces a refresh token when it is spent; the rest of its record is the spent token's.
public struct RefreshSuccessor: Sendable, Equatable {
    /// SHA-256 (hex) of the new token.
    public var tokenHash: String
    /// When it is issued (the rotation's time).
    public var issuedAt: Date
    /// When it stops working (its family's expiry still applies).
    public var expiresAt: Date
    /// The connector's identity as read at this refresh (a directory's current groups, an upstream provider's new
    /// refresh token), replacing the spent token's; nil keeps the spent token's.
    public var identity: ConnectedIdentity?

    /// A successor token.
    public init(tokenHash: String, issuedAt: Date, expiresAt: Date, identity: ConnectedIdentity? = nil) {
        self.tokenHash = tokenHash; self.issuedAt = issuedAt; self.expiresAt = expiresAt; self.identity = identity
    }

    /// The successor's full record, inheriting the spent token's family, client, scope and authentication (with
    /// `identity` in place of the spent token's, when given).
    public func record(replacing spent: RefreshTokenRecord) -> RefreshTokenRecord {
        var authentication = spent.authentication
        if let identity { authentication.identity = identity }
        return RefreshTokenRecord(
            tokenHash: tokenHash, familyID: spent.familyID, clientID: spent.clientID, scope: spent.scope,
            authentication: authentication, issuedAt: issuedAt, expiresAt: expiresAt)
    }
}

/// What spending a refresh token gave.
public enum RefreshRedemption: Sendable, Equatable {
    /// First use: rotate it.
    case valid(RefreshTokenRecord)
    /// Used before: someone replayed it; the store has revoked `familyID`.
    case reused(familyID: String)
    /// Its family was revoked.
    case revoked
    /// Unknown or expired.
    case notFound
}

/// A device authorization (RFC 8628).
public struct DeviceCodeRecord: Sendable, Equatable {
    /// SHA-256 (hex) of the device code.
    public var deviceCodeHash: String
    /// The code the user types (stored normalised: upper case, no dash).
    public var userCode: String
    public var clientID: String
    /// Requested scopes.
    public var scope: String
    /// Minimum seconds between polls.
    public var interval: Int
    /// When it expires.
    public var expiresAt: Date
    /// The decision, once made.
    public var status: DeviceStatus
    /// Who approved it.
    public var approval: DeviceApproval?

    /// A device-code record.
    public init(
        deviceCodeHash: String, userCode: String, clientID: String, scope: String, interval: Int, expiresAt: Date,
        status: DeviceStatus = .pending, approval: DeviceApproval? = nil
    ) {
        self.deviceCodeHash = deviceCodeHash; self.userCode = userCode; self.clientID = clientID; self.scope = scope
        self.interval = interval; self.expiresAt = expiresAt; self.status = status; self.approval = approval
    }
}

/// The state of a device authorization.
public enum DeviceStatus: String, Sendable, Equatable {
    /// Waiting for the user.
    case pending
    /// Approved; not yet collected.
    case approved
    /// Denied by the user.
    case denied
    /// Approved and its tokens handed out.
    case consumed
}

/// The user's approval of a device authorization.
public struct DeviceApproval: Sendable, Equatable, Codable {
    /// Who approved, when they authenticated, how.
    public var authentication: Authentication
    /// The refresh family the device's tokens start.
    public var familyID: String

    /// An approval.
    public init(authentication: Authentication, familyID: String) {
        self.authentication = authentication; self.familyID = familyID
    }
}

/// What one poll of the token endpoint with a device code gave.
public enum DevicePoll: Sendable, Equatable {
    /// The user has not decided yet (`authorization_pending`).
    case pending
    /// Polled too fast (`slow_down`); the new interval.
    case slowDown(interval: Int)
    /// The user denied it (`access_denied`).
    case denied
    /// Expired (`expired_token`).
    case expired
    /// Approved: issue tokens (handed out once).
    case approved(DeviceCodeRecord)
    /// Unknown, or already collected (`invalid_grant`).
    case notFound
}

/// A store failure that is not the caller's fault (database down, schema newer than this program).
public struct IdPStoreError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public var description: String
    /// An error.
    public init(_ description: String) { self.description = description }
}
