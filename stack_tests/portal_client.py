"""A plain HTTP client for the running portal, for the stack tests and scripts/load_test.py: it fills in forms
as a browser does (CSRF token, Referer) and keeps the session cookie itself.

`PortalClient(base_url)` talks to nginx over HTTPS. `PortalClient.direct(web_port, base_url)` talks to one
gunicorn instance on loopback and sends the headers nginx would (Host, X-Forwarded-*), so one installation's
hosts can be addressed one at a time; the cookie is the same either way. Accounts are made in the database
by `make_accounts`, with an app built from the installation's own settings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

import pyotp
import requests
from bs4 import BeautifulSoup

PASSWORD = "kettle orbit tulip crayon"
SESSION_COOKIE = "__Host-session"
REFERENCE = re.compile(r"CR-\d{4}-\d{5}")


class PortalClient:
    def __init__(self, base_url: str, *, origin: str | None = None, headers: dict | None = None) -> None:
        self.base_url = base_url  # the portal's public address (PUBLIC_BASE_URL): Referer and links
        self.origin = origin or base_url  # where requests are sent
        self.headers = headers or {}
        self.http = requests.Session()
        self.cookies: dict[str, str] = {}

    @classmethod
    def direct(cls, web_port: int, base_url: str) -> PortalClient:
        """One gunicorn instance, as nginx reaches it."""
        public = urlsplit(base_url)
        headers = {
            "Host": public.hostname,
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": public.hostname,
            "X-Forwarded-Port": str(public.port or 443),
        }
        return cls(base_url, origin=f"http://127.0.0.1:{web_port}", headers=headers)

    def on(self, other: PortalClient) -> PortalClient:
        """This browser (its cookies) talking to `other`'s host."""
        moved = type(self)(other.base_url, origin=other.origin, headers=other.headers)
        moved.cookies = self.cookies
        return moved

    # --- requests -----------------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, referer: str | None = None, **kwargs) -> requests.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if referer:
            headers["Referer"] = self.base_url + referer
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("verify", False)  # our own self-signed certificate, on loopback
        response = self.http.request(method, self.origin + path, headers=headers, **kwargs)
        self.http.cookies.clear()  # the cookie is kept here, for whichever host is asked next
        for header in response.raw.headers.getlist("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
                if expired or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def form(self, path: str, form_index: int = -1) -> dict[str, str]:
        """The fields of a form on `path` as a browser would send them untouched (hidden inputs, typed
        values, checked boxes, the selected options), with its CSRF token."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        return form_fields(page.text, form_index)

    def submit(self, path: str, data: dict, *, form_page: str | None = None, files=None) -> requests.Response:
        """POST `data` to `path` with the CSRF token of the form on `form_page` (default: `path`)."""
        page = form_page or path
        fields = self.form(page)
        return self.request("POST", path, data={"csrf_token": fields["csrf_token"], **data}, referer=page, files=files)

    # --- journeys -----------------------------------------------------------------------------------------
    def sign_in(self, kind: str, email: str, secret: str, *, password: str = PASSWORD) -> None:
        prefix = "/account" if kind == "patient" else "/admin"
        step = self.submit(f"{prefix}/sign-in", {"email": email, "password": password})
        assert step.status_code == 302 and "/sign-in/code" in step.headers["Location"], (
            step.status_code,
            step.text[:500],
        )
        done = self.submit(f"{prefix}/sign-in/code", {"code": pyotp.TOTP(secret).at(datetime.now(UTC))})
        assert done.status_code == 302 and "/sign-in" not in done.headers["Location"], (
            done.status_code,
            done.text[:500],
        )

    def sign_out(self, kind: str) -> requests.Response:
        prefix = "/account" if kind == "patient" else "/admin"
        home = "/account" if kind == "patient" else "/admin/requests"
        return self.submit(f"{prefix}/sign-out", {}, form_page=home)

    def ask_for_recordings(self, description: str, *, day: date | None = None) -> str:
        """Fill in and submit a request as a signed-in patient; returns its reference."""
        when = day or datetime.now(UTC).date()
        answers = {
            "calls-from-day": str(when.day),
            "calls-from-month": str(when.month),
            "calls-from-year": str(when.year),
            "description": description,
            "preferred-format": "download",
        }
        checked = self.submit("/requests/new", answers)
        assert checked.status_code == 302, (checked.status_code, checked.text[:1000])
        check_page = self.get("/requests/new/check")
        fields = form_fields(check_page.text)
        sent = self.request(
            "POST",
            "/requests/new/check",
            data={"csrf_token": fields["csrf_token"], "submission-key": fields["submission-key"]},
            referer="/requests/new/check",
        )
        assert sent.status_code == 302, (sent.status_code, sent.text[:1000])
        return REFERENCE.search(sent.headers["Location"]).group(0)


def form_fields(html: str, form_index: int = -1) -> dict[str, str]:
    forms = [
        form for form in BeautifulSoup(html, "html.parser").find_all("form") if form.find(attrs={"name": "csrf_token"})
    ]
    assert forms, "no form with a CSRF token on the page"
    form = forms[form_index]
    fields: dict[str, str] = {}
    for field in form.find_all(["input", "textarea", "select"]):
        name = field.get("name")
        if not name or field.get("type") in ("submit", "file"):
            continue
        if field.name == "textarea":
            fields[name] = field.text.removeprefix("\n")
        elif field.name == "select":
            chosen = field.find("option", selected=True) or field.find("option")
            fields[name] = chosen.get("value", chosen.text) if chosen else ""
        elif field.get("type") in ("checkbox", "radio"):
            if field.has_attr("checked"):
                fields[name] = field.get("value", "on")
        else:
            fields[name] = field.get("value", "")
    return fields


@contextmanager
def installation_app(settings: dict) -> Iterator:
    """An app configured exactly as the installation's processes are (their environment), in this process."""
    from core.factory import create_app

    saved = dict(os.environ)
    os.environ.update(settings)
    os.environ.pop("TEST_DATABASE_URL", None)
    try:
        app = create_app("production")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with app.app_context():
        yield app


def make_accounts(
    settings: dict, *, patients: int = 0, staff: int = 0, admins: int = 0, prefix: str = "load", clinicians=False
):
    """Make verified, signed-up patients and staff with authenticators (admins who are clinicians, if asked);
    returns [(kind, email, secret), ...]. The secrets exist only in what this returns (and, encrypted, in the
    database)."""
    from core.extensions import db
    from core.models.accounts import Patient, StaffUser
    from core.services import totp
    from core.services.passwords import hash_password

    made = []
    with installation_app(settings):
        password_hash = hash_password(PASSWORD)
        now = datetime.now(UTC)
        for number in range(patients):
            secret = pyotp.random_base32()
            db.session.add(
                Patient(
                    email=f"{prefix}-patient-{number}@example.org",
                    given_name="Ada",
                    family_name=f"Patient{number}",
                    nhs_number="9434765919",
                    date_of_birth=date(1955, 12, 10),
                    postcode="SE28 8BE",
                    password_hash=password_hash,
                    password_changed_at=now,
                    email_verified_at=now,
                    identity_status="verified",
                    identity_method="photo_id",
                    totp_secret_encrypted=totp.encrypt_secret(secret),
                    totp_enrolled_at=now,
                )
            )
            made.append(("patient", f"{prefix}-patient-{number}@example.org", secret))
        for number in range(staff + admins):
            secret = pyotp.random_base32()
            role = "admin" if number >= staff else "staff"
            db.session.add(
                StaffUser(
                    email=f"{prefix}-{role}-{number}@practice.example",
                    name=f"Sam {role.title()} {number}",
                    role=role,
                    is_clinician=clinicians and role == "admin",
                    password_hash=password_hash,
                    password_changed_at=now,
                    totp_secret_encrypted=totp.encrypt_secret(secret),
                    totp_enrolled_at=now,
                )
            )
            made.append((role, f"{prefix}-{role}-{number}@practice.example", secret))
        db.session.commit()
    return made
