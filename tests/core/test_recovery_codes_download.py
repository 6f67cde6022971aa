"""Downloading recovery codes as a text file (issue 12, "Phones"): only in the session that was just shown them,
within ten minutes and before it opens another page of its area; the codes are kept encrypted in the
server-side session until then, never in plain text. Patients and staff share the pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import select

from core.extensions import db
from core.models.accounts import WebSession
from tests.accounts_support import CSRF_INPUT, make_patient, make_staff, post_form, sign_in, sign_in_password
from tests.conftest import Pages, new_browser
from tests.session_support import tamper_with_session_value

PREFIXES = {"patient": "/account", "staff": "/admin"}


def enrol(browser, kind: str):
    """Sign in with the password, set up the authenticator; returns the codes page response and its codes."""
    account = (make_patient if kind == "patient" else make_staff)(email=f"{kind}@example.org", enrolled=False)
    prefix = PREFIXES[kind]
    assert sign_in_password(browser, account).headers["Location"] == f"{prefix}/authenticator/set-up"
    key = "".join(Pages.parse(browser.get(f"{prefix}/authenticator/set-up")).select_one("#setup-key").text.split())
    shown = post_form(browser, f"{prefix}/authenticator/set-up", {"code": pyotp.TOTP(key).now()})
    assert shown.status_code == 200
    codes = [item.get_text(strip=True) for item in Pages.parse(shown).select("#recovery-codes li")]
    assert len(codes) == 10
    account.secret = key
    return account, shown, codes


def download(browser, kind: str, codes_page):
    """Press the page's "Download" button (a form, with the page's own CSRF token)."""
    token = CSRF_INPUT.search(codes_page.get_data(as_text=True)).group(1)
    path = f"{PREFIXES[kind]}/recovery-codes/download"
    soup = Pages.parse(codes_page)
    assert [form["action"] for form in soup.select("form") if form.get("action") == path] == [path]
    return browser.post(path, data={"csrf_token": token}, headers={"Referer": f"https://localhost{PREFIXES[kind]}"})


@pytest.mark.parametrize("kind", PREFIXES)
def test_the_codes_just_shown_download_as_a_text_file_that_nothing_keeps(app, browser, kind):
    _, shown, codes = enrol(browser, kind)

    response = download(browser, kind, shown)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="recovery-codes.txt"'
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
    lines = response.get_data(as_text=True).splitlines()
    assert lines[-10:] == [f"{number}. {code}" for number, code in enumerate(codes, start=1)]
    assert "share them with nobody" in lines[1]
    assert download(browser, kind, shown).status_code == 200  # a second press, say after a failed save


@pytest.mark.parametrize("kind", PREFIXES)
def test_the_codes_are_kept_in_the_session_only_encrypted(app, browser, kind):
    _, _, codes = enrol(browser, kind)
    stored = " ".join(db.session.execute(select(WebSession.data)).scalars())
    db.session.rollback()
    assert "recovery-codes" in stored
    for code in codes:
        assert code not in stored and code.replace("-", "") not in stored


@pytest.mark.parametrize("kind", PREFIXES)
def test_codes_changed_in_the_session_store_are_not_offered_for_download(app, browser, kind):
    _, shown, _ = enrol(browser, kind)
    assert tamper_with_session_value("recovery-codes") == 1

    response = download(browser, kind, shown)

    assert (response.status_code, response.headers["Location"]) == (302, f"{PREFIXES[kind]}/recovery-codes/new")


@pytest.mark.parametrize("kind", PREFIXES)
def test_another_page_of_the_area_forgets_the_codes(app, browser, kind):
    _, shown, _ = enrol(browser, kind)
    assert browser.get(PREFIXES[kind] if kind == "patient" else "/admin/").status_code == 200

    response = download(browser, kind, shown)

    assert (response.status_code, response.headers["Location"]) == (302, f"{PREFIXES[kind]}/recovery-codes/new")
    stored = " ".join(db.session.execute(select(WebSession.data)).scalars())
    db.session.rollback()
    assert "recovery-codes" not in stored


@pytest.mark.parametrize("kind", PREFIXES)
def test_the_codes_cannot_be_downloaded_ten_minutes_later(app, browser, kind):
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        _, shown, _ = enrol(browser, kind)
        clock.shift(timedelta(minutes=10, seconds=1))
        response = download(browser, kind, shown)
    assert (response.status_code, response.headers["Location"]) == (302, f"{PREFIXES[kind]}/recovery-codes/new")


@pytest.mark.parametrize("kind", PREFIXES)
def test_another_session_of_the_same_account_cannot_download_them(app, browser, kind):
    account, _, _ = enrol(browser, kind)
    other = new_browser(app)
    prefix = PREFIXES[kind]
    assert sign_in_password(other, account).headers["Location"] == f"{prefix}/sign-in/code"
    next_step = account.code(datetime.now(UTC) + timedelta(seconds=30))  # the set-up used this step's code
    assert post_form(other, f"{prefix}/sign-in/code", {"code": next_step}).status_code == 302
    home = "/account" if kind == "patient" else "/admin/"

    response = post_form(other, f"{prefix}/recovery-codes/download", {}, form_page=home)

    assert (response.status_code, response.headers["Location"]) == (302, f"{prefix}/recovery-codes/new")


@pytest.mark.parametrize("kind", PREFIXES)
def test_new_recovery_codes_download_too(app, browser, kind):
    account = (make_patient if kind == "patient" else make_staff)(email=f"{kind}@example.org")
    sign_in(browser, account)
    shown = post_form(browser, f"{PREFIXES[kind]}/recovery-codes/new", {})
    codes = [item.get_text(strip=True) for item in Pages.parse(shown).select("#recovery-codes li")]

    response = download(browser, kind, shown)

    assert response.get_data(as_text=True).splitlines()[-10:] == [
        f"{number}. {code}" for number, code in enumerate(codes, start=1)
    ]
