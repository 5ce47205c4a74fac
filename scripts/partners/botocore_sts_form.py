"""botocore's STS serializer as an outside reference for keyless's STS form bodies.

Usage: python3 botocore_sts_form.py CASES_JSON   (or the JSON on stdin)
Reads a JSON list of {"operation": "AssumeRole" | "AssumeRoleWithWebIdentity", "params": {...}} (botocore's
parameter names: RoleArn, RoleSessionName, WebIdentityToken, DurationSeconds, Policy, PolicyArns: [{"arn": ...}],
SourceIdentity, Tags: [{"Key", "Value"}]) and prints a JSON list of the form bodies botocore's query serializer
writes for them (the same model the AWS CLI and boto3 use). Needs botocore (the AWS CLI's, or pip).
"""
import json
import sys

import botocore.session
from botocore.serialize import create_serializer


def main():
    model = botocore.session.get_session().get_service_model("sts")
    serializer = create_serializer("query")
    bodies = []
    cases = json.loads(sys.argv[1]) if len(sys.argv) > 1 else json.load(sys.stdin)
    for case in cases:
        request = serializer.serialize_to_request(case["params"], model.operation_model(case["operation"]))
        body = request["body"]
        if isinstance(body, dict):
            from urllib.parse import urlencode
            body = urlencode(body)
        bodies.append(body if isinstance(body, str) else body.decode())
    print(json.dumps(bodies))


if __name__ == "__main__":
    main()
