"""An approver decides an access request on keyless server's web page, in headless Chromium, as a person would.

Usage: python access_request_browser.py SERVER_URL REQUEST_ID approve|deny [--reason TEXT] [--screenshot PNG]
Env:   KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD   who signs in at the provider (keyless idp's login page)
       KEYLESS_TEST_TOTP_SECRET=base32            optional: their TOTP secret (the one-time code field)
       KEYLESS_TEST_TOTP_OFFSET=seconds           optional: use the code of that many seconds later (a code is
                                                  single-use: a second sign-in in one period takes the next one)
       KEYLESS_TEST_BROWSER_TIMEOUT=seconds       optional: overall limit (default 90)

Opens the server, clicks "Sign in", signs in on the provider's page, finds the request's row under "Waiting for your
approval" (id request-ID), checks it names the role, the requester and the reason, types the note or reason and clicks
Approve or Deny, then checks the page's notice and that the row has left the waiting list. With --screenshot, the page
before the click is saved there (900x640). Prints one JSON line on stdout: {"row": "...", "notice": "..."}. Progress
goes to stderr and never holds the password. Exits 0 when every check held, 1 with the failed step otherwise.
"""

import argparse
import json
import os
import sys
import threading
import time

from browser_login import chromium_path, totp

PREFIX = "access_request_browser:"
VIEWPORT = {"width": 900, "height": 640}


def say(message):
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def fail(message):
    say(message)
    sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description="Decides an access request on keyless server's web page.")
    parser.add_argument("server")
    parser.add_argument("request_id")
    parser.add_argument("action", choices=["approve", "deny"])
    parser.add_argument("--reason", default="")
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    user, password = os.environ.get("KEYLESS_TEST_USER"), os.environ.get("KEYLESS_TEST_PASSWORD")
    if not user or not password:
        fail("set KEYLESS_TEST_USER and KEYLESS_TEST_PASSWORD")
    timeout = float(os.environ.get("KEYLESS_TEST_BROWSER_TIMEOUT", "90"))
    deadline = time.monotonic() + timeout
    server = args.server.rstrip("/")

    def ms():
        return max(1000, int((deadline - time.monotonic()) * 1000))

    # A hung browser must not hang the test: the watchdog ends the process at the deadline.
    def watchdog():
        time.sleep(timeout + 5)
        say(f"gave up after {timeout:.0f} s")
        os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()

    from playwright.sync_api import Error as PlaywrightError, sync_playwright

    step = "starting Chromium"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
            try:
                page = browser.new_context(viewport=VIEWPORT).new_page()
                step = "opening the server and clicking 'Sign in'"
                page.goto(server + "/", timeout=ms())
                page.get_by_role("link", name="Sign in", exact=True).click(timeout=ms())
                page.wait_for_load_state("load", timeout=ms())
                step = "signing in on the provider's page"
                page.fill("#username", user, timeout=ms())
                page.fill("#password", password, timeout=ms())
                secret = os.environ.get("KEYLESS_TEST_TOTP_SECRET")
                if secret:
                    offset = float(os.environ.get("KEYLESS_TEST_TOTP_OFFSET", "0"))
                    page.fill("#otp", totp(secret, at=time.time() + offset), timeout=ms())
                page.get_by_role("button", name="Sign in", exact=True).click(timeout=ms())
                page.wait_for_load_state("load", timeout=ms())
                if not page.url.startswith(server + "/"):
                    allow = page.get_by_role("button", name="Allow", exact=True)
                    if allow.count() > 0:
                        allow.click(timeout=ms())
                page.wait_for_url(server + "/", wait_until="load", timeout=ms())

                step = "finding the request under 'Waiting for your approval'"
                waiting = page.get_by_role("region", name="Waiting for your approval", exact=True)
                if waiting.count() != 1:
                    raise AssertionError("no 'Waiting for your approval' section on the page")
                row = waiting.locator(f"#request-{args.request_id}")
                if row.count() != 1:
                    raise AssertionError(f"request {args.request_id} is not waiting for this approver")
                row_text = " ".join(row.inner_text(timeout=ms()).split())
                if args.screenshot:
                    page.screenshot(path=args.screenshot, full_page=True)

                step = f"clicking {args.action.capitalize()}"
                form = row.locator(f'form[action="/web/requests/{args.action}"]')
                if args.reason:
                    form.locator('input[name="reason"]').fill(args.reason, timeout=ms())
                form.locator("button").click(timeout=ms())
                page.wait_for_load_state("load", timeout=ms())

                step = "reading the page after the decision"
                notice = page.locator("p.notice[role=alert]")
                notice_text = notice.first.inner_text(timeout=ms()) if notice.count() > 0 else ""
                expected = "approved by" if args.action == "approve" else "denied by"
                if expected not in notice_text:
                    raise AssertionError(f"the notice does not say {expected!r}: {notice_text!r}")
                if page.locator(f'#to-approve ~ table #request-{args.request_id}').count() != 0:
                    raise AssertionError("the request is still waiting after the decision")
                print(json.dumps({"row": row_text, "notice": notice_text}))
            finally:
                browser.close()
    except (AssertionError, PlaywrightError) as error:
        fail(f"{step}: {error}")


if __name__ == "__main__":
    main()
