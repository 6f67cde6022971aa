"""The README's development commands, run as a new user runs them: `make run` serving in one process group,
each command in a process of its own, all against one instance folder (a temporary one here).

In-process tests cannot see what this catches: a link printed by the CLI that the running server refuses
(keys differing between processes), a link that dies when the server restarts, a link to the wrong port, and
emails that never appear because nothing delivers the outbox while `make run` serves.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from tests.smtp_support import free_port

REGISTER_CSV = """nhs_number,date_of_birth,family_name,given_name,postcode,email
943 476 5919,1955-12-10,Lovelace,Ada,SE28 8BE,
"""


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def development_env(instance: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key not in ("TEST_DATABASE_URL", "PORT")}
    env.update(PORTAL_ENV="development", PORTAL_INSTANCE_PATH=str(instance), PYTHONUNBUFFERED="1")
    return env


class MakeRun:
    """`make run PORT=…` in a process group of its own, its output collected in a file."""

    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            ["make", "run", f"PORT={self.port}"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None, self.output()
                time.sleep(0.3)
        pytest.fail(f"make run did not serve within 2 minutes:\n{self.output()}")

    def stop(self) -> None:
        """Ctrl+C, as a developer stops it: one interrupt to the group stops the server and the worker."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def make(env: dict, *args: str) -> str:
    finished = subprocess.run(
        ["make", "-s", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert finished.returncode == 0, f"make {' '.join(args)}:\n{finished.stdout}\n{finished.stderr}"
    return finished.stdout


def status_and_location(url: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(NoRedirects)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Location")


def register_a_patient(base_url: str, email: str) -> None:
    """Create an account through the real form, as a browser would (cookie, CSRF token, same-origin post)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base_url + "/account/register", timeout=10) as response:
        page = response.read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    password = "lantern pebble orchid quiver"
    form = {
        "csrf_token": token,
        "given-name": "Grace",
        "family-name": "Hopper",
        "dob-day": "9",
        "dob-month": "12",
        "dob-year": "1956",
        "nhs-number": "401 023 2137",
        "postcode": "SE28 8BE",
        "email": email,
        "password": password,
        "confirm-password": password,
        "terms": "yes",
    }
    request = urllib.request.Request(  # noqa: S310 (loopback)
        base_url + "/account/register",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": base_url + "/account/register"},
    )
    with opener.open(request, timeout=30) as response:
        assert response.status == 200
        assert response.url.endswith("/account/register/check-your-email")


@pytest.mark.timeout(600)
def test_the_readme_development_commands_work_as_separate_processes(tmp_path):
    instance = tmp_path / "instance"
    env = development_env(instance)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = MakeRun(env, port, tmp_path / "make-run.log")
    server.start()
    try:
        # The first admin: the link the CLI prints names the running server's port, and that server opens it.
        printed = make(env, "admin", "EMAIL=first.admin@practice.example", "NAME=First Admin")
        link = re.search(r"(http://\S+/admin/invitation/\S+)", printed).group(1)
        assert link.startswith(base_url + "/admin/invitation/"), printed
        assert status_and_location(link) == (303, "/admin/invitation")

        # The register import, the legal clock and the audit check, each its own process.
        register = tmp_path / "register.csv"
        register.write_text(REGISTER_CSV)
        assert "Imported register.csv: 1 added" in make(env, "register-import", f"FILE={register}")
        assert "Reply due by: Monday 5 October 2026" in make(env, "due-date", "DATE=2026-09-03")
        assert "Reply due by (extended): Thursday 3 December 2026" in make(
            env, "due-date", "DATE=2026-09-03", "EXTENDED=1"
        )
        assert re.search(r"^OK: \d+ audit events checked; the chain is intact\.$", make(env, "audit-verify"), re.M)

        # An email queued by the server appears in make run's terminal, written by the worker, within seconds.
        register_a_patient(base_url, "grace@example.org")
        deadline = time.monotonic() + 30
        while "to grace@example.org: Confirm your email address" not in server.output():
            assert time.monotonic() < deadline, server.output()[-3000:]
            time.sleep(0.3)
        emailed = re.search(rf"({re.escape(base_url)}/account/confirm-email/\S+)", server.output())
        assert emailed, server.output()[-3000:]

        # Ctrl+C stops both processes; after a restart the printed and the emailed links still work.
        server.stop()
        assert server.process.returncode is not None
        server.start()
        assert status_and_location(link) == (303, "/admin/invitation")
        assert status_and_location(emailed.group(1)) == (303, "/account/confirm-email")
        assert "Worker: last seen" in make(env, "jobs")
    finally:
        server.stop()
