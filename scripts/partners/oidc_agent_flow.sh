#!/usr/bin/env bash
# oidc-agent (Debian oidc-agent-cli, 4.2.x) as a scripted third-party client of an OpenID Provider (keyless idp).
#
# Usage: oidc_agent_flow.sh WORKDIR ISSUER CLIENT_ID FLOW [CLIENT_SECRET]
#   WORKDIR        scratch directory (created; holds HOME, the agent socket, logs and agent.pid)
#   ISSUER         the provider's issuer URL, e.g. http://127.0.0.1:9000
#   CLIENT_ID      a client registered at the provider (public without CLIENT_SECRET, confidential with it)
#   FLOW           code | device
#   CLIENT_SECRET  the confidential client's secret (omit for a public client)
# Env:
#   KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD  who logs in (default alice / alice-password-1)
#   KEYLESS_TEST_TOTP_SECRET                  base32 TOTP secret, when the user has a second factor
#   OIDC_AGENT_REDIRECT_URI                   code flow redirect URI, registered EXACTLY at the provider
#                                             (default http://localhost:43817/redirect; oidc-agent wants
#                                             http://localhost:PORT[/path], PORT 1024-49151)
#   OIDC_AGENT_SCOPE                          default "openid profile email offline_access"
#   OIDC_AGENT_TIMEOUT                        seconds for each wait (default 60)
#
# It runs its own oidc-agent in the foreground (isolated HOME under WORKDIR, OIDC_SOCK, OIDC_ENCRYPTION_PW; its PID
# in WORKDIR/agent.pid) and generates an account with oidc-gen, non-interactively:
#   code:   oidc-gen prints the authorization URL (--no-webserver: nothing listens on the redirect URI); this script
#           signs in on the provider's HTML form itself (GET the URL, POST /authorize with the hidden fields and the
#           CSRF cookie, "Allow" on a consent page if one follows), takes the redirect Location and hands it to
#           oidc-gen --codeExchange.
#   device: oidc-gen prints the user code and polls; this script approves it on the provider's /device page.
# Then it prints the decoded claims of `oidc-token --id-token` (never a token), forces a refresh with `oidc-token -f`,
# stops the agent by its PID and prints
#   oidc_agent_flow: OK FLOW public|confidential sub=... aud=...
# Any failure: a message on stderr (with the tail of the relevant log) and a non-zero exit.
set -uo pipefail

PREFIX="oidc_agent_flow:"
die() { echo "$PREFIX FAIL: $*" >&2; exit 1; }

[ $# -ge 4 ] && [ $# -le 5 ] || die "usage: oidc_agent_flow.sh WORKDIR ISSUER CLIENT_ID FLOW(code|device) [CLIENT_SECRET]"
WORKDIR=$1 ISSUER=${2%/} CLIENT_ID=$3 FLOW=$4 CLIENT_SECRET=${5:-}
case $FLOW in code|device) ;; *) die "FLOW must be code or device, not '$FLOW'" ;; esac
KIND=public; [ -n "$CLIENT_SECRET" ] && KIND=confidential
USER_NAME=${KEYLESS_TEST_USER:-alice}
USER_PASSWORD=${KEYLESS_TEST_PASSWORD:-alice-password-1}
REDIRECT_URI=${OIDC_AGENT_REDIRECT_URI:-http://localhost:43817/redirect}
SCOPE=${OIDC_AGENT_SCOPE:-openid profile email offline_access}
TIMEOUT=${OIDC_AGENT_TIMEOUT:-60}
for tool in oidc-agent oidc-gen oidc-token curl python3 timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install oidc-agent-cli curl python3)"
done

mkdir -p "$WORKDIR" || die "cannot create $WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
export HOME=$WORKDIR/home
mkdir -p -m 700 "$HOME"
export OIDC_SOCK=$WORKDIR/agent.sock
OIDC_ENCRYPTION_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
export OIDC_ENCRYPTION_PW
export KEYLESS_TEST_USER=$USER_NAME KEYLESS_TEST_PASSWORD=$USER_PASSWORD
unset OIDCD_PID OIDC_CONFIG_DIR
ACCOUNT=oa-$FLOW-$KIND
START=$(date +%s.%N)
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.2fs' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
# The end of a log, without oidc-gen's QR code (ANSI colour blocks) or the agent's repeated environment lines.
tail_log() {
    echo "--- $1 (last ${2:-25} lines) ---" >&2
    grep -av -e $'\e\[' -e '^OIDC_SOCK=' -e '^OIDCD_PID=' -e '^echo Agent pid' "$1" 2>/dev/null | tail -n "${2:-25}" >&2
}

AGENT_PID= GEN_PID=
cleanup() {
    if [ -n "$GEN_PID" ] && kill -0 "$GEN_PID" 2>/dev/null; then kill "$GEN_PID" 2>/dev/null; wait "$GEN_PID" 2>/dev/null; fi
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill "$AGENT_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$AGENT_PID" 2>/dev/null && kill -9 "$AGENT_PID" 2>/dev/null
        wait "$AGENT_PID" 2>/dev/null
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the provider answers ----------------------------------------------------------------------------------
curl -sf --max-time 10 -o "$WORKDIR/discovery.json" "$ISSUER/.well-known/openid-configuration" \
    || die "no discovery document at $ISSUER/.well-known/openid-configuration"

# --- the agent -----------------------------------------------------------------------------------------------
rm -f "$OIDC_SOCK"
oidc-agent -d --log-stderr -a "$OIDC_SOCK" --always-allow-idtoken --no-autoload --no-autoreauthenticate --no-webserver \
    >"$WORKDIR/agent.log" 2>&1 </dev/null &
AGENT_PID=$!
echo "$AGENT_PID" >"$WORKDIR/agent.pid"
for _ in $(seq $((TIMEOUT * 10))); do [ -S "$OIDC_SOCK" ] && break; kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
[ -S "$OIDC_SOCK" ] || { tail_log "$WORKDIR/agent.log"; die "oidc-agent (pid $AGENT_PID) did not open $OIDC_SOCK"; }
echo "$PREFIX oidc-agent $(oidc-agent --version 2>&1 | head -1 | awk '{print $NF}') running, pid $AGENT_PID, socket $OIDC_SOCK"

# --- oidc-gen ------------------------------------------------------------------------------------------------
GEN_ARGS=("$ACCOUNT" --iss="$ISSUER" --client-id="$CLIENT_ID" --flow="$FLOW" --scope="$SCOPE"
          --pw-env --prompt=none --confirm-default --no-url-call --no-webserver --no-scheme
          # A public client: an explicitly empty secret (with --prompt=none oidc-gen otherwise stops with "Required
          # argument client secret not given"). oidc-agent then sends Authorization: Basic base64("CLIENT_ID:").
          --client-secret="$CLIENT_SECRET")
[ "$FLOW" = code ] && GEN_ARGS+=(--redirect-uri="$REDIRECT_URI")
GEN_OUT=$WORKDIR/oidc-gen.out
rm -f "$HOME/.config/oidc-agent/$ACCOUNT" "$HOME/.oidc-agent/$ACCOUNT"  # a leftover from an earlier run
T_GEN=$(now)
timeout "$((TIMEOUT * 3))" oidc-gen "${GEN_ARGS[@]}" >"$GEN_OUT" 2>&1 </dev/null &
GEN_PID=$!

# Waits until oidc-gen's output matches the extended regex $1; prints the first match.
wait_output() {
    local match
    for _ in $(seq $((TIMEOUT * 5))); do
        match=$(grep -Eo -m1 "$1" "$GEN_OUT" 2>/dev/null | head -1)
        [ -n "$match" ] && { printf '%s\n' "$match"; return 0; }
        kill -0 "$GEN_PID" 2>/dev/null || { match=$(grep -Eo -m1 "$1" "$GEN_OUT" | head -1); [ -n "$match" ] && printf '%s\n' "$match"; [ -n "$match" ]; return; }
        sleep 0.2
    done
    return 1
}

# Sets GEN_STATE: whether oidc-gen is still running, or how it exited.
gen_state() {
    if kill -0 "$GEN_PID" 2>/dev/null; then GEN_STATE="still running after ${TIMEOUT}s"
    else wait "$GEN_PID"; GEN_STATE="oidc-gen exited with status $?"; GEN_PID=; fi
}

# The provider's HTML pages, driven as a person would (stdlib only: urllib, cookie jar, no redirects followed).
cat >"$WORKDIR/oa_browser.py" <<'PY'
import base64, hashlib, hmac, html.parser, http.cookiejar, os, struct, sys, time, urllib.error, urllib.parse, urllib.request

def fail(message):
    print(message, file=sys.stderr); sys.exit(1)

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs): return None

jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)

def fetch(url, form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data)
    if data is not None:  # as a browser posting the provider's own form
        parts = urllib.parse.urlsplit(url)
        request.add_header("Origin", f"{parts.scheme}://{parts.netloc}")
    try:
        r = opener.open(request, timeout=20)
        return r.status, r.headers, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8", "replace")

class Forms(html.parser.HTMLParser):
    """Every <form>: its action and its hidden inputs; and the page's alert text."""
    def __init__(self):
        super().__init__(); self.forms = []; self.alert = []; self._in_alert = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form": self.forms.append({"action": a.get("action", ""), "hidden": [], "buttons": []})
        elif tag == "input" and a.get("type") == "hidden" and self.forms: self.forms[-1]["hidden"].append((a.get("name"), a.get("value", "")))
        elif tag == "button" and self.forms: self.forms[-1]["buttons"].append((a.get("name"), a.get("value")))
        elif a.get("role") == "alert" or a.get("class") == "error": self._in_alert = True
    def handle_endtag(self, tag):
        if tag == "p": self._in_alert = False
    def handle_data(self, data):
        if self._in_alert: self.alert.append(data.strip())

def parse(page):
    p = Forms(); p.feed(page); return p

def totp():
    secret = os.environ.get("KEYLESS_TEST_TOTP_SECRET")
    if not secret: return None
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(time.time() // 30)), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)

def credentials():
    fields = [("username", os.environ["KEYLESS_TEST_USER"]), ("password", os.environ["KEYLESS_TEST_PASSWORD"])]
    code = totp()
    if code: fields.append(("otp", code))
    return fields

def describe(status, page):
    p = parse(page)
    text = " ".join(t for t in p.alert if t) or page[:300].replace("\n", " ")
    return f"HTTP {status}: {text}"

mode = sys.argv[1]
if mode == "code":
    url, redirect = sys.argv[2], sys.argv[3]
    status, headers, page = fetch(url)
    # A session could already exist (first-party: straight to the redirect).
    for step in range(4):
        if status in (301, 302, 303, 307):
            location = urllib.parse.urljoin(url, headers["Location"])
            if location.startswith(redirect):
                print(location); sys.exit(0)
            status, headers, page = fetch(location); url = location; continue
        if status != 200: fail(f"the authorization page answered {describe(status, page)}")
        p = parse(page)
        form = next((f for f in p.forms if f["action"].endswith("/authorize")), None)
        if form is None: fail(f"no sign-in or consent form on the page: {describe(status, page)}")
        action = urllib.parse.urljoin(url, form["action"])
        actions = [v for n, v in form["buttons"] if n == "action"]
        if "login" in actions:
            status, headers, page = fetch(action, form["hidden"] + credentials() + [("action", "login")])
        elif "allow" in actions:
            status, headers, page = fetch(action, form["hidden"] + [("action", "allow")])
        else:
            fail(f"a form without a sign-in or allow button: {actions}")
        url = action
    fail("no redirect to the client after signing in")
elif mode == "device":
    issuer, user_code = sys.argv[2], sys.argv[3]
    status, headers, page = fetch(f"{issuer}/device?user_code={urllib.parse.quote(user_code)}")
    if status != 200: fail(f"the /device page answered {describe(status, page)}")
    form = next((f for f in parse(page).forms if f["action"].endswith("/device")), None)
    if form is None: fail("no form on the /device page")
    status, headers, page = fetch(urllib.parse.urljoin(issuer + "/", form["action"]),
                                  form["hidden"] + [("user_code", user_code)] + credentials() + [("action", "approve")])
    if status != 200 or "Device connected" not in page: fail(f"the /device page did not approve {user_code}: {describe(status, page)}")
    print("approved")
elif mode == "claims":
    import json
    token = sys.stdin.read().strip()
    parts = token.split(".")
    if len(parts) != 3: fail("not a JWT: %d parts" % len(parts))
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    print(json.dumps(payload, sort_keys=True, separators=(",", ":")))
PY
browser() { python3 "$WORKDIR/oa_browser.py" "$@"; }

if [ "$FLOW" = code ]; then
    AUTH_URL=$(wait_output "https?://[^[:space:]]*[?&]response_type=code[^[:space:]]*") \
        || { gen_state; tail_log "$GEN_OUT"; tail_log "$WORKDIR/agent.log"; die "oidc-gen printed no authorization URL ($GEN_STATE)"; }
    case $AUTH_URL in "$ISSUER"/*) ;; *) die "the authorization URL is not on $ISSUER: $AUTH_URL" ;; esac
    echo "$PREFIX authorization URL: ${AUTH_URL%%\?*}?$(printf '%s' "${AUTH_URL#*\?}" | tr '&' '\n' | cut -d= -f1 | paste -sd, -)"
    T_LOGIN=$(now)
    LOCATION=$(timeout "$TIMEOUT" python3 "$WORKDIR/oa_browser.py" code "$AUTH_URL" "$REDIRECT_URI" 2>"$WORKDIR/login.err") \
        || { tail_log "$GEN_OUT" 10; die "signing in on the provider's page failed: $(tail -n 3 "$WORKDIR/login.err")"; }
    case $LOCATION in *"error="*) die "the provider redirected with an error: $LOCATION" ;; *"code="*) ;; *) die "no code in the redirect: $LOCATION" ;; esac
    echo "$PREFIX signed in as $USER_NAME in $(since "$T_LOGIN"); redirect to ${LOCATION%%\?*} with $(printf '%s' "${LOCATION#*\?}" | tr '&' '\n' | cut -d= -f1 | paste -sd, -)"
    T_EXCHANGE=$(now)
    timeout "$TIMEOUT" oidc-gen --codeExchange="$LOCATION" --pw-env --prompt=none --confirm-default >"$WORKDIR/oidc-gen-exchange.out" 2>&1 </dev/null
    rc=$?
    [ $rc -eq 0 ] || { tail_log "$WORKDIR/oidc-gen-exchange.out"; tail_log "$GEN_OUT" 10; tail_log "$WORKDIR/agent.log" 15; die "oidc-gen --codeExchange failed (exit $rc)"; }
    echo "$PREFIX code exchanged in $(since "$T_EXCHANGE")"
else
    # oidc-gen 4.2 prints "And enter the code: ABCD-EFGH" (and a QR code of verification_uri_complete).
    USER_CODE=$(wait_output "[Ee]nter the code:?[[:space:]]+[A-Za-z0-9-]+|user_code=[A-Za-z0-9-]+" | sed -E 's/.*[:=[:space:]]//')
    [ -n "$USER_CODE" ] || { gen_state; tail_log "$GEN_OUT"; tail_log "$WORKDIR/agent.log"; die "oidc-gen printed no device user code ($GEN_STATE)"; }
    echo "$PREFIX device user code $USER_CODE; approving it on $ISSUER/device as $USER_NAME"
    T_LOGIN=$(now)
    timeout "$TIMEOUT" python3 "$WORKDIR/oa_browser.py" device "$ISSUER" "$USER_CODE" >/dev/null 2>"$WORKDIR/login.err" \
        || { tail_log "$GEN_OUT" 10; die "approving the device code failed: $(tail -n 3 "$WORKDIR/login.err")"; }
    echo "$PREFIX approved in $(since "$T_LOGIN")"
fi

# oidc-gen finishes once the agent holds the account (it polls for it).
for _ in $(seq $((TIMEOUT * 5))); do kill -0 "$GEN_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$GEN_PID" 2>/dev/null; then tail_log "$GEN_OUT"; tail_log "$WORKDIR/agent.log"; die "oidc-gen did not finish within ${TIMEOUT}s after the login"; fi
wait "$GEN_PID"; rc=$?; GEN_PID=
[ $rc -eq 0 ] || { tail_log "$GEN_OUT"; tail_log "$WORKDIR/agent.log" 15; die "oidc-gen $FLOW flow failed (exit $rc)"; }
grep -Eiq "error" "$GEN_OUT" && { tail_log "$GEN_OUT"; die "oidc-gen reported an error"; }
echo "$PREFIX oidc-gen $FLOW flow done in $(since "$T_GEN"); account '$ACCOUNT' loaded"

# --- tokens --------------------------------------------------------------------------------------------------
ID_TOKEN=$(timeout "$TIMEOUT" oidc-token --id-token "$ACCOUNT" 2>"$WORKDIR/oidc-token.err") \
    || { tail_log "$WORKDIR/oidc-token.err"; tail_log "$WORKDIR/agent.log" 15; die "oidc-token --id-token $ACCOUNT failed"; }
CLAIMS=$(printf '%s' "$ID_TOKEN" | browser claims) || die "the id token is not a JWT"
echo "$PREFIX id token claims: $CLAIMS"
claim() { printf '%s' "$CLAIMS" | python3 -c "import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print(','.join(v) if isinstance(v,list) else ('' if v is None else v))" "$1"; }
SUB=$(claim sub) AUD=$(claim aud) ISS=$(claim iss)
[ "$ISS" = "$ISSUER" ] || die "id token iss is '$ISS', expected $ISSUER"
case ",$AUD," in *",$CLIENT_ID,"*) ;; *) die "id token aud is '$AUD', expected to contain $CLIENT_ID" ;; esac
[ -n "$SUB" ] || die "id token has no sub"

AT1=$(timeout "$TIMEOUT" oidc-token "$ACCOUNT" 2>"$WORKDIR/oidc-token.err") \
    || { tail_log "$WORKDIR/oidc-token.err"; die "oidc-token $ACCOUNT failed"; }
T_REFRESH=$(now)
AT2=$(timeout "$TIMEOUT" oidc-token -f "$ACCOUNT" 2>"$WORKDIR/oidc-token.err") \
    || { tail_log "$WORKDIR/oidc-token.err"; tail_log "$WORKDIR/agent.log" 15; die "oidc-token -f $ACCOUNT (forced refresh) failed"; }
[ -n "$AT2" ] && [ "$AT1" != "$AT2" ] || die "oidc-token -f returned no new access token"
echo "$PREFIX forced refresh (oidc-token -f) gave a new access token in $(since "$T_REFRESH")"
if AT_CLAIMS=$(printf '%s' "$AT2" | browser claims 2>/dev/null); then echo "$PREFIX refreshed access token claims: $AT_CLAIMS"; fi
# A second forced refresh: the rotated refresh token the agent kept works too.
timeout "$TIMEOUT" oidc-token -f "$ACCOUNT" >/dev/null 2>"$WORKDIR/oidc-token.err" \
    || { tail_log "$WORKDIR/oidc-token.err"; tail_log "$WORKDIR/agent.log" 15; die "a second oidc-token -f $ACCOUNT failed (refresh token rotation?)"; }

# --- stop the agent by its PID -------------------------------------------------------------------------------
kill "$AGENT_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$AGENT_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$AGENT_PID" 2>/dev/null && die "oidc-agent (pid $AGENT_PID) did not stop"
wait "$AGENT_PID" 2>/dev/null; AGENT_PID=
echo "$PREFIX OK $FLOW $KIND sub=$SUB aud=$AUD ($(since "$START"))"
