"""A third-party relying party for tests: logs in to an OpenID Provider with the authorization code flow and
PKCE using only the standard library (reading the login form like a browser would), then checks the tokens
with joserfc (PyPI) against the provider's published JWKS and every claim the issue requires.

Usage: python oidc_client_check.py ISSUER CLIENT_ID USER PASSWORD
Prints one JSON object (the checked claims, never the tokens) on stdout; exits 1 with a reason on stderr.
"""

import base64
import hashlib
import html.parser
import http.cookiejar
import json
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from joserfc import jwt
from joserfc.jwk import KeySet


def fail(message):
    print(f"oidc_client_check: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class FormReader(html.parser.HTMLParser):
    """Collects the hidden inputs of the login form."""

    def __init__(self):
        super().__init__()
        self.hidden = {}
        self.action = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.action = attrs.get("action")
        if tag == "input" and attrs.get("type") == "hidden":
            self.hidden[attrs["name"]] = attrs.get("value", "")


def main():
    if len(sys.argv) != 5:
        fail("usage: oidc_client_check.py ISSUER CLIENT_ID USER PASSWORD")
    issuer, client_id, user, password = sys.argv[1:]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

    discovery = json.load(opener.open(issuer + "/.well-known/openid-configuration"))
    if discovery["issuer"] != issuer:
        fail(f"discovery issuer {discovery['issuer']!r} is not {issuer!r}")
    keys = KeySet.import_key_set(json.load(opener.open(discovery["jwks_uri"])))

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    redirect_uri = "http://127.0.0.1:54321/callback"  # RFC 8252: any loopback port; nothing needs to listen
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "openid email profile groups",
        "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
    page = opener.open(discovery["authorization_endpoint"] + "?" + query).read().decode()
    form = FormReader()
    form.feed(page)
    if "csrf" not in form.hidden:
        fail("the login page has no csrf field")
    fields = dict(form.hidden, username=user, password=password, action="login")
    try:
        opener.open(urllib.parse.urljoin(issuer + "/", form.action or "/authorize"), urllib.parse.urlencode(fields).encode())
        fail("the login form did not redirect")
    except urllib.error.HTTPError as answer:
        if answer.code not in (302, 303):
            fail(f"the login form answered HTTP {answer.code}")
        location = answer.headers["Location"]
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    if not location.startswith(redirect_uri) or params.get("state") != [state] or params.get("iss") != [issuer]:
        fail(f"redirect {location.split('?')[0]} lacks the state or iss it must carry")
    token_request = urllib.parse.urlencode({"grant_type": "authorization_code", "code": params["code"][0],
                                            "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": verifier}).encode()
    tokens = json.load(opener.open(discovery["token_endpoint"], token_request))

    now = int(time.time())
    id_token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(
        now=now, leeway=5,
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id}, sub={"essential": True},
        exp={"essential": True}, iat={"essential": True}, auth_time={"essential": True}, nonce={"essential": True, "value": nonce},
        amr={"essential": True}, email={"essential": True}, preferred_username={"essential": True, "value": user},
        groups={"essential": True},
    ).validate(id_token.claims)
    access = jwt.decode(tokens["access_token"], keys, algorithms=["RS256", "ES256"])
    if access.header.get("typ", "").lower() != "at+jwt":
        fail(f"access token typ is {access.header.get('typ')!r}, not at+jwt (RFC 9068)")
    jwt.JWTClaimsRegistry(now=now, leeway=5, iss={"essential": True, "value": issuer}, sub={"essential": True}, aud={"essential": True},
                          exp={"essential": True}, iat={"essential": True}, jti={"essential": True},
                          client_id={"essential": True, "value": client_id}).validate(access.claims)
    userinfo_request = urllib.request.Request(discovery["userinfo_endpoint"], headers={"Authorization": "Bearer " + tokens["access_token"]})
    userinfo = json.load(opener.open(userinfo_request))
    if userinfo.get("sub") != id_token.claims["sub"]:
        fail("userinfo sub differs from the ID token's")
    print(json.dumps({"id_token_alg": id_token.header["alg"], "kid_in_jwks": keys.get_by_kid(id_token.header["kid"]) is not None,
                      "claims": {k: id_token.claims[k] for k in ("iss", "sub", "aud", "amr", "email", "preferred_username", "groups")},
                      "access_token_typ": access.header["typ"], "userinfo_email": userinfo.get("email")}))


if __name__ == "__main__":
    main()
