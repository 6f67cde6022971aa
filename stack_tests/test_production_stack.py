"""The production stack, end to end, on loopback: nginx with TLS in front of gunicorn (PORTAL_ENV=production),
the worker, PostgreSQL with the two roles of deploy/postgres/, Redis for rate limits and a real SMTP server
(aiosmtpd). Everything is started from the files in deploy/, as an IT supplier would use them.

In Chromium over HTTPS: two admins are set up (the first from the CLI's link, the second invited by email); a
patient registers, is verified and asks for recordings; the first admin uploads and prepares, the second
approves; the worker delivers the email through SMTP; the patient opens the link from the received email and
downloads the file, whose SHA-256 equals the upload's. Midway the web server and the worker are restarted.
Then the restore drill, and a real restore after the database is dropped: the audit chain verifies and the
release still downloads.

Run by `.ci/run` (`pytest stack_tests`); it needs root or an unprivileged nginx, PostgreSQL on
127.0.0.1:5432 (CI_POSTGRES_URL), Redis on 127.0.0.1:6379 and Debian's nginx and chromium.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyotp
import pytest
from cryptography.fernet import Fernet
from playwright.sync_api import Page, expect, sync_playwright

from core.config import PROJECT_ROOT
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.browser.journey import PASSWORD, code_for_next_step, fill_registration_form, setup_key_on
from tests.smtp_support import free_port, start_server

DEPLOY = PROJECT_ROOT / "deploy"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
WAV = PROJECT_ROOT / "tests" / "fixtures" / "audio" / "call-sample.wav"
SERVER_URL = os.environ.get("CI_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PATIENT_EMAIL = "ada.lovelace@example.org"
TIMEOUT_MS = 20_000
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def stage(message: str) -> None:
    print(f"[stack {time.strftime('%H:%M:%S')}] {message}", flush=True)


def database_url(url: str, database: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    user = user or (parts.username or "postgres")
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}", path=f"/{database}"))


def psql(url: str, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", url, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        **kwargs,
    )


def wait_for_url(url: str, process: subprocess.Popen, log: Path, *, seconds: float = 60) -> None:
    context = ssl._create_unverified_context()  # noqa: S323 (our own self-signed certificate, on loopback)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=3, context=context):  # noqa: S310 (loopback)
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer:\n{log.read_text()[-4000:]}")


class Stack:
    """The processes of one production installation, started from deploy/ with settings in a temporary folder."""

    def __init__(self, root: Path, server_url: str = SERVER_URL) -> None:
        self.root = root
        suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
        self.database = f"crp_stack_{suffix}"
        self.owner, self.app_role = f"crp_owner_{suffix}", f"crp_app_{suffix}"
        self.server_url = server_url
        self.admin_url = database_url(server_url, "postgres")
        self.https_port, self.http_port, self.web_port, self.smtp_port = (free_port() for _ in range(4))
        self.base_url = f"https://localhost:{self.https_port}"
        self.recordings = root / "recordings"
        self.processes: dict[str, subprocess.Popen] = {}
        self.env_file, self.migrate_env_file = root / "portal.env", root / "migrate.env"
        self.settings = {
            "PORTAL_ENV": "production",
            "SECRET_KEY": secrets.token_hex(32),
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "TOTP_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "RECOVERY_CODES_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "LINK_TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DRAFT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DOWNLOAD_SIGNING_KEYS": secrets.token_hex(32),
            "RECOVERY_CODE_HMAC_KEY": secrets.token_hex(32),
            "RECORDING_KEYS": "stack:" + base64.b64encode(secrets.token_bytes(32)).decode(),
            "DATABASE_URL": database_url(server_url, self.database, self.app_role),
            "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/5",
            # Counts of its own: an earlier run's registrations from 127.0.0.1 must not limit this one.
            "RATELIMIT_KEY_PREFIX": f"stack-{suffix}",
            "PUBLIC_BASE_URL": self.base_url,
            "TRUSTED_HOSTS": "localhost",
            "RECORDINGS_DIR": str(self.recordings),
            "PROXY_FIX_HOPS": "1",
            "TRUST_PROXY_REQUEST_ID": "true",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": str(self.smtp_port),
            "MAIL_FROM": "no-reply@localhost",
            "WORKER_POLL_SECONDS": "1",
            # Values with spaces, as deploy/portal.env.example has them: the scripts must read them as systemd does.
            "PRACTICE_NAME": "Thamesmead Medical Associates",
            "PRACTICE_ADDRESS": "Bentham Road, London, SE28 8BE",
        }
        self.write_env_files()

    def write_env_files(self) -> None:
        """The settings as systemd's EnvironmentFile and deploy/bin read them (again after a change)."""
        self.env_file.write_text("".join(f"{key}={value}\n" for key, value in self.settings.items()))
        self.migrate_env_file.write_text(
            f"MIGRATION_DATABASE_URL={database_url(self.server_url, self.database, self.owner)}\n"
            f"PG_ADMIN_URL={self.admin_url}\n"
        )

    # --- set-up -----------------------------------------------------------------------------------
    def script_env(self) -> dict:
        return {**os.environ, "PORTAL_ENV_FILE": str(self.env_file), "MIGRATE_ENV_FILE": str(self.migrate_env_file)}

    def process_env(self) -> dict:
        clean = {key: value for key, value in os.environ.items() if key not in ("TEST_DATABASE_URL", "PORT")}
        return {**clean, **self.settings}

    def deploy_script(self, name: str, *args: str, timeout: float = 180) -> str:
        finished = subprocess.run(
            [str(DEPLOY / "bin" / name), *args],
            cwd=PROJECT_ROOT,
            env=self.script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert finished.returncode == 0, f"deploy/bin/{name} {args}:\n{finished.stdout}\n{finished.stderr}"
        return finished.stdout

    def create_database(self) -> None:
        psql(
            self.admin_url,
            *("-v", f"owner={self.owner}", "-v", f"app={self.app_role}", "-v", f"database={self.database}"),
            "-f",
            str(DEPLOY / "postgres" / "roles.sql"),
        )
        self.deploy_script("portal-migrate")

    def make_certificate(self) -> None:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost",
                "-keyout", str(self.root / "privkey.pem"), "-out", str(self.root / "fullchain.pem"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip

    def nginx_config(self) -> Path:
        """deploy/nginx's file with its marked values changed for loopback, included as Debian includes it."""
        site = (DEPLOY / "nginx" / "call-recording-portal.conf").read_text()
        replacements = [
            ("    listen [::]:80;\n", ""),
            ("    listen [::]:443 ssl http2;\n", ""),
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;"),
            ("https://portal.example.org", self.base_url),
            ("portal.example.org", "localhost"),
            ("/etc/ssl/call-recording-portal/", f"{self.root}/"),
            ("/opt/call-recording-portal/static/", f"{PROJECT_ROOT}/static/"),
            ("/var/log/nginx/", f"{self.root}/"),
            ("server 127.0.0.1:8000;", f"server 127.0.0.1:{self.web_port};"),
        ]
        for old, new in replacements:
            assert old in site, f"deploy/nginx no longer has {old!r}: update this test"
            site = site.replace(old, new)
        (self.root / "site.conf").write_text(site)
        temp = self.root / "nginx-temp"
        temp.mkdir(exist_ok=True)
        main = self.root / "nginx.conf"
        main.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"worker_processes 1;\npid {self.root}/nginx.pid;\nerror_log {self.root}/nginx-error.log warn;\n"
            "events { worker_connections 256; }\n"
            "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
            + "".join(
                f"  {kind}_temp_path {temp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
            + f"  include {self.root}/site.conf;\n}}\n"
        )
        return main

    # --- processes ----------------------------------------------------------------------------------
    def start(self, name: str, command: list[str], ready_url: str | None = None) -> None:
        log = self.root / f"{name}.log"
        handle = log.open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=self.process_env(), stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        if ready_url:
            wait_for_url(ready_url, self.processes[name], log)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise

    def start_web(self) -> None:
        env_bind = {"GUNICORN_BIND": f"127.0.0.1:{self.web_port}"}
        self.settings.update(env_bind)
        gunicorn = [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
        self.start("web", gunicorn, f"http://127.0.0.1:{self.web_port}/healthz")

    def start_worker(self) -> None:
        self.start("worker", [str(VENV_BIN / "flask"), "--app", "wsgi", "worker"])

    def start_nginx(self) -> None:
        main = self.nginx_config()
        checked = subprocess.run(
            ["nginx", "-t", "-p", str(self.root), "-c", str(main)], capture_output=True, text=True, check=False
        )
        assert checked.returncode == 0, checked.stderr
        self.start(
            "nginx",
            ["nginx", "-p", str(self.root), "-c", str(main), "-g", "daemon off;"],
            f"{self.base_url}/healthz",
        )

    def log(self, name: str) -> str:
        return (self.root / name).read_text(errors="replace")

    def tear_down(self) -> None:
        for name in list(self.processes):
            try:
                self.stop(name)
            except Exception as exc:
                print(f"could not stop {name}: {exc}")
        psql(self.admin_url, "-c", f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)', check=False)
        psql(self.admin_url, "-c", f'DROP DATABASE IF EXISTS "{self.database}_restore_drill" WITH (FORCE)', check=False)
        for role in (self.app_role, self.owner):
            psql(self.admin_url, "-c", f'DROP ROLE IF EXISTS "{role}"', check=False)


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    for tool in ("nginx", "psql", "pg_dump", "openssl"):
        assert shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists(), f"{tool} is needed (.ci/run installs it)"
    the_stack = Stack(tmp_path_factory.mktemp("stack"))
    try:
        started = time.monotonic()
        the_stack.create_database()
        the_stack.make_certificate()
        the_stack.start_web()
        the_stack.start_worker()
        the_stack.start_nginx()
        stage(f"stack up in {time.monotonic() - started:.1f} s: nginx :{the_stack.https_port} -> gunicorn, worker")
        yield the_stack
    finally:
        the_stack.tear_down()


class Inbox:
    """What the SMTP server received; `link` waits for the worker to deliver a message."""

    def __init__(self, port: int) -> None:
        self.controller, self.inbox = start_server(port)

    def link(self, stack: Stack, to: str, subject_contains: str, *, seconds: float = 45) -> str:
        pattern = re.compile(re.escape(stack.base_url) + r"(/\S+)")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in reversed(self.inbox.messages):
                if message["To"] == to and subject_contains in message["Subject"]:
                    body = message.get_payload(decode=True).decode()
                    match = pattern.search(body)
                    assert match, body
                    return match.group(1)
            time.sleep(0.3)
        subjects = [(m["To"], m["Subject"]) for m in self.inbox.messages]
        pytest.fail(f"no email to {to} about {subject_contains!r} within {seconds} s: {subjects}")


def set_up_authenticator(page: Page) -> str:
    expect(page.locator("h1")).to_have_text("Set up an authenticator app")
    secret = setup_key_on(page)
    page.get_by_label("Security code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Save your recovery codes")
    page.get_by_role("link", name="I have saved my recovery codes").click()
    return secret


def accept_staff_invitation(page: Page, base_url: str, path: str) -> str:
    page.goto(base_url + path)
    expect(page.locator("h1")).to_have_text("Set up your staff account")
    page.get_by_label("Create a password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm your password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    secret = set_up_authenticator(page)
    expect(page.locator("h1")).to_have_text("Call recordings admin")
    return secret


def download_sha256(page: Page, secret: str) -> str:
    """On the download page (signing in again with a code if the second factor is no longer fresh), download
    the first recording and return its SHA-256."""
    if "/sign-in" in page.url:
        page.get_by_label("Security code").fill(code_for_next_step(secret))
        page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Your call recordings")
    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile(r"^Download")).first.click()
    return hashlib.sha256(Path(download_info.value.path()).read_bytes()).hexdigest()


@pytest.mark.timeout(900)
def test_a_practice_runs_the_whole_journey_on_the_production_stack(stack: Stack, tmp_path):
    inbox = Inbox(stack.smtp_port)
    register = tmp_path / "register.csv"
    register.write_text(
        "nhs_number,date_of_birth,family_name,given_name,postcode,email\n"
        f"943 476 5919,{date(1955, 12, 10).isoformat()},Lovelace,Ada,SE28 8BE,{PATIENT_EMAIL}\n"
    )
    assert "1 added" in stack.deploy_script("portal", "register", "import", str(register))
    context = ssl._create_unverified_context()  # noqa: S323 (our own self-signed certificate, on loopback)
    with urllib.request.urlopen(stack.base_url + "/", timeout=10, context=context) as response:  # noqa: S310
        assert "Bentham Road, London, SE28 8BE" in response.read().decode()
    printed = stack.deploy_script(
        "portal", "staff", "create-admin", "--email", "alex@practice.example", "--name", "Alex Admin"
    )
    invitation = re.search(re.escape(stack.base_url) + r"(/admin/invitation/\S+)", printed).group(1)

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} (.ci/run installs it)")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            emailed_links = _journey(stack, inbox, browser, invitation)
            browser.close()
    finally:
        inbox.controller.stop()
    _the_access_log_holds_no_token(stack, [invitation, *emailed_links])


def new_page(browser) -> Page:
    context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


def _journey(stack: Stack, inbox: Inbox, browser, invitation: str) -> list[str]:
    """The whole journey; returns the paths of the emailed links it opened."""
    base = stack.base_url
    # The first admin, from the CLI's link; then a second admin (a clinician), invited by email.
    alex = new_page(browser)
    accept_staff_invitation(alex, base, invitation)
    alex.goto(base + "/admin/staff/invite")
    alex.get_by_label("Full name").fill("Bea Clinician")
    alex.get_by_label("Work email address").fill("bea@practice.example")
    alex.get_by_role("group", name="Role").get_by_label("Admin", exact=True).check()
    alex.get_by_label("This person is a clinician and can review recordings before release").check()
    alex.get_by_role("button", name="Send invitation").click()
    expect(alex.locator(".nhsuk-notification-banner")).to_contain_text("Invitation sent to bea@practice.example")
    bea = new_page(browser)
    bea_invitation = inbox.link(stack, "bea@practice.example", "invited")
    accept_staff_invitation(bea, base, bea_invitation)
    stage("two admins set up: one from the CLI's link, one invited by an email the worker delivered")

    # The patient registers (the register holds their email), confirms, sets up an app and asks.
    patient = new_page(browser)
    patient.goto(base + "/")
    patient.locator("header").get_by_role("link", name="Create an account").click()
    fill_registration_form(patient, email=PATIENT_EMAIL)
    patient.get_by_role("button", name="Create account").click()
    expect(patient.locator(".nhsuk-error-summary")).to_have_count(0)
    expect(patient).to_have_url(re.compile(r".*/account/register/check-your-email$"))
    confirmation = inbox.link(stack, PATIENT_EMAIL, "Confirm")
    patient.goto(base + confirmation)
    patient.get_by_label("Password", exact=True).fill(PASSWORD)
    patient.get_by_role("button", name="Confirm my email address").click()
    patient_secret = set_up_authenticator(patient)
    expect(patient.locator("h1")).to_have_text("Your account")
    expect(patient.locator("main")).to_contain_text("your details and email address match the practice's records")
    patient.get_by_role("link", name="Ask for a copy of your call recordings").first.click()
    call_date = patient.get_by_role("group", name="Date of the call")
    call_date.get_by_label("Day").fill("2")
    call_date.get_by_label("Month").fill("11")
    call_date.get_by_label("Year").fill("2026")
    patient.get_by_label("Describe the calls").fill("I rang about my blood test results.")
    patient.get_by_label("Download the recordings").check()
    patient.get_by_role("button", name="Continue").click()
    patient.get_by_role("button", name="Submit request").click()
    expect(patient.locator("h1")).to_have_text("Request sent")
    reference = re.search(r"CR-\d{4}-\d{5}", patient.locator("main").inner_text()).group(0)
    stage(f"patient registered, verified by the register match, and asked: {reference}")

    # Midway: restart the web server and the worker. Nothing is lost; everyone stays signed in.
    stack.stop("web")
    stack.stop("worker")
    stack.start_web()
    stack.start_worker()
    stage("web server and worker restarted")

    alex.goto(f"{base}/admin/requests/{reference}")
    expect(alex.locator("h1")).to_have_text(f"Request {reference}")
    alex.locator("#next-steps").get_by_role("link", name="Attach a recording").click()
    alex.locator("input[type=file][name=recording]").set_input_files(str(WAV))
    alex.get_by_label("Patient called the practice").check()
    alex.get_by_role("button", name="Upload the recording").click()
    expect(alex.locator(".nhsuk-error-summary")).to_have_count(0)
    alex.locator("#next-steps").get_by_role("link", name="Put the recordings forward for approval").click()
    alex.get_by_role("button", name="Put the recordings forward for approval").click()
    expect(alex.locator(".nhsuk-error-summary")).to_have_count(0)

    bea.goto(f"{base}/admin/requests/{reference}/release/approve")
    bea.get_by_label("Clinician who reviewed the recordings").select_option(label="Bea Clinician")
    bea.get_by_label("Outcome of the clinical review").fill("Nothing to withhold.")
    bea.get_by_role("button", name="Approve and email the link").click()
    expect(bea.locator(".nhsuk-error-summary")).to_have_count(0)
    stage("uploaded and prepared by one admin, approved by the other")

    download_path = inbox.link(stack, PATIENT_EMAIL, "recordings are ready")
    assert download_path.startswith("/downloads/")
    patient.goto(base + download_path)
    uploaded = hashlib.sha256(WAV.read_bytes()).hexdigest()
    assert download_sha256(patient, patient_secret) == uploaded
    stage("the patient downloaded the recording from the emailed link; SHA-256 matches the upload")

    _the_portal_role_cannot_change_the_audit_trail(stack)
    _nginx_redirects_and_caches(stack)

    # The restore drill (safe on a live system), then a real disaster: the database is dropped and restored.
    drill = stack.deploy_script("portal-restore-drill", str(stack.root / "drill-backups"), timeout=300)
    assert "OK: " in drill and "every file is present and unchanged" in drill, drill
    stage("restore drill: " + drill.strip().splitlines()[-1])
    backup = stack.deploy_script("portal-backup", str(stack.root / "backups")).strip().splitlines()[-1]
    stack.stop("web")
    stack.stop("worker")
    psql(stack.admin_url, "-c", f'DROP DATABASE "{stack.database}" WITH (FORCE)')
    shutil.rmtree(stack.recordings)
    stack.deploy_script("portal-restore", backup, "--yes", timeout=300)
    stack.start_web()
    stack.start_worker()
    verified = stack.deploy_script("portal", "audit", "verify")
    assert verified.startswith("OK: "), verified
    assert stack.deploy_script("portal", "recordings", "verify").startswith("OK: ")
    patient.goto(base + "/downloads/")
    assert download_sha256(patient, patient_secret) == uploaded
    stage(f"dropped, restored from {Path(backup).name}: {verified.strip()}; the release still downloads")
    return [bea_invitation, confirmation, download_path]


def _the_portal_role_cannot_change_the_audit_trail(stack: Stack) -> None:
    app_url = stack.settings["DATABASE_URL"]
    attempts = {
        "DELETE FROM audit_event WHERE seq = (SELECT max(seq) FROM audit_event)": "permission denied",
        "UPDATE audit_event SET details = '{}' WHERE seq = 1": "permission denied",
        "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only": "must be owner",
        "TRUNCATE audit_anchor": "permission denied",
        "DELETE FROM audit_anchor": "permission denied",
    }
    for statement, refusal in attempts.items():
        result = psql(app_url, "-c", statement, check=False)
        assert result.returncode != 0 and refusal in result.stderr, (statement, result.stdout, result.stderr)
    anchors = psql(app_url, "-tA", "-c", "SELECT count(*) FROM audit_anchor").stdout.strip()
    assert int(anchors) >= 1, "the worker's daily check should have anchored the chain on start-up"
    stage("the portal's role cannot delete, change or unprotect the audit trail; anchors: " + anchors)


def _nginx_redirects_and_caches(stack: Stack) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.http_port}/call-recording-notice?x=1", headers={"Host": "evil.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=10)
    assert redirect.value.code == 301
    assert redirect.value.headers["Location"] == f"{stack.base_url}/call-recording-notice?x=1"

    context = ssl._create_unverified_context()  # noqa: S323 (our own self-signed certificate)
    with urllib.request.urlopen(stack.base_url + "/", timeout=10, context=context) as response:  # noqa: S310
        page = response.read().decode()
    css = re.search(r'href="(/static/css/portal\.css\?v=[^"]+)"', page).group(1)
    with urllib.request.urlopen(stack.base_url + css, timeout=10, context=context) as response:  # noqa: S310
        assert "immutable" in response.headers["Cache-Control"]
        assert response.headers["Server"] == "nginx"
    with urllib.request.urlopen(stack.base_url + "/healthz", timeout=10, context=context) as response:  # noqa: S310
        assert json.loads(response.read())["worker"] == "ok"
    with urllib.request.urlopen(stack.base_url + "/healthz/worker", timeout=10, context=context) as response:  # noqa: S310
        assert json.loads(response.read())["status"] == "ok"  # loopback may ask; the nginx file allows it
    stage("HTTP goes to HTTPS on the configured name; versioned static files are immutable for a year; healthz")


def _the_access_log_holds_no_token(stack: Stack, printed_links: list[str]) -> None:
    log = stack.log("call-recording-portal.access.log")
    errors = (
        stack.log("call-recording-portal.error.log")
        if (stack.root / "call-recording-portal.error.log").exists()
        else ""
    )
    for marker in ("/admin/invitation/<token>", "/account/confirm-email/<token>", "/downloads/<token>"):
        assert marker in log, marker
    tokens = {link.rsplit("/", 1)[1] for link in printed_links}
    tokens |= set(re.findall(r"/(?:downloads|invitation|confirm-email)/([A-Za-z0-9._-]{20,})", log))
    leaked = [token for token in tokens if token in log or token in errors]
    assert leaked == [], leaked
    # nginx's request id (the last field of each line) is the one the portal put in its audit trail.
    nginx_ids = {line.rsplit(" ", 1)[-1] for line in log.splitlines()}
    audited = psql(
        stack.settings["DATABASE_URL"],
        "-tA",
        "-c",
        "SELECT DISTINCT request_id FROM audit_event WHERE request_id IS NOT NULL",
    ).stdout.split()
    assert audited and set(audited) <= nginx_ids, (audited[:5], sorted(nginx_ids)[:5])
    stage(f"nginx's access log ({len(log.splitlines())} lines) names every emailed link without its token")
