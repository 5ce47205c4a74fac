#!/usr/bin/env python3
"""A test partner that plays identity providers which cannot run here -- Google, Microsoft Entra ID, Okta, Auth0,
Keycloak -- as "personas" on a real OAuth 2.0 / OpenID Connect library (Authlib's AuthorizationServer, grants and
extensions).

    provider_zoo.py --persona google|entra|okta|auth0|keycloak --port PORT [--token-lifetime SECONDS]
                    [--date-offset SECONDS] [--log FILE] [--no-id-token-on-refresh] [--aud-array] [--no-kid]
                    [--redirect-uri URI ...]

Binds 127.0.0.1:PORT only, prints one line `provider_zoo: ready persona=NAME issuer=ISSUER` and runs until
SIGTERM/SIGINT (then exits 0). Every persona-specific behaviour has a comment beside it naming the provider's
documentation (URL + what it says); where no provider page could be found, the comment cites the spec text that
permits the behaviour. Behaviours reproduced from *observed* provider output (error page wording) say so.

Fixed test data: users alice / alice-password-1 and bob / bob-password-1; clients keyless-cli (Google: "Desktop app"
with secret zoo-installed-secret; elsewhere a public native client) and keyless-web (confidential, zoo-web-secret);
Google also has keyless-tv ("TVs and Limited Input devices", zoo-tv-secret), the only Google client type that may use
the device flow. Redirect URIs: any http://127.0.0.1:<port>/callback (RFC 8252 section 7.3: "The authorization
server MUST allow any port to be specified at the time of the request for loopback IP redirect URIs") -- except at
Keycloak, see below.

Keycloak persona: realm "zoo", issuer http://127.0.0.1:PORT/realms/zoo, endpoints under
/realms/zoo/protocol/openid-connect/ (auth, token, certs, userinfo, revoke, logout, auth/device). keyless-cli is a
public client ("Client authentication" off, device grant on, "Consent required" off: no consent page). Its "Valid
redirect URIs" are http://127.0.0.1:8765/callback and http://127.0.0.1:8765/* unless --redirect-uri URI (repeatable)
replaces them; they are matched with Keycloak's rules (exact; trailing "*" = prefix; a loopback http URI is also
tried without its port, so only a registered URI *without* a port admits any port). A mismatch shows Keycloak's error
page "Invalid parameter: redirect_uri" (HTTP 400, no redirect). alice has the realm role offline_access, bob does not:
scope offline_access gives alice an offline token (refresh token JWT with typ "Offline") and gives bob HTTP 400
{"error": "not_allowed", "error_description": "Offline tokens not allowed for the user or client"} at the token
endpoint. Every code exchange returns a refresh token; a refresh returns a new one and the old one stays valid.
Redirects back to the client carry session_state and iss. Keycloak behaviours its guides do not spell out cite the
Keycloak source instead (keycloak/keycloak, file and method).

Endpoints (all personas): GET /healthz; the persona's discovery, authorize, token, jwks, userinfo, device (and
revocation and logout where the provider has one) paths, listed in its discovery document. POST /authorize receives
the login and consent forms (also at Keycloak, whose own forms post to /realms/zoo/login-actions/...):
scripts/partners/browser_login.py only drives a form whose action is "/authorize".

Flags that apply to every persona (behaviours the issue lists but no provider documents doing by default):
  --no-id-token-on-refresh  refresh responses carry no id_token (OIDC Core 1.0 section 12.2: the refresh response
                            "is the Token Response of Section 3.1.3.3 except that it might not contain an id_token")
  --aud-array               ID tokens carry aud as a one-element array (OIDC Core 1.0 section 2: "In the general case,
                            the aud value is an array of case-sensitive strings. In the common special case when
                            there is one audience, the aud value MAY be a single case-sensitive string.")
  --no-kid                  the JWKS key and the ID token header have no kid (RFC 7517 section 4.5: "Use of this
                            member is OPTIONAL.")

TEST-ONLY SHORTCUTS (no provider has these):
  GET  /_zoo/requests        JSON list of authorization, token, device, revocation (and Keycloak logout) requests, in
                             order, with secret values replaced by "<redacted:N chars>"
  POST /_zoo/reset           clears that list
  POST /_zoo/device/approve  form user_code=..&username=alice [&deny=1]: approves (or denies) a device-flow user code
                             as that user, standing in for the user visiting verification_uri in a browser
"""
import argparse
import base64
import email.utils
import html
import json
import logging
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
import uuid

from flask import Flask, Response, g, jsonify, request, session
from werkzeug.serving import WSGIRequestHandler, make_server

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, OAuth2Error, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant, DeviceCredentialMixin
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey, RSAKey

ENTRA_TENANT = "11111111-2222-3333-4444-555555555555"
OKTA_ORG_ID = "00o1zoozoozoozoo0697"
AUTH0_APIS = {  # Auth0 "APIs" (audiences) with their "Allow Offline Access" setting
    "https://api.zoo.example": True,
    "https://api-no-offline.zoo.example": False,
}
USERS = {
    "alice": {"password": "alice-password-1", "email": "alice@example.com", "name": "Alice Example",
              "given_name": "Alice", "family_name": "Example", "groups": ["developers"]},
    "bob": {"password": "bob-password-1", "email": "bob@example.com", "name": "Bob Example",
            "given_name": "Bob", "family_name": "Example", "groups": ["developers", "admins"]},
}
SUBS = {  # opaque, stable per persona and user, shaped like each provider's
    "google": {"alice": "10769150350006150715113082367", "bob": "11352271806004139852110478395"},
    "entra": {"alice": "kX2v9q7bT1s3lWd0F8aYcN4mRzP6uHjE5gBoQyVtLiA", "bob": "Qm7Zr0Lp2Yx5Sv8Bn1Hc4Wd6Fj9Kt3Ge5Ua0Io2Ey7R"},
    "okta": {"alice": "00u1a2b3c4AliceZoo697", "bob": "00u1a2b3c4BobZoo00697"},
    "auth0": {"alice": "auth0|65a1f0c2e4b0a1b2c3d4e5f6", "bob": "auth0|65a1f0c2e4b0a1b2c3d4e5f7"},
    "keycloak": {"alice": "3f6c2a91-7d4e-4b8a-9c15-2e8d7f0a6b43", "bob": "b82e5d17-0c9a-4f63-8e21-5a7c9d3f1e08"},
}
# Keycloak realm "zoo": realm roles per user. A new realm's default-roles-<realm> composite holds offline_access and
# uma_authorization (observed in Keycloak's admin REST answers), i.e. every user could get offline tokens; this realm
# took offline_access out of its default roles and maps it to alice directly, so bob shows the refusal.
KEYCLOAK_ROLES = {"alice": ["default-roles-zoo", "offline_access", "uma_authorization"],
                  "bob": ["default-roles-zoo", "uma_authorization"]}
# "Valid redirect URIs" of keyless-cli and keyless-web (replaced by --redirect-uri): the README's recipe URI, and the
# same with a trailing wildcard ("You can use wildcards at the end of the URL pattern. For example
# http://host.com/path/*", https://www.keycloak.org/docs/latest/server_admin/#_oidc_clients, Access settings).
KEYCLOAK_REDIRECT_URIS = ["http://127.0.0.1:8765/callback", "http://127.0.0.1:8765/*"]
# Client scopes of a new Keycloak realm (https://www.keycloak.org/docs/latest/server_admin/#_client_scopes): for default
# client scopes "the Mappers and Role Scope Mappings are always applied, regardless of the value used for the scope
# parameter"; "Optional client scopes are applied ... only when requested by the scope parameter". roles and web-origins
# are "not added ... to the scope claim" ("Include in token scope" off), so a token's scope is the requested scopes
# plus "email profile", and its claims always include the profile and email claims.
KEYCLOAK_DEFAULT_SCOPES = ["web-origins", "acr", "basic", "email", "roles", "profile"]
KEYCLOAK_OPTIONAL_SCOPES = ["address", "phone", "offline_access", "microprofile-jwt", "organization"]
ENTRA_OIDS = {"alice": "0b6c1e24-4f7a-4d8e-9a31-5c2f8e7d6a10", "bob": "7e9d2a51-3c8b-4f60-b1a2-9d4e6f8c0b21"}
SECRET_PARAMS = {"client_secret", "code", "code_verifier", "refresh_token", "password", "device_code", "token",
                 "client_assertion"}
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

ARGS = None   # parsed command line
P = None      # the persona (a Persona instance)
KEY = None    # joserfc RSAKey (private), generated at start
KID = None
KC_HMAC = None  # keycloak persona: the realm's HMAC key (OctKey) that signs refresh tokens
LOCK = threading.Lock()
REQUESTS, CODES, REFRESH, ACCESS, DEVICES, CONSENTS = [], {}, {}, {}, {}, {}
log = logging.getLogger("provider_zoo")


# ---------------------------------------------------------------- personas: endpoints, discovery, clients

class Persona:
    def __init__(self, name, port):
        self.name, self.base = name, f"http://127.0.0.1:{port}"
        b, t = self.base, ENTRA_TENANT
        if name == "google":
            self.issuer = b
            self.paths = {"authorize": ["/o/oauth2/v2/auth"], "token": ["/token"], "jwks": ["/oauth2/v3/certs"],
                          "userinfo": ["/v1/userinfo"], "revoke": ["/revoke"], "device": ["/device/code"],
                          "verify": "/device", "discovery": ["/.well-known/openid-configuration"]}
        elif name == "entra":
            # Tenant-specific and tenant-independent authorities share one layout:
            # https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#find-your-apps-openid-configuration-document-uri
            # (authority https://login.microsoftonline.com/{tenant}/v2.0; {tenant} = common, organizations, or the tenant ID)
            self.issuer = f"{b}/{t}/v2.0"
            self.paths = {"authorize": ["/<tenant>/oauth2/v2.0/authorize"], "token": ["/<tenant>/oauth2/v2.0/token"],
                          "jwks": ["/<tenant>/discovery/v2.0/keys"], "userinfo": ["/oidc/userinfo"], "revoke": [],
                          "device": ["/<tenant>/oauth2/v2.0/devicecode"], "verify": "/devicelogin",
                          "discovery": ["/<tenant>/v2.0/.well-known/openid-configuration"]}
        elif name == "okta":
            # Custom authorization server "default": https://developer.okta.com/docs/reference/api/oidc/#composing-your-base-url
            self.issuer = f"{b}/oauth2/default"
            a = "/oauth2/default"
            self.paths = {"authorize": [a + "/v1/authorize"], "token": [a + "/v1/token"], "jwks": [a + "/v1/keys"],
                          "userinfo": [a + "/v1/userinfo"], "revoke": [a + "/v1/revoke"],
                          "device": [a + "/v1/device/authorize"], "verify": "/activate",
                          "discovery": [a + "/.well-known/openid-configuration"]}
        elif name == "keycloak":
            # Realm "zoo". Endpoints per https://www.keycloak.org/securing-apps/oidc-layers ("Available Endpoints"):
            # /realms/{realm-name}/.well-known/openid-configuration, .../protocol/openid-connect/auth, /token,
            # /userinfo, /logout, /certs, /revoke, /auth/device. The device verification page is {issuer}/device.
            self.issuer = f"{b}/realms/zoo"
            r = "/realms/zoo/protocol/openid-connect"
            self.paths = {"authorize": [r + "/auth"], "token": [r + "/token"], "jwks": [r + "/certs"],
                          "userinfo": [r + "/userinfo"], "revoke": [r + "/revoke"], "device": [r + "/auth/device"],
                          "logout": [r + "/logout"], "verify": "/realms/zoo/device",
                          "discovery": ["/realms/zoo/.well-known/openid-configuration"]}
        else:
            # Auth0's issuer is the tenant URL *with* a trailing slash (its discovery document and tokens say
            # "iss": "https://TENANT.auth0.com/"; e.g. https://community.auth0.com/t/the-userinfo-endpoint-returns-401-unauthorized/6103)
            self.issuer = b + "/"
            self.paths = {"authorize": ["/authorize"], "token": ["/oauth/token"], "jwks": ["/.well-known/jwks.json"],
                          "userinfo": ["/userinfo"], "revoke": ["/oauth/revoke"], "device": ["/oauth/device/code"],
                          "verify": "/activate", "discovery": ["/.well-known/openid-configuration"]}
        self.clients = make_clients(name)

    def url(self, kind, tenant=None):
        path = self.paths[kind][0] if isinstance(self.paths[kind], list) else self.paths[kind]
        return self.base + path.replace("<tenant>", tenant or ENTRA_TENANT)

    def discovery(self, tenant=None):
        u, b = self.url, self.base
        if self.name == "google":
            # Shaped like https://accounts.google.com/.well-known/openid-configuration, described at
            # https://developers.google.com/identity/openid-connect/reference#discovery-document . Note what Google
            # lists: scopes openid/email/profile only (no offline_access), client_secret_post and _basic only.
            return {"issuer": self.issuer, "authorization_endpoint": u("authorize"),
                    "device_authorization_endpoint": u("device"), "token_endpoint": u("token"),
                    "userinfo_endpoint": u("userinfo"), "revocation_endpoint": u("revoke"), "jwks_uri": u("jwks"),
                    "response_types_supported": ["code", "token", "id_token", "code token", "code id_token",
                                                 "token id_token", "code token id_token", "none"],
                    "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "email", "profile"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                    "claims_supported": ["aud", "email", "email_verified", "exp", "family_name", "given_name",
                                         "iat", "iss", "name", "picture", "sub"],
                    "code_challenge_methods_supported": ["plain", "S256"],
                    "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT,
                                              "urn:ietf:params:oauth:grant-type:jwt-bearer"]}
        if self.name == "entra":
            t = tenant or ENTRA_TENANT
            # "/common and /organizations ... return an issuer value, which is a template parametrized by the
            # tenantid: https://login.microsoftonline.com/{tenantid}/v2.0" --
            # https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#multi-tenant-applications
            issuer = f"{b}/{{tenantid}}/v2.0" if t in ("common", "organizations") else f"{b}/{t}/v2.0"
            return {"token_endpoint": u("token", t),
                    # Entra's discovery lists these three: https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#sample-response
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                              "client_secret_basic"],
                    "jwks_uri": u("jwks", t), "response_modes_supported": ["query", "fragment", "form_post"],
                    "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["RS256"],
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"], "issuer": issuer,
                    "request_uri_parameter_supported": False, "userinfo_endpoint": u("userinfo"),
                    "authorization_endpoint": u("authorize", t), "device_authorization_endpoint": u("device", t),
                    "http_logout_supported": True, "frontchannel_logout_supported": True,
                    "end_session_endpoint": f"{b}/{t}/oauth2/v2.0/logout",
                    "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
                                         "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time",
                                         "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash",
                                         "c_hash", "email"],
                    "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com"}
        if self.name == "okta":
            # https://developer.okta.com/docs/reference/api/oidc/#well-known-openid-configuration (response example);
            # the current Okta discovery also lists private_key_jwt and the device endpoint.
            return {"issuer": self.issuer, "authorization_endpoint": u("authorize"), "token_endpoint": u("token"),
                    "userinfo_endpoint": u("userinfo"), "jwks_uri": u("jwks"), "revocation_endpoint": u("revoke"),
                    "device_authorization_endpoint": u("device"),
                    "response_types_supported": ["code", "id_token", "code id_token", "code token",
                                                 "id_token token", "code id_token token"],
                    "response_modes_supported": ["query", "fragment", "form_post", "okta_post_message"],
                    "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "password",
                                              DEVICE_GRANT],
                    "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
                    "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access",
                                         "groups"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                              "client_secret_jwt", "private_key_jwt", "none"],
                    "claims_supported": ["iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp",
                                         "nonce", "name", "preferred_username", "email", "email_verified",
                                         "groups", "at_hash", "c_hash"],
                    "code_challenge_methods_supported": ["S256"], "request_parameter_supported": True,
                    "end_session_endpoint": f"{self.issuer}/v1/logout"}
        if self.name == "keycloak":
            # Shaped like a Keycloak 24-26 realm's document (keycloak/keycloak services/.../protocol/oidc/
            # OIDCWellKnownProvider.java), field for field as a live realm serves it, e.g.
            # https://keycloak.sso.gwdg.de/auth/realms/academiccloud/.well-known/openid-configuration (captured copy).
            # Endpoints the zoo does not serve are left out: introspection, registration, check_session_iframe, PAR,
            # CIBA, mtls_endpoint_aliases.
            algs = ["PS384", "RS384", "EdDSA", "ES384", "HS256", "HS512", "ES256", "RS256", "HS384", "ES512", "PS256",
                    "PS512", "RS512"]
            auth_methods = ["private_key_jwt", "client_secret_basic", "client_secret_post", "tls_client_auth",
                            "client_secret_jwt"]
            return {"issuer": self.issuer, "authorization_endpoint": u("authorize"), "token_endpoint": u("token"),
                    "userinfo_endpoint": u("userinfo"), "end_session_endpoint": u("logout"),
                    "frontchannel_logout_session_supported": True, "frontchannel_logout_supported": True,
                    "jwks_uri": u("jwks"),
                    "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "password",
                                              "client_credentials", "urn:openid:params:grant-type:ciba", DEVICE_GRANT],
                    "acr_values_supported": ["0", "1"],
                    "response_types_supported": ["code", "none", "id_token", "token", "id_token token", "code id_token",
                                                 "code token", "code id_token token"],
                    "subject_types_supported": ["public", "pairwise"],
                    "id_token_signing_alg_values_supported": algs,
                    "userinfo_signing_alg_values_supported": algs + ["none"],
                    "request_object_signing_alg_values_supported": algs + ["none"],
                    "response_modes_supported": ["query", "fragment", "form_post", "query.jwt", "fragment.jwt",
                                                 "form_post.jwt", "jwt"],
                    "token_endpoint_auth_methods_supported": auth_methods,
                    "token_endpoint_auth_signing_alg_values_supported": algs,
                    "claims_supported": ["aud", "sub", "iss", "auth_time", "name", "given_name", "family_name",
                                         "preferred_username", "email", "acr"],
                    "claim_types_supported": ["normal"], "claims_parameter_supported": True,
                    "scopes_supported": ["openid"] + sorted(KEYCLOAK_DEFAULT_SCOPES + KEYCLOAK_OPTIONAL_SCOPES),
                    "request_parameter_supported": True, "request_uri_parameter_supported": True,
                    "require_request_uri_registration": True, "code_challenge_methods_supported": ["plain", "S256"],
                    "tls_client_certificate_bound_access_tokens": True, "revocation_endpoint": u("revoke"),
                    "revocation_endpoint_auth_methods_supported": auth_methods,
                    "revocation_endpoint_auth_signing_alg_values_supported": algs,
                    "backchannel_logout_supported": True, "backchannel_logout_session_supported": True,
                    "device_authorization_endpoint": u("device"), "require_pushed_authorization_requests": False,
                    "authorization_response_iss_parameter_supported": True}
        return {"issuer": self.issuer, "authorization_endpoint": u("authorize"), "token_endpoint": u("token"),
                "device_authorization_endpoint": u("device"), "userinfo_endpoint": u("userinfo"),
                "jwks_uri": u("jwks"), "revocation_endpoint": u("revoke"),
                "scopes_supported": ["openid", "profile", "offline_access", "name", "given_name", "family_name",
                                     "nickname", "email", "email_verified", "picture", "created_at", "identities",
                                     "phone", "address"],
                "response_types_supported": ["code", "token", "id_token", "code token", "code id_token",
                                             "token id_token", "code token id_token"],
                "code_challenge_methods_supported": ["S256", "plain"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["HS256", "RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                          "private_key_jwt"],
                "claims_supported": ["aud", "auth_time", "created_at", "email", "email_verified", "exp",
                                     "family_name", "given_name", "iat", "identities", "iss", "name", "nickname",
                                     "phone_number", "picture", "sub"],
                "request_uri_parameter_supported": False, "end_session_endpoint": f"{b}/oidc/logout"}


class Client(ClientMixin):
    def __init__(self, client_id, secret, methods, grant_types, kind, redirect_uris=None):
        self.client_id, self.secret, self.methods, self.grant_types, self.kind = \
            client_id, secret, methods, grant_types, kind
        self.redirect_uris = redirect_uris  # keycloak: the client's "Valid redirect URIs"; else None

    def get_client_id(self): return self.client_id
    def get_default_redirect_uri(self): return None
    def get_allowed_scope(self, scope): return scope
    def check_client_secret(self, secret): return bool(self.secret) and secrets.compare_digest(secret, self.secret)
    def check_endpoint_auth_method(self, method, endpoint): return method in self.methods
    def check_response_type(self, response_type): return response_type == "code"
    def check_grant_type(self, grant_type): return grant_type in self.grant_types

    def check_redirect_uri(self, uri):
        if self.redirect_uris is not None:
            return keycloak_redirect_allowed(uri, self.redirect_uris)
        # RFC 8252 section 7.3: any port is allowed for loopback IP redirect URIs.
        parts = urllib.parse.urlsplit(uri)
        return (parts.scheme == "http" and parts.hostname == "127.0.0.1" and parts.path == "/callback"
                and not parts.query and not parts.fragment)


def make_clients(name):
    code_refresh = ["authorization_code", "refresh_token"]
    web = Client("keyless-web", "zoo-web-secret", ["client_secret_basic", "client_secret_post"], code_refresh, "web")
    if name == "google":
        # A "Desktop app" client has a secret and must send it: the token request's client_secret is "not applicable
        # to requests from clients registered as Android, iOS, or Chrome applications" -- Desktop is not exempt
        # (https://developers.google.com/identity/protocols/oauth2/native-app#exchange-authorization-code).
        cli = Client("keyless-cli", "zoo-installed-secret", ["client_secret_basic", "client_secret_post"],
                     code_refresh, "desktop")
        # Device flow clients must be of type "TVs and Limited Input devices", which also has a secret
        # (https://developers.google.com/identity/protocols/oauth2/limited-input-device).
        tv = Client("keyless-tv", "zoo-tv-secret", ["client_secret_basic", "client_secret_post"],
                    ["refresh_token", DEVICE_GRANT], "tv")
        return {c.client_id: c for c in (cli, web, tv)}
    if name == "keycloak":
        # keyless-cli: "Client authentication" OFF ("For client-side clients that perform browser logins. As it is not
        # possible to ensure that secrets can be kept safe with client-side clients, it is important to restrict access
        # by configuring correct redirect URIs"), Standard flow and "OAuth 2.0 Device Authorization Grant" enabled;
        # keyless-web: "Client authentication" ON (https://www.keycloak.org/docs/latest/server_admin/#_oidc_clients,
        # Capability config). "Consent required" is off for both (the default).
        uris = ARGS.redirect_uri or KEYCLOAK_REDIRECT_URIS
        cli = Client("keyless-cli", None, ["none"], code_refresh + [DEVICE_GRANT], "public", list(uris))
        web = Client("keyless-web", "zoo-web-secret", ["client_secret_basic", "client_secret_post"], code_refresh,
                     "web", list(uris))
        return {c.client_id: c for c in (cli, web)}
    # Entra "Mobile and desktop applications", Okta "Native", Auth0 "Native": public clients (method "none").
    cli = Client("keyless-cli", None, ["none"], code_refresh + [DEVICE_GRANT], "public")
    return {c.client_id: c for c in (cli, web)}


# Keycloak's RedirectUtils.verifyRedirectUri (keycloak/keycloak services/src/main/java/org/keycloak/protocol/oidc/utils/
# RedirectUtils.java, 24-26): exact string match, or a valid URI ending in "*" (not containing "?") matches by prefix
# with the query/fragment ignored -- unless the requested URI has user-info or a "/../" path, then only exact matching
# ("To avoid security issues, if the passed redirect URI contains the userinfo part or its path manages access to parent
# directory (/../) no wildcard comparison is performed", server_admin "Valid Redirect URIs"); a lone "*" allows any
# http(s) URI. Loopback: if nothing matched and the URI is http on localhost, 127.0.0.1 or [::1], it is compared again
# with its port replaced by the default one, i.e. removed -- so a registered URI *without* a port matches any port
# ("http://127.0.0.1 ... This redirect uri allows any port", https://www.keycloak.org/securing-apps/oidc-layers,
# Redirect URIs), while a registered URI *with* a port matches that port only.
KEYCLOAK_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
KEYCLOAK_UNSAFE_PATH = re.compile(r"(/|%2[fF]|%5[cC]|\\)(%2[eE]|\.){2}(/|%2[fF]|%5[cC]|\\)|(/|%2[fF]|%5[cC]|\\)(%2[eE]|\.){2}$")


def keycloak_redirect_allowed(uri, valid_uris):
    try:
        parts = urllib.parse.urlsplit(uri)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False
    wildcards = "@" not in parts.netloc and not KEYCLOAK_UNSAFE_PATH.search(parts.path)

    def matches(candidate):
        for valid in sorted(valid_uris, key=len, reverse=True):  # longest first, as Keycloak orders them
            if valid == "*":
                return True
            if valid.endswith("*") and "?" not in valid and wildcards:
                cut = candidate.find("?")
                cut = candidate.find("#") if cut == -1 else cut
                bare = candidate if cut == -1 else candidate[:cut]
                prefix = valid[:-1]
                if bare.startswith(prefix):
                    return True
                if len(prefix) > 1 and prefix.endswith("/"):
                    prefix = prefix[:-1]
                if bare == prefix:
                    return True
            elif valid == candidate:
                return True
        return False

    if matches(uri):
        return parts.scheme in ("http", "https") or any(v.startswith(parts.scheme + ":") for v in valid_uris)
    if parts.scheme == "http" and parts.hostname in KEYCLOAK_LOOPBACK:
        host = parts.netloc.rpartition("@")[2]
        if parts.port is not None:
            host = host[:host.rfind(":")]
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{host}" if userinfo else host
        return matches(urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))
    return False


# ---------------------------------------------------------------- recording (the test-observability list)

def redact(params):
    out = {}
    for k in params:
        vals = params.getlist(k) if hasattr(params, "getlist") else [params[k]]
        vals = [f"<redacted:{len(v)} chars>" if k in SECRET_PARAMS else v for v in vals]
        out[k] = vals[0] if len(vals) == 1 else vals
    return out


def client_auth_method():
    header = request.headers.get("Authorization", "")
    if header[:6].lower() == "basic ":
        try:
            _, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            secret = ""
        return "client_secret_basic" if secret else "basic-empty-secret"
    if request.form.get("client_secret"):
        return "client_secret_post"
    return "private_key_jwt" if request.form.get("client_assertion") else "none"


def record(endpoint, params, client_auth="none"):
    entry = {"endpoint": endpoint, "params": redact(params), "client_auth": client_auth, "outcome": "pending"}
    with LOCK:
        REQUESTS.append(entry)
        return len(REQUESTS) - 1


def set_outcome(index, outcome):
    with LOCK:
        if index is not None and 0 <= int(index) < len(REQUESTS):
            REQUESTS[int(index)]["outcome"] = outcome


# ---------------------------------------------------------------- tokens

class User:
    def __init__(self, name): self.name = name
    def get_user_id(self): return self.name


class Code(AuthorizationCodeMixin):
    def __init__(self, **kw): self.__dict__.update(kw)
    def get_redirect_uri(self): return self.redirect_uri
    def get_scope(self): return self.scope
    def get_nonce(self): return self.nonce
    def get_auth_time(self): return self.auth_time
    def get_acr(self): return None
    def get_amr(self): return None


class Refresh:
    def __init__(self, **kw): self.__dict__.update(kw)
    def get_scope(self): return self.scope
    def check_client(self, client): return client.get_client_id() == self.client_id
    def is_revoked(self): return self.revoked
    def is_expired(self): return False


class Device(DeviceCredentialMixin):
    def __init__(self, **kw): self.__dict__.update(kw)
    def get_client_id(self): return self.client_id
    def get_scope(self): return self.scope
    def get_user_code(self): return self.user_code
    def get_nonce(self): return None
    def get_auth_time(self): return self.auth_time
    def is_expired(self): return time.time() > self.expires_at


def sign(claims, header=None):
    head = {"alg": "RS256", "typ": "JWT", **(header or {})}
    if not ARGS.no_kid:
        head["kid"] = KID
    return jose_jwt.encode(head, claims, KEY)


def generate_bearer(grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True):
    """Authlib token generator: access token format per persona, refresh token when the grant decided so."""
    now, lifetime = int(time.time()), ARGS.token_lifetime
    audience = g.get("zoo_audience")
    name = user.name if user else None
    if P.name == "google":
        access = "ya29." + secrets.token_urlsafe(40)  # Google access tokens are opaque
    elif P.name == "entra":
        access = sign({"aud": "00000003-0000-0000-c000-000000000000", "iss": f"{P.base}/{ENTRA_TENANT}/",
                       "iat": now, "nbf": now, "exp": now + lifetime, "tid": ENTRA_TENANT, "scp": scope,
                       "oid": ENTRA_OIDS.get(name), "appid": client.client_id, "ver": "1.0"})
    elif P.name == "okta":
        access = sign({"ver": 1, "jti": "AT." + secrets.token_urlsafe(16), "iss": P.issuer, "aud": "api://default",
                       "iat": now, "exp": now + lifetime, "cid": client.client_id, "uid": SUBS["okta"].get(name),
                       "scp": (scope or "").split(), "sub": USERS[name]["email"] if name else client.client_id})
    elif P.name == "keycloak":
        # Keycloak access tokens are RS256 JWTs with typ "Bearer", aud "account" (the roles scope adds the audience of
        # clients the user has roles of), azp, sid, realm_access/resource_access (roles scope) and the profile/email
        # claims (default client scopes) -- TokenManager.createClientAccessToken/initToken in keycloak/keycloak
        # services/src/main/java/org/keycloak/protocol/oidc/TokenManager.java; claims listed in server_admin
        # "Client scopes" (roles: "add the roles of the user to the access token").
        kc, u = g.get("zoo_kc") or {}, USERS.get(name, {})
        access = sign({"exp": now + lifetime, "iat": now, "auth_time": kc.get("auth_time"), "jti": str(uuid.uuid4()),
                       "iss": P.issuer, "aud": "account", "sub": SUBS["keycloak"].get(name), "typ": "Bearer",
                       "azp": client.client_id, "sid": kc.get("sid"), "acr": kc.get("acr", "1"),
                       "allowed-origins": [], "realm_access": {"roles": KEYCLOAK_ROLES.get(name, [])},
                       "resource_access": {"account": {"roles": ["manage-account", "manage-account-links",
                                                                 "view-profile"]}},
                       "scope": keycloak_scope(scope), "email_verified": True, "name": u.get("name"),
                       "preferred_username": name, "given_name": u.get("given_name"),
                       "family_name": u.get("family_name"), "email": u.get("email")})
    elif audience:
        # Auth0: with an API audience the access token is a JWT whose aud is [API, /userinfo] when openid is in the
        # scope, else the API alone -- "The aud claim of this JWT will be either a single string (the API
        # identifier) or an array containing both the API identifier and the /userinfo endpoint"
        # (https://auth0.com/docs/secure/tokens/access-tokens/access-token-formats, auth0/docs articles/tokens/access-token-formats.md).
        aud = [audience, P.base + "/userinfo"] if "openid" in (scope or "").split() else audience
        access = sign({"iss": P.issuer, "sub": SUBS["auth0"].get(name), "aud": aud, "iat": now,
                       "exp": now + lifetime, "azp": client.client_id, "scope": scope})
    else:
        # Auth0 without an audience: "If the token audience is just the OIDC /userinfo endpoint, then Auth0 will issue
        # an opaque Access Token" (same page).
        access = secrets.token_urlsafe(24)
    token = {"access_token": access, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
    if P.name == "keycloak":
        token = keycloak_token_response(token, client, name, scope, include_refresh_token)
    elif include_refresh_token:
        token["refresh_token"] = {"google": "1//0g", "entra": "0.AX"}.get(P.name, "") + secrets.token_urlsafe(32)
    with LOCK:
        ACCESS[access] = {"user": name, "client_id": client.client_id, "scope": scope, "exp": now + lifetime}
    return token


def keycloak_scope(scope, internal=False):
    """The scope Keycloak reports: the requested scopes plus the default client scopes that are included in the token
    scope (email, profile); a refresh token's scope lists every applied client scope."""
    requested = (scope or "").split()
    extra = KEYCLOAK_DEFAULT_SCOPES if internal else ["email", "profile"]
    return " ".join(requested + [s for s in extra if s not in requested])


def keycloak_token_response(token, client, name, scope, include_refresh_token):
    """Keycloak's token response: access_token, expires_in, refresh_expires_in, refresh_token, token_type, id_token,
    not-before-policy, session_state, scope (AccessTokenResponse; e.g. the example response in
    https://www.keycloak.org/securing-apps/oidc-layers "Token endpoint" users see with curl). The refresh token is a JWT
    signed with the realm's HMAC key whose typ is "Refresh", or "Offline" when offline_access was granted, and which has
    no exp when offline ("an offline token never expires and is not subject to the SSO Session Idle timeout",
    https://www.keycloak.org/docs/latest/server_admin/#_offline-access; TokenManager.generateRefreshToken:
    refreshToken.type(TokenUtil.TOKEN_TYPE_OFFLINE), exp only if Offline Session Max Limited). Regular refresh tokens
    report the SSO Session Idle timeout (default 30 minutes; the zoo does not enforce it)."""
    kc, now = g.get("zoo_kc") or {}, int(time.time())
    token = {"access_token": token["access_token"], "expires_in": token["expires_in"], "refresh_expires_in": 0,
             "token_type": "Bearer", "not-before-policy": 0, "session_state": kc.get("sid"),
             "scope": keycloak_scope(scope)}
    if include_refresh_token:
        offline = bool(kc.get("offline"))
        claims = {"exp": None if offline else now + 1800, "iat": now, "jti": str(uuid.uuid4()), "iss": P.issuer,
                  "aud": P.issuer, "sub": SUBS["keycloak"].get(name), "typ": "Offline" if offline else "Refresh",
                  "azp": client.client_id, "sid": kc.get("sid"), "scope": keycloak_scope(scope, internal=True)}
        head = {"alg": "HS512", "typ": "JWT"}
        if not ARGS.no_kid:
            head["kid"] = KC_HMAC.kid
        token["refresh_token"] = jose_jwt.encode(head, {k: v for k, v in claims.items() if v is not None}, KC_HMAC,
                                                 algorithms=["HS512"])
        token["refresh_expires_in"] = 0 if offline else 1800
    return token


def save_token(token, req):
    rt = token.get("refresh_token")
    if rt and rt not in REFRESH:
        origin = req.authorization_code or req.refresh_token or getattr(req, "credential", None)
        extra = {}
        if P.name == "keycloak":
            kc = g.get("zoo_kc") or {}
            extra = {"sid": kc.get("sid"), "acr": kc.get("acr"), "offline": bool(kc.get("offline")),
                     "nonce": kc.get("nonce")}
        with LOCK:
            REFRESH[rt] = Refresh(token=rt, client_id=req.client.client_id, user=req.user.name,
                                  scope=origin.scope, auth_time=origin.auth_time, revoked=False,
                                  audience=getattr(origin, "audience", None), idp=getattr(origin, "idp", None), **extra)


class ZooOpenID(OpenIDCode):
    """Authlib's OpenID Connect extension, registered on the code, refresh and device grants."""

    def exists_nonce(self, nonce, req): return False
    def resolve_client_private_key(self, client): return KEY

    def get_encode_header(self, client):
        return {"alg": "RS256"} if ARGS.no_kid else {"alg": "RS256", "kid": KID}

    def get_compatible_claims(self, req):
        now = int(time.time())
        client_id = req.client.client_id
        iss = P.issuer
        if P.name == "google" and req.payload.grant_type == "refresh_token":
            # Google: "The modern value is https://accounts.google.com; however, accounts.google.com is also returned
            # for legacy implementations" (https://developers.google.com/identity/openid-connect/reference#discovery-document);
            # clients must accept both. Which grant returns which form is not documented: here the refresh grant
            # returns the scheme-less form so tests can see both.
            iss = P.issuer.split("://", 1)[1]
        origin = req.authorization_code or req.refresh_token or getattr(req, "credential", None)
        claims = {"iss": iss, "aud": [client_id] if ARGS.aud_array else client_id, "iat": now,
                  "exp": now + ARGS.token_lifetime, "auth_time": origin.auth_time if origin else now}
        if P.name == "google":
            claims["azp"] = client_id
        if P.name == "keycloak":
            # Keycloak's ID token: jti, typ "ID", aud = the client id, azp, sid, acr, nonce (kept on refresh), then the
            # profile/email claims -- TokenManager.AccessTokenResponseBuilder.generateIDToken: idToken.type(
            # TokenUtil.TOKEN_TYPE_ID), audience(client.getClientId()), issuedFor(...), setSessionId(...), setNonce(...).
            kc = g.get("zoo_kc") or {}
            claims.update(jti=str(uuid.uuid4()), typ="ID", azp=client_id, sid=kc.get("sid"), acr=kc.get("acr", "1"))
            if kc.get("nonce") and not req.authorization_code:
                claims["nonce"] = kc["nonce"]
        if P.name == "okta":
            # idp: "The Okta org ID or the ID of an Identity Provider if this authentication used Social
            # Authentication or Inbound SAML" (https://developer.okta.com/docs/reference/api/oidc/#id-token-claims);
            # here it echoes the `idp` authorization parameter when one was sent.
            claims["idp"] = getattr(origin, "idp", None) or OKTA_ORG_ID
        return claims

    def generate_user_info(self, user, scope):
        name, scopes = user.name, (scope or "").split()
        u, sub = USERS[name], SUBS[P.name][name]
        info = {"sub": sub}
        if P.name == "google":
            if "email" in scopes:
                info.update(email=u["email"], email_verified=True)
            # ID tokens from the refresh grant lack the profile claims (observed: "name" missing after refresh,
            # https://github.com/dexidp/dex/issues/1718 and https://github.com/dexidp/dex/issues/4458).
            if "profile" in scopes and request.form.get("grant_type") != "refresh_token":
                info.update(name=u["name"], given_name=u["given_name"], family_name=u["family_name"],
                            picture="https://lh3.googleusercontent.com/a/zoo-" + name)
        elif P.name == "entra":
            # v2.0 ID token claims: https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
            # preferred_username, name and oid need the profile scope; email is not there by default ("Your app can
            # request the email claim for managed users ... using the email optional claim ... On the v2.0 endpoint,
            # your app can also request the email OpenID Connect scope"). upn is not in v2.0 ID tokens: it is one of
            # the "v2.0-specific optional claims ... not included in v2.0 tokens unless requested"
            # (https://learn.microsoft.com/en-us/entra/identity-platform/optional-claims-reference).
            info.update(ver="2.0", tid=ENTRA_TENANT, aio=secrets.token_urlsafe(12), rh="0.AX" + secrets.token_urlsafe(8),
                        uti=secrets.token_urlsafe(16))
            if "profile" in scopes:
                info.update(name=u["name"], preferred_username=f"{name}@contoso.example", oid=ENTRA_OIDS[name])
            if "email" in scopes:
                info["email"] = u["email"]
        elif P.name == "okta":
            # ID token claims: https://developer.okta.com/docs/reference/api/oidc/#id-token-claims ("aud ... is one of
            # your application's OAuth 2.0 client IDs" -- a string).
            info.update(ver=1, jti="ID." + secrets.token_urlsafe(16), amr=["pwd"])
            if "profile" in scopes:
                info.update(name=u["name"], preferred_username=u["email"])
            if "email" in scopes:
                info.update(email=u["email"], email_verified=True)
            if "groups" in scopes:  # "groups: Requests access to the groups claim" (same page, Scopes)
                info["groups"] = u["groups"]
        elif P.name == "keycloak":
            # Default client scopes profile and email apply whatever the scope parameter says ("The token will contain
            # mappers and role scope mappings from the default client scopes profile and email",
            # https://www.keycloak.org/docs/latest/server_admin/#_client_scopes, Example); sub is the user's id.
            info.update(email_verified=True, name=u["name"], preferred_username=name, given_name=u["given_name"],
                        family_name=u["family_name"], email=u["email"])
        else:
            info["sid"] = secrets.token_urlsafe(16)
            if "profile" in scopes:
                info.update(nickname=name, name=u["name"], picture=f"https://s.gravatar.com/avatar/zoo-{name}",
                            updated_at="2024-01-01T00:00:00.000Z")
            if "email" in scopes:
                info.update(email=u["email"], email_verified=True)
        return info


class ZooCodeChallenge(CodeChallenge):
    # Okta: code_challenge_method "Valid value: S256" (https://developer.okta.com/docs/reference/api/oidc/#request-parameters)
    SUPPORTED_CODE_CHALLENGE_METHOD = ["plain", "S256"]


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def save_authorization_code(self, code, req):
        extras = g.zoo_extras
        data = req.payload.data
        with LOCK:
            CODES[code] = Code(code=code, client_id=req.client.client_id, redirect_uri=req.payload.redirect_uri,
                               scope=req.payload.scope, nonce=data.get("nonce"), user=req.user.name,
                               code_challenge=data.get("code_challenge"),
                               code_challenge_method=data.get("code_challenge_method"),
                               expires_at=time.time() + 600, **extras)

    def query_authorization_code(self, code, client):
        with LOCK:
            item = CODES.get(code)
        if item and item.client_id == client.client_id and time.time() < item.expires_at:
            return item

    def delete_authorization_code(self, authorization_code):
        with LOCK:
            CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return User(authorization_code.user)

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        code = self.request.authorization_code
        g.zoo_audience = code.audience
        if P.name == "keycloak":
            g.zoo_kc = keycloak_session(code, user.name, scope, lambda: self.delete_authorization_code(code))
        return super().generate_token(user=user, scope=scope, grant_type=grant_type, expires_in=expires_in,
                                      include_refresh_token=code.refresh_allowed)


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def authenticate_refresh_token(self, refresh_token):
        with LOCK:
            item = REFRESH.get(refresh_token)
        return item if item and not item.revoked else None

    def authenticate_user(self, credential):
        return User(credential.user)

    def issue_token(self, user, refresh_token):
        g.zoo_audience = refresh_token.audience
        scope = self.request.payload.scope or refresh_token.get_scope()
        if P.name == "keycloak":
            g.zoo_kc = {"sid": refresh_token.sid, "auth_time": refresh_token.auth_time, "acr": refresh_token.acr,
                        "offline": refresh_token.offline, "nonce": refresh_token.nonce}
        # Entra returns "A new OAuth 2.0 refresh token" on refresh and "Refresh tokens aren't revoked when used"
        # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#refresh-the-access-token).
        # Keycloak too returns a new refresh token of the same type on every refresh (TokenManager.refreshAccessToken:
        # responseBuilder.generateRefreshToken(refreshToken, clientSession) when "Use refresh tokens" is on, the
        # default); the presented one stays valid unless the realm's "Revoke Refresh Token" is on ("When Enabled,
        # Keycloak revokes refresh tokens and issues another token that the client must use", server_admin
        # https://www.keycloak.org/docs/latest/server_admin/#_timeouts, Tokens tab; off by default and off here).
        token = self.generate_token(user=user, scope=scope, include_refresh_token=P.name in ("entra", "keycloak"))
        if P.name == "okta":
            # Okta native/web apps default to "persistent refresh token behavior, the same refresh token is returned
            # each time" (https://developer.okta.com/docs/guides/refresh-tokens/main/).
            token["refresh_token"] = refresh_token.token
        self.request.user = user
        return token

    def revoke_old_credential(self, refresh_token):
        pass  # see issue_token: none of the personas revokes the presented refresh token


class DeviceGrant(DeviceCodeGrant):
    def query_device_credential(self, device_code):
        with LOCK:
            return DEVICES.get(device_code)

    def query_user_grant(self, user_code):
        with LOCK:
            item = next((d for d in DEVICES.values() if d.user_code == user_code), None)
        if item and item.approved is not None:
            return User(item.user), item.approved

    def should_slow_down(self, credential):
        return False

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        # Google's device flow returns a refresh token without asking for one
        # (https://developers.google.com/identity/protocols/oauth2/limited-input-device);
        # the others want offline_access (Entra: "refresh_token ... Issued if the original scope parameter included
        # offline_access", https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code).
        include = P.name == "google" or "offline_access" in (scope or "").split()
        g.zoo_audience = self.request.credential.audience
        if P.name == "keycloak":
            # Keycloak: "The application uses the device code along with its credentials to obtain an Access Token,
            # Refresh Token and ID Token" (https://www.keycloak.org/securing-apps/oidc-layers, Device Authorization Grant).
            include = True
            credential = self.request.credential
            credential.sid = getattr(credential, "sid", None) or str(uuid.uuid4())

            def consume():
                with LOCK:
                    DEVICES.pop(credential.device_code, None)
            g.zoo_kc = keycloak_session(credential, user.name, scope, consume)
        token = super().generate_token(user=user, scope=scope, grant_type=grant_type, expires_in=expires_in,
                                       include_refresh_token=include)
        with LOCK:
            DEVICES.pop(self.request.credential.device_code, None)  # a device code is redeemed once
        return token


class KeycloakNotAllowed(OAuth2Error):
    error = "not_allowed"
    status_code = 400


def keycloak_session(origin, user, scope, consume):
    """Keycloak token-time checks and session data. An offline token needs the realm role offline_access: "To issue an
    offline token, users must have the role mapping for the realm-level offline_access role"
    (https://www.keycloak.org/docs/latest/server_admin/#_offline-access). Without it the token request fails with
    400 {"error": "not_allowed", "error_description": "Offline tokens not allowed for the user or client"}
    (TokenManager.AccessTokenResponseBuilder.createOrUpdateOfflineSession: ErrorResponseException(Errors.NOT_ALLOWED,
    "Offline tokens not allowed for the user or client", BAD_REQUEST)); the code has been used up by then."""
    offline = "offline_access" in (scope or "").split()
    if offline and "offline_access" not in KEYCLOAK_ROLES.get(user, []):
        consume()
        raise KeycloakNotAllowed("Offline tokens not allowed for the user or client")
    return {"sid": getattr(origin, "sid", None) or str(uuid.uuid4()), "auth_time": origin.auth_time,
            "acr": getattr(origin, "acr", None) or "1", "offline": offline, "nonce": getattr(origin, "nonce", None)}


def keycloak_end_session(sid, client_id=None, offline=False):
    """Revoke the refresh tokens of a Keycloak user session (of one client, if given; offline ones only if asked: "The
    offline token is valid after a user logout", https://www.keycloak.org/docs/latest/server_admin/#_offline-access)."""
    with LOCK:
        for item in REFRESH.values():
            if sid and item.sid == sid and item.offline == offline and client_id in (None, item.client_id):
                item.revoked = True


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    INTERVAL = 5

    def get_verification_uri(self): return P.url("verify")

    def authenticate_client(self, req):
        client = P.clients.get(req.payload.data.get("client_id") or "")
        if P.name == "google" and client:
            # Google's device request carries only client_id and scope, even for its secret-holding TV client
            # (https://developers.google.com/identity/protocols/oauth2/limited-input-device).
            req.client = client
            return client
        return super().authenticate_client(req)

    def save_device_credential(self, client_id, scope, data):
        with LOCK:
            DEVICES[data["device_code"]] = Device(device_code=data["device_code"], client_id=client_id, scope=scope, user_code=data["user_code"],
                                                  expires_at=time.time() + self.EXPIRES_IN, user=None,
                                                  approved=None, auth_time=None, audience=g.get("zoo_audience"))


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string, token_type_hint):
        with LOCK:
            return REFRESH.get(token_string)

    def revoke_token(self, token, req):
        token.revoked = True
        if P.name == "keycloak":
            # Revoking a refresh token ends the client's session (its other refresh tokens too): "When revoking a
            # refresh token, the user consent for the corresponding client is also revoked"
            # (https://www.keycloak.org/securing-apps/oidc-layers, Token Revocation endpoint).
            keycloak_end_session(token.sid, token.client_id, offline=token.offline)


SERVER = AuthorizationServer()
OPENID = ZooOpenID(require_nonce=False)


# ---------------------------------------------------------------- pages

STYLE = "body{font-family:sans-serif;max-width:30em;margin:3em auto}input,button{display:block;margin:.5em 0}"


def page(title, body, status=200, error=None):
    resp = Response(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                    f"<style>{STYLE}</style></head><body>{body}</body></html>", status, mimetype="text/html")
    if error:
        resp.headers["X-Zoo-Error"] = error
    return resp


def hidden_fields(params):
    skip = {"username", "password", "otp", "decision", "_zoo_step"}
    return "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                   for k, v in params.items(multi=True) if k not in skip)


def login_page(params, message=None):
    titles = {"google": "Sign in - Google Accounts", "entra": "Sign in to your account",
              "okta": "Okta - Sign In", "auth0": "Log in | Zoo", "keycloak": "Sign in to zoo"}
    # login_hint pre-fills the username (Entra: "You can use this parameter to pre-fill the username and email
    # address field of the sign-in page", https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc#send-the-sign-in-request;
    # Okta: "A username to prepopulate if prompting for authentication", https://developer.okta.com/docs/reference/api/oidc/#request-parameters).
    hint = html.escape(params.get("login_hint", ""))
    alert = f"<p role='alert'>{html.escape(message)}</p>" if message else ""
    return page(titles[P.name], f"<h1>{titles[P.name]}</h1>{alert}<form method='post' action='/authorize'>"
                f"{hidden_fields(params)}<input type='hidden' name='_zoo_step' value='login'>"
                f"<label>Username <input id='username' name='username' value='{hint}' autocomplete='username'></label>"
                f"<label>Password <input id='password' name='password' type='password'></label>"
                f"<button type='submit'>Sign in</button></form>", 401 if message else 200)


def consent_page(params, user):
    scopes = html.escape(params.get("scope", ""))
    return page("Consent", f"<h1>keyless wants to access your account</h1><p>Signed in as {html.escape(user)}."
                f"</p><p>Requested: {scopes}</p><form method='post' action='/authorize'>{hidden_fields(params)}"
                f"<input type='hidden' name='_zoo_step' value='consent'>"
                f"<button type='submit' name='decision' value='allow'>Allow</button>"
                f"<button type='submit' name='decision' value='deny'>Deny</button></form>")


def error_page(code, detail, status=400):
    """The provider's error page for an authorization request that must not be redirected (RFC 6749 4.1.2.1: "the
    authorization server SHOULD inform the resource owner of the error and MUST NOT automatically redirect")."""
    if P.name == "google":
        # Wording observed on Google's pages: "Access blocked: ..." / "Error 400: redirect_uri_mismatch"
        # (e.g. the captured page https://myget.org/Account/Challenge/google-v1).
        body = (f"<h1>Access blocked: Authorization Error</h1><p>{html.escape(detail)}</p>"
                f"<p id='error-code'>Error {status}: {code}</p>")
    elif P.name == "entra":
        body = (f"<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>"
                f"<p id='error-code'>{html.escape(detail)}</p><p>error: {code}</p>")
    elif P.name == "keycloak":
        # Keycloak's error page (theme error.ftl): heading "We are sorry...", then the message, e.g. "Invalid
        # parameter: redirect_uri" (Messages.INVALID_PARAMETER with the parameter name) or "Client not found."; no code.
        body = (f"<h1 id='kc-page-title'>We are sorry...</h1>"
                f"<div id='kc-error-message'><p class='instruction'>{html.escape(detail)}</p></div>")
    else:
        body = f"<h1>{status} Bad Request</h1><p id='error-code'>{code}</p><p>{html.escape(detail)}</p>"
    return page("Error", body, status, error=code)


def redirect_error(params, error, description=None):
    query = {"error": error}
    if description:
        query["error_description"] = description
    if params.get("state"):
        query["state"] = params["state"]
    sep = "&" if "?" in params["redirect_uri"] else "?"
    return Response(status=302, headers={"Location": params["redirect_uri"] + sep + urllib.parse.urlencode(query)})


# ---------------------------------------------------------------- authorization endpoint

def validate_authorization(params, tenant):
    """Persona checks made before Authlib's; returns an error Response or None."""
    client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
    if P.name == "entra" and tenant not in (ENTRA_TENANT, "common", "organizations"):
        # AADSTS90002 InvalidTenantName (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)
        return error_page("invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
    client = P.clients.get(client_id)
    if client and client.kind == "tv":
        return error_page("invalid_client", "Invalid client type.", 401)  # device-flow-only client (uncited)
    if not client:
        if P.name == "keycloak":
            # AuthorizationEndpoint.checkClient: ErrorPageException(BAD_REQUEST, Messages.CLIENT_NOT_FOUND), whose
            # English text is "Client not found." (keycloak/keycloak services/.../oidc/endpoints/AuthorizationEndpoint.java)
            return error_page("client_not_found", "Client not found.")
        if P.name == "google":
            # Observed Google page text: "The OAuth client was not found." with "Error 401: invalid_client".
            return error_page("invalid_client", "The OAuth client was not found.", 401)
        if P.name == "entra":
            # AADSTS700016 UnauthorizedClient_DoesNotMatchRequest: "The application wasn't found in the directory/tenant"
            # (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)
            return error_page("unauthorized_client", f"AADSTS700016: Application with identifier '{client_id}' was "
                              f"not found in the directory 'Zoo'. This can happen if the application has not been "
                              f"installed by the administrator of the tenant or consented to by any user in the "
                              f"tenant. You may have sent your authentication request to the wrong tenant.")
        return error_page("invalid_client", f"Unknown client: {client_id}")
    if not redirect_uri or not client.check_redirect_uri(redirect_uri):
        if P.name == "keycloak":
            # AuthorizationEndpointChecker.checkRedirectUri: a redirect_uri that no Valid redirect URI admits gives an
            # error page, BAD_REQUEST, Messages.INVALID_PARAMETER with "redirect_uri" -- "Invalid parameter:
            # redirect_uri" -- and no redirect (keycloak/keycloak services/.../oidc/endpoints/AuthorizationEndpointChecker.java).
            return error_page("invalid_redirect_uri", "Invalid parameter: redirect_uri")
        if P.name == "google":
            # Google page: "You can't sign in to this app because it doesn't comply with Google's OAuth 2.0 policy"
            # with "Error 400: redirect_uri_mismatch" (observed, e.g. https://myget.org/Account/Challenge/google-v1).
            return error_page("redirect_uri_mismatch", "You can't sign in to this app because it doesn't comply "
                              f"with Google's OAuth 2.0 policy. redirect_uri: {redirect_uri}")
        if P.name == "entra":
            # AADSTS50011 InvalidReplyTo (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)
            return error_page("invalid_request", f"AADSTS50011: The redirect URI '{redirect_uri}' specified in the "
                              f"request does not match the redirect URIs configured for the application "
                              f"'{client_id}'.")
        if P.name == "okta":
            return error_page("invalid_request", "The 'redirect_uri' parameter must be a Login redirect URI in "
                              f"the client app settings: {redirect_uri}")
        return error_page("invalid_request", "Callback URL mismatch. The provided redirect_uri is not in the list "
                          "of allowed callback URLs.")
    scopes = params.get("scope", "").split()
    if P.name == "google":
        known = {"openid", "email", "profile", "https://www.googleapis.com/auth/userinfo.email",
                 "https://www.googleapis.com/auth/userinfo.profile"}
        bad = [s for s in scopes if s not in known]
        if not scopes or bad:
            # Google has no offline_access scope: its discovery lists openid/email/profile only, and refresh tokens come
            # from access_type=offline ("if an access token is being requested, the client does not receive a refresh
            # token unless offline is specified",
            # https://developers.google.com/identity/openid-connect/openid-connect#authenticationuriparameters).
            # Unknown scopes get Google's error page, not a redirect. Text observed:
            # "Some requested scopes were invalid. {valid=[openid, ...], invalid=[offline_access]}"
            # (https://github.com/lukaszraczylo/traefikoidc/issues/44).
            if not scopes:
                return error_page("invalid_request", "Missing required parameter: scope")
            valid = ", ".join(s for s in scopes if s in known)
            return error_page("invalid_scope", f"Some requested scopes were invalid. {{valid=[{valid}], "
                              f"invalid=[{', '.join(bad)}]}}")
        return None
    known = {"entra": {"openid", "profile", "email", "offline_access", "User.Read",
                       "https://graph.microsoft.com/User.Read"},
             "okta": {"openid", "profile", "email", "address", "phone", "offline_access", "groups"},
             "auth0": {"openid", "profile", "email", "offline_access", "read:zoo", "write:zoo"},
             "keycloak": {"openid", *KEYCLOAK_DEFAULT_SCOPES, *KEYCLOAK_OPTIONAL_SCOPES}}[P.name]
    bad = [s for s in scopes if s not in known]
    if bad:
        # RFC 6749 4.1.2.1: invalid_scope is returned to the client by redirect.
        desc = {"entra": f"AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope "
                         f"'{' '.join(bad)}' is not valid.",
                "okta": "One or more scopes are not configured for the authorization server resource.",
                # AuthorizationEndpointChecker.checkValidScope: invalid_scope, "Invalid scopes: " + the scope parameter
                "keycloak": f"Invalid scopes: {params.get('scope', '')}"}
        return redirect_error(params, "invalid_scope", desc.get(P.name, f"Unknown scope: {' '.join(bad)}"))
    audience = params.get("audience")
    if P.name == "auth0" and audience and audience not in AUTH0_APIS:
        # Auth0 redirects unknown audiences with error=access_denied&error_description=Service not found: AUD
        # (observed: https://github.com/aws-samples/ask-around-me/issues/2; troubleshooting added in auth0/docs#6077).
        return redirect_error(params, "access_denied", f"Service not found: {audience}")
    return None


def needs_consent(user, params):
    prompt = params.get("prompt", "").split()
    if P.name == "keycloak":
        # "Consent required: If enabled, users have to consent to client access" -- off by default and for keyless-cli
        # (https://www.keycloak.org/docs/latest/server_admin/#_oidc_clients, Login settings), so no consent page.
        return False
    if P.name == "okta":
        # Okta shows a consent dialog only for apps and scopes configured to require it
        # (https://developer.okta.com/docs/reference/api/oidc/#parameter-details, prompt=consent); keyless' apps
        # here are first-party, so no consent page.
        return False
    granted = CONSENTS.get((user, params["client_id"]), set())
    # Google: consent on the first authorization and again with prompt=consent
    # (https://developers.google.com/identity/protocols/oauth2/web-server#creatingclient, "prompt ... consent");
    # Entra: "If the user hasn't consented to any of those permissions, it asks the user to consent"
    # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow). Auth0 likewise asks for
    # scopes not yet granted (no provider page found; OIDC Core 3.1.2.4 lets the server obtain consent).
    return "consent" in prompt or not set(params.get("scope", "").split()) <= granted


def issue_code(params, user, consented_now, index):
    scopes = params.get("scope", "").split()
    if P.name == "google":
        # "access_type ... offline ... instructs the Google authorization server to return a refresh token and an
        # access token the first time that your application exchanges an authorization code for tokens"
        # (https://developers.google.com/identity/protocols/oauth2/web-server#offline). The first time = the flow in
        # which the user consented; prompt=consent makes the user consent (and get a refresh token) again
        # (https://stackoverflow.com/questions/10827920: "The refresh_token is only provided on the first
        # authorization from the user ... prompt=consent&access_type=offline ... will always return a refresh_token").
        refresh = params.get("access_type") == "offline" and consented_now
    elif P.name == "keycloak":
        # Keycloak always returns a refresh token from the code exchange ("Use refresh tokens", on by default): "The
        # application then uses the authorization code along with its credentials to obtain an Access Token, Refresh
        # Token and ID Token" (https://www.keycloak.org/securing-apps/oidc-layers, Authorization code). offline_access
        # makes it an offline token, checked at the token endpoint (keycloak_session).
        refresh = True
    elif P.name == "auth0":
        # "A Refresh Token will only be present if you included the offline_access scope AND enabled Allow Offline
        # Access for your API in the Dashboard" (https://auth0.com/docs/architecture-scenarios/mobile-api, source
        # auth0/docs architecture-scenarios; the setting is on https://auth0.com/docs/get-started/apis/api-settings).
        refresh = "offline_access" in scopes and AUTH0_APIS.get(params.get("audience"), True)
    else:
        # Entra: refresh_token "Only provided if offline_access scope was requested"
        # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow);
        # Okta: authorization_code returns a refresh token with offline_access, which "must be requested as part of
        # the code request to the /authorize endpoint" (https://developer.okta.com/docs/guides/refresh-tokens/main/).
        refresh = "offline_access" in scopes
    g.zoo_extras = {"refresh_allowed": refresh, "audience": params.get("audience"), "idp": params.get("idp"),
                    "auth_time": session.get("auth_time", int(time.time()))}
    if P.name == "keycloak":
        # acr "1" when the user authenticated in this request, "0" when the SSO session was reused
        # (TokenManager.initToken: AuthenticationManager.isSSOAuthentication(clientSession) ? "0" : "1").
        g.zoo_extras.update(sid=session.get("kc_sid"), acr="1" if request.form.get("_zoo_step") == "login" else "0")
    try:
        grant = SERVER.get_consent_grant(end_user=User(user))
    except OAuth2Error as error:
        set_outcome(index, error.error)
        if error.redirect_uri:
            return SERVER.handle_error_response(None, error)
        return error_page(error.error, error.get_error_description() or error.error)
    response = SERVER.create_authorization_response(grant_user=User(user), grant=grant)
    location = response.headers.get("Location", "")
    error = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("error")
    set_outcome(index, error[0] if error else "ok")
    return response


def continue_authorization(params, index):
    user = session.get("user")
    if "login" in params.get("prompt", "").split() and request.form.get("_zoo_step") != "login":
        user = None
    if not user:
        return login_page(params)
    if needs_consent(user, params):
        if "none" in params.get("prompt", "").split():
            set_outcome(index, "consent_required")  # OIDC Core 3.1.2.6
            return redirect_error(params, "consent_required")
        return consent_page(params, user)
    return issue_code(params, user, False, index)


def authorize(tenant=None):
    params = request.values
    index = record("authorize", params)
    # Recorded as sent: Google's access_type/prompt, Entra's login_hint/domain_hint, Okta's idp ("idp, sessionToken
    # and idp_scope are Okta extensions", https://developer.okta.com/docs/reference/api/oidc/#parameter-details),
    # Auth0's audience.
    failure = validate_authorization(params, tenant)
    if failure is not None:
        set_outcome(index, failure.headers.get("X-Zoo-Error") or urllib.parse.parse_qs(
            urllib.parse.urlsplit(failure.headers.get("Location", "")).query).get("error", ["error"])[0])
        return failure
    # Authlib validates the rest (response_type, PKCE challenge, nonce, prompt=none without a session) first.
    try:
        SERVER.get_consent_grant(end_user=User(session["user"]) if session.get("user") else None)
    except OAuth2Error as error:
        set_outcome(index, error.error)
        if error.redirect_uri:
            return SERVER.handle_error_response(None, error)
        return error_page(error.error, error.get_error_description() or error.error)
    params = params.copy()
    params["_zoo_req"] = str(index)
    return continue_authorization(params, index)


def authorize_form():
    """POST /authorize: the login and consent forms (and, at Auth0, a form-posted authorization request)."""
    params, step = request.form, request.form.get("_zoo_step")
    if not step:
        return authorize(ENTRA_TENANT)
    index = params.get("_zoo_req")
    if step == "login":
        name, password = params.get("username", ""), params.get("password", "")
        if USERS.get(name, {}).get("password") != password or not password:
            messages = {"entra": "Your account or password is incorrect.", "google": "Wrong password. Try again.",
                        "keycloak": "Invalid username or password."}  # Keycloak: messages_en invalidUserMessage
            return login_page(params, messages.get(P.name, "Incorrect username or password."))
        session["user"], session["auth_time"] = name, int(time.time())
        if P.name == "keycloak":
            session["kc_sid"] = str(uuid.uuid4())  # the Keycloak user session id: sid claim, session_state
        return continue_authorization(params, index)
    user = session.get("user")
    if not user:
        return login_page(params)
    if params.get("decision") != "allow":
        set_outcome(index, "access_denied")
        # Consent declined: error=access_denied at the redirect URI (RFC 6749 4.1.2.1). Entra adds AADSTS65004
        # "UserDeclinedConsent - User declined to consent to access the app"
        # (https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes).
        desc = {"entra": "AADSTS65004: User declined to consent to access the app."}.get(P.name)
        return redirect_error(params, "access_denied", desc)
    with LOCK:
        CONSENTS.setdefault((user, params["client_id"]), set()).update(params.get("scope", "").split())
    return issue_code(params, user, True, index)


# ---------------------------------------------------------------- token, device, revocation, userinfo

def entra_error(status, error, description, code):
    """Entra's token error body: error, error_description (AADSTS...), error_codes, timestamp, trace_id, correlation_id
    (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow, token error response)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    return status, {"error": error, "error_description": f"AADSTS{code}: {description} Trace ID: {trace} "
                    f"Correlation ID: {corr} Timestamp: {stamp}", "error_codes": [code], "timestamp": stamp,
                    "trace_id": trace, "correlation_id": corr, "error_uri": f"{P.base}/error?code={code}"}


ENTRA_CODES = {"invalid_client": 7000215, "invalid_grant": 70000, "invalid_scope": 70011, "invalid_request": 900144,
               "unauthorized_client": 700016, "authorization_pending": 70016, "expired_token": 70019,
               "authorization_declined": 70000, "bad_verification_code": 70018, "unsupported_grant_type": 70003}


def token_precheck(form, auth):
    client_id = form.get("client_id")
    header = request.headers.get("Authorization", "")
    if not client_id and header[:6].lower() == "basic ":
        try:
            client_id = urllib.parse.unquote(base64.b64decode(header[6:]).decode().partition(":")[0])
        except ValueError:
            client_id = None
    client = P.clients.get(client_id or "")
    if not client:
        return None
    if P.name == "google" and client.secret and auth in ("none", "basic-empty-secret"):
        # Google answers a secret-less code exchange from a Desktop (or TV) client, PKCE or not, with
        # {"error": "invalid_request", "error_description": "client_secret is missing."} (observed:
        # https://github.com/googleapis/google-api-dotnet-client/issues/1827; Google's docs list client_secret for
        # this request, https://developers.google.com/identity/protocols/oauth2/native-app#exchange-authorization-code).
        return 400, {"error": "invalid_request", "error_description": "client_secret is missing."}
    if P.name == "entra" and client.kind == "public" and auth in ("client_secret_basic", "client_secret_post",
                                                                 "private_key_jwt"):
        # "Public clients ... must not use secrets or certificates when redeeming an authorization code"
        # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#redeem-a-code-for-an-access-token);
        # AADSTS700025 InvalidClientPublicClientWithCredential (reference-error-codes).
        return entra_error(401, "invalid_client", "Client is public so neither 'client_assertion' nor "
                           "'client_secret' should be presented.", 700025)
    return None


def token(tenant=None):
    form, auth = request.form, client_auth_method()
    index = record("token", form, auth)
    pre = token_precheck(form, auth)
    if pre:
        status, body = pre
    else:
        response = SERVER.create_token_response()
        status, body = response.status_code, response.get_json(silent=True) or {}
        grant_type = form.get("grant_type")
        if status == 200 and grant_type == "refresh_token" and "id_token" in body:
            # Okta: "Be sure to include the openid scope when you want to refresh the ID token"
            # (https://developer.okta.com/docs/guides/refresh-tokens/main/#use-a-refresh-token): no openid in the
            # refresh request's scope, no id_token. Entra and Auth0 return one when the original scope had openid
            # (v2-oauth2-auth-code-flow#refresh-the-access-token: "Only provided if openid scope was requested";
            # https://auth0.com/docs/secure/tokens/refresh-tokens/use-refresh-tokens: "If the scope of the initial
            # token included openid, then a new ID Token will be in the response as well"); Google does too (observed,
            # https://github.com/googleapis/google-api-dotnet-client/issues/1141).
            if ARGS.no_id_token_on_refresh or (P.name == "okta" and "openid" not in form.get("scope", "").split()):
                del body["id_token"]
        if status != 200 and P.name == "entra":
            error = body.get("error", "invalid_request")
            if grant_type == DEVICE_GRANT and error == "access_denied":
                error = "authorization_declined"  # Entra's device-flow name for it (v2-oauth2-device-code#expected-errors)
            if grant_type == DEVICE_GRANT and error == "invalid_request" and "device_code" in body.get(
                    "error_description", ""):
                error = "bad_verification_code"
            if error == "invalid_client" and auth == "none":
                status, body = entra_error(401, error, "The request body must contain the following parameter: "
                                           "'client_assertion' or 'client_secret'.", 7000218)
            else:
                status, body = entra_error(status, error, body.get("error_description", error),
                                           ENTRA_CODES.get(error, 900144))
    set_outcome(index, "ok" if status == 200 else body.get("error", "error"))
    return Response(json.dumps(body), status, mimetype="application/json",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def device_authorization(tenant=None):
    form, auth = request.form, client_auth_method()
    index = record("device", form, auth)
    client = P.clients.get(form.get("client_id", ""))
    if P.name == "google" and client and client.kind != "tv":
        # Only "TVs and Limited Input devices" clients may use Google's device flow (limited-input-device doc,
        # "select the TVs and Limited Input devices application type"); others get invalid_client (observed text).
        status, body = 401, {"error": "invalid_client", "error_description": "Invalid client type."}
    elif client and not client.check_grant_type(DEVICE_GRANT):
        # RFC 6749 5.2 unauthorized_client: "not authorized to use this authorization grant type".
        status, body = 400, {"error": "unauthorized_client",
                             "error_description": "The client is not authorized to use the device flow."}
    else:
        g.zoo_audience = form.get("audience")
        response = SERVER.create_endpoint_response("device_authorization")
        status, body = response.status_code, response.get_json(silent=True) or {}
        if status == 200 and P.name == "google":
            # Google's response names it verification_url and has no verification_uri_complete
            # (https://developers.google.com/identity/protocols/oauth2/limited-input-device;
            # also https://github.com/cli/oauth/pull/24).
            body["verification_url"] = body.pop("verification_uri")
            body.pop("verification_uri_complete", None)
        elif status == 200 and P.name == "entra":
            # Entra: device_code, user_code, verification_uri, expires_in, interval, message; "The
            # verification_uri_complete response field is not included or supported at this time"
            # (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code#device-authorization-response).
            body.pop("verification_uri_complete", None)
            body["message"] = (f"To sign in, use a web browser to open the page {body['verification_uri']} and enter "
                               f"the code {body['user_code']} to authenticate.")
    set_outcome(index, "ok" if status == 200 else body.get("error", "error"))
    return jsonify(body), status


def device_approve():
    """TEST-ONLY SHORTCUT: approve (or, with deny=1, deny) a device user code as `username`."""
    code, name = request.form.get("user_code", ""), request.form.get("username", "")
    with LOCK:
        item = next((d for d in DEVICES.values() if d.user_code == code), None)
        if not item or name not in USERS:
            return jsonify({"error": "unknown user_code or username"}), 404
        item.user, item.approved, item.auth_time = name, request.form.get("deny") != "1", int(time.time())
    return jsonify({"ok": True, "approved": item.approved})


def revoke():
    form = request.form
    index = record("revocation", form, client_auth_method())
    if P.name == "google":
        # Google's revocation takes just the token (https://developers.google.com/identity/protocols/oauth2/web-server).
        with LOCK:
            item = REFRESH.get(form.get("token", ""))
            if item:
                item.revoked = True
            hit = item is not None or ACCESS.pop(form.get("token", ""), None) is not None
        status, body = (200, {}) if hit else (400, {"error": "invalid_token", "error_description": "Bad Request"})
    else:
        response = SERVER.create_endpoint_response("revocation")
        status, body = response.status_code, response.get_json(silent=True) or {}
    set_outcome(index, "ok" if status == 200 else body.get("error", "error"))
    return jsonify(body), status


def userinfo():
    header = request.headers.get("Authorization", "")
    with LOCK:
        item = ACCESS.get(header[7:] if header[:7].lower() == "bearer " else "")
    if not item or not item["user"] or item["exp"] < time.time():
        return Response("", 401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    info = OPENID.generate_user_info(User(item["user"]), item["scope"])
    for k in ("aio", "rh", "uti", "jti", "ver", "amr", "sid"):
        info.pop(k, None)
    return jsonify(info)


def jwks(tenant=None):
    jwk = {**KEY.as_dict(private=False), "use": "sig", "alg": "RS256"}
    if not ARGS.no_kid:
        jwk["kid"] = KID
    if P.name == "entra":
        # Entra's keys carry the issuer that may use them; the tenant-independent keys have the {tenantid} template
        # (https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens#validate-the-signing-key-issuer).
        jwk["issuer"] = (f"{P.base}/{{tenantid}}/v2.0" if tenant in ("common", "organizations")
                         else f"{P.base}/{ENTRA_TENANT}/v2.0")
    return jsonify({"keys": [jwk]})


def discovery(tenant=None):
    if P.name == "entra" and tenant not in (ENTRA_TENANT, "common", "organizations"):
        return jsonify({"error": "invalid_tenant", "error_description": f"AADSTS90002: Tenant '{tenant}' not found."}), 400
    return jsonify(P.discovery(tenant))


def logout():
    """Keycloak's logout endpoint (https://www.keycloak.org/securing-apps/oidc-layers, Logout endpoint). RP-initiated
    logout (https://www.keycloak.org/docs/latest/server_admin/#_oidc-logout): with id_token_hint (or client_id) and a
    post_logout_redirect_uri admitted by the client's redirect URIs ("Valid post logout redirect URIs" default "+") it
    ends the user session and redirects there with state; without id_token_hint Keycloak first asks "Do you want to
    log out?". The legacy form -- POST with refresh_token and the client's credentials -- ends the session of that
    refresh token and answers 204. Offline tokens survive a logout of the user session."""
    params = request.values
    index = record("logout", params, client_auth_method())
    if request.method == "POST" and params.get("refresh_token"):
        with LOCK:
            item = REFRESH.get(params["refresh_token"])
        if not item or item.revoked or item.client_id != params.get("client_id", item.client_id):
            set_outcome(index, "invalid_grant")
            return jsonify({"error": "invalid_grant", "error_description": "Invalid refresh token"}), 400
        keycloak_end_session(item.sid, offline=item.offline)
        set_outcome(index, "ok")
        return Response(status=204)
    hint, client_id = params.get("id_token_hint"), params.get("client_id")
    if hint:
        try:
            claims = jose_jwt.decode(hint, KEY).claims
        except Exception:  # joserfc's DecodeError / BadSignatureError
            set_outcome(index, "invalid_request")
            return error_page("invalid_request", "Invalid parameter: id_token_hint")
        client_id = client_id or claims.get("azp")
    post = params.get("post_logout_redirect_uri")
    client = P.clients.get(client_id or "")
    if post and not client:
        set_outcome(index, "invalid_request")
        return error_page("invalid_request", "Missing parameters: id_token_hint")
    if post and not client.check_redirect_uri(post):
        set_outcome(index, "invalid_redirect_uri")
        return error_page("invalid_redirect_uri", "Invalid redirect uri")
    if not hint and request.form.get("confirm") != "yes":
        set_outcome(index, "confirm")
        fields = "".join(f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>"
                         for k, v in params.items(multi=True))
        return page("Logging out", f"<h1>Logging out</h1><p>Do you want to log out?</p><form method='post' "
                    f"action='{html.escape(P.paths['logout'][0])}'>{fields}<button type='submit' name='confirm' "
                    f"value='yes'>Logout</button></form>")
    keycloak_end_session(session.pop("kc_sid", None))
    session.pop("user", None)
    set_outcome(index, "ok")
    if post:
        sep = "&" if "?" in post else "?"
        query = urllib.parse.urlencode({"state": params["state"]}) if params.get("state") else ""
        return Response(status=302, headers={"Location": post + (sep + query if query else "")})
    return page("Signing out", "<h1>You are logged out</h1>")


def keycloak_authorization_response(response):
    """Keycloak adds session_state (the user session id; "Exclude Session State From Authentication Response" is off by
    default) and iss (RFC 9207; the discovery document says authorization_response_iss_parameter_supported: true, and
    "Exclude Issuer From Authentication Response" is off by default -- iss appended after an upgrade to 26:
    https://github.com/keycloak/keycloak/discussions/35212) to the redirects back to the client."""
    location = response.headers.get("Location", "")
    redirect_uri = request.values.get("redirect_uri", "")
    if (request.endpoint not in ("authorize0", "authorize_form") or response.status_code != 302 or not redirect_uri
            or not location.startswith(redirect_uri)):
        return response
    parts = urllib.parse.urlsplit(location)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    names = {k for k, _ in query}
    if "code" in names and session.get("kc_sid"):
        query.append(("session_state", session["kc_sid"]))
    if "iss" not in names:
        query.append(("iss", P.issuer))
    response.headers["Location"] = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    return response


def verification_page():
    return page("Device sign-in", "<h1>Enter code</h1><p>provider_zoo: approve a user code with POST "
                "/_zoo/device/approve (user_code, username).</p>")


# ---------------------------------------------------------------- app, server, main

def create_app():
    app = Flask("provider_zoo")
    app.secret_key = secrets.token_bytes(32)
    # Cookies ignore ports: name the session cookie per persona and port so two zoos on 127.0.0.1 don't collide.
    app.config["SESSION_COOKIE_NAME"] = f"zoo_{P.name}_{P.base.rsplit(':', 1)[1]}"
    SERVER.init_app(app, query_client=P.clients.get, save_token=save_token)
    SERVER.register_token_generator("default", generate_bearer)
    if P.name == "okta":
        ZooCodeChallenge.SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    SERVER.register_grant(CodeGrant, [ZooCodeChallenge(required=False), OPENID])
    SERVER.register_grant(RefreshGrant, [OPENID])
    SERVER.register_grant(DeviceGrant, [OPENID])
    SERVER.register_endpoint(DeviceEndpoint)
    SERVER.register_endpoint(Revocation)

    def route(kind, view, methods):
        for i, path in enumerate(P.paths[kind]):
            app.add_url_rule(path, f"{kind}{i}", view, methods=methods)

    route("discovery", discovery, ["GET"])
    route("authorize", authorize, ["GET"])
    route("token", token, ["POST"])
    route("jwks", jwks, ["GET"])
    route("userinfo", userinfo, ["GET", "POST"])
    route("revoke", revoke, ["POST"])
    route("device", device_authorization, ["POST"])
    if "logout" in P.paths:
        route("logout", logout, ["GET", "POST"])
    if P.name == "keycloak":
        app.after_request(keycloak_authorization_response)
    app.add_url_rule(P.paths["verify"], "verify", verification_page, methods=["GET"])
    app.add_url_rule("/authorize", "authorize_form", authorize_form, methods=["POST"])
    app.add_url_rule("/healthz", "healthz", lambda: Response("ok", mimetype="text/plain"))
    app.add_url_rule("/_zoo/requests", "zoo_requests", lambda: jsonify(REQUESTS))
    app.add_url_rule("/_zoo/reset", "zoo_reset", zoo_reset, methods=["POST"])
    app.add_url_rule("/_zoo/device/approve", "zoo_approve", device_approve, methods=["POST"])

    @app.after_request
    def log_line(response):
        log.info("%s %s -> %s", request.method, request.path, response.status_code)
        return response
    return app


def zoo_reset():
    with LOCK:
        REQUESTS.clear()
    return jsonify({"ok": True})


class QuietHandler(WSGIRequestHandler):
    """No request logging on stdout; the HTTP Date header is shifted by --date-offset (clock-skew tests)."""

    def log_request(self, *args, **kwargs): pass
    def log(self, *args, **kwargs): pass

    def date_time_string(self, timestamp=None):
        return email.utils.formatdate((timestamp or time.time()) + ARGS.date_offset, usegmt=True)


def main(argv=None):
    global ARGS, P, KEY, KID, KC_HMAC
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persona", required=True, choices=["google", "entra", "okta", "auth0", "keycloak"])
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--token-lifetime", type=int, default=3600)
    parser.add_argument("--date-offset", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--no-id-token-on-refresh", action="store_true")
    parser.add_argument("--aud-array", action="store_true")
    parser.add_argument("--no-kid", action="store_true")
    parser.add_argument("--redirect-uri", action="append", metavar="URI")
    ARGS = parser.parse_args(argv)
    if ARGS.redirect_uri and ARGS.persona != "keycloak":
        parser.error("--redirect-uri applies to --persona keycloak only")
    if ARGS.log:
        logging.basicConfig(level=logging.INFO, filename=ARGS.log, format="%(asctime)s %(message)s")
    else:
        logging.basicConfig(level=logging.CRITICAL)
    for noisy in ("werkzeug", "authlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING if ARGS.log else logging.CRITICAL)
    KEY = RSAKey.generate_key(2048, private=True)
    KID = KEY.thumbprint()[:16]
    if ARGS.persona == "keycloak":
        KC_HMAC = OctKey.generate_key(512, parameters={"kid": str(uuid.uuid4())})
    P = Persona(ARGS.persona, ARGS.port)
    app = create_app()
    server = make_server("127.0.0.1", ARGS.port, app, threaded=True, request_handler=QuietHandler)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"provider_zoo: ready persona={P.name} issuer={P.issuer}", flush=True)
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
