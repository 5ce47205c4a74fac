#!/bin/bash
# Usage: lemonldap-setup.sh DIR PORT [REDIRECT_PORT]
#   (needs, installed by scripts/test: apt-get install -y --no-install-recommends lemonldap-ng
#    lemonldap-ng-fastcgi-server nginx libstring-random-perl libio-string-perl libemail-sender-perl
#    libmime-tools-perl libgd-securityimage-perl libimage-magick-perl curl openssl; without any one of those six
#    "recommends" the portal answers 500. This script installs nothing: it stops and names what is missing.)
# A private LemonLDAP::NG 2.16 OpenID Provider on 127.0.0.1:PORT, all under DIR: its own DIR/lemonldap-ng.ini (found
# through LLNG_DEFAULTCONFFILE), DIR/conf/lmConf-N.json (Debian's demo config edited with lemonldap-ng-cli), session
# dirs, an RS256 key (kid keyless-test-rs256), llng-fastcgi-server and an nginx; logs in DIR/log. The system
# services (port 80) are not used. As root the portal runs as www-data (it refuses root): DIR must be reachable by
# www-data (under /tmp is).
#   issuer:  http://127.0.0.1:PORT (endpoints under /oauth2/)
#   users:   dwho/dwho (groups timelords, users), rtyler/rtyler and msmith/msmith (earthlings, users); sub = login
#   client:  keyless-cli: public, PKCE (S256) required, no consent page, refresh tokens and offline_access, claims
#            email, name, preferred_username and groups (scope groups) in the ID token and userinfo, JWT access tokens.
#            Redirect URI http://127.0.0.1:REDIRECT_PORT/callback (default 8765): LemonLDAP 2.16 compares redirect
#            URIs exactly (no any-port loopback rule), so a client must use --redirect-port REDIRECT_PORT.
# Env: LLNG_REDIRECT_URI="URI [URI...]"  the exact redirect URIs (space separated; overrides REDIRECT_PORT)
#      LLNG_ID_TOKEN_TTL=S       the client's ID token lifetime in seconds (default 3600; small values force refreshes)
#      LLNG_ACCESS_TOKEN_TTL=S   the client's access token lifetime in seconds (default 3600)
#      LLNG_LOGLEVEL=notice|info|debug
# PIDs: DIR/run/llng-fastcgi.pid (FCGI::ProcManager parent) and DIR/run/nginx.pid (nginx master).
# Stop: scripts/partners/lemonldap-stop.sh DIR (by those PIDs only).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR PORT [REDIRECT_PORT]" >&2; exit 2; }
D=$(realpath -m "$1"); P=$2; RP=${3:-8765}; ISS=http://127.0.0.1:$P
CLIENT=keyless-cli; REDIRECT=${LLNG_REDIRECT_URI:-http://127.0.0.1:$RP/callback}
ID_TTL=${LLNG_ID_TOKEN_TTL:-3600}; ACCESS_TTL=${LLNG_ACCESS_TOKEN_TTL:-3600}
for v in "$P" "$RP" "$ID_TTL" "$ACCESS_TTL"; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "lemonldap-setup: not a positive integer: $v" >&2; exit 2; }; done

PACKAGES="lemonldap-ng lemonldap-ng-fastcgi-server nginx libstring-random-perl libio-string-perl libemail-sender-perl
  libmime-tools-perl libgd-securityimage-perl libimage-magick-perl curl openssl"
missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in $PACKAGES; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || missing+=("$pkg"); done
else
  for f in /usr/share/lemonldap-ng/bin/lemonldap-ng-cli /usr/sbin/llng-fastcgi-server /var/lib/lemonldap-ng/conf/lmConf-1.json; do
    [ -e "$f" ] || missing+=("$f"); done
  for tool in nginx curl openssl; do command -v $tool >/dev/null || missing+=("$tool"); done
fi
[ ${#missing[@]} -eq 0 ] || { echo "lemonldap-setup: missing: ${missing[*]}
  install: apt-get install -y --no-install-recommends" $PACKAGES >&2; exit 1; }
curl() { command curl --connect-timeout 5 --max-time 20 "$@"; }

for f in "$D"/run/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && {
  echo "lemonldap-setup: already running ($f); stop it first: lemonldap-stop.sh $D" >&2; exit 1; }; done
code=$(curl -s -o /dev/null -w '%{http_code}' "$ISS/" || true)
[ "$code" = 000 ] || { echo "lemonldap-setup: something already answers on $ISS (HTTP $code)" >&2; exit 1; }
mkdir -p "$D"
rm -rf "$D"/{conf,sessions,psessions,notifications,cache,run,log,nginx}
mkdir -p "$D"/{conf,sessions/lock,psessions/lock,notifications,cache,run,log,nginx/tmp}
chmod 755 "$D"                        # the portal runs as www-data when we are root (it refuses root)
if [ "$(id -u)" = 0 ]; then RUNAS=www-data; else RUNAS=$(id -un); fi
RUNGROUP=$(id -gn "$RUNAS")
export LLNG_DEFAULTCONFFILE=$D/lemonldap-ng.ini LLNG_DEFAULTLOGGER=Lemonldap::NG::Common::Logger::Std
cat > "$LLNG_DEFAULTCONFFILE" <<EOF
[all]
logLevel = ${LLNG_LOGLEVEL:-notice}
logger = Lemonldap::NG::Common::Logger::Std
userLogger = Lemonldap::NG::Common::Logger::Std
checkTime = 1
; cookie domain: the manager's check rejects an IP address, the handler needs one; a local override is allowed
domain = 127.0.0.1
[configuration]
type = File
dirName = $D/conf
prettyPrint = 1
[portal]
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/portal/templates
languages = en
[handler]
status = 0
[manager]
protection = manager
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/manager/htdocs/templates
languages = en
EOF
chmod 644 "$LLNG_DEFAULTCONFFILE"
[ "$RUNAS" = www-data ] && ! runuser -u www-data -- test -r "$LLNG_DEFAULTCONFFILE" && {
  echo "lemonldap-setup: www-data cannot read $D: use a DIR whose parents it can traverse (e.g. under /tmp)" >&2; exit 1; }
cp /var/lib/lemonldap-ng/conf/lmConf-1.json "$D/conf/"   # Debian's demo config (Demo auth backend) as config 1
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/oidc-key.pem" 2>/dev/null
openssl pkey -in "$D/oidc-key.pem" -pubout -out "$D/oidc-pub.pem"
[ "$RUNAS" = www-data ] && chown -R www-data:www-data "$D"/{conf,sessions,psessions,notifications,cache,run,log} "$D"/oidc-*.pem
cli() { /usr/share/lemonldap-ng/bin/lemonldap-ng-cli --user="$RUNAS" --group="$RUNGROUP" \
          -iniFile "$LLNG_DEFAULTCONFFILE" -yes 1 -safe 1 "$@" >>"$D/log/cli.log" 2>&1 ||
        { echo "lemonldap-setup: lemonldap-ng-cli $1 failed:" >&2; tail -n 15 "$D/log/cli.log" >&2; return 1; }; }
R=oidcRPMetaDataOptions/$CLIENT; X=oidcRPMetaDataExportedVars/$CLIENT
# cookieName per port: browsers do not scope cookies by port, so two instances on 127.0.0.1 would share "lemonldap".
cli -log "private test OP" set \
  portal "$ISS/" securedCookie 0 cookieName "llng$P" \
  issuerDBOpenIDConnectActivation 1 oidcServiceMetaDataIssuer "$ISS" \
  oidcServicePrivateKeySig "$(cat "$D/oidc-key.pem")" oidcServicePublicKeySig "$(cat "$D/oidc-pub.pem")" \
  oidcServiceKeyIdSig keyless-test-rs256 oidcServiceIgnoreScopeForClaims 0 \
  oidcServiceAccessTokenExpiration 3600 oidcServiceOfflineSessionExpiration 2592000
cli delKey reloadUrls localhost   # the demo config would POST a reload to http://localhost/
cli addKey \
  globalStorageOptions Directory "$D/sessions" globalStorageOptions LockDirectory "$D/sessions/lock" \
  persistentStorageOptions Directory "$D/psessions" persistentStorageOptions LockDirectory "$D/psessions/lock" \
  localSessionStorageOptions cache_root "$D/cache" notificationStorageOptions dirName "$D/notifications" \
  $R oidcRPMetaDataOptionsClientID $CLIENT  $R oidcRPMetaDataOptionsDisplayName "keyless CLI" \
  $R oidcRPMetaDataOptionsPublic 1          $R oidcRPMetaDataOptionsRequirePKCE 1 \
  $R oidcRPMetaDataOptionsRedirectUris "$REDIRECT" \
  $R oidcRPMetaDataOptionsIDTokenSignAlg RS256 \
  $R oidcRPMetaDataOptionsIDTokenExpiration "$ID_TTL" \
  $R oidcRPMetaDataOptionsAccessTokenExpiration "$ACCESS_TTL" \
  $R oidcRPMetaDataOptionsAllowOffline 1    $R oidcRPMetaDataOptionsRefreshToken 1 \
  $R oidcRPMetaDataOptionsBypassConsent 1   $R oidcRPMetaDataOptionsIDTokenForceClaims 1 \
  $R oidcRPMetaDataOptionsAccessTokenJWT 1  $R oidcRPMetaDataOptionsAccessTokenSignAlg RS256 \
  $X email mail  $X name cn  $X preferred_username uid  $X groups "groups;string;always" \
  oidcRPMetaDataOptionsExtraClaims/$CLIENT groups groups
cat > "$D/nginx/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user www-data www-data;" )
worker_processes 1;
daemon off;
pid $D/run/nginx.master;
error_log $D/log/nginx-error.log warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log $D/log/nginx-access.log;
  client_body_temp_path $D/nginx/tmp/body; fastcgi_temp_path $D/nginx/tmp/fastcgi;
  proxy_temp_path $D/nginx/tmp/proxy; uwsgi_temp_path $D/nginx/tmp/uwsgi; scgi_temp_path $D/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$P;
    root /usr/share/lemonldap-ng/portal/htdocs/;
    if (\$uri !~ ^/((static|javascript|favicon).*|.*\.psgi)) { rewrite ^/(.*)\$ /index.psgi/\$1 break; }
    location ~ ^(?<sc>/.*\.psgi)(?:\$|/) {
      include /etc/nginx/fastcgi_params;
      fastcgi_pass unix:$D/run/llng-fastcgi.sock;
      fastcgi_param HTTP_HOST \$http_host;
      fastcgi_param LLTYPE psgi;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_split_path_info ^(.*\.psgi)(/.*)\$;
      fastcgi_param PATH_INFO \$fastcgi_path_info;
    }
    location /static/ { alias /usr/share/lemonldap-ng/portal/htdocs/static/; }
    location /javascript/ { alias /usr/share/javascript/; }
  }
}
EOF
# The daemons outlive this script: give them only stdin/stdout/stderr, so they hold no descriptor the caller
# inherited (a caller waiting for this script's pipes to close would otherwise wait until they exit).
detach() {
  local fd
  for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
  exec "$@"
}
stop_started() {
  local f
  for f in "$D/run/nginx.pid" "$D/run/llng-fastcgi.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; rm -f "$f"; done
  return 0
}
trap 'rc=$?; if [ $rc -ne 0 ]; then stop_started; echo "lemonldap-setup failed (rc $rc); logs in $D/log" >&2; fi' EXIT
# FastCGI portal: --foreground so that $! is the FCGI::ProcManager parent (TERM to it stops the workers)
detach /usr/sbin/llng-fastcgi-server --foreground -u "$RUNAS" -g "$RUNGROUP" -n 2 \
  -p "$D/run/llng-fastcgi.pm" -s "$D/run/llng-fastcgi.sock" </dev/null >"$D/log/portal.log" 2>&1 &
echo $! > "$D/run/llng-fastcgi.pid"
detach nginx -p "$D/nginx" -c "$D/nginx/nginx.conf" -e "$D/log/nginx-error.log" </dev/null >"$D/log/nginx.out" 2>&1 &
echo $! > "$D/run/nginx.pid"
for i in $(seq 300); do   # 502 until the FastCGI socket is up; 500 means the portal failed to initialise
  for f in nginx llng-fastcgi; do kill -0 "$(cat "$D/run/$f.pid")" 2>/dev/null || {
    echo "lemonldap-setup: $f exited early:" >&2; tail -n 15 "$D/log/nginx-error.log" "$D/log/portal.log" >&2; exit 1; }; done
  code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$ISS/.well-known/openid-configuration" || true)
  [ "$code" = 200 ] && break
  if [ "$code" = 500 ] || [ "$i" = 300 ]; then
    echo "lemonldap-setup: not ready after $i tries (HTTP $code); see $D/log/portal.log:" >&2
    grep -m5 -E 'error|Can.t locate' "$D/log/portal.log" >&2 || tail -n 15 "$D/log/portal.log" >&2; exit 1
  fi
  sleep 0.1
done
echo "lemonldap-ng ready: issuer $ISS  client_id $CLIENT (public, PKCE S256)  redirect_uri $REDIRECT  id_token ${ID_TTL}s"
echo "users dwho/dwho rtyler/rtyler msmith/msmith; pids: llng-fastcgi $(cat "$D/run/llng-fastcgi.pid") nginx $(cat "$D/run/nginx.pid")"
