#!/usr/bin/env python3
"""A local stand-in for the AWS console federation endpoint (https://signin.aws.amazon.com/federation), which moto
does not provide. getSigninToken checks that the session holds the three credential fields and, with
--sts-endpoint, that STS (moto) accepts them (GetCallerIdentity), then returns a one-time token; Action=login
accepts each token once and names the role it signs in as. GET /stats gives counts as JSON for tests.

    federation_stub.py --port N [--sts-endpoint http://127.0.0.1:M]

Nothing secret is logged: each request's log line has only the Action and the outcome.
"""
import argparse
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKENS = {}
STATS = {"getSigninToken": 0, "login": 0, "refused": 0, "last_destination": None, "last_issuer": None, "last_arn": None}
LOCK = threading.Lock()


def caller_arn(session, endpoint):
    if not endpoint:
        return "unverified"
    import botocore.session
    client = botocore.session.get_session().create_client(
        "sts", region_name="us-east-1", endpoint_url=endpoint,
        aws_access_key_id=session["sessionId"], aws_secret_access_key=session["sessionKey"],
        aws_session_token=session["sessionToken"])
    return client.get_caller_identity()["Arn"]


class Handler(BaseHTTPRequestHandler):
    sts_endpoint = None

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/stats":
            with LOCK:
                return self.answer(200, json.dumps(STATS))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        action = query.get("Action")
        if action == "getSigninToken":
            try:
                session = json.loads(query["Session"])
                assert all(session.get(k) for k in ("sessionId", "sessionKey", "sessionToken"))
                arn = caller_arn(session, self.sts_endpoint)
            except Exception:
                with LOCK:
                    STATS["refused"] += 1
                print("getSigninToken refused", file=sys.stderr, flush=True)
                return self.answer(400, json.dumps({"Error": "invalid session"}))
            token = secrets.token_urlsafe(32)
            with LOCK:
                TOKENS[token] = arn
                STATS["getSigninToken"] += 1
            print("getSigninToken ok", file=sys.stderr, flush=True)
            return self.answer(200, json.dumps({"SigninToken": token}))
        if action == "login":
            with LOCK:
                arn = TOKENS.pop(query.get("SigninToken", ""), None)
                if arn is None:
                    STATS["refused"] += 1
                else:
                    STATS["login"] += 1
                    STATS["last_destination"] = query.get("Destination")
                    STATS["last_issuer"] = query.get("Issuer")
                    STATS["last_arn"] = arn
            if arn is None:
                return self.answer(403, "<h1>Sign-in token unknown or used</h1>", "text/html")
            print("login ok", file=sys.stderr, flush=True)
            return self.answer(200, "<h1>AWS console (stub)</h1><p>Signed in as %s</p>" % arn, "text/html")
        return self.answer(400, json.dumps({"Error": "unknown Action"}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sts-endpoint")
    args = parser.parse_args()
    Handler.sts_endpoint = args.sts_endpoint
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("federation stub on 127.0.0.1:%d" % args.port, file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
