"""How botocore reads AWS config files, as an outside reference for keyless's AWSConfigDocument.

Usage: botocore_config.py PATH [PATH ...]
Prints a JSON list, one entry per PATH, in order: either
  {"profiles": {...}, "sso_sessions": {...}, "services": {...}, "sections": {...}}
(botocore.configloader.build_profile_map(raw_config_parse(PATH)); "sections" holds the sections that are none of
the three kinds; values are strings, or objects for nested blocks such as `s3 =`), or {"error": "..."} when
botocore refuses the file (configparser is strict: duplicate sections or keys, lines without `=`, keys before a
section header all fail the whole file).
"""

import json
import sys

import botocore.configloader as configloader
import botocore.exceptions


def view(path):
    try:
        parsed = configloader.build_profile_map(configloader.raw_config_parse(path))
    except botocore.exceptions.BotoCoreError as error:
        cause = error.kwargs.get("error")
        return {"error": f"{error}: {cause}" if cause else str(error)}
    return {
        "profiles": parsed.pop("profiles"),
        "sso_sessions": parsed.pop("sso_sessions"),
        "services": parsed.pop("services"),
        "sections": parsed,
    }


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: botocore_config.py PATH [PATH ...]")
    json.dump([view(path) for path in sys.argv[1:]], sys.stdout, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")
