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

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from stack_tests.portal_client import REFERENCE, PortalClient, form_fields, installation_app, make_accounts
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
        # One worker process (with its threads), so the one serving an upload or a download is known.
        self.settings["GUNICORN_WORKERS"] = "1"
        self.write_env_files()

    def web_worker(self) -> int:
        """The gunicorn worker process (the master's one child) serving requests now."""
        master = self.processes["web"].pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def kill_web_worker(self) -> None:
        """SIGKILL the worker, then wait for gunicorn's master to start a new one that answers."""
        killed = self.web_worker()
        os.kill(killed, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                healthz = PortalClient.direct(self.web_port, self.base_url).get("/healthz", timeout=2)
                if self.web_worker() != killed and healthz.status_code == 200:
                    return
            except (AssertionError, OSError, requests.RequestException):
                pass
            time.sleep(0.2)
        pytest.fail("gunicorn did not replace the killed worker within 30 s")


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
    made = make_accounts(
        the_stack.settings, patients=10, admins=3, prefix=f"fault-{secrets.token_hex(3)}", clinicians=True
    )
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
        f"with a reference, the rest 200 or a redirect; pages again {recovered - came_back:.1f} s after restart; "
        f"{len(submitted)} requests submitted, all whole and audited; {verified.strip()}"
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


def outbox(the_stack: Stack, addresses: list[str]) -> list[tuple[str, int]]:
    """(status, attempts) of every message to `addresses`."""
    rows = query(the_stack, "SELECT to_address || '|' || status || '|' || attempts FROM outbound_email ORDER BY id")
    return [(status, int(attempts)) for to, status, attempts in (row.split("|") for row in rows) if to in addresses]


def test_smtp_down_then_the_outbox_delivers_everything(faults, people) -> None:
    the_stack, _postgres, _redis, smtp = faults
    smtp["controller"].stop()
    addresses = [email for _kind, email, _secret in people["patients"][6:8]]
    for address in addresses:
        sent = PortalClient(the_stack.base_url).submit("/account/forgot-password", {"email": address})
        assert sent.status_code == 302, sent.status_code
    down_since = time.monotonic()
    time.sleep(SMTP_OUTAGE_SECONDS)
    waited = outbox(the_stack, addresses)
    assert len(waited) == len(addresses), waited
    assert all(status == "pending" and attempts >= 1 for status, attempts in waited), f"not tried, or sent: {waited}"

    smtp["controller"], smtp["inbox"] = start_server(the_stack.smtp_port)
    back = time.monotonic()
    # The next retry is at most about as far off as the outage was long (the delays double from a minute).
    deadline = back + max(180, SMTP_OUTAGE_SECONDS + 120)
    while time.monotonic() < deadline and not all(status == "sent" for status, _ in outbox(the_stack, addresses)):
        time.sleep(1)
    delivered = {message["To"] for message in smtp["inbox"].messages}
    assert set(addresses) <= delivered, (outbox(the_stack, addresses), delivered)
    stage(
        f"SMTP down {back - down_since:.0f} s: {len(addresses)} messages waited, each tried (status, attempts): "
        f"{waited}; all delivered {time.monotonic() - back:.0f} s after it came back"
    )


def long_recording(folder: Path, seconds: int = 1800) -> Path:
    """A real WAV file of silence, large enough (8 kHz, 16-bit: about 29 MB) to be mid-transfer when killed."""
    path = folder / "long-call.wav"
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 8000 * seconds)
    return path


def multipart(fields: dict[str, str], file_name: str, path: Path, boundary: str, *, pause_after: int):
    """The upload form's body, sent slowly once `pause_after` bytes of the file have gone (so a worker can be
    killed while it is still reading it)."""
    for name, value in fields.items():
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="recording"; filename="{file_name}"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    sent = 0
    with path.open("rb") as audio:
        while chunk := audio.read(64 * 1024):
            yield chunk
            sent += len(chunk)
            if sent >= pause_after:
                time.sleep(0.2)
    yield f"\r\n--{boundary}--\r\n".encode()


def recordings_on_disk(the_stack: Stack) -> list[str]:
    return sorted(path.name for path in the_stack.recordings.rglob("*") if path.is_file())


def test_a_worker_killed_mid_upload_and_mid_download(faults, people, tmp_path) -> None:
    the_stack = faults[0]
    recording = long_recording(tmp_path)
    _kind, email, secret = people["patients"][8]
    patient = PortalClient.direct(the_stack.web_port, the_stack.base_url)
    patient.sign_in("patient", email, secret)
    reference = patient.ask_for_recordings("I rang about my referral letter.")
    (_k, preparer_email, preparer_secret), (_k2, approver_email, _s) = people["admins"][:2]
    admin = PortalClient.direct(the_stack.web_port, the_stack.base_url)
    admin.sign_in("admin", preparer_email, preparer_secret)
    upload_page = f"/admin/requests/{reference}/upload"
    fields = {"csrf_token": admin.form(upload_page)["csrf_token"], "direction": "inbound"}
    boundary = secrets.token_hex(16)

    # Mid-upload: the worker is killed while it reads the file, straight from gunicorn (nginx would buffer it).
    def upload() -> None:
        with contextlib.suppress(requests.RequestException):  # the connection dies with the worker
            admin.request(
                "POST",
                f"/admin/requests/{reference}/recordings",
                referer=upload_page,
                data=multipart(fields, "long-call.wav", recording, boundary, pause_after=2_000_000),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                timeout=60,
            )

    uploading = threading.Thread(target=upload, daemon=True)
    uploading.start()
    time.sleep(2)
    assert uploading.is_alive(), "the upload finished before the worker could be killed"
    the_stack.kill_web_worker()
    uploading.join(timeout=60)
    rows = query(the_stack, "SELECT count(*) FROM recording")
    assert rows == ["0"] and recordings_on_disk(the_stack) == [], (rows, recordings_on_disk(the_stack))
    checked = the_stack.deploy_script("portal", "recordings", "verify")
    assert checked.startswith("OK: "), checked
    stage(f"gunicorn's worker killed mid-upload: no recording row, no file left behind; {checked.strip()}")

    # The same file uploads whole once the new worker is up, then is released to the patient.
    with recording.open("rb") as audio:
        uploaded = admin.request(
            "POST",
            f"/admin/requests/{reference}/recordings",
            referer=upload_page,
            data=fields,
            files={"recording": ("long-call.wav", audio, "audio/wav")},
            timeout=120,
        )
    assert uploaded.status_code == 302, uploaded.text[:2000]
    with installation_app(the_stack.settings):
        from core.extensions import db
        from core.models.accounts import StaffUser
        from core.models.requests import RecordingRequest
        from core.services import releases

        req = db.session.execute(select(RecordingRequest).where(RecordingRequest.reference == reference)).scalar_one()
        preparer, approver = (
            db.session.execute(select(StaffUser).where(StaffUser.email == address)).scalar_one()
            for address in (preparer_email, approver_email)
        )
        releases.prepare_release(preparer, req)
        db.session.commit()
        link = releases.approve_release(approver, req)
    assert patient.get(urlsplit(link).path).status_code in (200, 302, 303)
    page = patient.get("/downloads/")
    assert page.status_code == 200, page.status_code
    action = re.search(r'action="(/downloads/recordings/[^"]+)"', page.text).group(1)
    token = form_fields(page.text)["csrf_token"]

    # Mid-download: the patient's browser has read a little of the file when the worker is killed.
    downloading = patient.request("POST", action, referer="/downloads/", data={"csrf_token": token}, stream=True)
    assert downloading.status_code == 200, downloading.status_code
    received = len(next(downloading.iter_content(64 * 1024)))
    the_stack.kill_web_worker()
    with pytest.raises(requests.RequestException):
        received += sum(len(chunk) for chunk in downloading.iter_content(64 * 1024))
    size = recording.stat().st_size
    assert received < size, "the download finished before the worker was killed"
    counted = query(the_stack, "SELECT download_count FROM release_item")
    audited = query(
        the_stack, "SELECT count(*) FROM audit_event WHERE action = 'recording_downloaded' AND outcome = 'success'"
    )
    assert counted == audited == ["1"], (counted, audited)

    # The patient downloads again: the whole file, counted once more; every file still matches its row.
    page = patient.get("/downloads/")
    again = patient.request("POST", action, referer="/downloads/", data={"csrf_token": token}, timeout=120)
    assert again.status_code == 200 and len(again.content) == size, (again.status_code, len(again.content))
    assert query(the_stack, "SELECT download_count FROM release_item") == ["2"]
    checked = the_stack.deploy_script("portal", "recordings", "verify")
    assert checked.startswith("OK: "), checked
    assert len(recordings_on_disk(the_stack)) == 1, recordings_on_disk(the_stack)
    stage(
        f"gunicorn's worker killed mid-download ({received} of {size} bytes sent): the download counted once and "
        f"audited once; the next one arrived whole and counted as the second; {checked.strip()}"
    )
