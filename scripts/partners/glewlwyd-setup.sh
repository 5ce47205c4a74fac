#!/bin/bash
# Usage: glewlwyd-setup.sh DIR PORT [REDIRECT_PORT]   (needs: apt-get install glewlwyd sqlite3 jq curl openssl)
# Seeds a private glewlwyd (SQLite) in DIR, starts it on 127.0.0.1:PORT and writes its pid to DIR/glewlwyd.pid.
#   users:   alice/alice-password-1 (groups developers, aws-admins), bob/bob-password-1 (groups contractors);
#            the ID token's groups claim lists them
#   clients: swift-cli (public; code, refresh_token, device_authorization;
#              redirect http://127.0.0.1:REDIRECT_PORT/callback, default 8765)
#            svc/svc-secret-123 (confidential; client_credentials, scope aws)
#            oidc-agent/agent-secret-123 (confidential; password, refresh_token, code, device)
# Env: GLEWLWYD_ACCESS_TTL (default 3600 s), GLEWLWYD_REFRESH_TTL (default 1209600 s).
# Issuer: http://127.0.0.1:PORT/api/oidc. The caller stops glewlwyd by the pid in DIR/glewlwyd.pid.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR PORT [REDIRECT_PORT]" >&2; exit 2; }
D=$(realpath -m "$1"); P=$2; RP=${3:-8765}; G=http://127.0.0.1:$P
ACCESS_TTL=${GLEWLWYD_ACCESS_TTL:-3600}; REFRESH_TTL=${GLEWLWYD_REFRESH_TTL:-1209600}
for tool in glewlwyd sqlite3 jq curl openssl; do
  command -v $tool >/dev/null || { echo "glewlwyd-setup: $tool is missing (apt-get install glewlwyd sqlite3 jq curl openssl)" >&2; exit 1; }
done
# Never wait forever on a port that accepts but does not answer.
curl() { command curl --connect-timeout 5 --max-time 20 "$@"; }
mkdir -p "$D"; cd "$D"; rm -f glewlwyd.db *.jar
zcat /usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz | sqlite3 glewlwyd.db   # seeds admin/password
# Users get a multi-valued "groups" property, released as the ID token's groups claim (see the plugin's "claims").
sqlite3 glewlwyd.db "UPDATE g_user_module_instance SET gumi_parameters = json_set(gumi_parameters, '\$.\"data-format\".groups', json('{\"multiple\":true,\"read\":true,\"write\":true,\"profile-read\":true,\"profile-write\":false}')) WHERE gumi_name = 'database';"
# static login/admin web app (Debian's webapp/config.json symlink points at a directory: copy the real file)
rm -rf webapp; cp -rL /usr/share/glewlwyd/webapp webapp 2>/dev/null || true; rm -rf webapp/config.json
cp /etc/glewlwyd/config-2.7.json/config.json webapp/config.json
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out oidc-key.pem 2>/dev/null
openssl pkey -in oidc-key.pem -pubout -out oidc-pub.pem
cat > glewlwyd.conf <<EOF
port=$P
bind_address="127.0.0.1"
external_url="$G"
login_url="login.html"
api_prefix="api"
allow_origin="*"
log_mode="file"
log_level="INFO"
log_file="$D/glewlwyd.log"
cookie_secure=0
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
login_api_enabled=true
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3"  path = "$D/glewlwyd.db" };
static_files_path="$D/webapp/"
static_files_mime_types = ( { extension = ".html" mime_type = "text/html" }, { extension = ".js" mime_type = "application/javascript" },
  { extension = ".css" mime_type = "text/css" }, { extension = ".json" mime_type = "application/json" }, { extension = ".png" mime_type = "image/png" },
  { extension = ".ico" mime_type = "image/x-icon" }, { extension = ".woff2" mime_type = "font/woff2" }, { extension = ".woff" mime_type = "font/woff" },
  { extension = ".ttf" mime_type = "font/ttf" }, { extension = ".svg" mime_type = "image/svg+xml" } )
EOF
# The daemon outlives this script: give it only stdin/stdout/stderr, so it holds no descriptor the caller inherited
# (a caller that waits for this script's pipes or sockets to close would otherwise wait until glewlwyd exits).
run_glewlwyd() {
  local fd
  for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
  exec glewlwyd -c "$D/glewlwyd.conf"
}
run_glewlwyd </dev/null >"$D/stdout.log" 2>&1 & GPID=$!; echo $GPID > "$D/glewlwyd.pid"
# On any failure below, stop the server we started (by its pid) so no orphan is left behind.
trap 'rc=$?; if [ $rc -ne 0 ]; then kill $GPID 2>/dev/null || true; echo "glewlwyd-setup failed (rc $rc); see $D/glewlwyd.log $D/stdout.log" >&2; fi' EXIT
ready=0
for i in $(seq 150); do
  kill -0 $GPID 2>/dev/null || { echo "glewlwyd exited early:" >&2; cat "$D/stdout.log" >&2; tail -n 20 "$D/glewlwyd.log" >&2 || true; exit 1; }
  curl -s --max-time 1 -o /dev/null "$G/config" && { ready=1; break; }; sleep 0.1
done
[ $ready = 1 ] || { echo "glewlwyd did not answer on $G within 15 s" >&2; exit 1; }
J='Content-Type: application/json'
curl -sf -c admin.jar -H "$J" -d '{"username":"admin","password":"password"}' $G/api/auth/ >/dev/null
jq -n --rawfile key oidc-key.pem --rawfile cert oidc-pub.pem --arg iss "$G/api/oidc" \
  --argjson access "$ACCESS_TTL" --argjson refresh "$REFRESH_TTL" '{
  module:"oidc", name:"oidc", display_name:"OIDC", enabled:true,
  parameters:{ iss:$iss, "jwt-type":"rsa", "jwt-key-size":"256", key:$key, cert:$cert, "jwks-show":true,
    "access-token-duration":$access, "refresh-token-duration":$refresh, "code-duration":600,
    "refresh-token-rolling":true, "allow-non-oidc":true,
    "auth-type-code-enabled":true, "auth-type-token-enabled":false, "auth-type-id-token-enabled":true,
    "auth-type-none-enabled":true, "auth-type-password-enabled":true, "auth-type-client-enabled":true,
    "auth-type-device-enabled":true, "auth-type-refresh-enabled":true,
    "pkce-allowed":true, "pkce-method-plain-allowed":false,
    "device-authorization-expiration":600, "device-authorization-interval":5,
    "subject-type":"public", "name-claim":"on-demand", "email-claim":"mandatory",
    "allowed-scope":["openid","email","profile","offline_access","aws"],
    claims:[{name:"groups", "user-property":"groups", type:"string", mandatory:true, "on-demand":false,
             "boolean-value-true":"", "boolean-value-false":"", scopes:[]}] }}' \
 | curl -sf -b admin.jar -H "$J" -d @- $G/api/mod/plugin/ >/dev/null
for s in email profile offline_access aws; do
  curl -sf -b admin.jar -H "$J" -d "{\"name\":\"$s\",\"display_name\":\"$s\",\"description\":\"$s\",\"password_required\":true,\"password_max_age\":0,\"scheme\":{}}" $G/api/scope/ >/dev/null; done
curl -sf -b admin.jar -H "$J" -d '{"username":"alice","password":"alice-password-1","name":"Alice Test","email":"alice@example.com","groups":["developers","aws-admins"],"scope":["openid","email","profile","offline_access","aws","g_profile"],"enabled":true}' $G/api/user/ >/dev/null
curl -sf -b admin.jar -H "$J" -d '{"username":"bob","password":"bob-password-1","name":"Bob Test","email":"bob@example.com","groups":["contractors"],"scope":["openid","email","profile","offline_access","aws","g_profile"],"enabled":true}' $G/api/user/ >/dev/null
curl -sf -b admin.jar -H "$J" -d '{"client_id":"swift-cli","name":"swift cli","enabled":true,"confidential":false,"redirect_uri":["http://127.0.0.1:'"$RP"'/callback"],"authorization_type":["code","refresh_token","device_authorization"],"scope":[]}' $G/api/client/ >/dev/null
curl -sf -b admin.jar -H "$J" -d '{"client_id":"svc","name":"service","enabled":true,"confidential":true,"password":"svc-secret-123","token_endpoint_auth_method":["client_secret_basic","client_secret_post"],"redirect_uri":[],"authorization_type":["client_credentials"],"scope":["aws"]}' $G/api/client/ >/dev/null
curl -sf -b admin.jar -H "$J" -d '{"client_id":"oidc-agent","name":"oidc-agent","enabled":true,"confidential":true,"password":"agent-secret-123","token_endpoint_auth_method":["client_secret_basic","client_secret_post"],"redirect_uri":["http://localhost:4242"],"authorization_type":["password","refresh_token","code","device_authorization"],"scope":[]}' $G/api/client/ >/dev/null
echo "glewlwyd ready on $G (pid $(cat $D/glewlwyd.pid)); issuer $G/api/oidc"
