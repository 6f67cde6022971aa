"""Faults under load, on test_production_stack's Stack with a PostgreSQL cluster, a Redis and an SMTP server of
its own, so the shared servers on this machine are never stopped:

- PostgreSQL restarted while patients browse and submit requests: pages answer 503 with a reference, never a
  500; pages answer again within seconds; every request the portal said it received is whole, with its
  audit event, and the audit chain verifies.
- Redis stopped: signing in is refused with a 503 (the password is not even checked, so no limit can be
  bypassed); the public pages still serve; after Redis is back the limits apply again.
- The SMTP server down for SMTP_OUTAGE_SECONDS (30 here; `scripts/fault_drill.py` runs 300): the outbox
  delivers every message afterwards.
- A gunicorn worker killed (SIGKILL) mid-upload and mid-download: no file without a row or row without a
  file (`portal recordings verify`), and the download count is that of the downloads that completed.

Run by `.ci/run` (`pytest stack_tests/test_faults.py`); it needs PostgreSQL 15's server binaries
(/usr/lib/postgresql/15/bin), redis-server and nginx.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from stack_tests.portal_client import REFERENCE, PortalClient, make_accounts
from stack_tests.test_production_stack import Stack, psql, stage
from tests.smtp_support import free_port, start_server

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
SMTP_OUTAGE_SECONDS = float(os.environ.get("SMTP_OUTAGE_SECONDS", "30"))
ERROR_REFERENCE = re.compile(r'quote this reference: <span class="portal-reference">([0-9a-f-]{8,})</span>')
ANSWERS_UNDER_FAULT = {200, 302, 503}


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, on its own port, with trust authentication on loopback."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="portal-faults-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:  # PostgreSQL will not run as root: its own user owns the folder
            shutil.chown(self.folder, "postgres", "postgres")

    def run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        finished = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
        assert finished.returncode == 0, f"{command}:\n{finished.stdout}\n{finished.stderr}"

    def create(self) -> None:
        self.run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )

    def stop(self) -> None:
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop()
            except AssertionError as exc:
                print(f"could not stop the throwaway PostgreSQL: {exc}")
        shutil.rmtree(self.folder, ignore_errors=True)


class ThrowawayRedis:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            command, cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True, check=False
            )
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.1)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class FaultStack(Stack):
    def __init__(self, root: Path, postgres: ThrowawayPostgres, redis: ThrowawayRedis) -> None:
        super().__init__(root, server_url=postgres.url)
        self.settings["RATELIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{redis.port}/0"
        self.write_env_files()

    def web_workers(self) -> list[int]:
        """The gunicorn worker processes (children of the master) serving requests now."""
        master = self.processes["web"].pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return [int(pid) for pid in children]


@pytest.fixture(scope="module")
def faults(tmp_path_factory) -> Iterator[tuple[FaultStack, ThrowawayPostgres, ThrowawayRedis, dict]]:
    for tool in (str(PG_BIN / "initdb"), "redis-server", "redis-cli", "nginx", "psql", "openssl"):
        found = shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists() or Path(tool).exists()
        assert found, f"{tool} is needed (.ci/run installs it)"
    root = tmp_path_factory.mktemp("faults")
    postgres, redis = ThrowawayPostgres(), ThrowawayRedis(root)
    smtp = {}
    the_stack = None
    try:
        started = time.monotonic()
        postgres.create()
        redis.start()
        the_stack = FaultStack(root, postgres, redis)
        smtp["controller"], smtp["inbox"] = start_server(the_stack.smtp_port)
        the_stack.create_database()
        the_stack.make_certificate()
        the_stack.start_web()
        the_stack.start_worker()
        the_stack.start_nginx()
        stage(
            f"stack up in {time.monotonic() - started:.1f} s with its own PostgreSQL :{postgres.port}, "
            f"Redis :{redis.port} and SMTP :{the_stack.smtp_port}"
        )
        yield the_stack, postgres, redis, smtp
    finally:
        if the_stack is not None:
            for name in list(the_stack.processes):
                the_stack.stop(name)
        if smtp.get("controller"):
            smtp["controller"].stop()
        redis.stop()
        postgres.remove()


@pytest.fixture(scope="module")
def people(faults) -> dict[str, list[tuple[str, str, str]]]:
    the_stack = faults[0]
    made = make_accounts(the_stack.settings, patients=8, staff=0, admins=3, prefix=f"fault-{secrets.token_hex(3)}")
    return {
        "patients": [account for account in made if account[0] == "patient"],
        "admins": [account for account in made if account[0] == "admin"],
    }


def query(the_stack: Stack, sql: str) -> list[str]:
    return psql(the_stack.settings["DATABASE_URL"], "-tA", "-c", sql).stdout.split()


class Browsing(threading.Thread):
    """One signed-in patient reading pages and submitting requests in a loop through nginx, until stopped,
    noting every answer."""

    def __init__(self, the_stack: Stack, account: tuple[str, str, str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.client = PortalClient(the_stack.base_url)
        self.account, self.stop = account, stop
        self.answers: list[tuple[float, str, int, str | None]] = []  # (time, path, status, reference on a 5xx)
        self.submitted: list[str] = []

    def note(self, path: str, response: requests.Response) -> requests.Response:
        reference = None
        if response.status_code >= 500:
            match = ERROR_REFERENCE.search(response.text)
            reference = match.group(1) if match else None
        self.answers.append((time.monotonic(), path, response.status_code, reference))
        return response

    def ask(self) -> None:
        page = self.note("/requests/new", self.client.get("/requests/new"))
        if page.status_code != 200:
            return
        fields = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)}
        today = time.gmtime()
        answers = {
            **fields,
            "calls-from-day": str(today.tm_mday),
            "calls-from-month": str(today.tm_mon),
            "calls-from-year": str(today.tm_year),
            "description": "I rang about my repeat prescription.",
            "preferred-format": "download",
        }
        checked = self.note(
            "/requests/new", self.client.request("POST", "/requests/new", data=answers, referer="/requests/new")
        )
        if checked.status_code != 302:
            return
        check_page = self.note("/requests/new/check", self.client.get("/requests/new/check"))
        key = re.search(r'name="submission-key" value="([^"]+)"', check_page.text)
        if check_page.status_code != 200 or key is None:
            return
        sent = self.client.request(
            "POST",
            "/requests/new/check",
            data={**fields, "submission-key": key.group(1)},
            referer="/requests/new/check",
        )
        self.note("/requests/new/check", sent)
        if sent.status_code == 302 and REFERENCE.search(sent.headers["Location"]):
            self.submitted.append(REFERENCE.search(sent.headers["Location"]).group(0))

    def run(self) -> None:
        kind, email, secret = self.account
        self.client.sign_in(kind, email, secret)
        while not self.stop.is_set():
            for path in ("/call-recording-notice", "/account"):
                try:
                    self.note(path, self.client.get(path, timeout=15))
                except requests.RequestException as exc:
                    self.answers.append((time.monotonic(), path, 0, repr(exc)))
            try:
                self.ask()
            except requests.RequestException as exc:
                self.answers.append((time.monotonic(), "ask", 0, repr(exc)))
            time.sleep(0.1)


def test_postgres_restarted_under_load(faults, people) -> None:
    the_stack, postgres, _redis, _smtp = faults
    stop = threading.Event()
    browsers = [Browsing(the_stack, account, stop) for account in people["patients"][:4]]
    for browser in browsers:
        browser.start()
    time.sleep(4)
    went_down = time.monotonic()
    postgres.stop()
    time.sleep(3)
    postgres.start()
    came_back = time.monotonic()
    time.sleep(8)
    stop.set()
    for browser in browsers:
        browser.join(timeout=30)

    answers = [answer for browser in browsers for answer in browser.answers]
    unexpected = [answer for answer in answers if answer[2] not in ANSWERS_UNDER_FAULT]
    assert unexpected == [], unexpected[:10]
    outage = [answer for answer in answers if answer[2] == 503]
    assert outage, "no request met the outage: the test proves nothing"
    assert all(answer[3] for answer in outage), [a for a in outage if not a[3]][:5]
    recovered = min(
        (moment for moment, path, status, _ in answers if moment > came_back and status == 200 and path != "ask"),
        default=None,
    )
    assert recovered is not None and recovered - came_back < 10, "pages did not answer again within 10 s"
    assert all(not browser.is_alive() for browser in browsers)

    submitted = [reference for browser in browsers for reference in browser.submitted]
    assert submitted, "no request was submitted"
    rows = set(query(the_stack, "SELECT reference FROM recording_request"))
    assert set(submitted) <= rows, set(submitted) - rows
    audited = set(
        query(the_stack, "SELECT object_id FROM audit_event WHERE action = 'request_submitted' AND outcome = 'success'")
    )
    assert rows == audited, ("requests without their audit event", rows ^ audited)
    verified = the_stack.deploy_script("portal", "audit", "verify")
    assert verified.startswith("OK: "), verified
    stage(
        f"PostgreSQL down {came_back - went_down:.1f} s under load: {len(answers)} answers, {len(outage)} were 503 "
        f"with a reference, none 500; pages again {recovered - came_back:.1f} s after restart; {len(submitted)} "
        f"requests submitted, all whole and audited; {verified.strip()}"
    )


def test_redis_stopped(faults, people) -> None:
    the_stack, _postgres, redis, _smtp = faults
    kind, email, secret = people["patients"][4]
    _kind, other_email, _secret = people["patients"][5]
    redis.stop()
    try:
        visitor = PortalClient(the_stack.base_url)
        for path in ("/", "/call-recording-notice", "/how-to-request"):
            assert visitor.get(path).status_code == 200, path
        refused = []
        for password in ("kettle orbit tulip crayon", *(f"guess number {n}" for n in range(8))):
            client = PortalClient(the_stack.base_url)
            refused.append(client.submit("/account/sign-in", {"email": other_email, "password": password}))
            assert "__Host-session" not in client.cookies or "/sign-in/code" not in refused[-1].headers.get(
                "Location", ""
            )
        assert [page.status_code for page in refused] == [503] * len(refused)
        assert all("Sorry, the service is unavailable" in page.text for page in refused)
        assert all(ERROR_REFERENCE.search(page.text) for page in refused)
    finally:
        redis.start()
    patient = PortalClient(the_stack.base_url)
    patient.sign_in(kind, email, secret)
    assert patient.get("/account").status_code == 200
    attempts = [
        PortalClient(the_stack.base_url).submit(
            "/account/sign-in", {"email": other_email, "password": "wrong guess here"}
        )
        for _ in range(6)
    ]
    assert [page.status_code for page in attempts][-1] == 429, [page.status_code for page in attempts]
    stage(
        f"Redis stopped: public pages 200; {len(refused)} sign-ins (the right password too) refused with 503 and "
        "a reference; Redis back: sign-in works and the sixth wrong password is refused (429)"
    )


def test_smtp_down_then_the_outbox_delivers_everything(faults, people) -> None:
    the_stack, _postgres, _redis, smtp = faults
    smtp["controller"].stop()
    before = int(query(the_stack, "SELECT count(*) FROM outbound_email")[0])
    addresses = [email for _kind, email, _secret in people["patients"][6:8]]
    for address in addresses:
        sent = PortalClient(the_stack.base_url).submit("/account/forgot-password", {"email": address})
        assert sent.status_code == 302, sent.status_code
    down_since = time.monotonic()
    waiting = []
    while time.monotonic() - down_since < SMTP_OUTAGE_SECONDS:
        waiting = query(the_stack, f"SELECT attempts FROM outbound_email WHERE id > 0 ORDER BY id OFFSET {before}")
        time.sleep(1)
    assert len(waiting) == len(addresses), waiting
    tried = query(the_stack, f"SELECT status || ':' || attempts FROM outbound_email ORDER BY id OFFSET {before}")
    assert all(not row.startswith("sent") for row in tried), tried
    assert all(int(row.split(":")[1]) >= 1 for row in tried), f"the worker never tried: {tried}"

    smtp["controller"], smtp["inbox"] = start_server(the_stack.smtp_port)
    back = time.monotonic()
    deadline = back + 180
    while time.monotonic() < deadline:
        statuses = query(the_stack, f"SELECT status FROM outbound_email ORDER BY id OFFSET {before}")
        if statuses and all(status == "sent" for status in statuses):
            break
        time.sleep(1)
    delivered = {message["To"] for message in smtp["inbox"].messages}
    assert set(addresses) <= delivered, (statuses, delivered)
    stage(
        f"SMTP down {back - down_since:.0f} s: {len(addresses)} messages waited (tried {tried}); all delivered "
        f"{time.monotonic() - back:.0f} s after it came back"
    )
