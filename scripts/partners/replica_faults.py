#!/usr/bin/env python3
"""Replicas under faults: two `keyless-cli idp serve` replicas and two `keyless-cli server` replicas behind a real
nginx load balancer, on one PostgreSQL, with moto as STS, on 127.0.0.1 only.

Usage:
    python3 replica_faults.py --keyless-cli PATH [--duration 40] [--workers 3] [--json-out FILE]

It starts every partner itself in a new temporary directory (removed at the end unless --keep-temp), each on a free
loopback port, drives a bounded load through nginx for --duration seconds while it injects faults at fixed offsets
(kill -9 of a provider replica and of an access-server replica, each restarted a few seconds later; a fast restart of
PostgreSQL; `keyless-cli idp rotate-keys --publish-for 0`), and checks across replicas that no single-use value is
accepted twice: authorization codes, rotated refresh tokens, TOTP codes and private_key_jwt client assertions.

Output: one JSON object on stdout (also written to --json-out FILE); progress on stderr. No password, token, code
or secret is ever printed: counts only.

Exit status: 0 when the run completed (even when replays were accepted: the caller asserts on the JSON);
2 usage error; 3 a partner could not be started (the tail of its log is printed on stderr); 4 an unexpected error.

The report: requests_sent and per-kind counts (sent/ok/failed); valid_failed (valid requests that failed, by kind
and answer, with failure windows attributed to the fault before them: start offset, duration, count);
codes_accepted_twice, refresh_tokens_accepted_twice, totp_replays_accepted, assertion_replays_accepted (a value seen
to succeed twice; replay_checks has the trials, refusals and inconclusive answers per route, and same-replica
controls); recovery_seconds (fault -> first relevant success through nginx) and settled_seconds (fault -> last
failure attributed to it); faults (what was done, when); audit_log_records; healthy_at_end; errors; versions.
Times are seconds since the load started.

Needs: python3 (standard library; `cryptography` if importable, else the openssl command, for the client key),
moto (`python3 -m moto.server` with this interpreter, or `moto_server`), nginx, PostgreSQL's initdb/postgres/pg_isready
(/usr/lib/postgresql/*/bin or PATH) and, when run as root, setpriv (PostgreSQL then runs as `postgres` or `nobody`).
Every process it starts is stopped by its own PID (also on error, SIGINT, SIGTERM, SIGHUP).
"""

import argparse
import atexit
import base64
import concurrent.futures
import hashlib
import hmac
import html.parser
import http.client
import http.cookies
import json
import os
import platform
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

HTTP_TIMEOUT = 10  # seconds, every HTTP call
REDIRECT_URI = "http://127.0.0.1:5000/callback"
PUBLIC_CLIENT = "keyless-cli"
SECRET_CLIENT = "deployer"
JWT_CLIENT = "signer"
SCOPE = "openid email profile groups offline_access"
ROLE_ARN = "arn:aws:iam::123456789012:role/dev"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

T_START = time.monotonic()


def log(message):
    print(f"[replica_faults {time.monotonic() - T_START:6.1f}s] {message}", file=sys.stderr, flush=True)


class PartnerError(Exception):
    """A partner could not be started (the message carries the tail of its log)."""


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers: base64url, TOTP, PKCE, ports, logs


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def totp(secret_base32, at=None, step=30, digits=6):
    """RFC 6238 (HMAC-SHA-1, 6 digits, 30 s steps)."""
    key = base64.b32decode(secret_base32.upper() + "=" * (-len(secret_base32) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(value).zfill(digits)


def pkce_pair():
    verifier = b64url(secrets.token_bytes(32))
    return verifier, b64url(hashlib.sha256(verifier.encode()).digest())


def jwt_kid(token):
    """The `kid` of a JWS header (the header only: no claim, no secret)."""
    try:
        return json.loads(b64url_decode(token.split(".")[0])).get("kid")
    except Exception:
        return None


def free_port(taken):
    """A free 127.0.0.1 port below the ephemeral range, so a replica restarted later on the same port cannot collide
    with an outgoing connection's local port."""
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    floor = 15000 if low > 16000 else 1024
    for _ in range(500):
        port = random.randint(floor, max(floor + 1, low - 1))
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise PartnerError("no free port on 127.0.0.1")


def tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 65536))
            text = f.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
    except OSError as error:
        return f"(no log: {error})"


# ---------------------------------------------------------------------------------------------------------------------
# HTTP (urllib, no proxies, no redirects followed, timeout on every call)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class Resp:
    def __init__(self, status, headers=None, body=b"", error=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.error = error  # the exception's class name on a transport failure (status 0)
        self.record = None  # the harness's record of the request
        self.note = None  # why the harness did not accept an otherwise successful answer

    def json(self):
        try:
            value = json.loads(self.body.decode("utf-8"))
            return value if isinstance(value, dict) else {}
        except Exception:
            return {}

    def header(self, name):
        return self.headers.get(name) if self.headers is not None else None

    def header_all(self, name):
        return self.headers.get_all(name) or [] if self.headers is not None else []


def http_call(method, url, form=None, json_body=None, headers=None, timeout=HTTP_TIMEOUT):
    data = None
    h = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    elif json_body is not None:
        data = json.dumps(json_body).encode()
        h["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with OPENER.open(request, timeout=timeout) as answer:
            return Resp(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:
        try:
            body = error.read()
        except Exception:
            body = b""
        return Resp(error.code, error.headers, body)
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", None)
        return Resp(0, None, b"", error=type(reason if isinstance(reason, BaseException) else error).__name__)


class FormParser(html.parser.HTMLParser):
    """The forms of a page: action, method, hidden fields and named submit buttons."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._form = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": a.get("method", "get").lower(), "hidden": [], "submits": []}
            self.forms.append(self._form)
        elif self._form is not None and tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "hidden" and a.get("name"):
                self._form["hidden"].append((a["name"], a.get("value", "")))
            elif kind == "submit" and a.get("name"):
                self._form["submits"].append((a["name"], a.get("value", "")))
        elif self._form is not None and tag == "button" and a.get("type", "submit").lower() == "submit" and a.get("name"):
            self._form["submits"].append((a["name"], a.get("value", "")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None


def answer_label(resp):
    """`STATUS ERROR-CODE` of an answer (the `error` member of a JSON body; never anything else of the body), or
    `0 ExceptionName` when no answer came."""
    if resp.status == 0:
        return f"0 {resp.error}"
    if resp.note:
        return f"{resp.status} {resp.note}"
    code = resp.json().get("error")
    return f"{resp.status} {code}" if isinstance(code, str) and len(code) < 60 else str(resp.status)


def describe(resp):
    """The server's own explanation of an error (error_description / message / reason), cut to 200 characters;
    these texts are written by the servers for the client's log and carry no secret."""
    body = resp.json()
    for key in ("error_description", "message", "reason", "detail"):
        if isinstance(body.get(key), str):
            return "(" + body[key][:200] + ")"
    return ""


def set_cookies(resp):
    """name -> value of every Set-Cookie header of a response."""
    cookies = {}
    for header in resp.header_all("Set-Cookie"):
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(header)
        except http.cookies.CookieError:
            continue
        for name, morsel in jar.items():
            cookies[name] = morsel.value
    return cookies


# ---------------------------------------------------------------------------------------------------------------------
# Processes, stopped by their own PID only


class Partner:
    """A child process with its output in a log file; stopped by its PID (stop_signal, then SIGKILL)."""

    registry = []
    registry_lock = threading.Lock()

    def __init__(self, name, argv, log_path, env=None, cwd=None, stop_signal=signal.SIGTERM):
        self.name, self.argv, self.log_path, self.env, self.cwd, self.stop_signal = name, argv, log_path, env, cwd, stop_signal
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as output:
            # A new session: a Ctrl-C on the harness's terminal does not reach the partners; cleanup stops them by PID.
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=self.cwd, start_new_session=True, close_fds=True)
        with Partner.registry_lock:
            Partner.registry.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            os.kill(self.proc.pid, signal.SIGKILL)  # still our unreaped child: the PID cannot have been reused
        self._wait(10)

    def stop(self, timeout=10):
        if self.proc is None:
            return
        began = time.monotonic()
        if self.running():
            try:
                os.kill(self.proc.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            if not self._wait(timeout) and self.running():
                log(f"{self.name} (pid {self.proc.pid}) did not stop within {timeout:g} s; SIGKILL")
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._wait(10)
        if time.monotonic() - began > 2:
            log(f"stopping {self.name} (pid {self.proc.pid}) took {time.monotonic() - began:.1f} s")

    def _wait(self, timeout):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def tail(self, lines=30):
        return tail(self.log_path, lines)

    @classmethod
    def stop_all(cls):
        with cls.registry_lock:
            partners = list(reversed(cls.registry))
        for partner in partners:
            try:
                partner.stop(timeout=8)
            except Exception as error:  # keep stopping the others
                log(f"stopping {partner.name} (pid {partner.pid}) failed: {error}")


def wait_http_ok(url, partner, timeout=90, accept=(200,)):
    """Polls url until it answers one of `accept`; False when the partner exits or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if partner is not None and not partner.running():
            return False
        if http_call("GET", url, timeout=3).status in accept:
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------------------------------------
# Client key for private_key_jwt (cryptography when importable, else the openssl command)


class ClientKey:
    def __init__(self, directory):
        self.kid = "replica-faults-" + secrets.token_hex(4)
        try:
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
            self._key = ec.generate_private_key(ec.SECP256R1())
            numbers = self._key.public_key().public_numbers()
            x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
            self._sign_der = lambda data: self._key.sign(data, ec.ECDSA(hashes.SHA256()))
            self._decode = decode_dss_signature
            self.backend = "cryptography"
        except ImportError:
            openssl = shutil.which("openssl")
            if not openssl:
                raise PartnerError("neither the cryptography module nor the openssl command is available for the private_key_jwt client")
            self._pem = os.path.join(directory, "client-key.pem")
            subprocess.run([openssl, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self._pem],
                           check=True, capture_output=True, timeout=30)
            os.chmod(self._pem, 0o600)
            der = subprocess.run([openssl, "ec", "-in", self._pem, "-pubout", "-outform", "DER"],
                                 check=True, capture_output=True, timeout=30).stdout
            point = der[-65:]
            x, y = point[1:33], point[33:65]
            self._sign_der = lambda data: subprocess.run([openssl, "dgst", "-sha256", "-sign", self._pem], input=data,
                                                         check=True, capture_output=True, timeout=30).stdout
            self._decode = ClientKey._decode_der
            self.backend = "openssl"
        self.jwks = {"keys": [{"kty": "EC", "crv": "P-256", "x": b64url(x), "y": b64url(y), "kid": self.kid,
                               "alg": "ES256", "use": "sig"}]}

    @staticmethod
    def _decode_der(der):
        # SEQUENCE { INTEGER r, INTEGER s }
        def read_int(data, i):
            assert data[i] == 0x02
            length = data[i + 1]
            return int.from_bytes(data[i + 2:i + 2 + length], "big"), i + 2 + length
        i = 2 if der[1] < 0x80 else 3
        r, i = read_int(der, i)
        s, _ = read_int(der, i)
        return r, s

    def assertion(self, client_id, audience):
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 120,
                  "jti": secrets.token_urlsafe(18)}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode())).encode()
        r, s = self._decode(self._sign_der(signing_input))
        return signing_input.decode() + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


# ---------------------------------------------------------------------------------------------------------------------
# The run


KIND_GROUPS = {
    "idp": {"authorize_page", "login", "code_exchange", "refresh", "client_credentials", "private_key_jwt", "totp_login"},
    "db": {"login", "code_exchange", "refresh", "totp_login"},
    "server": {"credentials"},
}

REPLAY_KINDS = {"code_replay": "code", "refresh_replay": "refresh_token", "totp_replay": "totp",
                "assertion_replay": "assertion", "totp_replay_same_replica": "totp_same_replica",
                "assertion_replay_same_replica": "assertion_same_replica"}


class Run:
    def __init__(self, args):
        self.args = args
        self.cli = os.path.abspath(args.keyless_cli)
        self.ports = set()
        self.root = None
        self.lock = threading.Lock()
        self.records = []  # every request to the system under test
        self.replays = {name: {"trials": 0, "accepted": 0, "refused": 0, "inconclusive": 0, "first_use_failed": 0,
                               "routes": {}, "answers": {}} for name in set(REPLAY_KINDS.values())}
        self.faults = []
        self.errors = []
        self.up = {"idp_a": True, "idp_b": True, "server_a": True, "server_b": True, "postgres": True}
        self.stop_event = threading.Event()
        self.load_start = None
        self.rotated_kid = None
        self.cleaned = False
        self.counters = {}
        self.assertion_trials = 0
        self.failures_seen = set()
        self.local = threading.local()  # .racing: inside a race, whose loser is not a failure
        self.cleanup_lock = threading.Lock()

    # ----- partners ---------------------------------------------------------------------------------------------

    def start_partners(self):
        args = self.args
        if not os.access(self.cli, os.X_OK):
            raise PartnerError(f"--keyless-cli {self.cli} is not an executable file")
        self.nginx_bin = shutil.which(args.nginx) or (args.nginx if os.access(args.nginx, os.X_OK) else None)
        if not self.nginx_bin:
            raise PartnerError(f"nginx ({args.nginx}) was not found (apt-get install nginx, or pass --nginx PATH)")
        self.pg_bin = self._find_pg_bin()
        self.account = self._pg_account()

        self.root = tempfile.mkdtemp(prefix="keyless-replica-faults-", dir="/tmp" if os.geteuid() == 0 else None)
        # 0711: the unprivileged accounts (postgres, nginx workers) may pass through, not list; every secret lives in
        # 0700 subdirectories.
        os.chmod(self.root, 0o711 if os.geteuid() == 0 else 0o700)
        log(f"temporary directory {self.root}")
        self.idp_dir = self._mkdir("idp", 0o700)
        self.server_dir = self._mkdir("server", 0o700)
        self.moto_dir = self._mkdir("moto", 0o700)
        self.nginx_dir = self._mkdir("nginx", 0o711)

        for name in ("nginx_idp", "nginx_server", "idp_a", "idp_b", "server_a", "server_b", "moto"):
            setattr(self, "port_" + name, free_port(self.ports))
        self.issuer = f"http://127.0.0.1:{self.port_nginx_idp}"
        self.server_front = f"http://127.0.0.1:{self.port_nginx_server}"

        self._start_moto_process()  # moto takes seconds to import: it starts while PostgreSQL is set up
        self._start_postgres()
        self._wait_moto()
        self._write_idp_config()
        self.idp = {}
        self.idp["a"] = self._start_idp("a")  # the first start makes the signing key: the second replica starts after it
        self.idp["b"] = self._start_idp("b")
        self._start_nginx()
        if http_call("GET", self.issuer + "/.well-known/openid-configuration").status != 200:
            raise PartnerError(f"the provider does not answer through nginx at {self.issuer}; nginx error log:\n"
                               + tail(os.path.join(self.nginx_dir, "error.log")))
        self._write_server_config()
        self.server = {}
        self.server["a"] = self._start_server("a")
        self.server["b"] = self._start_server("b")
        if http_call("GET", self.server_front + "/healthz").status != 200:
            raise PartnerError(f"the access server does not answer through nginx at {self.server_front}; nginx error log:\n"
                               + tail(os.path.join(self.nginx_dir, "error.log")))
        log("partners up: PostgreSQL, moto, 2 provider replicas, 2 access-server replicas, nginx")

    def _mkdir(self, name, mode):
        path = os.path.join(self.root, name)
        os.mkdir(path, mode)
        os.chmod(path, mode)
        return path

    def _find_pg_bin(self):
        if self.args.pg_bin:
            return self.args.pg_bin
        root = "/usr/lib/postgresql"
        try:
            versions = sorted((v for v in os.listdir(root) if re.fullmatch(r"\d+(\.\d+)*", v)),
                              key=lambda v: [int(p) for p in v.split(".")], reverse=True)
        except OSError:
            versions = []
        for version in versions:
            directory = os.path.join(root, version, "bin")
            if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in ("initdb", "postgres", "pg_isready")):
                return directory
        initdb = shutil.which("initdb")
        if initdb:
            return os.path.dirname(os.path.realpath(initdb))
        raise PartnerError("PostgreSQL's initdb/postgres were not found in /usr/lib/postgresql/*/bin or PATH "
                           "(apt-get install postgresql, or pass --pg-bin DIR)")

    def _pg_account(self):
        """(uid, gid, setpriv prefix) of the account PostgreSQL runs as when we are root; None otherwise."""
        if os.geteuid() != 0:
            return None
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise PartnerError("running as root, PostgreSQL must run as another user, which needs setpriv (apt-get install util-linux)")
        for name in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            if entry.pw_uid != 0:
                return (entry.pw_uid, entry.pw_gid,
                        [setpriv, f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups", "--"])
        raise PartnerError("running as root, PostgreSQL must run as another user, but neither postgres nor nobody exists")

    def _pg_tool(self, name):
        path = os.path.join(self.pg_bin, name)
        return path if os.access(path, os.X_OK) else (shutil.which(name) or path)

    def _start_postgres(self):
        self.pg_dir = self._mkdir("postgres", 0o700)
        prefix = []
        if self.account:
            uid, gid, prefix = self.account
            os.chown(self.pg_dir, uid, gid)
        self.pg_data = os.path.join(self.pg_dir, "data")
        self.pg_sockets = os.path.join(self.pg_dir, "socket")
        os.mkdir(self.pg_sockets, 0o700)
        if self.account:
            os.chown(self.pg_sockets, self.account[0], self.account[1])
        self.pg_prefix = prefix
        init_log = os.path.join(self.pg_dir, "initdb.log")
        with open(init_log, "wb") as output:
            try:
                result = subprocess.run(prefix + [self._pg_tool("initdb"), "-D", self.pg_data, "-U", "keyless", "--auth=trust",
                                                  "--no-sync", "--encoding=UTF8", "--locale=C"],
                                        stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, cwd=self.pg_dir,
                                        env=dict(os.environ, LC_ALL="C"), timeout=120)
            except subprocess.TimeoutExpired:
                raise PartnerError("initdb did not finish within 120 s; log:\n" + tail(init_log))
        if result.returncode != 0:
            raise PartnerError(f"initdb failed (status {result.returncode}); log {init_log}:\n" + tail(init_log))
        hba = os.path.join(self.pg_data, "pg_hba.conf")
        with open(hba, "w") as f:
            f.write("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        if self.account:
            os.chown(hba, self.account[0], self.account[1])
        for attempt in range(3):
            self.port_postgres = free_port(self.ports)
            self.postgres = self._postgres_process()
            if self._wait_postgres():
                break
            text = self.postgres.tail()
            self.postgres.stop()
            if attempt == 2 or "could not bind" not in text and "already in use" not in text:
                raise PartnerError(f"postgres did not start on 127.0.0.1:{self.port_postgres}; log {self.postgres.log_path}:\n{text}")
        self.database = f"postgres://keyless@127.0.0.1:{self.port_postgres}/idp?sslmode=disable"
        result = subprocess.run([self._pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                                 str(self.port_postgres), "-U", "keyless", "-d", "postgres", "-c", "CREATE DATABASE idp"],
                                capture_output=True, text=True, timeout=60,
                                env=dict(os.environ, PGSSLMODE="disable", PGCONNECT_TIMEOUT="10"))
        if result.returncode != 0:
            raise PartnerError(f"CREATE DATABASE failed: {result.stderr.strip()}")
        log(f"PostgreSQL on 127.0.0.1:{self.port_postgres} (pid {self.postgres.pid})")

    def _postgres_process(self):
        settings = ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_permissions=0700", "-c", "max_connections=300",
                    "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "log_min_messages=warning"]
        argv = self.pg_prefix + [self._pg_tool("postgres"), "-D", self.pg_data, "-h", "127.0.0.1", "-p", str(self.port_postgres),
                                 "-k", self.pg_sockets, "-F"] + settings
        # SIGINT is postgres's fast shutdown. setpriv execs, so the PID is postgres itself.
        return Partner("postgres", argv, os.path.join(self.pg_dir, "postgres.log"), env=dict(os.environ, LC_ALL="C"),
                       cwd=self.pg_dir, stop_signal=signal.SIGINT).start()

    def _wait_postgres(self, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.postgres.running():
            probe = subprocess.run([self._pg_tool("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port_postgres),
                                    "-U", "keyless", "-d", "postgres", "-t", "1"], capture_output=True, timeout=15)
            if probe.returncode == 0:
                return True
            time.sleep(0.05)
        return False

    def _moto_argv(self):
        probe = subprocess.run([sys.executable, "-c", "import moto.server"], capture_output=True, timeout=120)
        if probe.returncode == 0:
            return [sys.executable, "-m", "moto.server"]
        entry = shutil.which("moto_server")
        if entry:
            return [entry]
        raise PartnerError("moto is not installed for this python3 (python3 -m pip install 'moto[server]')")

    def _start_moto_process(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1")
        self.moto = Partner("moto", self._moto_argv() + ["-H", "127.0.0.1", "-p", str(self.port_moto)],
                            os.path.join(self.moto_dir, "moto.log"), env=env, cwd=self.moto_dir).start()

    def _wait_moto(self):
        self.moto_url = f"http://127.0.0.1:{self.port_moto}"
        if not wait_http_ok(self.moto_url + "/moto-api/", self.moto, timeout=90):
            raise PartnerError(f"moto did not answer on {self.moto_url}; log {self.moto.log_path}:\n{self.moto.tail()}")
        trust = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Federated": "*"}, "Action": "sts:AssumeRoleWithWebIdentity"},
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]})
        # moto routes an unsigned form to S3; the credential scope of the Authorization header routes it to IAM.
        answer = http_call("POST", self.moto_url + "/?iam", form=[
            ("Action", "CreateRole"), ("Version", "2010-05-08"), ("RoleName", "dev"), ("AssumeRolePolicyDocument", trust)],
            headers={"Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/iam/aws4_request, "
                                      "SignedHeaders=host, Signature=0"})
        arn = re.search(rb"<Arn>([^<]+)</Arn>", answer.body)
        if answer.status != 200 or not arn or arn.group(1).decode() != ROLE_ARN:
            raise PartnerError(f"moto CreateRole answered HTTP {answer.status} (expected the role {ROLE_ARN})")
        log(f"moto on {self.moto_url} (pid {self.moto.pid}), role {ROLE_ARN}")

    def _hash(self, secret):
        result = subprocess.run([self.cli, "idp", "hash-password", "--stdin"], input=secret + "\n", capture_output=True,
                                text=True, timeout=120, env=dict(os.environ, HOME=self.idp_dir))
        value = result.stdout.strip()
        if result.returncode != 0 or not value.startswith("$"):
            raise PartnerError(f"keyless-cli idp hash-password failed (status {result.returncode}): {result.stderr.strip()[-500:]}")
        return value

    def _write_idp_config(self):
        # Fresh secrets every run, kept in memory only; the file holds their scrypt hashes.
        # One password-only user per worker, so that no two logins of one user from one address run at once (the
        # provider counts an attempt as a failure until it succeeds, per user and address), and two TOTP users.
        self.load_users = [f"alice{i + 1}" for i in range(self.args.workers)]
        self.users = {name: {"password": secrets.token_urlsafe(18), "totp": None} for name in self.load_users}
        self.users.update({
            "bob": {"password": secrets.token_urlsafe(18), "totp": base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")},
            "carol": {"password": secrets.token_urlsafe(18), "totp": base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")},
        })
        self.deployer_secret = secrets.token_urlsafe(24)
        self.client_key = ClientKey(self.idp_dir)
        names = list(self.users)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:  # ~0.4 s of scrypt each, on 2 cores
            hashed = list(pool.map(self._hash, [self.users[n]["password"] for n in names] + [self.deployer_secret]))
        hashes, deployer_hash = dict(zip(names, hashed)), hashed[-1]
        lines = [f"issuer: {self.issuer}", "signing_algorithm: RS256", "groups: [developers, admins]", "users:"]
        for name, user in self.users.items():
            lines += [f"  - username: {name}", f"    password_hash: \"{hashes[name]}\"", f"    email: {name}@example.com",
                      "    groups: [developers]"]
            if user["totp"]:
                lines.append(f"    totp_secret: {user['totp']}")
        lines += ["clients:",
                  f"  - id: {PUBLIC_CLIENT}", "    redirect_uris: [http://127.0.0.1/callback]",
                  "    grants: [authorization_code, refresh_token, device_code]",
                  f"  - id: {SECRET_CLIENT}", f"    secret_hash: \"{deployer_hash}\"", "    grants: [client_credentials]",
                  "    scopes: [deploy]", "    audience: sts.amazonaws.com",
                  f"  - id: {JWT_CLIENT}", f"    jwks: '{json.dumps(self.client_key.jwks, separators=(',', ':'))}'",
                  "    grants: [client_credentials]", "    audience: sts.amazonaws.com"]
        self.idp_config = os.path.join(self.idp_dir, "idp.yaml")
        with open(os.open(self.idp_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.kek = os.path.join(self.idp_dir, "idp-kek")
        self.idp_env = dict(os.environ, KEYLESS_DATA_DIR=os.path.join(self.idp_dir, "data"), HOME=self.idp_dir)
        self.idp_env.pop("KEYLESS_IDP_DATABASE", None)
        self.store_arguments = ["--config", self.idp_config, "--issuer", self.issuer, "--key-encryption-key", self.kek,
                                "--database", self.database]

    def _idp_process(self, which):
        port = getattr(self, "port_idp_" + which)
        argv = [self.cli, "idp", "serve", "--config", self.idp_config, "--listen", f"127.0.0.1:{port}", "--issuer", self.issuer,
                "--key-encryption-key", self.kek, "--key-reload-interval", "1", "--database", self.database]
        return Partner(f"idp-{which}", argv, os.path.join(self.idp_dir, f"idp-{which}.log"), env=self.idp_env, cwd=self.idp_dir).start()

    def _start_idp(self, which, timeout=90):
        process = self._idp_process(which)
        port = getattr(self, "port_idp_" + which)
        if not wait_http_ok(f"http://127.0.0.1:{port}/healthz", process, timeout=timeout):
            text = process.tail()
            process.stop()
            raise PartnerError(f"keyless-cli idp serve ({which}) did not become healthy on 127.0.0.1:{port}; "
                               f"log {process.log_path}:\n{text}")
        log(f"provider replica {which.upper()} on 127.0.0.1:{port} (pid {process.pid})")
        return process

    def _start_nginx(self):
        d = self.nginx_dir
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, "temp", sub), exist_ok=True)
        conf = f"""# written by replica_faults.py
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 512; }}
http {{
    # No query strings in the access log (an /authorize query is not secret, but nothing else needs logging).
    log_format replica '$msec $request_method $uri $status upstream=$upstream_addr upstream_status=$upstream_status t=$request_time';
    access_log {d}/access.log replica;
    client_body_temp_path {d}/temp/client_body;
    proxy_temp_path {d}/temp/proxy;
    fastcgi_temp_path {d}/temp/fastcgi;
    uwsgi_temp_path {d}/temp/uwsgi;
    scgi_temp_path {d}/temp/scgi;
    client_body_buffer_size 64k;
    client_max_body_size 1m;
    proxy_max_temp_file_size 0;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout 1s;
    proxy_send_timeout 10s;
    proxy_read_timeout 10s;

    # Retry on the other replica only when no answer could be had from the first: a refused or failed connection, or
    # a connect/read timeout. Deliberately NOT `non_idempotent`: nginx then never re-sends a POST that already
    # reached a replica. Every POST here spends or creates something single-use (a code, a refresh token, a TOTP
    # code, a client assertion's jti, a login session, an STS session + an audit record). If a replica dies after it
    # committed a redemption but before it answered, a retried POST would be a replay issued by the load balancer
    # itself: at best the caller gets an error for a value it in fact spent (its tokens are lost or, for a code,
    # revoked), at worst, where the replay guard is per process, the value is accepted twice. So a POST in flight
    # when its replica dies fails (502/504) and the client retries with a fresh login/assertion if it wants to.
    # POSTs whose connection was refused (not yet sent) are still passed to the other replica by nginx.
    proxy_next_upstream error timeout;
    proxy_next_upstream_tries 2;
    proxy_next_upstream_timeout 5s;

    # keepalive_timeout below both servers' 30 s idle timeout: nginx closes an idle upstream connection before the
    # replica does, so a POST is never written onto a connection the replica is closing (that would fail, unretried).
    upstream keyless_idp {{
        server 127.0.0.1:{self.port_idp_a} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:{self.port_idp_b} max_fails=1 fail_timeout=2s;
        keepalive 16;
        keepalive_timeout 10s;
    }}
    upstream keyless_server {{
        server 127.0.0.1:{self.port_server_a} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:{self.port_server_b} max_fails=1 fail_timeout=2s;
        keepalive 16;
        keepalive_timeout 10s;
    }}
    server {{
        listen 127.0.0.1:{self.port_nginx_idp};
        location / {{ proxy_pass http://keyless_idp; }}
    }}
    server {{
        listen 127.0.0.1:{self.port_nginx_server};
        location / {{ proxy_pass http://keyless_server; }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        argv = [self.nginx_bin, "-c", path, "-p", d + "/", "-e", os.path.join(d, "error.log"), "-g", "daemon off;"]
        self.nginx = Partner("nginx", argv, os.path.join(d, "nginx.out"), cwd=d, stop_signal=signal.SIGTERM).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.nginx.running():
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port_nginx_idp), timeout=1), \
                        socket.create_connection(("127.0.0.1", self.port_nginx_server), timeout=1):
                    log(f"nginx on 127.0.0.1:{self.port_nginx_idp} (provider) and :{self.port_nginx_server} "
                        f"(access server) (pid {self.nginx.pid})")
                    return
            except OSError:
                time.sleep(0.1)
        text = self.nginx.tail() + "\n" + tail(os.path.join(d, "error.log"))
        self.nginx.stop()
        raise PartnerError(f"nginx did not start; output and error log:\n{text}")

    def _write_server_config(self):
        self.policy_path = os.path.join(self.server_dir, "policy.yaml")
        with open(self.policy_path, "w") as f:
            f.write(f"""defaults:
  region: us-east-1
accounts:
  - id: "123456789012"
    alias: demo
roles:
  - arn: {ROLE_ARN}
    description: Developer access
grants:
  - groups: [developers]
    roles: [demo/dev]
""")
        self.server_config = os.path.join(self.server_dir, "server.yaml")
        with open(self.server_config, "w") as f:
            # No listen: each replica gets --listen. public_url is the load balancer (else it would be derived from
            # listen:, naming one replica).
            # jwks_refetch_interval 1s: a key rotated with --publish-for 0 is seen by a server at its next refetch for an
            # unknown kid, at most a second later (the default 10 s would refuse new-key tokens for up to 10 s).
            f.write(f"""public_url: {self.server_front}
policy: policy.yaml
audit_log: audit.log
jwks_refetch_interval: 1s
issuers:
  - issuer: {self.issuer}
    audiences: [{PUBLIC_CLIENT}]
aws:
  region: us-east-1
  sts_endpoint: {self.moto_url}
""")
        # The server's own AWS identity: moto accepts any access key.
        self.server_env = dict(os.environ, HOME=self.server_dir, AWS_ACCESS_KEY_ID="server-testing",
                               AWS_SECRET_ACCESS_KEY="server-testing", AWS_SESSION_TOKEN="", AWS_PROFILE="",
                               AWS_CONFIG_FILE="/nonexistent/keyless-server-config",
                               AWS_SHARED_CREDENTIALS_FILE="/nonexistent/keyless-server-credentials")
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
            self.server_env.pop(name, None)

    def _server_process(self, which):
        port = getattr(self, "port_server_" + which)
        argv = [self.cli, "server", "--config", self.server_config, "--listen", f"127.0.0.1:{port}"]
        return Partner(f"server-{which}", argv, os.path.join(self.server_dir, f"server-{which}.log"), env=self.server_env,
                       cwd=self.server_dir).start()

    def _start_server(self, which, timeout=90):
        process = self._server_process(which)
        port = getattr(self, "port_server_" + which)
        if not wait_http_ok(f"http://127.0.0.1:{port}/healthz", process, timeout=timeout):
            text = process.tail()
            process.stop()
            raise PartnerError(f"keyless-cli server ({which}) did not become healthy on 127.0.0.1:{port}; "
                               f"log {process.log_path}:\n{text}")
        log(f"access-server replica {which.upper()} on 127.0.0.1:{port} (pid {process.pid})")
        return process

    # ----- recording --------------------------------------------------------------------------------------------

    def now(self):
        return time.monotonic() - self.load_start

    def idp_url(self, target):
        return self.issuer if target == "nginx" else f"http://127.0.0.1:{getattr(self, 'port_idp_' + target.lower())}"

    def send(self, kind, target, method, url, ok, form=None, json_body=None, headers=None, expect="valid", extra=None):
        t0 = self.now()
        resp = http_call(method, url, form=form, json_body=json_body, headers=headers)
        t1 = self.now()
        accepted = bool(ok(resp))
        record = {"kind": kind, "target": target, "t0": t0, "t1": t1, "ok": accepted, "status": resp.status,
                  "expect": expect, "answer": answer_label(resp)}
        if extra:
            record.update(extra)
        resp.record = record
        with self.lock:
            self.records.append(record)
            first_seen = (not accepted and expect == "valid" and not getattr(self.local, "racing", False)
                          and (kind, record["answer"]) not in self.failures_seen)
            if first_seen:
                self.failures_seen.add((kind, record["answer"]))
        if first_seen:
            log(f"first failure of {kind} via {target} at {t1:.1f} s: {record['answer']} {describe(resp)}")
        return resp, accepted

    def replay_outcome(self, name, route, resp, accepted, first_ok=True):
        """Counts one replay check. accepted: the replayed value worked again; refused: a 4xx answer (other than
        429); inconclusive: no answer, 5xx or throttling, which proves nothing either way."""
        with self.lock:
            entry = self.replays[name]
            if not first_ok:
                entry["first_use_failed"] += 1
                return
            entry["trials"] += 1
            if accepted:
                outcome = "accepted"
            elif 400 <= resp.status < 500 and resp.status != 429:
                outcome = "refused"
            else:
                outcome = "inconclusive"
            entry[outcome] += 1
            per_route = entry["routes"].setdefault(route, {"trials": 0, "accepted": 0, "refused": 0, "inconclusive": 0})
            per_route["trials"] += 1
            per_route[outcome] += 1
            label = answer_label(resp)
            entry["answers"][label] = entry["answers"].get(label, 0) + 1
            first_accepted = accepted and entry["accepted"] == 1
        if first_accepted:
            log(f"REPLAY ACCEPTED: {name} via {route} (the first; the rest are counted in the report)")
        return outcome

    # ----- routing ----------------------------------------------------------------------------------------------

    # How the two uses of a single-use value are routed: one replica's own port then the other's, both through
    # nginx, or both replicas at the same moment.
    MODES = ("A>B", "B>A", "nginx>nginx", "race_refresh", "race_code")

    def pair(self, mode):
        """(first, second) targets for a replay check; a replica the harness knows is down is replaced by nginx."""
        if mode == "nginx>nginx":
            return "nginx", "nginx"
        first, second = ("A", "B") if mode != "B>A" else ("B", "A")
        with self.lock:
            up_first, up_second = self.up["idp_" + first.lower()], self.up["idp_" + second.lower()]
        return (first if up_first else "nginx"), (second if up_second else "nginx")

    def other(self, target):
        """The other replica (nginx when it is known to be down, or for nginx itself)."""
        if target == "nginx":
            return "nginx"
        other = "B" if target == "A" else "A"
        with self.lock:
            return other if self.up["idp_" + other.lower()] else "nginx"

    def race(self, calls):
        """Runs the callables at the same moment (two threads behind a barrier); returns their results in order."""
        barrier = threading.Barrier(len(calls))
        results = [None] * len(calls)

        def run(index):
            self.local.racing = True
            try:
                barrier.wait(timeout=HTTP_TIMEOUT)
            except threading.BrokenBarrierError:
                pass
            results[index] = calls[index]()

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HTTP_TIMEOUT * 3)
        return results

    # ----- the load ---------------------------------------------------------------------------------------------

    def browser_login(self, target, username, otp=None, page_kind="authorize_page", login_kind="login"):
        """A browser's password login on /authorize with PKCE S256: the login page (CSRF cookie + the form's hidden
        fields), then the POST. Returns (code, verifier, answer-of-the-POST or None)."""
        base = self.idp_url(target)
        verifier, challenge = pkce_pair()
        state = b64url(secrets.token_bytes(12))
        query = [("response_type", "code"), ("client_id", PUBLIC_CLIENT), ("redirect_uri", REDIRECT_URI), ("scope", SCOPE),
                 ("state", state), ("nonce", b64url(secrets.token_bytes(12))), ("code_challenge", challenge),
                 ("code_challenge_method", "S256")]
        parsed = {}

        def page_ok(resp):
            if resp.status != 200:
                return False
            parser = FormParser()
            try:
                parser.feed(resp.body.decode("utf-8", "replace"))
            except Exception:
                return False
            forms = [f for f in parser.forms if f["method"] == "post" and f["action"].split("?")[0].endswith("/authorize")]
            if not forms:
                resp.note = "no-login-form"
                return False
            # As a browser: every hidden field of the form goes back (the CSRF token among them, whatever its name and
            # whether or not it equals a cookie), and every cookie the page set.
            parsed.update(form=forms[0], cookies=set_cookies(resp))
            return True

        page, ok = self.send(page_kind, target, "GET", base + "/authorize?" + urllib.parse.urlencode(query), page_ok)
        if not ok:
            return None, None, None
        form = parsed["form"]
        fields = list(form["hidden"])
        present = {name for name, _ in fields}
        fields += [(k, v) for k, v in query if k not in present]  # the page normally carries them all
        fields += [("username", username), ("password", self.users[username]["password"])]
        if otp is not None:
            fields.append(("otp", otp))
        submits = [s for s in form["submits"] if s[1].lower() not in ("cancel", "deny")]
        fields.append(submits[0] if submits else ("action", "login"))
        cookie = "; ".join(f"{n}={v}" for n, v in parsed["cookies"].items())
        headers = {"Cookie": cookie} if cookie else {}
        result = {}

        def login_ok(resp):
            location = resp.header("Location") or ""
            if resp.status not in (302, 303) or not location.startswith(REDIRECT_URI):
                return False
            params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
            if params.get("state") != [state] or not params.get("code"):
                return False
            result["code"] = params["code"][0]
            return True

        answer, ok = self.send(login_kind, target, "POST", base + "/authorize", login_ok, form=fields,
                               headers=headers, expect="replay" if login_kind in REPLAY_KINDS else "valid")
        return result.get("code"), verifier, answer

    @staticmethod
    def tokens_ok(resp):
        return resp.status == 200 and bool(resp.json().get("access_token"))

    def redeem(self, target, code, verifier, kind="code_exchange"):
        form = [("grant_type", "authorization_code"), ("code", code), ("code_verifier", verifier),
                ("redirect_uri", REDIRECT_URI), ("client_id", PUBLIC_CLIENT)]
        return self.send(kind, target, "POST", self.idp_url(target) + "/token", self.tokens_ok, form=form,
                         expect="replay" if kind in REPLAY_KINDS else "valid")

    def refresh(self, target, token, kind="refresh"):
        form = [("grant_type", "refresh_token"), ("refresh_token", token), ("client_id", PUBLIC_CLIENT)]
        return self.send(kind, target, "POST", self.idp_url(target) + "/token", self.tokens_ok, form=form,
                         expect="replay" if kind in REPLAY_KINDS else "valid")

    def single_use_check(self, name, mode, first_call, second_call, first_target, second_target):
        """First use at first_target, then a second use at second_target (or both at once in race mode).
        Returns the answer that succeeded (or the first answer)."""
        route = f"{first_target}>{second_target}" if mode != "race" else f"race {first_target}|{second_target}"
        if mode == "race" and first_target != second_target:
            (r1, ok1), (r2, ok2) = self.race([first_call, second_call])
            if ok2 and not ok1:
                # The second call won: it was the valid use and the first call the replay. Swap the records' roles,
                # so the loser of a race is never counted as a failed valid request.
                (r1, ok1), (r2, ok2) = (r2, ok2), (r1, ok1)
                with self.lock:
                    if r1.record is not None and r2.record is not None:
                        for key in ("kind", "expect"):
                            r1.record[key], r2.record[key] = r2.record[key], r1.record[key]
            if ok1:
                self.replay_outcome(name, route, r2, ok2)
            else:
                log_key = (r1.record["kind"], r1.record["answer"]) if r1.record else None
                with self.lock:
                    first_seen = log_key is not None and log_key not in self.failures_seen
                    if first_seen:
                        self.failures_seen.add(log_key)
                if first_seen:
                    log(f"first failure of {log_key[0]} (a race where neither use succeeded): {log_key[1]} {describe(r1)}")
                self.replay_outcome(name, route, r2, False, first_ok=False)
            return r1, ok1
        r1, ok1 = first_call()
        if not ok1:
            self.replay_outcome(name, route, r1, False, first_ok=False)
            return r1, ok1
        r2, ok2 = second_call()
        self.replay_outcome(name, route, r2, ok2)
        return r1, ok1

    def user_flow(self, index, username):
        """Login through nginx, then the code and refresh tokens used once at one replica and again at the other.
        A replayed code revokes the tokens issued for it, so the code's second use comes last."""
        mode = self.MODES[index % len(self.MODES)]
        code, verifier, _ = self.browser_login("nginx", username)
        if not code:
            return
        first, second = self.pair(mode)
        if mode == "race_code":  # both replicas at once; the loser's use is the replay
            answer, ok = self.single_use_check("code", "race", lambda: self.redeem(first, code, verifier),
                                               lambda: self.redeem(second, code, verifier, kind="code_replay"), first, second)
            if ok and answer.json().get("id_token"):
                self.credentials(answer.json()["id_token"])
            return
        code_at = first
        answer, ok = self.redeem(code_at, code, verifier)
        if not ok:
            self.replay_outcome("code", f"{code_at}>{second}", answer, False, first_ok=False)
            return
        tokens = answer.json()
        if tokens.get("id_token"):
            self.credentials(tokens["id_token"])
        rt1 = tokens.get("refresh_token")
        if rt1 and not self.stop_event.is_set():
            first, second = self.pair(mode)
            if mode == "race_refresh":
                self.single_use_check("refresh_token", "race", lambda: self.refresh(first, rt1),
                                      lambda: self.refresh(second, rt1, kind="refresh_replay"), first, second)
            else:
                # Valid rotations across replicas (RT1 at one, RT2 at the other), then RT2 again where RT1 was
                # rotated and RT1 again where RT2 was (each must fail; the first reuse revokes the family).
                answer, ok = self.refresh(first, rt1)
                rt2 = answer.json().get("refresh_token") if ok else None
                if rt2:
                    answer, ok = self.refresh(second, rt2)
                    if ok:
                        resp, accepted = self.refresh(first, rt2, kind="refresh_replay")
                        self.replay_outcome("refresh_token", f"{second}>{first}", resp, accepted)
                    else:
                        self.replay_outcome("refresh_token", f"{second}>{first}", answer, False, first_ok=False)
                    resp, accepted = self.refresh(second, rt1, kind="refresh_replay")
                    self.replay_outcome("refresh_token", f"{first}>{second}", resp, accepted)
                else:
                    self.replay_outcome("refresh_token", f"{first}>{second}", answer, False, first_ok=False)
        replay_at = self.other(code_at)
        resp, accepted = self.redeem(replay_at, code, verifier, kind="code_replay")
        self.replay_outcome("code", f"{code_at}>{replay_at}", resp, accepted)

    def credentials(self, id_token):
        kid = jwt_kid(id_token)

        def ok(resp):
            return resp.status == 200 and bool(resp.json().get("AccessKeyId"))

        return self.send("credentials", "nginx", "POST", self.server_front + "/api/v1/credentials", ok,
                         json_body={"role_arn": ROLE_ARN, "duration_seconds": 900},
                         headers={"Authorization": "Bearer " + id_token}, extra={"kid": kid})

    def service_flow(self, index):
        basic = base64.b64encode(f"{urllib.parse.quote(SECRET_CLIENT, safe='')}:"
                                 f"{urllib.parse.quote(self.deployer_secret, safe='')}".encode()).decode()
        self.send("client_credentials", "nginx", "POST", self.issuer + "/token", self.tokens_ok,
                  form=[("grant_type", "client_credentials")], headers={"Authorization": "Basic " + basic})
        assertion = self.client_key.assertion(JWT_CLIENT, self.issuer + "/token")
        form = [("grant_type", "client_credentials"), ("client_id", JWT_CLIENT), ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion)]

        def use(target, kind):
            return lambda: self.send(kind, target, "POST", self.idp_url(target) + "/token", self.tokens_ok, form=form,
                                     expect="replay" if kind in REPLAY_KINDS else "valid")

        # A refused assertion counts as a failed client authentication from this address (127.0.0.1), and a provider
        # that shares those counters refuses every assertion from the address after 20 of them (15 minutes): the
        # replay checks are spread evenly over the run within a budget, and the other service flows use a fresh
        # assertion once.
        with self.lock:
            trial = self.assertion_trials
            due = trial < self.args.assertion_trials and self.now() >= trial * self.args.duration / self.args.assertion_trials
            if due:
                self.assertion_trials += 1
        if not due:
            self.send("private_key_jwt", "nginx", "POST", self.issuer + "/token", self.tokens_ok, form=form)
            return
        mode = self.MODES[trial % len(self.MODES)]
        first, second = self.pair(mode)
        _, ok = self.single_use_check("assertion", "race" if mode.startswith("race") else "seq", use(first, "private_key_jwt"),
                                      use(second, "assertion_replay"), first, second)
        # Control (twice): the same assertion once more at the replica that accepted it first.
        if ok and trial in (1, 6) and first != "nginx" and not mode.startswith("race"):
            resp, accepted = use(first, "assertion_replay_same_replica")()
            self.replay_outcome("assertion_same_replica", f"{first}>{first}", resp, accepted)

    def next_index(self, name):
        with self.lock:
            self.counters[name] = self.counters.get(name, -1) + 1
            return self.counters[name]

    def worker(self, number):
        """Two user flows, then one service flow, until the load ends; the routing modes rotate across all workers."""
        iteration = number  # workers start at different places of the cycle
        while not self.stop_event.is_set():
            try:
                if iteration % 3 == 2:
                    self.service_flow(self.next_index("service"))
                else:
                    self.user_flow(self.next_index("user"), self.load_users[number])
            except Exception as error:  # a harness bug must not silently stop the load
                with self.lock:
                    self.errors.append(f"worker {number}: {type(error).__name__}: {error}")
                log(f"worker {number} error: {type(error).__name__}: {error}")
                time.sleep(0.5)
            iteration += 1
            if self.args.pause:
                self.stop_event.wait(self.args.pause)

    # Failed logins count per address (30 within 15 minutes on a provider that shares the counters): at most 8
    # trials per TOTP user, each at most one failed login when the guard works (plus one control per user).
    MAX_TOTP_TRIALS = 8

    def totp_worker(self):
        """Per 30 s step and TOTP user: log in at one replica with the current code (must succeed), then present the
        same code at the other replica (must fail), well inside the step; the first trial per user also at the same
        replica again (control: the per-process guard)."""
        trials = {name: 0 for name, user in self.users.items() if user["totp"]}
        done = set()
        while not self.stop_event.is_set():
            now = time.time()
            step, position = int(now // 30), now % 30
            pending = [name for name in trials if (name, step) not in done and trials[name] < self.MAX_TOTP_TRIALS]
            if not pending or position > 20:
                self.stop_event.wait(min(1.0, 30.5 - position) if position > 20 or not pending else 0.5)
                continue
            name = pending[0]
            n = trials[name]
            first, second = ("A", "B") if (n + (name == "carol")) % 2 == 0 else ("B", "A")
            with self.lock:
                both_up = self.up["idp_a"] and self.up["idp_b"]
            if not both_up:
                self.stop_event.wait(0.5)
                continue
            done.add((name, step))
            trials[name] += 1
            code_value = totp(self.users[name]["totp"])
            code, verifier, _ = self.browser_login(first, name, otp=code_value, login_kind="totp_login")
            if not code:
                self.replay_outcome("totp", f"{first}>{second}", Resp(0, error="LoginFailed"), False, first_ok=False)
                continue
            if int(time.time() // 30) != step:
                log("TOTP replay left its step; counted, but the replay window was not exact")
            second_code, second_verifier, answer = self.browser_login(second, name, otp=code_value, login_kind="totp_replay")
            if answer is None:  # the login page itself failed: nothing was presented
                self.replay_outcome("totp", f"{first}>{second}", Resp(0, error="LoginPageFailed"), False)
            else:
                self.replay_outcome("totp", f"{first}>{second}", answer, bool(second_code))
            if n == 0:  # once per user: failed logins count towards the per-address throttle (20 in 5 minutes)
                third_code, third_verifier, answer = self.browser_login(first, name, otp=code_value,
                                                                        login_kind="totp_replay_same_replica")
                self.replay_outcome("totp_same_replica", f"{first}>{first}", answer or Resp(0, error="LoginPageFailed"),
                                    bool(third_code))
            # The codes these logins produced are redeemed, and replayed across replicas, like every other code.
            for got, ver in ((code, verifier), (second_code, second_verifier)):
                if got:
                    self.single_use_check("code", "seq", lambda: self.redeem(second, got, ver),
                                          lambda: self.redeem(first, got, ver, kind="code_replay"), second, first)

    # ----- faults -----------------------------------------------------------------------------------------------

    def fault_plan(self):
        d = self.args.duration
        delay = self.args.restart_delay
        return [(0.15 * d, "kill_idp_replica", lambda: self.fault_kill_replica("idp", "a", delay)),
                (0.35 * d, "kill_server_replica", lambda: self.fault_kill_replica("server", "a", delay)),
                (0.55 * d, "restart_postgres", self.fault_restart_postgres),
                (0.70 * d, "rotate_keys", self.fault_rotate_keys)]

    def fault_thread(self):
        for offset, name, action in self.fault_plan():
            if self.stop_event.wait(max(0.0, offset - self.now())):
                return
            entry = {"name": name, "at": round(self.now(), 3)}
            with self.lock:
                self.faults.append(entry)
            try:
                action_entry = action()
                entry.update(action_entry)
            except Exception as error:
                entry["error"] = f"{type(error).__name__}: {error}"
                with self.lock:
                    self.errors.append(f"fault {name}: {entry['error']}")
                log(f"fault {name} failed: {entry['error']}")

    def fault_kill_replica(self, kind, which, delay):
        processes = self.idp if kind == "idp" else self.server
        key = f"{kind}_{which}"
        victim = processes[which]
        with self.lock:
            self.up[key] = False
        victim.kill9()
        killed_at = self.now()
        log(f"fault: kill -9 {kind} replica {which.upper()} (pid {victim.pid})")
        entry = {"action": f"kill -9 {'keyless-cli idp serve' if kind == 'idp' else 'keyless-cli server'} replica "
                           f"{which.upper()} (pid {victim.pid}), restarted on the same port after {delay:g} s",
                 "killed_at": round(killed_at, 3)}
        time.sleep(delay)  # not cut short when the load ends: every partner is back before the final checks
        starter = self._idp_process if kind == "idp" else self._server_process
        restarted = starter(which)
        entry["restarted_at"] = round(self.now(), 3)
        port = getattr(self, f"port_{kind}_{which}")
        healthy = wait_http_ok(f"http://127.0.0.1:{port}/healthz", restarted, timeout=60)
        processes[which] = restarted
        if healthy:
            entry["healthy_at"] = round(self.now(), 3)
            with self.lock:
                self.up[key] = True
            log(f"{kind} replica {which.upper()} back (pid {restarted.pid})")
        else:
            entry["error"] = f"did not become healthy again; log tail: {restarted.tail(5)}"
            with self.lock:
                self.errors.append(f"{kind} replica {which} did not come back")
            log(f"{kind} replica {which.upper()} did not come back; log {restarted.log_path}:\n{restarted.tail()}")
        return entry

    def fault_restart_postgres(self):
        with self.lock:
            self.up["postgres"] = False
        old = self.postgres
        stop_began = self.now()
        old.stop(timeout=10)  # SIGINT: fast shutdown, SIGKILL after 10 s
        stopped = self.now()
        log(f"fault: PostgreSQL fast shutdown (pid {old.pid}) took {stopped - stop_began:.2f} s; starting it again")
        self.postgres = self._postgres_process()
        ready = self._wait_postgres(timeout=60)
        entry = {"action": f"PostgreSQL fast stop (SIGINT to pid {old.pid}) and start on the same port and data directory",
                 "stopped_at": round(stopped, 3), "ready_at": round(self.now(), 3) if ready else None,
                 "down_seconds": round(self.now() - stop_began, 3) if ready else None}
        if ready:
            with self.lock:
                self.up["postgres"] = True
            log(f"PostgreSQL back (pid {self.postgres.pid})")
        else:
            entry["error"] = "postgres did not accept connections again within 60 s"
            with self.lock:
                self.errors.append(entry["error"])
            log(f"PostgreSQL did not come back; log:\n{self.postgres.tail()}")
        return entry

    def kids_of(self, which):
        resp = http_call("GET", self.idp_url(which) + "/jwks.json", timeout=5)
        return {k.get("kid") for k in resp.json().get("keys", []) if isinstance(k, dict)} if resp.status == 200 else set()

    def fault_rotate_keys(self):
        before = self.kids_of("A") | self.kids_of("B")
        started = self.now()
        result = subprocess.run([self.cli, "idp", "rotate-keys", "--publish-for", "0"] + self.store_arguments,
                                capture_output=True, text=True, timeout=60, env=self.idp_env, stdin=subprocess.DEVNULL)
        entry = {"action": "keyless-cli idp rotate-keys --publish-for 0 against the shared database",
                 "exit_status": result.returncode, "command_seconds": round(self.now() - started, 3)}
        log(f"fault: rotate-keys exited {result.returncode}")
        if result.returncode != 0:
            entry["error"] = result.stderr.strip()[-300:]
            return entry
        words = result.stdout.split()
        new = [w.strip(".,:;()'\"") for w in words if w.strip(".,:;()'\"") not in before and len(w) >= 8]
        # The new kid: the word of the output that each replica's JWKS then lists and did not list before.
        deadline = time.monotonic() + 20
        served = {}
        while time.monotonic() < deadline and len(served) < 2:
            for which in ("A", "B"):
                if which in served:
                    continue
                kids = self.kids_of(which) - before
                if kids:
                    if self.rotated_kid is None:
                        self.rotated_kid = sorted(kids)[0]
                    if self.rotated_kid in kids:
                        served[which] = round(self.now() - started, 3)
            time.sleep(0.1)
        entry["new_kid_in_output"] = bool(self.rotated_kid and self.rotated_kid in new)
        entry["jwks_served_after_seconds"] = served
        if len(served) < 2:
            entry["error"] = "the new key was not served by both replicas within 20 s"
        return entry

    # ----- driving and reporting --------------------------------------------------------------------------------

    def drive(self):
        args = self.args
        self.load_start = time.monotonic()
        log(f"load: {args.workers} workers + 1 TOTP worker for {args.duration:g} s through nginx"
            + ("" if args.no_faults else "; faults at " + ", ".join(f"{o:.0f} s {n}" for o, n, _ in self.fault_plan())))
        threads = [threading.Thread(target=self.worker, args=(i,), name=f"worker-{i}", daemon=True) for i in range(args.workers)]
        threads.append(threading.Thread(target=self.totp_worker, name="totp", daemon=True))
        fault = None if args.no_faults else threading.Thread(target=self.fault_thread, name="faults", daemon=True)
        for thread in threads + ([fault] if fault else []):
            thread.start()
        last_progress = 0
        while self.now() < args.duration:
            time.sleep(0.25)
            if self.now() - last_progress >= 10:
                last_progress = self.now()
                with self.lock:
                    sent, failed = len(self.records), sum(1 for r in self.records if r["expect"] == "valid" and not r["ok"])
                log(f"{sent} requests, {failed} valid ones failed")
        self.stop_event.set()
        log("load ended; waiting for the flows in progress")
        for thread in threads:
            thread.join(HTTP_TIMEOUT * 4)
        if fault:
            fault.join(120)  # a restart in progress finishes, so every partner is back before the final checks
        hung = [t.name for t in threads + ([fault] if fault else []) if t.is_alive()]
        if hung:
            self.errors.append("threads still running at the end: " + ", ".join(hung))
        return self.report(time.monotonic() - self.load_start)

    def versions(self):
        def first_line(argv):
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
                return (r.stdout.strip() or r.stderr.strip()).splitlines()[0]
            except Exception as error:
                return f"unknown ({type(error).__name__})"
        moto = subprocess.run([sys.executable, "-c", "import moto; print(moto.__version__)"], capture_output=True, text=True,
                              timeout=60).stdout.strip() or "unknown"
        return {"nginx": first_line([self.nginx_bin, "-v"]), "postgres": first_line([self._pg_tool("postgres"), "--version"]),
                "keyless_cli": first_line([self.cli, "--version"]), "moto": moto, "python": platform.python_version(),
                "client_key_backend": self.client_key.backend}

    def report(self, elapsed):
        with self.lock:
            records = list(self.records)
            faults = [dict(f) for f in self.faults]
            replays = json.loads(json.dumps(self.replays))
        kinds = {}
        for r in records:
            k = kinds.setdefault(r["kind"], {"sent": 0, "ok": 0, "failed": 0})
            k["sent"] += 1
            k["ok" if r["ok"] else "failed"] += 1
        by_target = {}
        for r in records:
            by_target[r["target"]] = by_target.get(r["target"], 0) + 1

        valid = [r for r in records if r["expect"] == "valid"]
        failed = sorted((r for r in valid if not r["ok"]), key=lambda r: r["t1"])
        fault_times = sorted((f["at"], f["name"]) for f in faults)

        def attributed(t):
            owner = "before_faults"
            for at, name in fault_times:
                if t >= at:
                    owner = name
            return owner

        windows = {}
        for r in failed:
            owner = attributed(r["t1"])
            spans = windows.setdefault(owner, [])
            if spans and r["t1"] - spans[-1]["end"] <= 2.0:
                span = spans[-1]
            else:
                span = {"start": r["t1"], "end": r["t1"], "count": 0, "kinds": {}, "via_nginx": 0, "direct": 0}
                spans.append(span)
            span["end"] = r["t1"]
            span["count"] += 1
            span["kinds"][r["kind"]] = span["kinds"].get(r["kind"], 0) + 1
            span["via_nginx" if r["target"] == "nginx" else "direct"] += 1
        failure_windows = []
        for owner, spans in windows.items():
            failure_windows.append({
                "fault": owner, "count": sum(s["count"] for s in spans),
                "windows": [{"start_offset": round(s["start"], 3), "duration_seconds": round(s["end"] - s["start"], 3),
                             "count": s["count"], "via_nginx": s["via_nginx"], "direct": s["direct"], "kinds": s["kinds"]}
                            for s in spans]})
        failure_windows.sort(key=lambda w: w["windows"][0]["start_offset"])

        relevant = {"kill_idp_replica": KIND_GROUPS["idp"], "kill_server_replica": KIND_GROUPS["server"],
                    "restart_postgres": KIND_GROUPS["db"], "rotate_keys": KIND_GROUPS["server"]}
        recovery = {}
        for f in faults:
            kinds_needed = relevant.get(f["name"], set())
            candidates = [r for r in valid if r["ok"] and r["target"] == "nginx" and r["kind"] in kinds_needed
                          and r["t0"] >= f["at"]]
            if f["name"] == "rotate_keys":  # the first credentials granted for an ID token signed with the new key
                candidates = [r for r in candidates if self.rotated_kid and r.get("kid") == self.rotated_kid]
            first = min((r["t1"] for r in candidates), default=None)
            recovery[f["name"]] = round(first - f["at"], 3) if first is not None else None

        # Until when each fault still caused failures: from the fault to the end of the last failure attributed to it.
        settled = {f["name"]: 0.0 for f in faults}
        for r in failed:
            owner = attributed(r["t1"])
            if owner in settled:
                at = next(f["at"] for f in faults if f["name"] == owner)
                settled[owner] = round(max(settled[owner], r["t1"] - at), 3)

        audit = {"granted": 0, "failed": 0, "denied": 0}
        try:
            with open(os.path.join(self.server_dir, "audit.log")) as f:
                for line in f:
                    try:
                        outcome = json.loads(line).get("outcome")
                    except ValueError:
                        continue
                    audit[outcome] = audit.get(outcome, 0) + 1
        except OSError:
            pass
        health = {}
        for name, url in (("idp_a", self.idp_url("A")), ("idp_b", self.idp_url("B")), ("nginx_idp", self.issuer),
                          ("server_a", f"http://127.0.0.1:{self.port_server_a}"),
                          ("server_b", f"http://127.0.0.1:{self.port_server_b}"), ("nginx_server", self.server_front)):
            health[name] = http_call("GET", url + "/healthz", timeout=5).status == 200

        rotated_credentials = [r for r in records if r["kind"] == "credentials" and self.rotated_kid and r.get("kid") == self.rotated_kid]
        rotated_failures = {}
        for r in rotated_credentials:
            if not r["ok"]:
                rotated_failures[r["answer"]] = rotated_failures.get(r["answer"], 0) + 1
        report = {
            "duration_seconds": round(elapsed, 3),
            "requests_sent": len(records),
            "requests": dict(sorted(kinds.items())),
            "requests_by_target": by_target,
            "valid_requests": len(valid),
            "valid_failed": {
                "total": len(failed),
                "via_nginx": sum(1 for r in failed if r["target"] == "nginx"),
                "direct": sum(1 for r in failed if r["target"] != "nginx"),
                "by_kind": {k: sum(1 for r in failed if r["kind"] == k) for k in sorted({r["kind"] for r in failed})},
                "by_answer": {a: sum(1 for r in failed if r["answer"] == a) for a in sorted({r["answer"] for r in failed})},
                "windows": failure_windows,
            },
            "codes_accepted_twice": replays["code"]["accepted"],
            "refresh_tokens_accepted_twice": replays["refresh_token"]["accepted"],
            "totp_replays_accepted": replays["totp"]["accepted"],
            "assertion_replays_accepted": replays["assertion"]["accepted"],
            "replay_checks": replays,
            "recovery_seconds": recovery,
            "settled_seconds": settled,
            "faults": faults,
            "credentials_with_rotated_key": {
                "sent": len(rotated_credentials), "ok": sum(1 for r in rotated_credentials if r["ok"]),
                "failed": rotated_failures,
                "first_ok_offset": min((round(r["t1"], 3) for r in rotated_credentials if r["ok"]), default=None),
                "last_failure_offset": max((round(r["t1"], 3) for r in rotated_credentials if not r["ok"]), default=None)},
            "audit_log_records": audit,
            "healthy_at_end": health,
            "errors": self.errors,
            "versions": self.versions(),
            "setup": {"workers": self.args.workers, "duration": self.args.duration, "restart_delay": self.args.restart_delay,
                      "assertion_trials": self.args.assertion_trials, "load_users": len(self.load_users),
                      "faults": not self.args.no_faults, "http_timeout_seconds": HTTP_TIMEOUT,
                      "times": "seconds since the load started; failures are placed at their completion time",
                      "requests_sent": "load and replay requests to the provider and the access server; the harness's "
                                       "health probes and JWKS polls are not counted"},
        }
        return report

    # ----- cleanup ----------------------------------------------------------------------------------------------

    def cleanup(self):
        with self.cleanup_lock:
            if self.cleaned:
                return
            self.cleaned = True
        self.stop_event.set()
        Partner.stop_all()
        if self.root and os.path.isdir(self.root):
            if self.args.keep_temp:
                log(f"kept {self.root} (--keep-temp)")
            else:
                shutil.rmtree(self.root, ignore_errors=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="replica_faults.py",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keyless-cli", required=True, metavar="PATH", help="the keyless-cli binary to test (not the keyless launcher)")
    parser.add_argument("--duration", type=float, default=40, metavar="SECONDS", help="how long the load runs (default 40; at least 20)")
    parser.add_argument("--workers", type=int, default=3, help="concurrent load workers (default 3; plus one TOTP worker)")
    parser.add_argument("--pause", type=float, default=0.1, metavar="SECONDS",
                        help="pause between two flows of one worker, to keep a 2-core machine responsive (default 0.1)")
    parser.add_argument("--restart-delay", type=float, default=4, metavar="SECONDS",
                        help="seconds between killing a replica and restarting it (default 4)")
    parser.add_argument("--assertion-trials", type=int, default=12, metavar="N",
                        help="private_key_jwt replay checks, spread over the run (default 12; with the 2 same-replica "
                             "controls they stay under the provider's 20 failed client authentications per address)")
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON report to FILE")
    parser.add_argument("--no-faults", action="store_true", help="run the load and replay checks without injecting faults (a baseline)")
    parser.add_argument("--nginx", default="nginx", metavar="PATH", help="the nginx binary (default: nginx in PATH)")
    parser.add_argument("--pg-bin", metavar="DIR", help="PostgreSQL's bin directory (default: the highest /usr/lib/postgresql/*/bin)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary directory (configurations, partner logs) for debugging")
    args = parser.parse_args(argv)
    if args.duration < 20:
        parser.error("--duration must be at least 20 seconds (the faults are placed at fixed fractions of it)")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    if not 1 <= args.assertion_trials <= 16:
        parser.error("--assertion-trials must be between 1 and 16 (each refusal counts against the per-address limit)")
    if args.restart_delay < 0 or args.restart_delay > args.duration / 4:
        parser.error("--restart-delay must be between 0 and a quarter of --duration")
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    run = Run(args)
    atexit.register(run.cleanup)

    def terminate(signum, frame):
        print(f"replica_faults: received signal {signum}; stopping every partner by its PID", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    report = None
    try:
        try:
            run.start_partners()
        except PartnerError as error:
            print(f"replica_faults: a partner could not start: {error}", file=sys.stderr, flush=True)
            if not args.keep_temp:
                print("replica_faults: (the temporary directory is removed; --keep-temp keeps every log)", file=sys.stderr, flush=True)
            return 3
        except (OSError, subprocess.SubprocessError) as error:
            print(f"replica_faults: a partner could not start: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            return 3
        report = run.drive()
    except KeyboardInterrupt:
        print("replica_faults: interrupted; partners stopped", file=sys.stderr, flush=True)
        return 130
    except Exception as error:
        print(f"replica_faults: unexpected error: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return 4
    finally:
        run.cleanup()
    text = json.dumps(report, indent=2, sort_keys=False)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    print(text, flush=True)
    log(f"done: {report['requests_sent']} requests, {report['valid_failed']['total']} valid ones failed; accepted twice: "
        f"codes {report['codes_accepted_twice']}, refresh tokens {report['refresh_tokens_accepted_twice']}, "
        f"TOTP {report['totp_replays_accepted']}, assertions {report['assertion_replays_accepted']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
