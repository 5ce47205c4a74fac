"""Passkeys on keyless idp in headless Chromium, for tests: a virtual authenticator (Chrome DevTools Protocol, WebAuthn
domain) registers a passkey on /passkeys, or signs in with one as the BROWSER command of `keyless login`.

Usage: python passkey_browser.py register BASE_URL
       python passkey_browser.py login AUTHORIZATION_URL
Env:   KEYLESS_TEST_PASSKEY_FILE=path              the authenticator's credentials, kept between runs (JSON, 0600)
       KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD    the person (register; login in second-factor mode)
       KEYLESS_TEST_TOTP_SECRET=base32             optional: the one-time code typed with the password (register,
                                                   login in second-factor mode)
       KEYLESS_TEST_PASSKEY_NAME=text              optional, register: the passkey's name (default "test key")
       KEYLESS_TEST_PASSKEY_SIGN_IN_FILE=path      optional, register: sign in on /passkeys with a passkey kept in
                                                   this file ("Sign in with a passkey"), then add the new one to
                                                   another authenticator (KEYLESS_TEST_PASSKEY_FILE): a second device
       KEYLESS_TEST_PASSKEY_MODE=mode              optional, login: passwordless (default: "Sign in with a passkey")
                                                   or second-factor (password, then the passkey step)
       KEYLESS_TEST_PASSKEY_TRANSPORT=usb|internal optional: the authenticator's transport (default usb)
       KEYLESS_TEST_PASSKEY_BACKUP=1               optional: new passkeys are backup eligible (a synced passkey)
       KEYLESS_TEST_PASSKEY_UV=0                   optional: the authenticator fails user verification
       KEYLESS_TEST_SCREENSHOT=path                optional: register: the /passkeys page with its table after the
                                                   passkey was added; login: the last page
       KEYLESS_TEST_BROWSER_TIMEOUT=seconds        optional: overall limit (default 60)

A virtual authenticator (CTAP2, resident keys, user verification, presence simulated) lives only as long as the
browser, so its credentials are read from KEYLESS_TEST_PASSKEY_FILE at the start (WebAuthn.addCredential, with their
signature counters) and written back after every run, failed or not (WebAuthn.getCredentials): the provider refuses a
counter that does not increase. `register` starts from an empty authenticator when the file does not exist; `login`
needs the file.

register: opens BASE_URL/passkeys, signs in (#username, #password, #otp, "Sign in"; a person who already has passkeys
and gives no code confirms with one; or "Sign in with a passkey" with KEYLESS_TEST_PASSKEY_SIGN_IN_FILE, whose
authenticator is then saved and removed), types the name into #name, clicks "Add a passkey", waits for "Passkey
added." and names on stderr the passkeys the page's table lists ("name (kind)").
login: opens the authorization URL, clicks "Sign in with a passkey" (passwordless), or fills #username, #password (and
#otp), clicks "Sign in" and lets the page's passkey step run when the provider asks for it (second-factor); clicks "Allow" on a consent page; then lets the
browser really load the loopback redirect URI, so the program listening there receives the request.

Exits 0 when done (register: the page said "Passkey added."; login: a page on the redirect URI loaded); exits 1 with a
message on stderr otherwise, naming the page's alert when the provider or the page's script refused. Writes nothing to
stdout. Needs Playwright in the venv (no `playwright install`: it starts the Debian Chromium).
"""

import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse

# The one-time code and the system Chromium, as the password-login helper beside this script finds them.
from browser_login import chromium_path, totp

TIMEOUT = float(os.environ.get("KEYLESS_TEST_BROWSER_TIMEOUT", "60"))
PREFIX = "passkey_browser:"
VIEWPORT = {"width": 900, "height": 640}


class Refused(Exception):
    """The provider or the page's script refused (the page shows why)."""


def fail(message):
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def say(message):
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def load_credentials(path, required):
    """The saved credentials (a list of WebAuthn.Credential objects); [] when the file is absent and not required."""
    if not os.path.exists(path):
        if required:
            fail(f"{path} does not exist: run `passkey_browser.py register` first (KEYLESS_TEST_PASSKEY_FILE)")
        return []
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
        credentials = document["credentials"]
        if not isinstance(credentials, list):
            raise ValueError("credentials is not a list")
        return credentials
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail(f"cannot read the saved passkeys in {path}: {error}")


def save_credentials(path, credentials):
    """Writes the credentials (private keys) to `path`, mode 0600 from the start, replacing it atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".passkeys-", dir=directory)  # mkstemp creates it 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump({"version": 1, "credentials": credentials}, file, indent=1)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("register", "login"):
        fail("usage: passkey_browser.py register BASE_URL | login AUTHORIZATION_URL")
    mode, url = sys.argv[1], sys.argv[2]
    store = os.environ.get("KEYLESS_TEST_PASSKEY_FILE")
    if not store:
        fail("set KEYLESS_TEST_PASSKEY_FILE (where the authenticator's passkeys are kept between runs)")
    login_mode = os.environ.get("KEYLESS_TEST_PASSKEY_MODE", "passwordless")
    if login_mode not in ("passwordless", "second-factor"):
        fail(f"KEYLESS_TEST_PASSKEY_MODE must be passwordless or second-factor, not {login_mode!r}")
    user = os.environ.get("KEYLESS_TEST_USER")
    password = os.environ.get("KEYLESS_TEST_PASSWORD")
    if (mode == "register" or login_mode == "second-factor") and (not user or not password):
        fail("set KEYLESS_TEST_USER and KEYLESS_TEST_PASSWORD")
    transport = os.environ.get("KEYLESS_TEST_PASSKEY_TRANSPORT", "usb")
    if transport not in ("usb", "internal"):
        fail(f"KEYLESS_TEST_PASSKEY_TRANSPORT must be usb or internal, not {transport!r}")
    user_verified = os.environ.get("KEYLESS_TEST_PASSKEY_UV", "1") != "0"
    backup = os.environ.get("KEYLESS_TEST_PASSKEY_BACKUP", "0") == "1"
    screenshot = os.environ.get("KEYLESS_TEST_SCREENSHOT")
    saved = load_credentials(store, required=mode == "login")
    sign_in_store = os.environ.get("KEYLESS_TEST_PASSKEY_SIGN_IN_FILE") if mode == "register" else None
    if sign_in_store and os.path.abspath(sign_in_store) == os.path.abspath(store):
        fail("KEYLESS_TEST_PASSKEY_SIGN_IN_FILE must be another authenticator's file than KEYLESS_TEST_PASSKEY_FILE")
    sign_in_saved = load_credentials(sign_in_store, required=True) if sign_in_store else None

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
        cdp = None
        # The authenticator in use and the file it is saved to (the sign-in one first, with SIGN_IN_FILE).
        active = {"id": None, "file": store}
        try:
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()

            def add_authenticator(credentials, file):
                options = {
                    "protocol": "ctap2", "transport": transport, "hasResidentKey": True, "hasUserVerification": True,
                    "isUserVerified": True, "automaticPresenceSimulation": True,
                }
                if backup:
                    options.update({"defaultBackupEligibility": True, "defaultBackupState": True})
                active["id"] = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
                active["file"] = file
                for credential in credentials:
                    cdp.send("WebAuthn.addCredential", {"authenticatorId": active["id"], "credential": credential})
                if not user_verified:
                    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": active["id"], "isUserVerified": False})

            step = "adding the virtual authenticator"
            cdp = context.new_cdp_session(page)
            cdp.send("WebAuthn.enable", {"enableUI": False})
            if sign_in_store:
                add_authenticator(sign_in_saved, sign_in_store)
            else:
                add_authenticator(saved, store)

            def shown_alert():
                """The text of a visible alert on the page (the provider's message, or the script's), else None."""
                try:
                    alert = page.locator("[role=alert]:visible")
                    if alert.count() > 0:
                        return alert.first.inner_text().strip() or "(an empty alert)"
                except PlaywrightError:
                    pass  # the page is navigating: no alert to read yet
                return None

            def wait_until(done, what):
                """Polls until done() (navigations included) or an alert shows; the alert is raised as Refused."""
                nonlocal step
                step = what
                while True:
                    try:
                        if done():
                            return
                    except PlaywrightError:
                        pass
                    message = shown_alert()
                    if message:
                        raise Refused(message)
                    page.wait_for_timeout(min(100, remaining_ms()))

            def sign_in_with_password(button):
                nonlocal step
                step = "filling the sign-in form"
                page.locator("#username").wait_for(state="visible", timeout=remaining_ms())
                page.fill("#username", user, timeout=remaining_ms())
                page.fill("#password", password, timeout=remaining_ms())
                secret = os.environ.get("KEYLESS_TEST_TOTP_SECRET")
                if secret:
                    page.fill("#otp", totp(secret), timeout=remaining_ms())
                step = "submitting the sign-in form"
                page.get_by_role("button", name=button, exact=True).click(timeout=remaining_ms())
                page.wait_for_load_state("load", timeout=remaining_ms())

            if mode == "register":
                base = url.rstrip("/")
                step = f"opening {base}/passkeys"
                page.goto(base + "/passkeys", timeout=remaining_ms())
                if page.locator("#name").count() == 0 and sign_in_store:
                    step = "clicking \"Sign in with a passkey\" on the passkeys page"
                    page.get_by_role("button", name="Sign in with a passkey", exact=True).click(
                        timeout=remaining_ms())
                    wait_until(lambda: page.locator("#name").count() > 0,
                               "waiting for the passkeys page after signing in with a passkey")
                elif page.locator("#name").count() == 0:
                    sign_in_with_password("Sign in")
                    # A person who already has passkeys (and typed no code) confirms with one; the page asks at once.
                    wait_until(lambda: page.locator("#name").count() > 0,
                               "waiting for the passkeys page after signing in")
                if sign_in_store:
                    step = "switching to a new authenticator"
                    save(cdp, active)
                    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": active["id"]})
                    active["id"] = None
                    add_authenticator(saved, store)
                step = "adding a passkey"
                page.fill("#name", os.environ.get("KEYLESS_TEST_PASSKEY_NAME", "test key"), timeout=remaining_ms())
                page.get_by_role("button", name="Add a passkey", exact=True).click(timeout=remaining_ms())
                wait_until(lambda: page.get_by_text("Passkey added.", exact=True).count() > 0,
                           "waiting for \"Passkey added.\"")
                if screenshot:
                    step = "taking the screenshot"
                    page.screenshot(path=screenshot, full_page=True, timeout=remaining_ms())
                step = "reading the table of passkeys"
                listed = []
                for cell in page.locator("table tbody tr td:first-child").all():
                    name, _, kind = cell.inner_text(timeout=remaining_ms()).strip().partition("\n")
                    listed.append(f"{name.strip()} ({kind.strip()})" if kind.strip() else name.strip())
                say(f"added a passkey for {user} on {idp_origin}; the page lists: {', '.join(listed)}")
            else:
                step = f"opening {idp_origin}"
                page.goto(url, timeout=remaining_ms())
                if not at_redirect(page.url):
                    if login_mode == "passwordless":
                        step = "clicking \"Sign in with a passkey\""
                        button = page.get_by_role("button", name="Sign in with a passkey", exact=True)
                        button.wait_for(state="visible", timeout=remaining_ms())
                        try:
                            button.click(timeout=remaining_ms())
                        except PlaywrightError:
                            # Conditional UI (the user-name field's autofill) may have answered first.
                            if not at_redirect(page.url):
                                raise
                    else:
                        sign_in_with_password("Sign in")
                    allow = page.get_by_role("button", name="Allow", exact=True)
                    wait_until(lambda: at_redirect(page.url) or allow.count() > 0,
                               f"waiting for the redirect to {redirect_uri or 'the loopback listener'}")
                    if not at_redirect(page.url):
                        step = "allowing on the consent page"
                        allow.click(timeout=remaining_ms())
                step = f"waiting for the redirect to {redirect_uri or 'the loopback listener'}"
                page.wait_for_url(at_redirect, wait_until="load", timeout=remaining_ms())
                if screenshot:
                    page.screenshot(path=screenshot, timeout=remaining_ms())
                final = urllib.parse.urlsplit(page.url)
                say(f"reached {final.scheme}://{final.netloc}{final.path}")
        except (PlaywrightError, TimeoutError, Refused) as error:
            where = ""
            try:
                shown = urllib.parse.urlsplit(page.url)
                where = f" (page: {shown.scheme}://{shown.netloc}{shown.path})"
                if screenshot:
                    page.screenshot(path=screenshot, timeout=5000)
            except Exception:
                pass
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            kind = "refused" if isinstance(error, Refused) else "failed"
            save(cdp, active)
            fail(f"{kind} while {step}{where}: {first_line}")
        else:
            save(cdp, active)
        finally:
            try:
                browser.close()
            except Exception:
                pass
    timer.cancel()
    return 0


def save(cdp, active):
    """Keeps what the active authenticator holds now (new passkeys, higher counters) for the next run."""
    if cdp is None or active["id"] is None:
        return
    try:
        credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": active["id"]})["credentials"]
        save_credentials(active["file"], credentials)
    except Exception as error:
        say(f"could not save the passkeys to {active['file']}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
