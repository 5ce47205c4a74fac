#!/usr/bin/env python3
"""Writes the Debian copyright file: keyless's own licence, then every package the binaries link statically (each
package the build resolved, with its licence and notice files as it ships them, and the licences of code it vendors
under Sources/), the Swift runtime and Foundation, and ICU.

    copyright.py CHECKOUTS_DIR > copyright
"""
import pathlib
import sys

HEADER = """keyless: short-lived AWS credentials from the identity you already have (OpenID Connect).

Copyright: the keyless developers
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.

The binaries /usr/bin/keyless and /usr/libexec/keyless/keyless-cli are linked statically against the Swift runtime,
the Swift standard library and Foundation (Apache-2.0 with the Runtime Library Exception, (c) Apple Inc. and the
Swift project authors), the ICU data Foundation carries (Unicode License v3, (c) Unicode, Inc.:
https://www.unicode.org/license.txt), and the Swift packages below. Each package's licence follows as it ships it.
"""

LICENCE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")
APACHE_REFERENCE = "[Apache License 2.0: on Debian systems in /usr/share/common-licenses/Apache-2.0]"


def without_apache_text(text: str) -> str:
    """The licence file with the Apache License 2.0's own text (from its title to the end of its appendix) replaced by a
    reference to Debian's copy; what a package adds before or after it (exceptions, notices) stays."""
    start = text.find("Apache License")
    end_marker = "limitations under the License."
    if start < 0 or "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" not in text[start:]:
        return text
    end = text.find(end_marker, start)
    if end < 0:
        return text
    line_start = text.rfind("\n", 0, start) + 1
    return text[:line_start] + APACHE_REFERENCE + text[end + len(end_marker):]


def main() -> None:
    checkouts = pathlib.Path(sys.argv[1])
    out = [HEADER]
    for package in sorted(p for p in checkouts.iterdir() if p.is_dir()):
        licence = next((package / n for n in LICENCE_NAMES if (package / n).is_file()), None)
        if licence is None:
            sys.exit(f"copyright.py: {package.name} has no licence file ({', '.join(LICENCE_NAMES)})")
        notices = sorted(p for p in package.iterdir() if p.is_file() and p.name.upper().startswith("NOTICE"))
        vendored = sorted(p for p in (package / "Sources").rglob("*") if p.is_file() and p.name.upper().startswith(("LICENSE", "COPYING")))
        out.append(f"\n{'=' * 100}\nPackage: {package.name}\n{'=' * 100}\n")
        for file in [licence, *notices, *vendored]:
            out.append(f"\n--- {file.relative_to(package)}\n\n")
            out.append(without_apache_text(file.read_text(encoding="utf-8", errors="replace")).rstrip() + "\n")
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    main()
