"""A local stand-in for the ECS/EKS container credentials endpoint and EC2 instance metadata (IMDSv2), for tests.

Usage: aws_metadata_stub.py PORT CONTAINER_ACCESS_KEY IMDS_ACCESS_KEY CONTAINER_AUTHORIZATION
Listens on 127.0.0.1:PORT and serves:
  GET /health                                   200 "ok" (readiness)
  GET /container/credentials                    container credentials JSON (AccessKeyId CONTAINER_ACCESS_KEY) when the
                                                Authorization header equals CONTAINER_AUTHORIZATION, else 403
  PUT /latest/api/token                         an IMDSv2 session token, only with X-aws-ec2-metadata-token-ttl-seconds
  GET /latest/meta-data/iam/security-credentials/       the role name "stub-role"      } only with the session token
  GET /latest/meta-data/iam/security-credentials/stub-role  IMDS credentials JSON     } in X-aws-ec2-metadata-token
Anything else is 404. Each request is logged to stdout as "METHOD PATH STATUS". Credentials expire six hours from now.
"""

import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IMDS_TOKEN = "stub-imds-session-token"
ROLE = "stub-role"
CREDENTIALS_PATH = "/latest/meta-data/iam/security-credentials/"


def credentials(access_key, source):
    expiration = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=6)
    return {
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": access_key,
        "SecretAccessKey": f"{source}-secret",
        "Token": f"{source}-session-token",
        "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=b"", content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(f"{self.command} {self.path} {status}", flush=True)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            self.answer(200, IMDS_TOKEN.encode())
        elif self.path == "/latest/api/token":
            self.answer(400)
        else:
            self.answer(404)

    def do_GET(self):
        server = self.server
        if self.path == "/health":
            self.answer(200, b"ok")
        elif self.path == "/container/credentials":
            if self.headers.get("Authorization") != server.container_authorization:
                self.answer(403, b'{"message": "bad authorization"}', "application/json")
            else:
                body = json.dumps(credentials(server.container_key, "container")).encode()
                self.answer(200, body, "application/json")
        elif self.path.startswith(CREDENTIALS_PATH):
            if self.headers.get("X-aws-ec2-metadata-token") != IMDS_TOKEN:
                self.answer(401)
            elif self.path == CREDENTIALS_PATH:
                self.answer(200, ROLE.encode())
            elif self.path == CREDENTIALS_PATH + ROLE:
                body = json.dumps(credentials(server.imds_key, "imds")).encode()
                self.answer(200, body, "application/json")
            else:
                self.answer(404)
        else:
            self.answer(404)

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: aws_metadata_stub.py PORT CONTAINER_ACCESS_KEY IMDS_ACCESS_KEY CONTAINER_AUTHORIZATION")
    httpd = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    httpd.container_key = sys.argv[2]
    httpd.imds_key = sys.argv[3]
    httpd.container_authorization = sys.argv[4]
    print(f"listening on 127.0.0.1:{sys.argv[1]}", flush=True)
    httpd.serve_forever()
