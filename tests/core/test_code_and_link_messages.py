"""Each reason a security code, a recovery code or an emailed link is refused gets its own message (issue 12):
an empty field, something that cannot be a code, a wrong or already-used code, a set-up key or a link whose
time ran out. Patients and staff share the pages, so each case runs on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine
from bs4 import BeautifulSoup

from core.extensions import db
from core.services.tokens import RESET_PASSWORD, SET_UP_AGAIN, STAFF_INVITATION, VERIFY_EMAIL, issue_token, redeem_token
from tests.accounts_support import CSRF_INPUT, make_patient, make_staff, post_form, sign_in, sign_in_password
from tests.conftest import Pages, new_browser
from tests.session_support import tamper_with_session_value

START = datetime(2030, 1, 7, 9, 0, 1, tzinfo=UTC)
PREFIXES = {"patient": "/account", "staff": "/admin"}

EMPTY_CODE = "Enter the 6-digit security code from your authenticator app"
MALFORMED_CODE = "The security code must be 6 numbers, like 123456"
WRONG_CODE = "This security code is wrong or has already been used. Enter the code your authenticator app shows now"


def make_account(kind: str, **options):
    return make_patient(**options) if kind == "patient" else make_staff(**options)


def field_error(response, field: str) -> str:
    """The error message shown by `field`, checked to be the same in the error summary and the title."""
    assert response.status_code == 400, response.status_code
    soup = Pages.parse(response)
    assert soup.title.get_text().startswith("Error: ")
    message = soup.select_one(f"#{field}-error")
    assert message is not None, f"no error message by #{field}"
    text = " ".join(message.get_text(" ").split()).removeprefix("Error: ")
    summary = [" ".join(link.get_text(" ").split()) for link in soup.select(".nhsuk-error-summary a")]
    assert text in summary, (text, summary)
    return text


def wrong_code(account, at: datetime) -> str:
    valid = {account.code(at + timedelta(seconds=30 * offset)) for offset in (-1, 0, 1)}
    return next(candidate for candidate in ("000000", "111111", "222222", "333333") if candidate not in valid)


@pytest.mark.parametrize("kind", PREFIXES)
@pytest.mark.parametrize(
    ("typed", "message"),
    [("", EMPTY_CODE), ("   ", EMPTY_CODE), ("12345", MALFORMED_CODE), ("12a456", MALFORMED_CODE)],
)
def test_an_empty_or_malformed_sign_in_code_is_told_apart(app, browser, kind, typed, message):
    account = make_account(kind)
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, account)
        response = post_form(browser, f"{PREFIXES[kind]}/sign-in/code", {"code": typed})
    assert field_error(response, "code") == message


@pytest.mark.parametrize("kind", PREFIXES)
def test_a_wrong_sign_in_code_is_called_wrong_not_missing(app, browser, kind):
    account = make_account(kind)
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, account)
        response = post_form(browser, f"{PREFIXES[kind]}/sign-in/code", {"code": wrong_code(account, START)})
    assert field_error(response, "code") == WRONG_CODE


@pytest.mark.parametrize("kind", PREFIXES)
def test_a_sign_in_code_already_used_is_called_wrong_or_used_not_missing(app, kind):
    account = make_account(kind)
    first, second = new_browser(app), new_browser(app)
    with time_machine.travel(START, tick=False):
        sign_in(first, account)
        sign_in_password(second, account)
        response = post_form(second, f"{PREFIXES[kind]}/sign-in/code", {"code": account.code()})
    assert field_error(response, "code") == WRONG_CODE


@pytest.mark.parametrize("kind", PREFIXES)
@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter one of your recovery codes"),
        ("ABCD-EFGH", "A recovery code is 16 letters and numbers, like ABCD-EFGH-JKLM-NPQR"),
        ("ABCD-EFGH-JKLM-NPQR", "This recovery code is wrong or has already been used. Each code works once"),
    ],
)
def test_each_reason_a_recovery_code_is_refused_has_its_own_message(app, browser, kind, typed, message):
    account = make_account(kind)
    sign_in_password(browser, account)
    response = post_form(browser, f"{PREFIXES[kind]}/sign-in/recovery-code", {"recovery-code": typed})
    assert field_error(response, "recovery-code") == message


def set_up_page(browser, kind: str):
    account = make_account(kind, enrolled=False)
    response = sign_in_password(browser, account)
    assert response.headers["Location"] == f"{PREFIXES[kind]}/authenticator/set-up"
    page = Pages.parse(browser.get(f"{PREFIXES[kind]}/authenticator/set-up"))
    return account, "".join(page.select_one("#setup-key").get_text().split())


@pytest.mark.parametrize("kind", PREFIXES)
def test_set_up_tells_an_empty_a_malformed_and_a_wrong_code_apart(app, browser, kind):
    _, key = set_up_page(browser, kind)
    path = f"{PREFIXES[kind]}/authenticator/set-up"
    answers = [field_error(post_form(browser, path, {"code": typed}), "code") for typed in ("", "1234567")]
    shown = {pyotp.TOTP(key).at(datetime.now(UTC) + timedelta(seconds=30 * step)) for step in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in shown)
    answers.append(field_error(post_form(browser, path, {"code": wrong}), "code"))
    assert answers == [EMPTY_CODE, MALFORMED_CODE, WRONG_CODE]


@pytest.mark.parametrize("kind", PREFIXES)
def test_a_set_up_key_left_for_more_than_30_minutes_is_said_to_have_expired(app, browser, kind):
    """The page kept open (and reloaded, so the session stays alive) past the key's 30 minutes."""
    path = f"{PREFIXES[kind]}/authenticator/set-up"
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        _, key = set_up_page(browser, kind)
        for _ in range(2):
            clock.shift(timedelta(minutes=14))
            reloaded = browser.get(path)
            assert "".join(Pages.parse(reloaded).select_one("#setup-key").get_text().split()) == key
        token = CSRF_INPUT.search(reloaded.get_data(as_text=True)).group(1)
        clock.shift(timedelta(minutes=3))
        response = browser.post(
            path,
            data={"code": pyotp.TOTP(key).now(), "csrf_token": token},
            headers={"Referer": f"https://localhost{path}"},
        )
        message = field_error(response, "code")
    new_key = "".join(
        BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one("#setup-key").text.split()
    )
    assert message == (
        "The set-up key expired after 30 minutes, so here is a new one. "
        "Add it to your authenticator app, then enter the code the app shows"
    )
    assert new_key != key


@pytest.mark.parametrize("kind", PREFIXES)
def test_confirm_it_is_you_says_which_field_is_empty_or_malformed(app, browser, kind):
    account = make_account(kind)
    with time_machine.travel(START, tick=False):
        sign_in(browser, account)
        path = f"{PREFIXES[kind]}/confirm-it-is-you"
        empty = post_form(browser, path, {"password": "", "code": ""})
        malformed = post_form(browser, path, {"password": account.password, "code": "12 34 56"})
    assert (field_error(empty, "password"), field_error(empty, "code")) == ("Enter your password", EMPTY_CODE)
    assert field_error(malformed, "code") == MALFORMED_CODE


def reset_token(kind: str) -> str:
    account = make_account(kind)
    token = issue_token(RESET_PASSWORD, account.account)
    db.session.commit()
    return token


@pytest.mark.parametrize("kind", PREFIXES)
def test_an_expired_link_says_it_expired(app, browser, kind):
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        token = reset_token(kind)
        clock.shift(RESET_PASSWORD.lifetime + timedelta(seconds=1))
        response = browser.get(f"{PREFIXES[kind]}/reset-password/{token}")
    assert response.status_code == 404
    soup = Pages.parse(response)
    assert soup.h1.get_text(strip=True) == "This link does not work"
    assert soup.select_one("#link-expired").get_text(strip=True) == (
        "This link has expired. Links like this one work for 1 hour after we send them."
    )


@pytest.mark.parametrize("kind", PREFIXES)
def test_a_used_or_forged_link_is_not_said_to_have_expired(app, browser, kind):
    token = reset_token(kind)
    redeem_token(RESET_PASSWORD, token)
    db.session.commit()
    for link in (token, token[:-2] + "xx"):
        response = browser.get(f"{PREFIXES[kind]}/reset-password/{link}")
        assert response.status_code == 404
        assert Pages.parse(response).select_one("#link-expired") is None


@pytest.mark.parametrize("kind", PREFIXES)
def test_a_link_token_changed_in_the_session_store_is_treated_as_no_link(app, browser, kind):
    """The token an emailed link leaves in the session is encrypted: changed there, it reads as absent and the
    page says the link does not work (not an error page), and the link itself still works afterwards."""
    token = reset_token(kind)
    response = browser.get(f"{PREFIXES[kind]}/reset-password/{token}")
    assert (response.status_code, response.headers["Location"]) == (303, f"{PREFIXES[kind]}/reset-password")
    assert tamper_with_session_value(f"link:{RESET_PASSWORD.name}") == 1
    response = browser.get(f"{PREFIXES[kind]}/reset-password")
    assert response.status_code == 404
    assert Pages.parse(response).h1.get_text(strip=True) == "This link does not work"
    assert browser.get(f"{PREFIXES[kind]}/reset-password/{token}").status_code == 303
    assert browser.get(f"{PREFIXES[kind]}/reset-password").status_code == 200


@pytest.mark.parametrize(
    ("purpose", "kind", "path", "lasts"),
    [
        (VERIFY_EMAIL, "patient", "/account/confirm-email/{}", "24 hours"),
        (STAFF_INVITATION, "staff", "/admin/invitation/{}", "72 hours"),
        (SET_UP_AGAIN, "patient", "/account/authenticator/set-up/{}", "72 hours"),
        (SET_UP_AGAIN, "staff", "/admin/authenticator/set-up/{}", "72 hours"),
    ],
)
def test_every_kind_of_emailed_link_says_when_it_expired(app, browser, purpose, kind, path, lasts):
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        token = issue_token(purpose, make_account(kind).account)
        db.session.commit()
        clock.shift(purpose.lifetime + timedelta(seconds=1))
        response = browser.get(path.format(token))
    assert response.status_code == 404
    assert Pages.parse(response).select_one("#link-expired").get_text(strip=True) == (
        f"This link has expired. Links like this one work for {lasts} after we send them."
    )
