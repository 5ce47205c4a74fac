#!/bin/bash
# Usage: glewlwyd-login.sh PORT [USER] [PASS] [REDIRECT_PORT]  -> prints token JSON
# A complete authorization code + PKCE login against glewlwyd-setup.sh's server, with curl only.
set -euo pipefail
# Never wait forever on a port that accepts but does not answer.
curl() { command curl --connect-timeout 5 --max-time 20 "$@"; }
P=${1:?usage: glewlwyd-login.sh PORT [USER] [PASS] [REDIRECT_PORT]}; U=${2:-alice}; PW=${3:-alice-password-1}; RP=${4:-8765}
G=http://127.0.0.1:$P; RU=http://127.0.0.1:$RP/callback; SCOPE="openid offline_access email"
JAR=$(mktemp); trap 'rm -f $JAR' EXIT
VER=$(openssl rand -hex 32); CH=$(printf %s "$VER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
# 1) log in (sets GLEWLWYD2_SESSION_ID cookie)
curl -sf -c $JAR -b $JAR -H 'Content-Type: application/json' -d "{\"username\":\"$U\",\"password\":\"$PW\"}" $G/api/auth/ >/dev/null
# 2) consent: grant the scopes to the client (space-separated!)
curl -sf -b $JAR -X PUT -H 'Content-Type: application/json' -d "{\"scope\":\"$SCOPE\"}" $G/api/auth/grant/swift-cli >/dev/null
# 3) authorize; 'g_continue' tells glewlwyd the login page is done -> 302 to redirect_uri?code=
LOC=$(curl -s -b $JAR -o /dev/null -w '%{redirect_url}' -G $G/api/oidc/auth \
  --data-urlencode response_type=code --data-urlencode client_id=swift-cli --data-urlencode redirect_uri=$RU \
  --data-urlencode "scope=$SCOPE" --data-urlencode state=xyz --data-urlencode nonce=abc \
  --data-urlencode code_challenge=$CH --data-urlencode code_challenge_method=S256 --data g_continue)
CODE=$(printf %s "$LOC" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p'); [ -n "$CODE" ] || { echo "no code: $LOC" >&2; exit 1; }
# 4) exchange
curl -sf -d grant_type=authorization_code -d client_id=swift-cli -d code=$CODE -d redirect_uri=$RU -d code_verifier=$VER $G/api/oidc/token
