"""A BROWSER command for tests: log in to glewlwyd, keyless idp or LemonLDAP::NG in headless Chromium and follow the
loopback redirect.

Usage: python browser_login.py AUTHORIZATION_URL
Env:   KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD  the user to log in as
       KEYLESS_TEST_TOTP_SECRET=base32            optional: the user's TOTP secret (keyless idp's one-time code field)
       KEYLESS_TEST_CONNECTOR=id                  optional: keyless idp's "Sign in with" choice (a connector id)
       KEYLESS_TEST_UPSTREAM=id                   optional: on keyless idp's page, click "Sign in with" the upstream
                                                  provider of that connector id, then log in there (glewlwyd)
       KEYLESS_TEST_SCREENSHOT=path               optional: save a screenshot of the final page
       KEYLESS_TEST_BROWSER_TIMEOUT=seconds       optional: overall limit (default 60)

Fills glewlwyd's login form (#username, #password, "OK"), grants every scope on the consent page when it is
shown ("Grant access"), clicks "Continue"; or, on keyless idp's page (a form posting to /authorize), fills
#username, #password and #otp, clicks "Sign in" and "Allow" when a consent page follows; or, on LemonLDAP::NG's
portal (a server-rendered form with #userfield), fills #userfield and #passwordfield, submits it and clicks "Accept"
when a consent (confirmation) page follows; and lets the browser really load the redirect target, so the
program listening on the loopback redirect URI receives the request (nothing is intercepted). Exits 0 once a
page on the redirect URI has loaded; exits 1 with a message on stderr otherwise. Writes nothing to stdout.
Needs Playwright in the venv (no `playwright install`: it starts the Debian Chromium).
"""

import base64
import hashlib
import hmac
import os
import struct
import sys
import threading
import time
import urllib.parse

TIMEOUT = float(os.environ.get("KEYLESS_TEST_BROWSER_TIMEOUT", "60"))
PREFIX = "browser_login:"


class LoginRejected(Exception):
    """The IdP refused the credentials."""


def fail(message):
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def totp(secret_base32, at=None):
    """RFC 6238 code (SHA-1, 6 digits, 30 s) for a base32 secret."""
    key = base64.b32decode(secret_base32.upper() + "=" * (-len(secret_base32) % 8))
    counter = int((time.time() if at is None else at) // 30)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1000000)


def chromium_path():
    # /usr/bin/chromium is a wrapper script; the real binary lets the browser be stopped by its own pid.
    for path in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if os.path.exists(path):
            return path
    fail("no system Chromium (apt-get install chromium)")


def main():
    if len(sys.argv) != 2:
        fail("usage: browser_login.py AUTHORIZATION_URL")
    url = sys.argv[1]
    user = os.environ.get("KEYLESS_TEST_USER")
    password = os.environ.get("KEYLESS_TEST_PASSWORD")
    if not user or not password:
        fail("set KEYLESS_TEST_USER and KEYLESS_TEST_PASSWORD")
    screenshot = os.environ.get("KEYLESS_TEST_SCREENSHOT")

    parsed = urllib.parse.urlsplit(url)
    idp_origin = f"{parsed.scheme}://{parsed.netloc}"
    redirect_uri = urllib.parse.parse_qs(parsed.query).get("redirect_uri", [None])[0]

    def at_redirect(page_url):
        """True once the page is on the client's loopback redirect URI (not on the IdP, which is loopback too)."""
        if redirect_uri:
            return page_url.startswith(redirect_uri)
        return (page_url.startswith("http://127.0.0.1") or page_url.startswith("http://localhost")) \
            and not page_url.startswith(idp_origin + "/")

    # Backstop: if Playwright itself hangs, still give up after the limit (plus a little for cleanup).
    def watchdog():
        print(f"{PREFIX} timed out after {TIMEOUT:.0f} s (hard limit)", file=sys.stderr, flush=True)
        os._exit(1)
    timer = threading.Timer(TIMEOUT + 10, watchdog)
    timer.daemon = True
    timer.start()

    deadline = time.monotonic() + TIMEOUT

    def remaining_ms():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {TIMEOUT:.0f} s")
        return left * 1000

    from playwright.sync_api import sync_playwright, Error as PlaywrightError

    step = "starting Chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            def glewlwyd_login():
                """glewlwyd's login and consent pages, up to its redirect back."""
                nonlocal step
                step = "waiting for the login form"
                page.locator("#username").wait_for(state="visible", timeout=remaining_ms())
                page.fill("#username", user, timeout=remaining_ms())
                page.fill("#password", password, timeout=remaining_ms())
                step = "submitting the login form"
                with page.expect_response(lambda r: r.request.method == "POST" and "/api/auth/" in r.url,
                                          timeout=remaining_ms()) as login:
                    page.get_by_role("button", name="OK", exact=True).click(timeout=remaining_ms())
                if login.value.status == 401:
                    raise LoginRejected(f"glewlwyd rejected the password of user {user!r} (HTTP 401)")
                if login.value.status >= 400:
                    raise LoginRejected(f"glewlwyd login answered HTTP {login.value.status}")

                step = "waiting for the consent/continue page"
                grant = page.get_by_role("button", name="Grant access")
                cont = page.get_by_role("button", name="Continue")
                cont.wait_for(state="visible", timeout=remaining_ms())
                page.wait_for_load_state("networkidle", timeout=remaining_ms())
                if grant.is_visible():
                    step = "granting scopes"
                    for box in page.locator("input[type=checkbox]:not([disabled])").all():
                        if not box.is_checked():
                            box.check(timeout=remaining_ms())
                    grant.click(timeout=remaining_ms())
                    page.wait_for_load_state("networkidle", timeout=remaining_ms())
                step = "continuing to the redirect URI"
                cont.click(timeout=remaining_ms())

            step = f"opening {idp_origin}"
            page.goto(url, timeout=remaining_ms())
            keyless_form = page.locator('form[action="/authorize"]')
            upstream = os.environ.get("KEYLESS_TEST_UPSTREAM")
            if upstream and not at_redirect(page.url) and keyless_form.count() > 0:
                step = f"choosing the upstream provider {upstream} on keyless idp's page"
                page.locator(f'button[name="upstream"][value="{upstream}"]').click(timeout=remaining_ms())
                page.wait_for_load_state("load", timeout=remaining_ms())
                glewlwyd_login()
                # Back through keyless idp's /callback/<id>: it either redirects on to the client or shows its page.
                step = "returning through keyless idp"
                page.wait_for_url(lambda u: at_redirect(u) or u.startswith(idp_origin + "/"), wait_until="load",
                                  timeout=remaining_ms())
                if not at_redirect(page.url):
                    alert = page.locator("[role=alert]")
                    if alert.count() > 0:
                        raise LoginRejected(f"keyless idp refused the login: {alert.first.inner_text()}")
            elif not at_redirect(page.url) and keyless_form.count() > 0:
                step = "filling keyless idp's login form"
                connector = os.environ.get("KEYLESS_TEST_CONNECTOR")
                if connector:
                    page.select_option("#connector", connector, timeout=remaining_ms())
                page.fill("#username", user, timeout=remaining_ms())
                page.fill("#password", password, timeout=remaining_ms())
                secret = os.environ.get("KEYLESS_TEST_TOTP_SECRET")
                if secret:
                    page.fill("#otp", totp(secret), timeout=remaining_ms())
                step = "submitting keyless idp's login form"
                page.get_by_role("button", name="Sign in", exact=True).click(timeout=remaining_ms())
                page.wait_for_load_state("load", timeout=remaining_ms())
                if not at_redirect(page.url):
                    alert = page.locator("[role=alert]")
                    if alert.count() > 0:
                        raise LoginRejected(f"keyless idp refused the login: {alert.first.inner_text()}")
                    allow = page.get_by_role("button", name="Allow", exact=True)
                    if allow.count() > 0:
                        step = "allowing on the consent page"
                        allow.click(timeout=remaining_ms())
            elif not at_redirect(page.url) and page.locator("#userfield, .message [trmsg]").count() > 0:
                # LemonLDAP::NG's portal: the form is in the page as served (no script renders it), and posts back to
                # the authorization URL with hidden url/skin/token (anti-CSRF) fields, then 302s to the redirect URI.
                # Its messages are <div class="message message-negative alert"><span trmsg="CODE">, the text filled
                # in by the page's script; an error page (unknown client, redirect URI not registered) has no form.
                def llng_message():
                    box = page.locator(".message-negative, .message-warning")
                    if box.count() == 0:
                        return None
                    text = box.first.inner_text().strip() or "(no text)"
                    code = box.first.locator("[trmsg]")
                    return f"{text} (trmsg {code.first.get_attribute('trmsg')})" if code.count() > 0 else text
                if page.locator("#userfield").count() == 0:
                    raise LoginRejected(f"LemonLDAP::NG answered with an error page: {llng_message()}")
                step = "filling LemonLDAP::NG's login form"
                page.fill("#userfield", user, timeout=remaining_ms())
                page.fill("#passwordfield", password, timeout=remaining_ms())
                step = "submitting LemonLDAP::NG's login form"
                page.locator("form:has(#userfield) button[type=submit]").first.click(timeout=remaining_ms())
                page.wait_for_load_state("load", timeout=remaining_ms())
                if not at_redirect(page.url):
                    accept = page.locator("form.confirm button.positive[type=submit]")
                    message = llng_message()
                    if message and page.locator("#userfield").count() > 0:
                        raise LoginRejected(f"LemonLDAP::NG refused the login of user {user!r}: {message}")
                    if message:   # e.g. "Unauthorized URL" (trmsg 108): redirect_uri not registered exactly
                        raise LoginRejected(f"LemonLDAP::NG answered with an error after the login: {message}")
                    if accept.count() > 0:
                        step = "accepting on LemonLDAP::NG's consent page"
                        accept.first.click(timeout=remaining_ms())
            elif not at_redirect(page.url):
                glewlwyd_login()
            step = f"waiting for the redirect to {redirect_uri or 'the loopback listener'}"
            page.wait_for_url(at_redirect, wait_until="load", timeout=remaining_ms())
            if screenshot:
                page.screenshot(path=screenshot, timeout=remaining_ms())
            final = urllib.parse.urlsplit(page.url)
            print(f"{PREFIX} reached {final.scheme}://{final.netloc}{final.path}", file=sys.stderr, flush=True)
        except (PlaywrightError, TimeoutError, LoginRejected) as error:
            where = ""
            try:
                shown = urllib.parse.urlsplit(page.url)
                where = f" (page: {shown.scheme}://{shown.netloc}{shown.path})"
                if screenshot:
                    page.screenshot(path=screenshot, timeout=5000)
            except Exception:
                pass
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            fail(f"failed while {step}{where}: {first_line}")
        finally:
            try:
                browser.close()
            except Exception:
                pass
    timer.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
