#!/usr/bin/env python3
"""Renames the pages swift-argument-parser's generate-manual writes (keyless.idp.serve.1) to the names people type
(keyless-idp-serve.1, as git's pages), with the title (.Dt) and the cross references (.Xr) to match.

    man-names.py GENERATED_DIR OUT_DIR
"""
import pathlib
import re
import sys


def page_name(dotted: str) -> str:
    return dotted.replace(".", "-")


def main() -> None:
    source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    pages = sorted(source.glob("*.1"))
    if not pages:
        sys.exit(f"man-names.py: no pages in {source}")
    for page in pages:
        text = page.read_text(encoding="utf-8")
        text = re.sub(r"^\.Dt (\S+)", lambda m: ".Dt " + page_name(m.group(1)), text, flags=re.M)
        text = re.sub(r"^\.Xr (\S+)", lambda m: ".Xr " + page_name(m.group(1)), text, flags=re.M)
        # NAME says the page's name (what whatis and apropos index: "keyless-login - ..."); the synopsis and the rest
        # keep the command as typed ("keyless login").
        named = re.search(r'^\.Nm "([^"]+ [^"]+)"$', text, flags=re.M)
        if named:
            command = named.group(1)
            text = text.replace(named.group(0), ".Nm " + command.replace(" ", "-"), 1)
            text = re.sub(r"^\.Nm$", f'.Nm "{command}"', text, flags=re.M)
        (out / (page_name(page.stem) + ".1")).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
