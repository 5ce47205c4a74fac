"""Drives keyless server's web page in headless Chromium as a person would, and checks what it shows.

Usage: python web_page_check.py SERVER_URL --out DIR --sts-endpoint URL --federation URL --role LABEL
           --expect-account "HEADING=ROLE,ROLE" [--expect-account ...] --expect-configure LINE --expect-arn ARN
           [--refused-role LABEL] [--python PATH] [--docs DIR]
Env:   KEYLESS_TEST_USER, KEYLESS_TEST_PASSWORD   the user to sign in as at the provider (keyless idp's login page)
       KEYLESS_TEST_BROWSER_TIMEOUT=seconds       optional: overall limit (default 120)

In one browser context (JavaScript on): opens the server, clicks "Sign in", signs in on the provider's page, checks the
roles page (one heading per account with exactly the expected role names, accessibility basics), clicks "Shell
credentials" for the role named LABEL ("ROLE in ACCOUNT"), reads the export lines and proves them with botocore's
GetCallerIdentity against --sts-endpoint (run by --python, which needs botocore; the values go through its
environment, never a command line or output); with --refused-role, asks for a role the policy refuses and expects 403
with the reason shown as an alert; clicks "Open console" and checks the federation stub's signed-in page in the new
tab, checks the `keyless configure` line, sends forged POSTs (no CSRF value, a wrong one, a foreign Origin, a cross-site
form) and expects 403 for each, then signs out. In a second context with JavaScript disabled it signs in, checks the
roles page and gets shell credentials again: the page needs no script.

Screenshots (1280x800, secret values replaced by "…" in the page before each one) go to --out; with --docs, the roles
page and the masked credentials page are also written there as web-roles.png and web-credentials.png. --out also gets
summary.json (no secrets). Progress lines go to stderr and never hold a secret. Exits 0 when every check passed, 1 with
the failed check on stderr otherwise. Needs Playwright in the venv (no `playwright install`: it starts the Debian Chromium).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse

PREFIX = "web_page_check:"
EXPORT_NAMES = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"]
SECRET_NAMES = {"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
VIEWPORT = {"width": 1280, "height": 800}

# GetCallerIdentity with the credentials a shell would have after pasting the export lines: botocore reads them from
# the environment. Prints only the ARN and where botocore found the credentials.
CALLER_IDENTITY = """
import json, os, sys
import botocore.session
session = botocore.session.get_session()
credentials = session.get_credentials()
client = session.create_client("sts", region_name=os.environ["AWS_REGION"], endpoint_url=sys.argv[1])
print(json.dumps({"arn": client.get_caller_identity()["Arn"], "method": credentials.method if credentials else None}))
"""


class CheckFailed(Exception):
    """A check on the page did not hold."""


def say(message):
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def chromium_path():
    # /usr/bin/chromium is a wrapper script; the real binary lets the browser be stopped by its own pid.
    for path in ("/usr/lib/chromium/chromium", "/usr/bin/chromium"):
        if os.path.exists(path):
            return path
    raise CheckFailed("no system Chromium (apt-get install chromium)")


def parse_arguments():
    parser = argparse.ArgumentParser(description="Checks keyless server's web page in headless Chromium.")
    parser.add_argument("server", help="the server's URL, e.g. http://127.0.0.1:8080")
    parser.add_argument("--out", required=True, help="directory for screenshots and summary.json")
    parser.add_argument("--docs", help="also write web-roles.png and web-credentials.png here")
    parser.add_argument("--sts-endpoint", required=True, help="STS (moto) to check the credentials against")
    parser.add_argument("--federation", required=True, help="the console federation endpoint's origin, e.g. http://127.0.0.1:9000")
    parser.add_argument("--role", required=True, help='the role to use, as the page labels it: "ROLE in ACCOUNT"')
    parser.add_argument("--expect-account", action="append", default=[], required=True,
                        help='"HEADING=ROLE,ROLE": an account heading and exactly the role names under it, in order')
    parser.add_argument("--expect-configure", required=True, help="the exact `keyless configure` line the page shows")
    parser.add_argument("--expect-arn", required=True, help="the ARN GetCallerIdentity answers for the shell credentials")
    parser.add_argument("--refused-role", help='a role the page lists but the policy refuses the user (e.g. it needs MFA): "ROLE in ACCOUNT"')
    parser.add_argument("--python", default=sys.executable, help="a Python with botocore (default: this one)")
    return parser.parse_args()


class Run:
    def __init__(self, args, deadline):
        self.args = args
        self.server = args.server.rstrip("/")
        self.deadline = deadline
        self.step = "starting"
        self.summary = {"checks": []}
        self.expected = []
        for item in args.expect_account:
            heading, _, roles = item.partition("=")
            self.expected.append((heading, [r for r in roles.split(",") if r]))

    def ms(self):
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("out of time")
        return left * 1000

    def passed(self, what):
        self.summary["checks"].append(what)
        say(f"ok: {what}")

    # --- pages --------------------------------------------------------------------------------------------------

    def screenshot(self, page, name, docs_name=None):
        path = os.path.join(self.args.out, name)
        page.screenshot(path=path, timeout=self.ms())
        if docs_name and self.args.docs:
            shutil.copyfile(path, os.path.join(self.args.docs, docs_name))
            say(f"wrote {os.path.join(self.args.docs, docs_name)}")

    def sign_in(self, page, label):
        self.step = f"opening {self.server} ({label})"
        page.goto(self.server + "/", timeout=self.ms())
        check(page.get_by_role("heading", level=1).inner_text(timeout=self.ms()) == "Sign in", "the start page's h1 is not 'Sign in'")
        self.step = f"clicking 'Sign in' ({label})"
        page.get_by_role("link", name="Sign in", exact=True).click(timeout=self.ms())
        page.wait_for_url(lambda url: not url.startswith(self.server + "/"), wait_until="load", timeout=self.ms())
        check(page.locator('form[action="/authorize"]').count() == 1, "the provider's login form (posting to /authorize) is not shown")
        self.step = f"signing in on the provider's page ({label})"
        page.fill("#username", os.environ["KEYLESS_TEST_USER"], timeout=self.ms())
        page.fill("#password", os.environ["KEYLESS_TEST_PASSWORD"], timeout=self.ms())
        page.get_by_role("button", name="Sign in", exact=True).click(timeout=self.ms())
        page.wait_for_load_state("load", timeout=self.ms())
        if not page.url.startswith(self.server + "/"):
            alert = page.locator("[role=alert]")
            if alert.count() > 0:
                raise CheckFailed(f"the provider refused the sign-in: {alert.first.inner_text()}")
            allow = page.get_by_role("button", name="Allow", exact=True)
            if allow.count() > 0:
                allow.click(timeout=self.ms())
        self.step = f"waiting for the roles page ({label})"
        page.wait_for_url(self.server + "/", wait_until="load", timeout=self.ms())
        self.passed(f"signed in through the provider and back on the roles page ({label})")

    def check_roles(self, page, label):
        self.step = f"checking the roles page ({label})"
        check(page.get_by_role("heading", level=1).inner_text(timeout=self.ms()) == "Your AWS roles", "the roles page's h1 is not 'Your AWS roles'")
        check(page.locator("[role=alert]").count() == 0, f"the roles page shows an alert: {page.locator('[role=alert]').all_inner_texts()}")
        user = os.environ["KEYLESS_TEST_USER"]
        check(user in page.locator("main").inner_text(timeout=self.ms()), f"the page does not say who is signed in ({user})")
        headings = [h.strip() for h in page.get_by_role("heading", level=2).all_inner_texts()]
        accounts = [h for h in headings if h != "Set up your terminal"]
        check(accounts == [heading for heading, _ in self.expected], f"account headings are {accounts}, expected {[h for h, _ in self.expected]}")
        for heading, roles in self.expected:
            section = page.get_by_role("region", name=heading, exact=True)
            check(section.count() == 1, f"no region labelled by the heading {heading!r}")
            names = [self.role_name(cell) for cell in section.get_by_role("rowheader").all()]
            check(names == roles, f"roles under {heading!r} are {names}, expected {roles}")
            for role in roles:
                check(section.get_by_role("button", name=f"Open console as {role} in ").count() == 1,
                      f"no 'Open console' button for {role} under {heading!r}")
                check(section.get_by_role("button", name=f"Shell credentials for {role} in ").count() == 1,
                      f"no 'Shell credentials' button for {role} under {heading!r}")
        self.passed(f"roles page lists {sum(len(r) for _, r in self.expected)} roles under {len(self.expected)} account headings ({label})")

    @staticmethod
    def role_name(cell):
        # The row header is "NAME[MFA required]ARN"; the ARN and badge sit in their own spans.
        full = cell.inner_text()
        for span in cell.locator("span").all_inner_texts():
            full = full.replace(span, "")
        return full.strip()

    def check_accessibility(self, page, label):
        """Basics a screen-reader and keyboard user need; works with JavaScript off (locators only, no page script)."""
        self.step = f"checking accessibility basics ({label})"
        lang = page.locator("html").get_attribute("lang", timeout=self.ms())
        check(bool(lang and lang.strip()), f"<html> has no lang ({label})")
        check(bool(page.title().strip()), f"the page has no <title> ({label})")
        check(page.locator("h1").count() == 1, f"the page has {page.locator('h1').count()} h1 elements, not one ({label})")
        check(page.get_by_role("main").count() == 1, f"the page has no single main landmark ({label})")
        buttons = page.locator("button").all()
        for button in buttons:
            visible = button.inner_text().strip()
            name = (button.get_attribute("aria-label") or visible).strip()
            check(bool(name), f"a button has no accessible name ({label})")
            # WCAG 2.5.3 label in name: speech users say what they see.
            check(visible.lower() in name.lower(), f"button {visible!r} has the accessible name {name!r}, which does not contain its label ({label})")
        for link in page.locator("a").all():
            check(bool((link.get_attribute("aria-label") or link.inner_text()).strip()), f"a link has no accessible name ({label})")
        cells = page.locator("th").all()
        for cell in cells:
            check(cell.get_attribute("scope") in ("col", "row"), f"a table header cell has no scope: {cell.inner_text()[:40]!r} ({label})")
        for field in page.locator("input:not([type=hidden]), select, textarea").all():
            field_id = field.get_attribute("id")
            labelled = field.get_attribute("aria-label") or (field_id and page.locator(f'label[for="{field_id}"]').count() == 1)
            check(bool(labelled), f"a form field has no label ({label})")
        ids = [element.get_attribute("id") for element in page.locator("[id]").all()]
        check(len(ids) == len(set(ids)), f"duplicate ids on the page: {sorted({i for i in ids if ids.count(i) > 1})} ({label})")
        self.passed(f"accessibility basics: lang={lang}, one h1, {len(buttons)} named buttons, {len(cells)} th with scope ({label})")

    def read_exports(self, page, label):
        self.step = f"reading the export lines ({label})"
        check(page.get_by_role("heading", level=1).inner_text(timeout=self.ms()).startswith("Shell credentials for "),
              f"the credentials page's h1 is {page.get_by_role('heading', level=1).inner_text()!r}")
        text = page.locator("pre.copy").inner_text(timeout=self.ms())
        exports = {}
        for line in text.splitlines():
            match = re.fullmatch(r"export ([A-Z_]+)=(\S+)", line.strip())
            check(match is not None, f"a line on the credentials page is not `export NAME=VALUE` ({label})")
            exports[match.group(1)] = match.group(2)
        check(sorted(exports) == sorted(EXPORT_NAMES), f"the export lines set {sorted(exports)}, expected {sorted(EXPORT_NAMES)} ({label})")
        check(re.fullmatch(r"ASIA[A-Z0-9]{12,}", exports["AWS_ACCESS_KEY_ID"]) is not None,
              f"AWS_ACCESS_KEY_ID does not look like temporary credentials (ASIA...) ({label})")
        self.passed(f"credentials page shows export lines for {', '.join(EXPORT_NAMES)} ({label})")
        return exports

    def mask_secrets(self, page):
        """Replaces the secret values in the page's text (not in any file or output) before a screenshot."""
        pre = page.locator("pre.copy")
        text = pre.inner_text()
        masked = "\n".join(re.sub(r"^(export (?:%s)=).*$" % "|".join(SECRET_NAMES), r"\1…", line) for line in text.splitlines())
        pre.evaluate("(element, text) => { element.textContent = text; }", masked)
        check("…" in pre.inner_text(), "masking the secrets in the page failed")

    def caller_identity(self, exports, label):
        self.step = f"GetCallerIdentity with the shell credentials ({label})"
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.args.out,
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}
        environment.update(exports)
        answer = subprocess.run([self.args.python, "-c", CALLER_IDENTITY, self.args.sts_endpoint], env=environment,
                                capture_output=True, text=True, timeout=max(1, self.ms() / 1000))
        if answer.returncode != 0:
            last = (answer.stderr.strip().splitlines() or ["no output"])[-1]
            for value in exports.values():  # botocore errors may quote a key id; never let a value through
                last = last.replace(value, "…")
            raise CheckFailed(f"GetCallerIdentity with the exported credentials failed: {last}")
        identity = json.loads(answer.stdout)
        check(identity["method"] == "env", f"botocore took credentials from {identity['method']!r}, not the environment ({label})")
        check(identity["arn"] == self.args.expect_arn, f"GetCallerIdentity answered {identity['arn']}, expected {self.args.expect_arn} ({label})")
        self.passed(f"botocore GetCallerIdentity with the exported credentials: {identity['arn']} ({label})")
        return identity["arn"]

    # --- the journey ----------------------------------------------------------------------------------------------

    def with_javascript(self, browser):
        context = browser.new_context(viewport=VIEWPORT)
        try:
            page = context.new_page()
            self.step = "opening the start page"
            page.goto(self.server + "/", timeout=self.ms())
            self.check_accessibility(page, "sign-in page")
            self.screenshot(page, "01-sign-in.png")
            self.sign_in(page, "JavaScript on")
            self.check_roles(page, "JavaScript on")
            self.check_accessibility(page, "roles page")
            self.screenshot(page, "02-roles.png", "web-roles.png")

            self.step = "checking the `keyless configure` line"
            shown = page.locator("pre.copy").inner_text(timeout=self.ms()).strip()
            check(shown == self.args.expect_configure, f"the configure line is {shown!r}, expected {self.args.expect_configure!r}")
            self.passed("the `keyless configure` line is exactly the expected one")
            csrf = page.locator('header form input[name="csrf"]').get_attribute("value", timeout=self.ms())
            role_arn = page.get_by_role("button", name=f"Shell credentials for {self.args.role}", exact=True) \
                .locator("xpath=..").locator('input[name="role_arn"]').get_attribute("value", timeout=self.ms())

            self.step = f"clicking 'Shell credentials' for {self.args.role}"
            page.get_by_role("button", name=f"Shell credentials for {self.args.role}", exact=True).click(timeout=self.ms())
            page.wait_for_load_state("load", timeout=self.ms())
            exports = self.read_exports(page, "JavaScript on")
            self.check_accessibility(page, "credentials page")
            self.mask_secrets(page)
            self.screenshot(page, "03-credentials.png", "web-credentials.png")
            self.summary["caller_arn"] = self.caller_identity(exports, "JavaScript on")
            self.summary["region"] = exports["AWS_REGION"]

            self.step = "going back to the roles page"
            page.get_by_role("link", name="Back to your roles").click(timeout=self.ms())
            page.wait_for_url(self.server + "/", wait_until="load", timeout=self.ms())

            if self.args.refused_role:
                self.refused(page, self.args.refused_role)

            self.step = f"clicking 'Open console' for {self.args.role}"
            with context.expect_page(timeout=self.ms()) as opened:
                page.get_by_role("button", name=f"Open console as {self.args.role} (new tab)", exact=True).click(timeout=self.ms())
            console = opened.value
            console.wait_for_load_state("load", timeout=self.ms())
            console.bring_to_front()
            landed = urllib.parse.urlsplit(console.url)
            check(console.url.startswith(self.args.federation.rstrip("/") + "/"),
                  f"'Open console' led to {landed.scheme}://{landed.netloc}{landed.path}, not the federation endpoint")
            body = console.locator("body").inner_text(timeout=self.ms())
            check(f"Signed in as {self.args.expect_arn}" in body, "the federation stub's page does not say the console is signed in as the role")
            self.screenshot(console, "05-console.png")
            console.close()
            self.summary["console_path"] = landed.path
            self.passed(f"'Open console' landed on the federation stub signed in as {self.args.expect_arn}")

            self.forged_posts(page, context, browser, csrf, role_arn)

            self.step = "signing out"
            page.bring_to_front()
            page.get_by_role("button", name="Sign out", exact=True).click(timeout=self.ms())
            page.wait_for_url(self.server + "/", wait_until="load", timeout=self.ms())
            check(page.get_by_role("heading", level=1).inner_text(timeout=self.ms()) == "Sign in", "after 'Sign out' the page is not the sign-in page")
            check(not any(c["name"] == "keyless_web_session" for c in context.cookies(self.server)), "the session cookie survived 'Sign out'")
            self.screenshot(page, "06-signed-out.png")
            reuse = context.request.post(self.server + "/web/credentials", form={"csrf": csrf, "role_arn": role_arn},
                                         headers={"Origin": self.server}, max_redirects=0, timeout=self.ms())
            check(reuse.status == 403, f"after sign-out, a POST with the old CSRF value answered {reuse.status}, not 403")
            self.passed("signed out: the sign-in page is back, the session cookie is gone and the old form is refused")
        finally:
            context.close()

    def refused(self, page, label):
        """Asking for a role the policy refuses shows the roles page again with the reason as an alert, and no credentials."""
        self.step = f"clicking 'Shell credentials' for {label}, which the policy refuses"
        with page.expect_response(self.server + "/web/credentials", timeout=self.ms()) as response:
            page.get_by_role("button", name=f"Shell credentials for {label}", exact=True).click(timeout=self.ms())
        page.wait_for_load_state("load", timeout=self.ms())
        check(response.value.status == 403, f"asking for {label} answered {response.value.status}, not 403")
        alert = page.locator("[role=alert]")
        check(alert.count() == 1, f"asking for {label} shows {alert.count()} alerts, not one")
        reason = alert.inner_text(timeout=self.ms())
        check("MFA" in reason, f"the alert for {label} does not give the reason (MFA): {reason!r}")
        check(page.get_by_role("heading", level=1).inner_text() == "Your AWS roles", "the refusal does not show the roles page")
        check("export AWS_" not in page.content(), f"the refusal for {label} shows export lines")
        self.check_accessibility(page, "roles page with a refusal")
        self.screenshot(page, "04-refused.png")
        self.passed(f"{label} is refused with 403 and the reason as an alert on the roles page")

    def forged_posts(self, page, context, browser, csrf, role_arn):
        """Requests with the victim's session cookie but without the page's own form: each must be refused."""
        url = self.server + "/web/credentials"
        attempts = [
            ("no CSRF value", {"role_arn": role_arn}, {}),
            ("a wrong CSRF value", {"csrf": "A" * len(csrf), "role_arn": role_arn}, {}),
            ("the right CSRF value from a foreign Origin", {"csrf": csrf, "role_arn": role_arn}, {"Origin": "http://attacker.test"}),
        ]
        for what, form, headers in attempts:
            self.step = f"sending a forged POST with {what}"
            answer = context.request.post(url, form=form, headers=headers, max_redirects=0, timeout=self.ms())
            check(answer.status == 403, f"a POST /web/credentials with {what} answered {answer.status}, not 403")
            check("export AWS_" not in answer.text(), f"a POST /web/credentials with {what} returned credentials")
            self.passed(f"forged POST with {what}: 403")
        # The control: the same request with the page's value and Origin is accepted, so the 403s above come from the
        # CSRF and Origin checks and not from the request itself.
        self.step = "sending the control POST with the page's CSRF value"
        control = context.request.post(url, form={"csrf": csrf, "role_arn": role_arn}, headers={"Origin": self.server}, max_redirects=0, timeout=self.ms())
        check(control.status == 200 and "export AWS_ACCESS_KEY_ID=" in control.text(),
              f"the control POST with the page's CSRF value answered {control.status}")
        self.passed("control POST with the page's CSRF value and Origin: 200 with export lines")
        forged_logout = context.request.post(self.server + "/logout", form={}, max_redirects=0, timeout=self.ms())
        check(forged_logout.status == 403, f"a POST /logout without the CSRF value answered {forged_logout.status}, not 403")
        check(any(c["name"] == "keyless_web_session" for c in context.cookies(self.server)), "a forged logout ended the session")
        self.passed("forged POST /logout without the CSRF value: 403, still signed in")

        # A real cross-site form in the same browser: a page on another site posts to the server.
        self.step = "submitting a cross-site form"
        attacker = context.new_page()
        try:
            attacker.route("http://attacker.test/**", lambda route: route.fulfill(
                status=200, content_type="text/html",
                body=f'<!doctype html><html lang="en"><title>x</title><form method="post" action="{url}">'
                     f'<input type="hidden" name="role_arn" value="{role_arn}"><button>Win a prize</button></form></html>'))
            attacker.goto("http://attacker.test/", timeout=self.ms())
            with attacker.expect_response(url, timeout=self.ms()) as response:
                attacker.get_by_role("button", name="Win a prize").click(timeout=self.ms())
            check(response.value.status == 403, f"a cross-site form POST answered {response.value.status}, not 403")
            attacker.wait_for_load_state("load", timeout=self.ms())
            check("export AWS_" not in attacker.content(), "a cross-site form POST returned credentials")
            self.passed("cross-site form POST from another site in the same browser: 403")
        finally:
            attacker.close()

    def without_javascript(self, browser):
        context = browser.new_context(viewport=VIEWPORT, java_script_enabled=False)
        try:
            page = context.new_page()
            self.sign_in(page, "JavaScript off")
            self.check_roles(page, "JavaScript off")
            self.check_accessibility(page, "roles page, JavaScript off")
            self.screenshot(page, "07-roles-no-javascript.png")
            self.step = f"clicking 'Shell credentials' for {self.args.role} (JavaScript off)"
            page.get_by_role("button", name=f"Shell credentials for {self.args.role}", exact=True).click(timeout=self.ms())
            page.wait_for_load_state("load", timeout=self.ms())
            exports = self.read_exports(page, "JavaScript off")
            self.caller_identity(exports, "JavaScript off")
            self.step = "signing out (JavaScript off)"
            page.get_by_role("button", name="Sign out", exact=True).click(timeout=self.ms())
            page.wait_for_url(self.server + "/", wait_until="load", timeout=self.ms())
            check(page.get_by_role("heading", level=1).inner_text(timeout=self.ms()) == "Sign in", "after 'Sign out' (JavaScript off) the page is not the sign-in page")
            self.passed("without JavaScript: signed in, roles, shell credentials and sign-out all work")
        finally:
            context.close()


def main():
    args = parse_arguments()
    for name in ("KEYLESS_TEST_USER", "KEYLESS_TEST_PASSWORD"):
        if not os.environ.get(name):
            say(f"set {name}")
            return 1
    os.makedirs(args.out, exist_ok=True)
    if args.docs:
        os.makedirs(args.docs, exist_ok=True)
    limit = float(os.environ.get("KEYLESS_TEST_BROWSER_TIMEOUT", "120"))

    # Backstop: if Playwright itself hangs, still give up after the limit (plus a little for cleanup).
    def watchdog():
        say(f"timed out after {limit:.0f} s (hard limit)")
        os._exit(1)
    timer = threading.Timer(limit + 15, watchdog)
    timer.daemon = True
    timer.start()

    from playwright.sync_api import sync_playwright, Error as PlaywrightError

    run = Run(args, time.monotonic() + limit)
    status = 0
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            run.with_javascript(browser)
            run.without_javascript(browser)
        except (CheckFailed, PlaywrightError, TimeoutError, subprocess.TimeoutExpired) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            say(f"FAILED while {run.step}: {first_line}")
            status = 1
        finally:
            try:
                browser.close()
            except Exception:
                pass
    run.summary["passed"] = status == 0
    with open(os.path.join(args.out, "summary.json"), "w") as summary:
        json.dump(run.summary, summary, indent=1)
    timer.cancel()
    if status == 0:
        say(f"all {len(run.summary['checks'])} checks passed")
    return status


if __name__ == "__main__":
    sys.exit(main())
