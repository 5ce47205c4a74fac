"""Which credentials botocore's default chain picks, as an outside reference for keyless's DefaultCredentialChain.

Usage: botocore_credentials.py CASES.json
CASES.json holds a list of {"env": {NAME: VALUE, ...}, "profile": NAME or null}. For each case, in order, the process
environment is replaced by "env" (nothing else of the caller's environment is kept), and
botocore.session.Session(profile=...).get_credentials() runs. Prints a JSON list, one entry per case:
  {"method": "env" | "shared-credentials-file" | "config-file" | "assume-role-with-web-identity" | "container-role"
              | "iam-role" | ..., "access_key": "AKID..."}
  {"method": null}                 when botocore finds no credentials
  {"error": "ExceptionName: ..."}  when botocore refuses (partial keys, a missing profile, a bad container URL, ...)
Secrets are never printed.
"""

import json
import os
import sys

import botocore.session


def resolve(case):
    os.environ.clear()
    os.environ.update(case.get("env", {}))
    try:
        session = botocore.session.Session(profile=case.get("profile"))
        credentials = session.get_credentials()
        if credentials is None:
            return {"method": None}
        frozen = credentials.get_frozen_credentials()
        return {"method": credentials.method, "access_key": frozen.access_key}
    except Exception as error:  # every refusal counts as one; its kind is reported for the test's message
        return {"error": f"{type(error).__name__}: {error}"}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: botocore_credentials.py CASES.json")
    with open(sys.argv[1], encoding="utf-8") as handle:
        cases = json.load(handle)
    json.dump([resolve(case) for case in cases], sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
