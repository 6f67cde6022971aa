"""The people of scripts/load_test.py, for locust (which runs this file in a process of its own):

- readers (weight 5): anonymous visitors reading the home page, the notice and how to ask;
- patients (weight 3): each signs in once with their own account (password, then a code from their
  authenticator's secret), then looks at their account and requests and now and then submits a new request;
- staff (weight 2): each signs in once, then works the queue: the list, a request's page, and the recording
  on it (the audio the page's player downloads).

The accounts and the requests with recordings come from the JSON file named by LOAD_TEST_ACCOUNTS (written by
load_test.py); each submitted request's reference is appended to LOAD_TEST_SUBMITTED. Every simulated person
connects from an address of their own on loopback (127.0.x.y), as real visitors come from different
addresses, so the per-address sign-in limit applies to each as it would in production.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import urllib3
from locust import HttpUser, between, task
from requests.adapters import HTTPAdapter

ACCOUNTS = json.loads(Path(os.environ["LOAD_TEST_ACCOUNTS"]).read_text())
SUBMITTED = Path(os.environ["LOAD_TEST_SUBMITTED"])
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SUBMISSION_KEY = re.compile(r'name="submission-key" value="([^"]+)"')
REFERENCE = re.compile(r"CR-\d{4}-\d{5}")
AUDIO = re.compile(r'src="(/admin/requests/CR-\d{4}-\d{5}/recordings/[^"/]+/audio)"')

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # our own certificate, on loopback
_lock = threading.Lock()
_addresses = itertools.count(2)
_patients = iter(ACCOUNTS["patients"])
_staff = iter(ACCOUNTS["staff"])


class FromAddress(HTTPAdapter):
    """Connect from one loopback address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Person(HttpUser):
    abstract = True
    wait_time = between(1, 3)

    def on_start(self) -> None:
        with _lock:
            number = next(_addresses)
        self.client.mount("https://", FromAddress(f"127.0.{number // 250}.{number % 250 + 1}"))
        self.client.verify = False  # our own self-signed certificate, on loopback

    def post_form(self, path: str, data: dict, *, form_page: str | None = None, name: str | None = None):
        """POST `data` with the CSRF token of the form on `form_page` (default `path`), as a browser would."""
        with self.client.get(form_page or path, name=name or form_page or path, catch_response=True) as page:
            token = CSRF.search(page.text)
            if token is None:
                page.failure(f"no form on {page.url}")
                return None
        return self.client.post(
            path,
            data={"csrf_token": token.group(1), **data},
            headers={"Referer": self.host + (form_page or path)},
            name=name or path,
        )

    def sign_in(self, prefix: str, account: dict) -> None:
        self.post_form(f"{prefix}/sign-in", {"email": account["email"], "password": account["password"]})
        code = pyotp.TOTP(account["secret"]).at(datetime.now(UTC))
        with self.client.post(
            f"{prefix}/sign-in/code",
            data={"csrf_token": self._token(f"{prefix}/sign-in/code"), "code": code},
            headers={"Referer": f"{self.host}{prefix}/sign-in/code"},
            name=f"{prefix}/sign-in/code",
            catch_response=True,
        ) as response:
            if "/sign-in" in response.url:
                response.failure(f"not signed in: {response.url}")

    def _token(self, path: str) -> str:
        with self.client.get(path, name=path, catch_response=True) as page:
            match = CSRF.search(page.text)
            if match is None:
                page.failure(f"no form on {page.url}")
            return match.group(1) if match else ""


class Reader(Person):
    weight = 5

    @task(2)
    def home(self) -> None:
        self.client.get("/")

    @task(3)
    def notice(self) -> None:
        self.client.get("/call-recording-notice")

    @task(1)
    def how_to_request(self) -> None:
        self.client.get("/how-to-request")


class Patient(Person):
    weight = 3

    def on_start(self) -> None:
        super().on_start()
        with _lock:
            self.account = next(_patients)
        self.sign_in("/account", self.account)

    @task(3)
    def account_page(self) -> None:
        self.client.get("/account")

    @task(2)
    def requests_list(self) -> None:
        self.client.get("/requests")

    @task(1)
    def ask_for_recordings(self) -> None:
        today = datetime.now(UTC).date()
        answers = {
            "calls-from-day": str(today.day),
            "calls-from-month": str(today.month),
            "calls-from-year": str(today.year),
            "description": secrets.choice(["About my blood test results.", "About a referral.", "My prescription."]),
            "preferred-format": "download",
        }
        if self.post_form("/requests/new", answers) is None:
            return
        check = self.client.get("/requests/new/check")
        token, key = CSRF.search(check.text), SUBMISSION_KEY.search(check.text)
        if token is None or key is None:
            return
        with self.client.post(
            "/requests/new/check",
            data={"csrf_token": token.group(1), "submission-key": key.group(1)},
            headers={"Referer": f"{self.host}/requests/new/check"},
            catch_response=True,
        ) as sent:
            reference = REFERENCE.search(sent.url)
            if reference is None:
                sent.failure(f"no reference after submitting: {sent.url}")
                return
        with _lock, SUBMITTED.open("a") as submitted:
            submitted.write(reference.group(0) + "\n")


class Staff(Person):
    weight = 2

    def on_start(self) -> None:
        super().on_start()
        with _lock:
            self.account = next(_staff)
        self.sign_in("/admin", self.account)

    @task(3)
    def queue(self) -> None:
        self.client.get("/admin/requests")

    @task(2)
    def request_page(self) -> None:
        self.client.get(f"/admin/requests/{secrets.choice(ACCOUNTS['references'])}", name="/admin/requests/[reference]")

    @task(1)
    def download_recording(self) -> None:
        page = self.client.get(
            f"/admin/requests/{secrets.choice(ACCOUNTS['references'])}", name="/admin/requests/[reference]"
        )
        audio = AUDIO.search(page.text)
        if audio is None:
            return
        with self.client.get(
            audio.group(1), name="/admin/requests/[reference]/recordings/[id]/audio", catch_response=True
        ) as file:
            if len(file.content) != ACCOUNTS["recording_bytes"]:
                file.failure(f"{len(file.content)} bytes, not {ACCOUNTS['recording_bytes']}")
