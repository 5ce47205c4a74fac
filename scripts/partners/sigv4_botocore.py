"""botocore's SigV4 signer as an outside reference for keyless's: reads a JSON list of requests on stdin, prints a
JSON list of what botocore's SigV4Auth adds to each (Authorization, X-Amz-Date, X-Amz-Security-Token) and its
canonical request, with the clock fixed to each case's time.

Case: {"method", "url", "headers": [[name, value], ...], "body_hex", "access_key", "secret_key", "token" (or null),
       "region", "service", "epoch"}
"""

import datetime
import json
import sys

import botocore.auth as auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(case):
    moment = datetime.datetime.fromtimestamp(case["epoch"], datetime.timezone.utc).replace(tzinfo=None)
    auth.get_current_datetime = lambda: moment
    request = AWSRequest(method=case["method"], url=case["url"], headers=dict(case["headers"]), data=bytes.fromhex(case["body_hex"]))
    signer = auth.SigV4Auth(Credentials(case["access_key"], case["secret_key"], case["token"]), case["service"], case["region"])
    signer.add_auth(request)
    canonical = signer.canonical_request(request)
    return {
        "authorization": request.headers["Authorization"],
        "amz_date": request.headers["X-Amz-Date"],
        "token": request.headers.get("X-Amz-Security-Token"),
        "canonical_request": canonical,
    }


print(json.dumps([sign(case) for case in json.load(sys.stdin)]))
