import Foundation
import KeylessCore
import KeylessOIDC
import KeylessTestFakes
import Testing

/// A browser double that only records the authorization URL (no redirect is sent).
private func authorizationQuery(_ client: OIDCClient) async throws -> [String: String] {
    let browser = RedirectingBrowser(reply: .none)
    _ = await keylessError { try await client.loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 0.2) }
    return browser.authorization
}

/// A token endpoint that answers every request with an ID token for the test client.
private func tokenStub(
    key: RSATestKey, discoveryLists: [String: [String]] = [:], issuer: String = testIssuer,
    advertisedIssuer: String? = nil, edit: @escaping @Sendable (inout TestClaims) -> Void = { _ in }
) -> StubIdP {
    StubIdP(
        issuer: issuer, advertisedIssuer: advertisedIssuer, jwks: [(try? jwksJSON([key])) ?? ""],
        discoveryLists: discoveryLists,
        tokenEndpoint: { _, _ in
            let token = try await mint(claims(edit), with: key)
            return jsonResponse([
                "id_token": token, "refresh_token": "rt-2", "access_token": "at-2", "token_type": "Bearer",
                "expires_in": 3600,
            ])
        })
}

private func refreshable(_ idToken: String = "x.y.z") -> TokenSet {
    TokenSet(
        idToken: idToken, refreshToken: "rt-1", accessToken: nil, accessTokenExpiresAt: nil, obtainedAt: referenceTime)
}

@Suite("The client adapts to the provider's discovery document")
struct ScopeAdaptationTests {
    @Test(
        "offline_access and groups are asked for only when scopes_supported lists them (Google lists no offline_access and answers invalid_scope; Okta releases groups only for the groups scope)"
    )
    func offlineAccessOnlyWhenSupported() async throws {
        let google = StubIdP(discoveryLists: ["scopes_supported": ["openid", "email", "profile"]])
        #expect(try await authorizationQuery(makeClient(google))["scope"] == "openid email profile")
        let okta = StubIdP(discoveryLists: [
            "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access", "groups"]
        ])
        #expect(try await authorizationQuery(makeClient(okta))["scope"] == "openid email profile groups offline_access")
        let web = makeClient(
            okta,
            configuration: OIDCClientConfiguration(issuer: testIssuer, clientID: testClientID, refreshTokens: false))
        #expect(
            try await web.scopes() == ["openid", "email", "profile", "groups"],
            "a web sign-in asks for no refresh token")
    }

    @Test("a provider that lists no scopes gets the default openid email profile offline_access")
    func noListMeansDefault() async throws {
        #expect(try await authorizationQuery(makeClient(StubIdP()))["scope"] == "openid email profile offline_access")
        #expect(
            try await authorizationQuery(makeClient(StubIdP(discoveryLists: ["scopes_supported": []])))["scope"]
                == "openid email profile offline_access")
    }

    @Test("explicit --scopes always win, with openid added, even ones the provider does not list")
    func explicitScopesWin() async throws {
        let idp = StubIdP(discoveryLists: ["scopes_supported": ["openid", "email"]])
        let client = makeClient(
            idp,
            configuration: OIDCClientConfiguration(
                issuer: testIssuer, clientID: testClientID, scopes: ["email", "offline_access", "groups"]))
        #expect(try await authorizationQuery(client)["scope"] == "openid email offline_access groups")
    }

    @Test("the refresh and device requests ask for the same adapted scopes")
    func refreshUsesAdaptedScopes() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = tokenStub(key: key, discoveryLists: ["scopes_supported": ["openid", "email", "profile"]])
        _ = try await makeClient(idp).refresh(refreshable())
        #expect(try #require(await idp.requests(to: idp.tokenURL).first).form["scope"] == "openid email profile")
    }
}

@Suite("Google's documented behaviour")
struct GoogleDialectTests {
    static let google = OIDCClientConfiguration(
        issuer: testIssuer, clientID: testClientID, clientSecret: "installed-secret", dialect: .google)

    @Test("Google's issuer is recognised by its host; others are generic; Entra by login.microsoftonline.com")
    func detection() {
        #expect(ProviderDialect.detect(issuer: "https://accounts.google.com") == .google)
        #expect(ProviderDialect.detect(issuer: "https://login.microsoftonline.com/common/v2.0") == .entra)
        #expect(ProviderDialect.detect(issuer: "https://accounts.google.com.evil.example") == .generic)
        #expect(ProviderDialect.detect(issuer: "https://evil.example/accounts.google.com") == .generic)
        #expect(OIDCClientConfiguration(issuer: "https://accounts.google.com", clientID: "c").dialect == .google)
    }

    @Test("a first login sends access_type=offline and prompt=consent; with a refresh token held, no prompt=consent")
    func accessTypeOffline() async throws {
        let idp = StubIdP(discoveryLists: ["scopes_supported": ["openid", "email", "profile"]])
        let first = try await authorizationQuery(makeClient(idp, configuration: Self.google))
        #expect(first["access_type"] == "offline")
        #expect(first["prompt"] == "consent")
        #expect(first["scope"] == "openid email profile")

        let browser = RedirectingBrowser(reply: .none)
        _ = await keylessError {
            try await makeClient(idp, configuration: Self.google).loginWithBrowser(
                redirectPort: 0, presenter: browser, timeout: 0.2, previous: refreshable())
        }
        #expect(browser.authorization["access_type"] == "offline")
        #expect(browser.authorization["prompt"] == nil)
    }

    @Test("a web page's sign-in at Google asks for no refresh token: no access_type, no prompt=consent")
    func webSignInIsNotOffline() async throws {
        let url = try await makeClient(StubIdP(), configuration: Self.google)
            .authorizationURL(redirectURI: "https://keyless.example.com/callback", state: "s", nonce: "n", pkce: PKCE())
        let query = queryFields(url)
        #expect(query["access_type"] == nil && query["prompt"] == nil)
        #expect(query["state"] == "s" && query["nonce"] == "n")
    }

    @Test("a generic provider gets neither access_type nor prompt")
    func genericHasNoGoogleParameters() async throws {
        let query = try await authorizationQuery(makeClient(StubIdP()))
        #expect(query["access_type"] == nil && query["prompt"] == nil)
    }

    @Test("Google's scheme-less iss is accepted for Google only; any other iss is still refused")
    func schemelessIssuer() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let schemeless = String(testIssuer.dropFirst("https://".count))
        let idp = tokenStub(key: key) { $0.iss = schemeless }
        let refreshed = try await makeClient(idp, configuration: Self.google).refresh(refreshable())
        #expect(UnverifiedJWT.claims(refreshed.idToken)?.iss == schemeless)

        let generic = await keylessError {
            try await makeClient(tokenStub(key: key) { $0.iss = schemeless }).refresh(refreshable())
        }
        #expect(generic?.code == .loginRequired || generic?.code == .tokenInvalid)
        let other = await keylessError {
            try await makeClient(tokenStub(key: key) { $0.iss = "evil.example.test" }, configuration: Self.google)
                .refresh(refreshable())
        }
        #expect(other?.code == .tokenInvalid)
    }
}

@Suite("Client authentication at the token endpoint")
struct ClientAuthenticationMethodTests {
    @Test(
        "a secret goes as HTTP Basic (form-urlencoded inside) when the provider lists client_secret_basic, or lists nothing"
    )
    func basic() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        for lists in [[:], ["token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"]]] {
            let idp = tokenStub(key: key, discoveryLists: lists)
            let configuration = OIDCClientConfiguration(
                issuer: testIssuer, clientID: testClientID, clientSecret: "s3cr:t/+")
            _ = try await makeClient(idp, configuration: configuration).refresh(refreshable())
            let request = try #require(await idp.requests(to: idp.tokenURL).first)
            let expected = "Basic " + Data("\(testClientID):s3cr%3At%2F%2B".utf8).base64EncodedString()
            #expect(request.headers["authorization"] == expected)
            #expect(request.form["client_secret"] == nil)
        }
    }

    @Test("a secret goes in the form when the provider lists only client_secret_post")
    func post() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = tokenStub(
            key: key,
            discoveryLists: ["token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"]])
        let configuration = OIDCClientConfiguration(issuer: testIssuer, clientID: testClientID, clientSecret: "s3cret")
        _ = try await makeClient(idp, configuration: configuration).refresh(refreshable())
        let request = try #require(await idp.requests(to: idp.tokenURL).first)
        #expect(request.headers["authorization"] == nil)
        #expect(request.form["client_id"] == testClientID)
        #expect(request.form["client_secret"] == "s3cret")
    }

    @Test("a public client sends its client_id and no secret at all")
    func publicClient() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let idp = tokenStub(
            key: key, discoveryLists: ["token_endpoint_auth_methods_supported": ["client_secret_basic"]])
        _ = try await makeClient(idp).refresh(refreshable())
        let request = try #require(await idp.requests(to: idp.tokenURL).first)
        #expect(request.headers["authorization"] == nil)
        #expect(request.form["client_id"] == testClientID)
        #expect(request.form["client_secret"] == nil)
    }
}

@Suite("--auth-param")
struct AuthorizationParameterTests {
    @Test("KEY=VALUE parameters are added to the authorization request, replacing the dialect's own of the same name")
    func added() async throws {
        let configuration = OIDCClientConfiguration(
            issuer: testIssuer, clientID: testClientID,
            authorizationParameters: [
                AuthorizationParameter(name: "audience", value: "https://api.example.com"),
                AuthorizationParameter(name: "prompt", value: "select_account"),
            ], dialect: .google)
        let query = try await authorizationQuery(makeClient(StubIdP(), configuration: configuration))
        #expect(query["audience"] == "https://api.example.com")
        #expect(query["prompt"] == "select_account")
        #expect(query["access_type"] == "offline")
    }

    @Test("parameters keyless sets itself are refused with what to use instead; malformed ones say the form")
    func reserved() {
        for name in ["state", "nonce", "redirect_uri", "code_challenge", "client_id", "response_type"] {
            #expect(throws: KeylessError.self) { try AuthorizationParameter.parse("\(name)=x") }
        }
        #expect((try? AuthorizationParameter.parse("scope=openid")) == nil)
        #expect((try? AuthorizationParameter.parse("novalue")) == nil)
        #expect((try? AuthorizationParameter.parse("=x")) == nil)
        #expect(
            (try? AuthorizationParameter.parse("login_hint=a=b@example.com"))
                == AuthorizationParameter(name: "login_hint", value: "a=b@example.com"))
    }

    @Test("a login without --auth-param reuses the previous login's, and the tokens remember them")
    func remembered() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .echoState)
        let idp = try BrowserLoginTests.provider(for: browser, key: key)
        var previous = refreshable()
        previous.authorizationParameters = [AuthorizationParameter(name: "audience", value: "aws")]
        let tokens = try await makeClient(idp).loginWithBrowser(
            redirectPort: 0, presenter: browser, timeout: 30, previous: previous)
        #expect(browser.authorization["audience"] == "aws")
        #expect(tokens.authorizationParameters == previous.authorizationParameters)
        let refreshStub = tokenStub(key: key)
        #expect(
            try await makeClient(refreshStub).refresh(tokens).authorizationParameters
                == previous.authorizationParameters)
    }

    @Test(
        "a login without --scopes asks for the previous login's --scopes, and the tokens and their refresh remember them"
    )
    func scopesRemembered() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .echoState)
        let idp = try BrowserLoginTests.provider(for: browser, key: key)
        var previous = refreshable()
        previous.requestedScopes = ["openid", "groups", "offline_access"]
        let tokens = try await makeClient(idp).loginWithBrowser(
            redirectPort: 0, presenter: browser, timeout: 30, previous: previous)
        #expect(browser.authorization["scope"] == "openid groups offline_access")
        #expect(tokens.requestedScopes == previous.requestedScopes)
        let refreshStub = tokenStub(key: key)
        #expect(try await makeClient(refreshStub).refresh(tokens).requestedScopes == previous.requestedScopes)
        #expect(
            try #require(await refreshStub.requests(to: refreshStub.tokenURL).first).form["scope"]
                == "openid groups offline_access")
        // Scopes given now win over the remembered ones.
        let now = RedirectingBrowser(reply: .none)
        let explicit = makeClient(
            StubIdP(),
            configuration: OIDCClientConfiguration(issuer: testIssuer, clientID: testClientID, scopes: ["email"]))
        _ = await keylessError {
            try await explicit.loginWithBrowser(redirectPort: 0, presenter: now, timeout: 0.2, previous: previous)
        }
        #expect(now.authorization["scope"] == "openid email")
    }

    @Test("a login that gets no refresh token keeps the one held (Google issues one only at first consent)")
    func keepsHeldRefreshToken() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let browser = RedirectingBrowser(reply: .echoState)
        let idp = StubIdP(
            jwks: [try jwksJSON([key])],
            tokenEndpoint: { _, _ in
                let token = try await mint(claims { $0.nonce = browser.authorization["nonce"] }, with: key)
                return jsonResponse(["id_token": token, "access_token": "at", "token_type": "Bearer"])
            })
        let tokens = try await makeClient(idp).loginWithBrowser(
            redirectPort: 0, presenter: browser, timeout: 30, previous: refreshable())
        #expect(tokens.refreshToken == "rt-1")
    }
}

@Suite("Microsoft Entra ID's multi-tenant issuer")
struct EntraTenantTests {
    static let common = "https://login.example.test/common/v2.0"
    static let template = "https://login.example.test/{tenantid}/v2.0"
    static let tenant = "11111111-2222-3333-4444-555555555555"

    @Test("the common endpoint's discovery, whose issuer holds {tenantid}, is accepted; another template is not")
    func discovery() async throws {
        let idp = StubIdP(issuer: Self.common, advertisedIssuer: Self.template)
        let metadata = try await Discovery.fetch(issuer: Self.common, http: idp, logger: quietLogger)
        #expect(metadata.isTenantTemplate)
        let wrong = StubIdP(issuer: Self.common, advertisedIssuer: "https://elsewhere.example.test/{tenantid}/v2.0")
        #expect(
            await keylessError { try await Discovery.fetch(issuer: Self.common, http: wrong, logger: quietLogger) }?
                .code == .idpError)
    }

    @Test("a token is accepted when its iss is the template with its own tid, and refused for another tenant or no tid")
    func tokenTenant() async throws {
        let key = try RSATestKey(kid: "rsa-1")
        let configuration = OIDCClientConfiguration(issuer: Self.common, clientID: testClientID)
        let good = tokenStub(key: key, issuer: Self.common, advertisedIssuer: Self.template) {
            $0.iss = "https://login.example.test/\(Self.tenant)/v2.0"; $0.tid = Self.tenant
        }
        let tokens = try await makeClient(good, configuration: configuration).refresh(refreshable())
        #expect(UnverifiedJWT.claims(tokens.idToken)?.tid == Self.tenant)

        let mismatched = tokenStub(key: key, issuer: Self.common, advertisedIssuer: Self.template) {
            $0.iss = "https://login.example.test/\(Self.tenant)/v2.0"; $0.tid = "99999999-0000-0000-0000-000000000000"
        }
        let error = await keylessError {
            try await makeClient(mismatched, configuration: configuration).refresh(refreshable())
        }
        #expect(error?.code == .tokenInvalid)
        let noTid = tokenStub(key: key, issuer: Self.common, advertisedIssuer: Self.template) {
            $0.iss = "https://login.example.test/\(Self.tenant)/v2.0"
        }
        let missing = await keylessError {
            try await makeClient(noTid, configuration: configuration).refresh(refreshable())
        }
        #expect(missing?.reason.contains("tid") == true)
    }
}

@Suite("Who the token names")
struct DisplayNameTests {
    @Test("a verified email names the person; an unverified one does not; then preferred_username, upn, sub")
    func order() throws {
        func decode(_ edit: (inout TestClaims) -> Void) throws -> IDTokenClaims {
            try JSONDecoder().decode(IDTokenClaims.self, from: try claims(edit).json())
        }
        #expect(try decode { $0.emailVerified = true }.displayName == "alice@example.com")
        #expect(try decode { $0.emailVerified = nil }.displayName == "alice@example.com")
        #expect(
            try decode {
                $0.emailVerified = false; $0.preferredUsername = "alice"
            }.displayName == "alice")
        #expect(
            try decode {
                $0.email = nil; $0.upn = "alice@contoso.example"
            }.displayName == "alice@contoso.example")
        #expect(
            try decode {
                $0.email = nil; $0.sub = "10769150350006150715113082367"
            }.displayName == "10769150350006150715113082367")
        let stringly = try JSONDecoder().decode(
            IDTokenClaims.self,
            from: Data(#"{"iss":"i","sub":"s","aud":"a","exp":1,"email":"e@x","email_verified":"false"}"#.utf8))
        #expect(stringly.displayName == "s")
    }
}

@Suite("Provider errors say what to change")
struct ProviderErrorAdviceTests {
    let advice = ProviderErrorAdvice(
        issuer: testIssuer, clientID: "cli", hasSecret: false, scopesSupported: ["openid", "email"])

    @Test("each error a person meets names the flag or the provider setting to change")
    func hints() {
        #expect(advice.hint(error: "invalid_scope", description: nil, step: .authorization).contains("--scopes"))
        #expect(advice.hint(error: "invalid_scope", description: nil, step: .authorization).contains("openid email"))
        #expect(advice.hint(error: "unauthorized_client", description: nil, step: .device).contains("without --device"))
        #expect(advice.hint(error: "invalid_client", description: nil, step: .token).contains("--client-id"))
        #expect(
            advice.hint(error: "redirect_uri_mismatch", description: nil, step: .authorization).contains(
                "--redirect-port"))
        #expect(
            advice.hint(
                error: "invalid_request", description: "AADSTS50011: The redirect URI specified does not match",
                step: .authorization
            ).contains("--redirect-port"))
        #expect(
            advice.hint(error: "access_denied", description: "The user denied consent", step: .authorization).contains(
                "consent"))
        #expect(
            advice.hint(error: "invalid_request", description: "client_secret is missing.", step: .token).contains(
                "--client-secret"))
        #expect(
            advice.hint(
                error: "not_allowed", description: "Offline tokens not allowed for the user or client", step: .token
            ).contains("offline_access role"))
        let withSecret = ProviderErrorAdvice(issuer: testIssuer, clientID: "cli", hasSecret: true, scopesSupported: nil)
        #expect(
            withSecret.hint(
                error: "invalid_client",
                description:
                    "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
                step: .token
            )
            .contains("drop --client-secret"))
    }

    @Test("a refused code exchange carries the hint in the error the person sees")
    func inTheError() async throws {
        let idp = StubIdP(tokenEndpoint: { _, _ in
            jsonResponse(400, ["error": "invalid_request", "error_description": "client_secret is missing."])
        })
        let browser = RedirectingBrowser(reply: .echoState)
        let error = await keylessError {
            try await makeClient(idp).loginWithBrowser(redirectPort: 0, presenter: browser, timeout: 30)
        }
        #expect(error?.code == .idpError)
        #expect(error?.hint?.contains("--client-secret") == true)
    }
}
