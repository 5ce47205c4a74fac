import Crypto
import Foundation
import KeylessCore
import KeylessOIDC
import KeylessStorage

/// Brokering: "Sign in with <another OpenID Provider>". keyless idp is a relying party of the upstream provider
/// (authorization code with PKCE, `state` and `nonce`, the ID token verified), maps its claims and groups, checks the
/// connector's restrictions, then issues its own tokens. The upstream refresh token, sealed, travels with the login; a
/// refresh of keyless's tokens refreshes upstream first, so a session the upstream provider ended ends here too.
extension OAuthEngine {
    /// What the browser carries through the upstream provider, sealed (AES-GCM under a key derived from the
    /// key-encryption key, so every replica opens it): the request to resume, the PKCE verifier, the nonce.
    struct UpstreamState: Codable {
        var connector: String
        var request: [[String]]
        var nonce: String
        var verifier: String
        /// SHA-256 of the browser's upstream cookie: only the browser that started the sign-in finishes it.
        var browser: String
        var expires: Int
    }

    /// The sealed upstream session kept in a connector identity's `reference`.
    struct UpstreamSession: Codable {
        var refreshToken: String?
        /// When the upstream ID token expires: without a refresh token, the login stands only until then.
        var idTokenExpires: Int
    }

    /// Why an upstream sign-in did not finish.
    public enum UpstreamFailure: Error, Sendable, Equatable {
        /// The callback cannot be trusted (no such connector, a state that does not open, expired, replayed, or from
        /// another browser): an error page, never a redirect.
        case page(String)
        /// The person cannot sign in this way (the upstream provider refused, a restriction): the login page again
        /// with the message, for the resumed request.
        case refused(String, AuthorizationRequest)
        /// The upstream provider cannot be reached or answered wrongly: try again later.
        case unavailable(String, AuthorizationRequest)
    }

    /// Where the upstream provider sends the browser back: `<issuer>/callback/<connector id>`.
    public func upstreamRedirectURI(_ connector: String) -> String { issuer + "/callback/" + connector }

    /// Starts "Sign in with …" for `request`: the upstream authorization URL to send the browser to. `browser` is the
    /// value of a fresh cookie the server sets on that redirect.
    public func startUpstream(connector id: String, request: AuthorizationRequest, browser: String) async throws
        -> String
    {
        guard config.connector(id)?.type == "oidc", let client = connectors.upstream[id] else {
            throw KeylessError(.configInvalid, "no upstream connector '\(id)'.", hint: "Choose a listed connector.")
        }
        let pkce = PKCE()
        let nonce = randomToken()
        let state = UpstreamState(
            connector: id, request: request.fields.map { [$0.0, $0.1] }, nonce: nonce, verifier: pkce.verifier,
            browser: Self.hash(browser), expires: Self.seconds(clock.now()) + Self.upstreamStateLifetime)
        return try await client.authorizationURL(
            redirectURI: upstreamRedirectURI(id), state: try seal(state, purpose: "state"), nonce: nonce, pkce: pkce,
            offline: true)
    }

    /// How long a person has at the upstream provider (10 min).
    static let upstreamStateLifetime = 600

    /// Finishes an upstream sign-in from its callback's query; `browser` is the cookie set at the start.
    public func finishUpstream(connector id: String, query: [String: String], browser: String?) async -> Result<
        (Authentication, AuthorizationRequest), UpstreamFailure
    > {
        let expired =
            "This sign-in expired or was not started in this browser. Go back to the application and start again."
        guard let connector = config.connector(id), connector.type == "oidc", let client = connectors.upstream[id]
        else { return .failure(.page("There is no sign-in called '\(id)' here.")) }
        guard let sealed = query["state"], let state = open(sealed, as: UpstreamState.self, purpose: "state"),
            state.connector == id, state.expires > Self.seconds(clock.now()), let browser,
            constantTimeEqual(Array(Self.hash(browser).utf8), Array(state.browser.utf8))
        else { return .failure(.page(expired)) }
        var fields: [String: String] = [:]
        for pair in state.request where pair.count == 2 { fields[pair[0]] = pair[1] }
        guard case .success(let request) = validateAuthorization(fields) else { return .failure(.page(expired)) }
        do {
            // One use: a callback replayed (from history, a log, another tab) finds it spent.
            let until = Date(timeIntervalSince1970: TimeInterval(state.expires))
            guard try await store.spendOnce(key: Throttle.key("upstream", sealed), expiresAt: until, now: clock.now())
            else { return .failure(.page(expired)) }
        } catch {
            return .failure(.unavailable("the provider's database cannot be reached", request))
        }
        let name = connector.displayName
        if let error = query["error"] {
            let description = query["error_description"].map { ": " + String($0.prefix(200)) } ?? ""
            return .failure(.refused("\(name) did not sign you in (\(error)\(description)).", request))
        }
        guard let code = query["code"], !code.isEmpty else {
            return .failure(.refused("\(name) sent no authorization code back.", request))
        }
        let tokens: TokenSet
        do {
            tokens = try await client.exchange(
                code: code, redirectURI: upstreamRedirectURI(id), verifier: state.verifier, nonce: state.nonce)
        } catch let error as KeylessError {
            return .failure(.unavailable("\(name) could not complete the sign-in: \(error.reason)", request))
        } catch {
            return .failure(.unavailable("\(name) could not complete the sign-in: \(error)", request))
        }
        switch upstreamIdentity(connector, idToken: tokens.idToken, refreshToken: tokens.refreshToken) {
        case .failure(let refusal): return .failure(.refused(refusal.message, request))
        case .success(let (subject, identity, amr)):
            return .success(
                (Authentication(subject: subject, authTime: clock.now(), amr: amr, identity: identity), request))
        }
    }

    /// The identity an upstream ID token (already verified) describes, after the connector's restrictions.
    func upstreamIdentity(_ connector: IdPConfiguration.Connector, idToken: String, refreshToken: String?) -> Result<
        (String, ConnectedIdentity, [String]), UpstreamRefusal
    > {
        let name = connector.displayName
        guard let claims = UnverifiedJWT.claims(idToken, as: [String: JSONValue].self),
            let sub = claims["sub"]?.string, !sub.isEmpty, case .number(let exp) = claims["exp"], exp.isFinite,
            abs(exp) < 1e12
        else { return .failure(UpstreamRefusal("\(name) sent an ID token without a subject.")) }
        let mapping = connector.claims ?? IdPConfiguration.Connector.Claims()
        // An address the provider says it has not verified is no identity (OpenID Connect Core §5.7).
        let verified: Bool =
            switch claims["email_verified"] {
            case .bool(let value): value
            case .string(let text): text.lowercased() == "true"
            default: true
            }
        let email = verified ? claims[mapping.email ?? "email"]?.string : nil
        if let hosted = connector.hostedDomain, claims["hd"]?.string?.lowercased() != hosted.lowercased() {
            return .failure(UpstreamRefusal("Only accounts of \(hosted) may sign in with \(name)."))
        }
        if let tenant = connector.tenantID, claims["tid"]?.string?.lowercased() != tenant.lowercased() {
            return .failure(UpstreamRefusal("Only accounts of the organisation's own tenant may sign in with \(name)."))
        }
        if let domains = connector.emailDomains, !domains.isEmpty {
            let domain = email.flatMap { $0.split(separator: "@").last.map { $0.lowercased() } }
            guard let domain, domains.contains(where: { $0.lowercased() == domain }) else {
                return .failure(
                    UpstreamRefusal(
                        "Only verified addresses at \(domains.joined(separator: ", ")) may sign in with \(name)."))
            }
        }
        var groups: [String]
        switch claims[mapping.groups ?? "groups"] {
        case .array(let values): groups = values.compactMap(\.string)
        case .string(let single): groups = single.split(separator: " ").map(String.init)
        default: groups = []
        }
        // Entra ID puts no groups in a token for a person in more than 200 (150 for SAML) but points to Graph
        // instead ("groups overage": `_claim_names: {groups: src1}`, learn.microsoft.com/en-us/entra/identity-platform/
        // id-token-claims-reference#groups-overage-claim). Guessing would be wrong either way: say so.
        if claims[mapping.groups ?? "groups"] == nil, case .object(let names) = claims["_claim_names"],
            names[mapping.groups ?? "groups"] != nil, !(connector.allowedGroups ?? []).isEmpty
        {
            return .failure(
                UpstreamRefusal(
                    "\(name) sent no group list for your account (too many groups for one token); ask the administrator to release only the groups keyless needs (Entra: groups assigned to the application)."
                ))
        }
        if let allowed = connector.allowedGroups, !allowed.isEmpty {
            groups = groups.filter(allowed.contains)
            guard !groups.isEmpty else {
                return .failure(UpstreamRefusal("Your account at \(name) is in none of the groups allowed to sign in."))
            }
        }
        let session = UpstreamSession(refreshToken: refreshToken, idTokenExpires: Int(exp))
        guard let reference = try? seal(session, purpose: "session") else {
            return .failure(UpstreamRefusal("the upstream session could not be kept."))
        }
        let aws = AWSClaimValues.claims(connector.aws) { claims[$0]?.text }
        let identity = ConnectedIdentity(
            connector: connector.id, reference: reference,
            username: claims[mapping.username ?? "preferred_username"]?.string ?? email,
            email: email, name: claims[mapping.name ?? "name"]?.string,
            groups: Array(Set(groups)).sorted().map { connector.effectiveGroupsPrefix + $0 }, awsTags: aws.tags,
            awsSourceIdentity: aws.sourceIdentity,
            extraClaims: connector.extraClaims.map { $0.compactMapValues { claims[$0]?.text } })
        // Only registered methods (RFC 8176) are passed on; what the upstream provider did is its to say.
        let registered: Set<String> = [
            "face", "fpt", "geo", "hwk", "iris", "kba", "mca", "mfa", "otp", "pin", "pwd", "rba", "retina", "sc",
            "sms", "swk", "tel", "user", "vbm", "wia",
        ]
        let amr: [String] =
            switch claims["amr"] {
            case .array(let values): values.compactMap(\.string).filter(registered.contains)
            default: []
            }
        return .success((connector.subjectPrefix + sub, identity, amr))
    }

    /// Whether a brokered login still stands. For a token refresh (`askUpstream`), the upstream provider is asked
    /// with its refresh token (claims re-read, restrictions re-checked, a rotated token kept); a browser session is
    /// trusted only while the upstream ID token was valid (the upstream provider has its own single sign-on).
    func upstreamFreshness(
        _ authentication: Authentication, identity: ConnectedIdentity, connector: IdPConfiguration.Connector,
        askUpstream: Bool
    ) async -> Freshness {
        let name = connector.displayName
        guard let client = connectors.upstream[connector.id],
            let session = open(identity.reference, as: UpstreamSession.self, purpose: "session")
        else { return .gone("the sign-in through \(name) can no longer be checked.") }
        let now = Self.seconds(clock.now())
        guard askUpstream, let refreshToken = session.refreshToken else {
            return session.idTokenExpires > now
                ? .current(authentication)
                : .gone("\(name) issued no refresh token and its sign-in has expired; sign in again.")
        }
        do {
            let (idToken, rotated) = try await client.refreshSession(refreshToken: refreshToken)
            var current = authentication
            if let idToken {
                switch upstreamIdentity(connector, idToken: idToken, refreshToken: rotated ?? refreshToken) {
                case .failure(let refusal): return .gone(refusal.message)
                case .success(let (subject, identity, _)):
                    guard subject == authentication.subject else {
                        return .gone("\(name) now answers for someone else.")
                    }
                    current.identity = identity
                }
            } else {
                var kept = session
                kept.refreshToken = rotated ?? refreshToken
                guard let reference = try? seal(kept, purpose: "session") else {
                    return .unavailable("the upstream session could not be kept")
                }
                current.identity?.reference = reference
            }
            return .current(current)
        } catch let error as KeylessError where error.code == .loginRequired {
            return .gone(error.reason)
        } catch let error as KeylessError {
            return .unavailable(error.reason)
        } catch {
            return .unavailable("\(error)")
        }
    }

    /// A refusal's message for the person.
    struct UpstreamRefusal: Error {
        var message: String
        init(_ message: String) { self.message = message }
    }

    // MARK: Sealing

    func sealingKey(_ purpose: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: keys.kek, info: Data("keyless idp upstream \(purpose)".utf8), outputByteCount: 32)
    }

    func seal(_ value: some Encodable, purpose: String) throws -> String {
        let sealed = try AES.GCM.seal(try JSONEncoder().encode(value), using: sealingKey(purpose))
        guard let combined = sealed.combined else { throw KeylessError(.io, "sealing failed", hint: "Try again.") }
        return Base64URL.encode(Array(combined))
    }

    func open<T: Decodable>(_ text: String, as type: T.Type, purpose: String) -> T? {
        guard text.utf8.count < 16_384, let bytes = Base64URL.decode(text),
            let box = try? AES.GCM.SealedBox(combined: Data(bytes)),
            let plain = try? AES.GCM.open(box, using: sealingKey(purpose))
        else { return nil }
        return try? JSONDecoder().decode(T.self, from: plain)
    }
}
