"""Login driver for bench/idp-logins: signs in again and again on keyless idp's login page, as a browser does.

Usage: python3 logins.py BASE_URL CLIENT_ID CONNECTOR USERNAME SECONDS CONCURRENCY
Env:   BENCH_PASSWORD  the password (kept out of the process list)

Each browser has its own source address (X-Forwarded-For 10.77.0.N: the bench starts keyless idp trusting the
loopback as its proxy), as real people do, so the per-address throttle sees one browser's attempts, not all of them.
Each round: GET /authorize (a fresh browser: no cookies kept between rounds, so every round is a real login) for the
form cookie and token, then POST /authorize with the credentials and the connector, which must answer 302/303 to the
client's redirect URI with a code. The POST's latency is what is timed. Prints one JSON line: rounds, errors,
logins_per_second, p50_ms, p99_ms. Any answer other than the redirect counts as an error (and the first is shown).
Uses only the standard library; binds nothing; prints no password, cookie or code.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import sys
import threading
import time
import urllib.parse


def main():
    base, client_id, connector, username, seconds, concurrency = sys.argv[1:7]
    password = os.environ["BENCH_PASSWORD"]
    seconds, concurrency = float(seconds), int(concurrency)
    url = urllib.parse.urlsplit(base)
    verifier = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": "http://127.0.0.1/callback",
        "scope": "openid email groups", "state": "bench", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    latencies, errors, first_error = [], [0], []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index):
        forwarded = f"10.77.0.{index + 1}"
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        mine = []
        while time.monotonic() < deadline:
            try:
                conn.request("GET", "/authorize?" + query, headers={"X-Forwarded-For": forwarded})
                page = conn.getresponse()
                html = page.read().decode()
                cookie = page.getheader("Set-Cookie", "").split(";")[0]
                fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
                fields.update({"username": username, "password": password, "connector": connector,
                               "action": "login"})
                body = urllib.parse.urlencode(fields)
                started = time.perf_counter()
                conn.request("POST", "/authorize", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie,
                    "X-Forwarded-For": forwarded})
                answer = conn.getresponse()
                answer.read()
                elapsed = time.perf_counter() - started
                location = answer.getheader("Location", "")
                if answer.status in (302, 303) and location.startswith("http://127.0.0.1/callback") \
                        and "code=" in location:
                    mine.append(elapsed)
                else:
                    with lock:
                        errors[0] += 1
                        if not first_error:
                            first_error.append(f"HTTP {answer.status}")
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors[0] += 1
                    if not first_error:
                        first_error.append(type(error).__name__)
                conn.close()
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        with lock:
            latencies.extend(mine)
        conn.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p):
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2) if latencies else None

    print(json.dumps({
        "rounds": len(latencies), "errors": errors[0], "first_error": first_error[0] if first_error else None,
        "logins_per_second": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
    }))


if __name__ == "__main__":
    main()
