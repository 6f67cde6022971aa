"""Helpers for tests that need accounts: make patients and staff directly in the database, and sign them in
through the real pages (password step, then a code), with CSRF on as in production."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pyotp
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.extensions import db
from core.models.accounts import Patient, RegisterEntry, StaffUser
from core.models.email import OutboundEmail
from core.services import totp
from core.services.passwords import hash_password

PASSWORD = "kettle orbit tulip crayon"
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class SignInAccount:
    account: Patient | StaffUser
    password: str
    secret: str | None  # the authenticator key, when one is set up

    @property
    def kind(self) -> str:
        return self.account.kind

    def code(self, at: datetime | None = None) -> str:
        return pyotp.TOTP(self.secret).at(at or datetime.now(UTC))


def _with_authenticator(account, enrolled: bool) -> str | None:
    if not enrolled:
        return None
    secret = pyotp.random_base32()
    account.totp_secret_encrypted = totp.encrypt_secret(secret)
    account.totp_enrolled_at = datetime.now(UTC)
    return secret


def make_patient(
    *,
    email: str = "patient@example.org",
    given_name: str = "Ada",
    family_name: str = "Lovelace",
    nhs_number: str = "9434765919",
    date_of_birth: date = date(1955, 12, 10),
    postcode: str = "SE28 8BE",
    enrolled: bool = True,
    verified: bool = False,
    email_confirmed: bool = True,
    password: str = PASSWORD,
) -> SignInAccount:
    patient = Patient(
        email=email,
        given_name=given_name,
        family_name=family_name,
        nhs_number=nhs_number,
        date_of_birth=date_of_birth,
        postcode=postcode,
        password_hash=hash_password(password),
        password_changed_at=datetime.now(UTC),
        email_verified_at=datetime.now(UTC) if email_confirmed else None,
        identity_status="verified" if verified else "unverified",
        identity_method="photo_id" if verified else None,
    )
    secret = _with_authenticator(patient, enrolled)
    db.session.add(patient)
    db.session.commit()
    return SignInAccount(patient, password, secret)


def make_staff(
    *,
    email: str = "staff@practice.example",
    name: str = "Sam Clerk",
    role: str = "staff",
    enrolled: bool = True,
    password: str = PASSWORD,
) -> SignInAccount:
    staff = StaffUser(
        email=email,
        name=name,
        role=role,
        password_hash=hash_password(password),
        password_changed_at=datetime.now(UTC),
    )
    secret = _with_authenticator(staff, enrolled)
    db.session.add(staff)
    db.session.commit()
    return SignInAccount(staff, password, secret)


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token from the form on `path` (the token is tied to the client's session)."""
    page = client.get(path)
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def post_form(client: FlaskClient, path: str, data: dict, *, form_page: str | None = None):
    """POST `data` to `path` as a browser would: with the CSRF token from `form_page` (default: `path`
    itself) and that page as the Referer (which the strict HTTPS CSRF check requires)."""
    page = form_page or path
    token = csrf_token(client, page)
    return client.post(path, data={**data, "csrf_token": token}, headers={"Referer": f"https://localhost{page}"})


def _prefix(kind: str) -> str:
    return "/account" if kind == "patient" else "/admin"


def forget_last_code(test_account: SignInAccount) -> None:
    """Let the current 30-second step's code be used again (tests that sign in more than once per step)."""
    model = type(test_account.account)
    db.session.execute(update(model).where(model.id == test_account.account.id).values(totp_last_step=None))
    db.session.commit()


def sign_in_password(client: FlaskClient, test_account: SignInAccount, *, password: str | None = None):
    prefix = _prefix(test_account.kind)
    return post_form(
        client,
        f"{prefix}/sign-in",
        {"email": test_account.account.email, "password": password or test_account.password},
    )


def sign_in(client: FlaskClient, test_account: SignInAccount):
    """Both steps through the real pages. Returns the response to the code step."""
    forget_last_code(test_account)
    response = sign_in_password(client, test_account)
    prefix = _prefix(test_account.kind)
    assert response.status_code == 302 and response.headers["Location"].startswith(f"{prefix}/sign-in/code"), (
        response.status_code,
        response.headers.get("Location"),
    )
    response = post_form(client, f"{prefix}/sign-in/code", {"code": test_account.code()})
    assert response.status_code == 302, response.status_code
    return response


def session_cookie(client: FlaskClient, app) -> str | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return cookie.value if cookie else None


def emails_to(address: str) -> list[OutboundEmail]:
    return list(
        db.session.execute(
            select(OutboundEmail).where(OutboundEmail.to_address == address).order_by(OutboundEmail.id)
        ).scalars()
    )


def link_in(message: OutboundEmail) -> str:
    """The path of the first portal link in an email body."""
    match = re.search(r"https://localhost(/\S+)", message.body_text)
    assert match, message.body_text
    return match.group(1)


def signed_in_browser(app, test_account: SignInAccount) -> FlaskClient:
    """A browser of its own, signed in as `test_account` with both factors."""
    from tests.conftest import new_browser

    client = new_browser(app)
    sign_in(client, test_account)
    return client


def register_entry(**changes) -> RegisterEntry:
    """Grace Hopper on the practice register: the four facts the registration form uses by default."""
    entry = RegisterEntry(
        **{
            "nhs_number": "9434765919",
            "date_of_birth": date(1956, 12, 9),
            "given_name": "Grace",
            "family_name": "Hopper",
            "postcode": "SE28 8BE",
            **changes,
        }
    )
    db.session.add(entry)
    db.session.commit()
    return entry
