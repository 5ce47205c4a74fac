"""A webhook receiver for tests: checks keyless server's HMAC signature with Python's own hmac and records each delivery.

Usage: python webhook_receiver.py PORT SECRET_FILE OUT_FILE [--fail-first N]

Listens on 127.0.0.1:PORT. For every POST it verifies X-Keyless-Signature ("t=UNIX,v1=HEX", HMAC-SHA256 of "T.BODY"
with the key in SECRET_FILE, compared in constant time), then appends one JSON line to OUT_FILE: the event header, the
delivery id, whether the signature verified, the body's request id and status, and the attempt number of that delivery.
The first N deliveries' first attempts (per delivery id) are answered 503, to show retries; everything else 204.
GET /health answers 200. Never prints the key.
"""

import hashlib
import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
with open(sys.argv[2], "rb") as key_file:
    SECRET = key_file.read().rstrip(b"\r\n")
OUT = sys.argv[3]
FAIL_FIRST = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--fail-first" else 0
LOCK = threading.Lock()
ATTEMPTS = {}
FAILED = set()


def verified(header, body):
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        expected = hmac.new(SECRET, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])
    except (KeyError, ValueError):
        return False


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        delivery = self.headers.get("X-Keyless-Delivery", "")
        with LOCK:
            ATTEMPTS[delivery] = ATTEMPTS.get(delivery, 0) + 1
            attempt = ATTEMPTS[delivery]
            fail = attempt == 1 and len(FAILED) < FAIL_FIRST and delivery not in FAILED
            if fail:
                FAILED.add(delivery)
            try:
                document = json.loads(body)
            except ValueError:
                document = {}
            record = {
                "event": self.headers.get("X-Keyless-Event"), "delivery": delivery, "attempt": attempt,
                "verified": verified(self.headers.get("X-Keyless-Signature", ""), body),
                "request": (document.get("request") or {}).get("id"),
                "status": (document.get("request") or {}).get("status"), "answered": 503 if fail else 204,
            }
            with open(OUT, "a", encoding="utf-8") as out:
                out.write(json.dumps(record) + "\n")
        self.send_response(503 if fail else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
