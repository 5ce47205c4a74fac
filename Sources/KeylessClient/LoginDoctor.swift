import Foundation
import KeylessCore
import KeylessHTTP
import KeylessOIDC

/// One result of `keyless doctor`: what was checked, how it went, and what to change when it did not go well.
public struct DoctorFinding: Sendable, Equatable {
    /// How a check went.
    public enum Status: String, Sendable {
        case ok, warning = "warn", failed = "FAIL", skipped = "skip"
    }

    /// The check's short name (discovery, clock, jwks, ...).
    public var check: String
    /// Its outcome.
    public var status: Status
    /// What was found.
    public var detail: String
    /// What to change (for warnings and failures).
    public var fix: String?

    public init(_ check: String, _ status: Status, _ detail: String, fix: String? = nil) {
        self.check = check
        self.status = status
        self.detail = detail
        self.fix = fix
    }

    /// The finding as printed: `[ok]   check: detail`, and the fix on its own line.
    public var text: String {
        let label = "[\(status.rawValue)]".padding(toLength: 7, withPad: " ", startingAt: 0)
        return "\(label)\(check): \(detail)" + (fix.map { "\n       fix: \($0)" } ?? "")
    }
}

/// Checks the whole chain of a login without logging in: the provider's discovery document, the clock against the
/// provider's, its keys and algorithms, the scopes and grants keyless would use, whether it knows the client, the
/// endpoints, the local secret store, and (given a profile) the role's trust policy.
public struct LoginDoctor: Sendable {
    let login: LoginSettings
    let context: ClientContext
    let secretStore: String?
    /// The largest clock difference that still passes (keyless and STS tolerate about a minute).
    let skewLimit: TimeInterval = 60

    /// A doctor for `login`'s provider and client.
    public init(login: LoginSettings, context: ClientContext, secretStore: String?) {
        self.login = login
        self.context = context
        self.secretStore = secretStore
    }

    /// Runs every check; the provider checks stop at the first one the rest depend on.
    public func providerFindings() async -> [DoctorFinding] {
        var findings: [DoctorFinding] = []
        let client = OIDCClient(
            configuration: login.oidc, http: context.http, clock: context.clock, logger: context.logger)
        let metadata: ProviderMetadata
        do {
            metadata = try await client.metadata()
            var detail = "\(login.oidc.issuer)/.well-known/openid-configuration names issuer \(metadata.issuer)"
            if metadata.isTenantTemplate {
                detail += " (multi-tenant: each token's iss must be its own tenant's, checked against tid)"
            }
            if login.oidc.dialect != .generic { detail += "; provider dialect \(login.oidc.dialect.rawValue)" }
            findings.append(DoctorFinding("discovery", .ok, detail))
        } catch let error as KeylessError {
            findings.append(DoctorFinding("discovery", .failed, error.reason, fix: error.hint))
            return findings
        } catch {
            findings.append(DoctorFinding("discovery", .failed, "\(error)", fix: "Check --issuer-url."))
            return findings
        }
        // One JWKS fetch serves two checks: its keys, and its Date header for the clock.
        let jwks = try? await context.http.send(
            method: "GET", url: metadata.jwksURI, headers: ["accept": "application/json"], body: nil)
        findings.append(clockFinding(jwks))
        findings.append(keysFinding(jwks, metadata: metadata))
        findings.append(algorithmsFinding(metadata))
        findings.append(scopesFinding((try? await client.scopes()) ?? []))
        findings += grantFindings(metadata)
        findings.append(await clientFinding(client))
        findings += endpointFindings(metadata)
        return findings
    }

    /// The provider's clock against ours, from the `Date` header of one of its answers.
    func clockFinding(_ response: HTTPResponseData?) -> DoctorFinding {
        guard let header = response?.headers["date"], let providerTime = Self.httpDate(header) else {
            return DoctorFinding("clock", .skipped, "the provider sent no Date header to compare with")
        }
        let skew = context.clock.now().timeIntervalSince(providerTime)
        let amount = "\(Int(abs(skew).rounded())) s \(skew > 0 ? "ahead of" : "behind")"
        if abs(skew) > skewLimit {
            return DoctorFinding(
                "clock", .failed, "this machine's clock is \(amount) the provider's (\(header))",
                fix:
                    "Set the clock right (timedatectl set-ntp true, or your OS's time settings): tokens would look expired or not yet valid to keyless and to STS."
            )
        }
        if abs(skew) > 10 {
            return DoctorFinding(
                "clock", .warning, "this machine's clock is \(amount) the provider's",
                fix: "Turn on time synchronisation (NTP).")
        }
        return DoctorFinding("clock", .ok, "within \(Int(abs(skew).rounded())) s of the provider's")
    }

    func keysFinding(_ response: HTTPResponseData?, metadata: ProviderMetadata) -> DoctorFinding {
        guard let response else {
            return DoctorFinding(
                "jwks", .failed, "cannot reach \(metadata.jwksURI)",
                fix: "Check the network; the provider publishes its signing keys there.")
        }
        guard response.status == 200, let keys = JWKSet(json: response.body)?.keys else {
            return DoctorFinding(
                "jwks", .failed, "\(metadata.jwksURI) answered HTTP \(response.status) without a JWKS",
                fix: "Check the provider's configuration.")
        }
        let signing = keys.filter {
            ["RSA", "EC", "OKP"].contains($0["kty"]?.string ?? "") && ($0["use"]?.string ?? "sig") == "sig"
        }
        guard !signing.isEmpty else {
            return DoctorFinding(
                "jwks", .failed, "\(metadata.jwksURI) holds no RSA, EC or OKP signing key",
                fix: "The provider must publish the public keys it signs ID tokens with.")
        }
        let kids = signing.compactMap { $0["kid"]?.string }
        if kids.count < signing.count && signing.count > 1 {
            return DoctorFinding(
                "jwks", .warning,
                "\(signing.count) signing keys, some without kid: tokens without kid cannot choose among them",
                fix: "Give every key a kid at the provider.")
        }
        return DoctorFinding(
            "jwks", .ok,
            "\(signing.count) signing key(s)\(kids.isEmpty ? " (no kid)" : ": " + kids.joined(separator: ", "))")
    }

    func algorithmsFinding(_ metadata: ProviderMetadata) -> DoctorFinding {
        guard let offered = metadata.idTokenSigningAlgValuesSupported, !offered.isEmpty else {
            return DoctorFinding(
                "algorithms", .warning, "the provider does not list its ID-token algorithms",
                fix: "Nothing to do unless logins fail; keyless accepts RS256, PS256, ES256, EdDSA and their relatives."
            )
        }
        let usable = offered.filter { IDTokenVerifier.allowedAlgorithms.contains($0) }
        guard !usable.isEmpty else {
            return DoctorFinding(
                "algorithms", .failed,
                "the provider signs ID tokens with \(offered.joined(separator: ", ")), none of which keyless accepts",
                fix: "Configure the client at the provider to sign ID tokens with RS256 or ES256.")
        }
        let unsafe = offered.filter { $0.lowercased() == "none" || $0.hasPrefix("HS") }
        let note =
            unsafe.isEmpty ? "" : " (it also offers \(unsafe.joined(separator: ", ")), which keyless never accepts)"
        return DoctorFinding("algorithms", .ok, "ID tokens signed with \(usable.joined(separator: ", "))\(note)")
    }

    /// `scopes`: what the client will ask for (`OIDCClient.scopes()`, the one place that decides it).
    func scopesFinding(_ scopes: [String]) -> DoctorFinding {
        let requested = scopes.joined(separator: " ")
        if login.oidc.dialect == .google {
            return DoctorFinding(
                "scopes", .ok, "keyless will ask for \(requested), with access_type=offline for a refresh token")
        }
        if !scopes.contains("offline_access") {
            return DoctorFinding(
                "scopes", .warning,
                "keyless will ask for \(requested): the provider does not list offline_access, so it may issue no refresh token",
                fix:
                    "If it does honour offline_access (LemonLDAP::NG does), pass --scopes \"\(requested) offline_access\"; otherwise you log in again when the ID token expires."
            )
        }
        return DoctorFinding("scopes", .ok, "keyless will ask for \(requested)")
    }

    func grantFindings(_ metadata: ProviderMetadata) -> [DoctorFinding] {
        var findings: [DoctorFinding] = []
        if let grants = metadata.grantTypesSupported, !grants.isEmpty {
            if !grants.contains("authorization_code") {
                findings.append(
                    DoctorFinding(
                        "grants", .failed,
                        "the provider lists no authorization_code grant (\(grants.joined(separator: ", ")))",
                        fix: "Browser logins need it; use --device if the device grant is listed."))
            } else if !grants.contains("refresh_token") {
                findings.append(
                    DoctorFinding(
                        "grants", .warning, "no refresh_token grant: every expired ID token means a new login",
                        fix: "Enable refresh tokens for the client at the provider."))
            } else {
                findings.append(DoctorFinding("grants", .ok, grants.joined(separator: ", ")))
            }
        } else {
            findings.append(
                DoctorFinding("grants", .ok, "not listed (authorization_code assumed, as OpenID Discovery allows)"))
        }
        if let methods = metadata.codeChallengeMethodsSupported, !methods.isEmpty, !methods.contains("S256") {
            findings.append(
                DoctorFinding(
                    "pkce", .failed, "the provider lists PKCE methods \(methods.joined(separator: ", ")) but not S256",
                    fix: "Enable S256 PKCE at the provider; keyless always sends S256."))
        } else {
            findings.append(
                DoctorFinding(
                    "pkce", .ok,
                    metadata.codeChallengeMethodsSupported == nil
                        ? "S256 (the provider does not list its methods)" : "S256"))
        }
        return findings
    }

    func clientFinding(_ client: OIDCClient) async -> DoctorFinding {
        let advice = ProviderErrorAdvice(
            issuer: login.oidc.issuer, clientID: login.oidc.clientID, hasSecret: login.oidc.clientSecret != nil,
            scopesSupported: nil)
        do {
            let probe = try await client.probeClient()
            let words = [probe.error, probe.description].compactMap { $0 }.joined(separator: ": ")
            switch probe.error {
            case "invalid_grant":
                return DoctorFinding(
                    "client", .ok,
                    "the token endpoint knows client \(login.oidc.clientID) (a made-up code was refused as invalid_grant)"
                )
            case "invalid_client", "unauthorized_client":
                return DoctorFinding(
                    "client", .failed, "the token endpoint refused client \(login.oidc.clientID): \(words)",
                    fix: advice.hint(error: probe.error!, description: probe.description, step: .token))
            case "invalid_request" where (probe.description ?? "").lowercased().contains("client"):
                return DoctorFinding(
                    "client", .failed, "the token endpoint refused client \(login.oidc.clientID): \(words)",
                    fix: advice.hint(error: "invalid_request", description: probe.description, step: .token))
            default:
                return DoctorFinding(
                    "client", .warning,
                    "the token endpoint answered HTTP \(probe.status) \(words.isEmpty ? "" : words) to a made-up code",
                    fix: "Not conclusive; if logins fail, check --client-id \(login.oidc.clientID) at the provider.")
            }
        } catch let error as KeylessError {
            return DoctorFinding("client", .failed, error.reason, fix: error.hint)
        } catch {
            return DoctorFinding("client", .failed, "\(error)", fix: "Check the network.")
        }
    }

    func endpointFindings(_ metadata: ProviderMetadata) -> [DoctorFinding] {
        let port = login.redirectPort == 0 ? "any port" : "port \(login.redirectPort)"
        let registration =
            login.redirectPort == 0
            ? "; register http://127.0.0.1/callback at the provider (RFC 8252 allows any port), or, where it matches ports exactly, one port and pass --redirect-port"
            : "; register exactly that URI at the provider"
        var findings = [
            DoctorFinding(
                "redirect", .ok,
                "browser logins open \(metadata.authorizationEndpoint) and return to http://127.0.0.1:\(login.redirectPort == 0 ? "PORT" : String(login.redirectPort))/callback (\(port))\(registration)"
            )
        ]
        if let device = metadata.deviceAuthorizationEndpoint {
            findings.append(DoctorFinding("device", .ok, "device flow offered at \(device) (keyless login --device)"))
        } else {
            findings.append(
                DoctorFinding(
                    "device", .skipped,
                    "the provider offers no device flow; on machines without a browser use --no-browser and open the URL elsewhere"
                ))
        }
        return findings
    }

    /// Whether the secret store opens and lists its entries (decrypting nothing).
    public func storeFinding() -> DoctorFinding {
        do {
            let store = try context.store(secretStore)
            let entries = try store.headers()
            return DoctorFinding(
                "secret store", .ok, "\(store.backendName): \(entries.count) entr\(entries.count == 1 ? "y" : "ies")")
        } catch let error as KeylessError {
            return DoctorFinding("secret store", .failed, error.reason, fix: error.hint)
        } catch {
            return DoctorFinding("secret store", .failed, "\(error)", fix: "Choose another --secret-store.")
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7's IMF-fixdate).
    static func httpDate(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)
    }
}
