"""Signing in, the second factor, sessions, rate limits and what the logs keep, through the real pages.

Each test names the SECURITY.md rows it proves (C1-C7, D1-D17, E1-E14, K5, K11, L1-L4, M3). Patients are used
unless a row is about staff. Time is frozen with time-machine wherever time matters; it moves the clock that
the sessions, the TOTP codes, the CSRF tokens and Flask-Limiter's memory storage (which reads `time.time()`)
all use, so no limit or session is reset behind the application's back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import pyotp
import pytest
import time_machine
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Select, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from admin.guard import PUBLIC_ENDPOINTS as ADMIN_PUBLIC_ENDPOINTS
from core.extensions import db, limiter
from core.log import JsonFormatter
from core.models.accounts import WebSession
from core.models.audit import AuditEvent
from core.services.accounts import set_account_active
from portal.guard import PUBLIC_ENDPOINTS as PORTAL_PUBLIC_ENDPOINTS
from tests.accounts_support import (
    CSRF_INPUT,
    csrf_token,
    emails_to,
    link_in,
    make_patient,
    make_staff,
    post_form,
    session_cookie,
    sign_in,
    sign_in_password,
)
from tests.conftest import Pages, https_client_for, new_browser

if TYPE_CHECKING:
    from tests.accounts_support import SignInAccount

COOKIE = "__Host-session"
# A moment just after a 30-second step boundary, so shifting by whole minutes never lands on one.
START = datetime(2030, 1, 7, 9, 0, 1, tzinfo=UTC)
SIGN_IN_STEP_ENDPOINTS = {"sign_in_code", "sign_in_recovery", "set_up_authenticator"}


def done_reading(rows: list) -> None:
    """Keep the rows read (detached, fully loaded) and end the test's read transaction, so no request waits on
    it."""
    for row in rows:
        db.session.expunge(row)
    db.session.rollback()


def audit_events(action: str) -> list[AuditEvent]:
    events = list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    )
    done_reading(events)
    return events


def session_rows(account: SignInAccount | None = None) -> list[WebSession]:
    query = select(WebSession)
    if account is not None:
        query = query.where(WebSession.account_kind == account.kind, WebSession.account_id == account.account.id)
    rows = list(db.session.execute(query).scalars())
    done_reading(rows)
    return rows


def goes_to_sign_in(response, prefix: str = "/account") -> bool:
    return response.status_code == 302 and response.headers["Location"].startswith(f"{prefix}/sign-in")


def where(response) -> tuple[str, dict]:
    """The path and query of a redirect's Location."""
    assert response.status_code == 302, response.status_code
    location = urlsplit(response.headers["Location"])
    return location.path, parse_qs(location.query)


def set_cookie_header(response) -> str:
    headers = [value for value in response.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}=")]
    assert headers, f"no {COOKIE} cookie set: {response.headers.getlist('Set-Cookie')}"
    return headers[-1]


def with_cookie(app: Flask, value: str) -> FlaskClient:
    """A new browser that presents `value` as its session cookie (a copied or stolen cookie)."""
    other = new_browser(app)
    other.set_cookie(COOKIE, value, domain="localhost", secure=True, httponly=True)
    return other


def wrong_code(account: SignInAccount, at: datetime) -> str:
    """Six digits that are not a valid code at `at`, one step either side included."""
    valid = {account.code(at + timedelta(seconds=30 * offset)) for offset in (-1, 0, 1)}
    return next(candidate for candidate in ("000000", "111111", "222222", "333333") if candidate not in valid)


def sign_out_form(soup: BeautifulSoup, action: str):
    forms = [form for form in soup.find_all("form") if form.get("action") == action]
    assert len(forms) == 1, f"expected one sign-out form posting to {action}"
    return forms[0]


# ---------------------------------------------------------------------------------------------------------
# CSRF on the sign-in form, and the Referer that browsers send with it
# ---------------------------------------------------------------------------------------------------------


def test_a_browser_may_send_the_referer_that_the_sign_in_form_needs_j4(app):
    """Flask-WTF's strict HTTPS check refuses a POST without a same-origin Referer, so the site's
    Referrer-Policy must let browsers send one to our own origin (and, to protect tokens in URLs, to no other)."""
    patient = make_patient()
    https_client = https_client_for(app)
    page = https_client.get("/account/sign-in")
    assert page.headers["Referrer-Policy"] in ("same-origin", "strict-origin", "strict-origin-when-cross-origin")
    data = {"email": patient.account.email, "password": patient.password}
    for headers in ({}, {"Referer": "https://evil.example/account/sign-in"}):
        token = csrf_token(https_client, "/account/sign-in")
        refused = https_client.post("/account/sign-in", data={**data, "csrf_token": token}, headers=headers)
        assert refused.status_code == 400, headers
    token = csrf_token(https_client, "/account/sign-in")
    accepted = https_client.post(
        "/account/sign-in", data={**data, "csrf_token": token}, headers={"Referer": "https://localhost/account/sign-in"}
    )
    assert accepted.headers["Location"] == "/account/sign-in/code"


# ---------------------------------------------------------------------------------------------------------
# D. The second factor
# ---------------------------------------------------------------------------------------------------------


def test_the_password_step_alone_reaches_only_the_code_page_d1(app, browser):
    """D1: after the password step, every signed-in page sends the person back to sign in."""
    patient = make_patient()
    assert sign_in_password(browser, patient).headers["Location"] == "/account/sign-in/code"
    for path in ("/account", "/account/change-password", "/account/recovery-codes/new", "/account/confirm-it-is-you"):
        assert goes_to_sign_in(browser.get(path)), path
    assert browser.get("/account/sign-in/code").status_code == 200
    assert browser.get("/account/sign-in/recovery-code").status_code == 200


def test_every_signed_in_page_refuses_someone_part_way_through_signing_in_d1(app):
    """D1, walking the URL map: no page without URL parameters but the sign-in steps serves a pending account."""
    patient, staff = make_patient(), make_staff(role="admin")
    checked = []
    for account, blueprint, public, prefix in (
        (patient, "portal", PORTAL_PUBLIC_ENDPOINTS, "/account"),
        (staff, "admin", ADMIN_PUBLIC_ENDPOINTS, "/admin"),
    ):
        pending = new_browser(app)
        assert sign_in_password(pending, account).headers["Location"] == f"{prefix}/sign-in/code"
        for rule in app.url_map.iter_rules():
            endpoint = rule.endpoint
            if not endpoint.startswith(f"{blueprint}.") or rule.arguments or "GET" not in rule.methods:
                continue
            if endpoint in public or endpoint.split(".")[1] in SIGN_IN_STEP_ENDPOINTS:
                continue
            assert goes_to_sign_in(pending.get(rule.rule), prefix), rule.rule
            checked.append(rule.rule)
        assert pending.get(f"{prefix}/sign-in/code").status_code == 200
    assert {"/account", "/account/change-password", "/admin/", "/admin/patients", "/admin/staff"} <= set(checked)


def test_a_staff_member_after_the_password_step_cannot_reach_the_dashboard_d1(app, browser):
    staff = make_staff()
    assert sign_in_password(browser, staff).headers["Location"] == "/admin/sign-in/code"
    response = browser.get("/admin/")
    assert goes_to_sign_in(response, "/admin")
    assert browser.get("/admin/sign-in/code").status_code == 200


def test_the_session_id_changes_at_every_step_and_old_ids_give_no_access_d2_e2(app, browser):
    patient = make_patient()
    browser.get("/account/sign-in")
    before = session_cookie(browser, app)
    sign_in_password(browser, patient)
    after_password = session_cookie(browser, app)
    response = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert response.headers["Location"] == "/account"
    after_code = session_cookie(browser, app)

    assert None not in (before, after_password, after_code)
    assert len({before, after_password, after_code}) == 3
    assert browser.get("/account").status_code == 200
    for old in (before, after_password):
        replay = with_cookie(app, old)
        assert goes_to_sign_in(replay.get("/account"))
        assert goes_to_sign_in(replay.get("/account/sign-in/code"))


def test_a_patient_part_way_through_signing_in_cannot_use_the_staff_sign_in_steps_d1(app, browser):
    """D1: the sign-in steps serve only the kind of account they are for. A patient past the password step is
    sent to the staff sign-in page from every staff step, and nothing they send there is checked: the same
    code still works on their own code page afterwards (it was never used)."""
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        assert sign_in_password(browser, patient).headers["Location"] == "/account/sign-in/code"
        for path in ("/admin/sign-in/code", "/admin/sign-in/recovery-code", "/admin/authenticator/set-up"):
            assert where(browser.get(path)) == ("/admin/sign-in", {}), path
            sent = post_form(
                browser,
                path,
                {"code": patient.code(), "recovery-code": "ABCD-EFGH-JKLM-NPQR"},
                form_page="/account/sign-in/code",
            )
            assert where(sent) == ("/admin/sign-in", {}), path
        assert goes_to_sign_in(browser.get("/admin/"), "/admin")
        assert audit_events("authn_login_success") == audit_events("authn_mfa_fail") == []

        done = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert done.headers["Location"] == "/account"
    assert audit_events("authn_token_reuse") == []


def test_a_member_of_staff_part_way_through_signing_in_cannot_use_the_patient_sign_in_steps_d1(app, browser):
    staff = make_staff()
    with time_machine.travel(START, tick=False):
        assert sign_in_password(browser, staff).headers["Location"] == "/admin/sign-in/code"
        for path in ("/account/sign-in/code", "/account/sign-in/recovery-code", "/account/authenticator/set-up"):
            assert where(browser.get(path)) == ("/account/sign-in", {}), path
        sent = post_form(browser, "/account/sign-in/code", {"code": staff.code()}, form_page="/admin/sign-in/code")
        assert where(sent) == ("/account/sign-in", {})
        assert post_form(browser, "/admin/sign-in/code", {"code": staff.code()}).headers["Location"] == "/admin/"


def test_a_patient_setting_up_an_authenticator_cannot_use_the_staff_set_up_page_d1(app, browser):
    patient = make_patient(enrolled=False)
    assert sign_in_password(browser, patient).headers["Location"] == "/account/authenticator/set-up"
    assert where(browser.get("/admin/authenticator/set-up")) == ("/admin/sign-in", {})
    sent = post_form(
        browser, "/admin/authenticator/set-up", {"code": "123456"}, form_page="/account/authenticator/set-up"
    )
    assert where(sent) == ("/admin/sign-in", {})
    assert audit_events("mfa_enrolment_failed") == []
    assert browser.get("/account/authenticator/set-up").status_code == 200


def test_setting_up_the_authenticator_in_another_browser_ends_a_set_up_still_open_here_d12_d15(app):
    """D15: someone who has only the password and kept a set-up page open must not replace an authenticator
    set up meanwhile: that session is dropped (back to sign in), and signing in now needs a code."""
    patient = make_patient(enrolled=False)
    here, there = new_browser(app), new_browser(app)
    with time_machine.travel(START, tick=False) as clock:
        assert sign_in_password(here, patient).headers["Location"] == "/account/authenticator/set-up"
        page_here = here.get("/account/authenticator/set-up")
        key_here = Pages.parse(page_here).select_one("#setup-key").get_text().replace(" ", "")
        token_here = CSRF_INPUT.search(page_here.get_data(as_text=True)).group(1)

        assert sign_in_password(there, patient).headers["Location"] == "/account/authenticator/set-up"
        key_there = Pages.parse(there.get("/account/authenticator/set-up")).select_one("#setup-key").get_text()
        key_there = key_there.replace(" ", "")
        enrolled_there = post_form(there, "/account/authenticator/set-up", {"code": pyotp.TOTP(key_there).now()})
        assert enrolled_there.status_code == 200
        db.session.expire_all()
        enrolled = db.session.get(type(patient.account), patient.account.id).totp_secret_encrypted
        db.session.rollback()
        assert enrolled is not None

        clock.shift(timedelta(seconds=30))
        replaced = here.post(
            "/account/authenticator/set-up",
            data={"code": pyotp.TOTP(key_here).now(), "csrf_token": token_here},
            headers={"Referer": "https://localhost/account/authenticator/set-up"},
        )
        assert where(replaced) == ("/account/sign-in", {})
        assert goes_to_sign_in(here.get("/account/authenticator/set-up"))
        assert goes_to_sign_in(here.get("/account/sign-in/code"))
        assert goes_to_sign_in(here.get("/account"))
        assert sign_in_password(here, patient).headers["Location"] == "/account/sign-in/code"

    db.session.expire_all()
    assert db.session.get(type(patient.account), patient.account.id).totp_secret_encrypted == enrolled
    db.session.rollback()
    assert len(audit_events("mfa_enrolled")) == 1
    assert audit_events("mfa_replaced") == []


def test_a_code_used_once_is_refused_in_a_second_sign_in_and_reported_d3(app):
    patient = make_patient()
    first, second = new_browser(app), new_browser(app)
    with time_machine.travel(START, tick=False):
        sign_in(first, patient)
        used = patient.code()
        sign_in_password(second, patient)
        response = post_form(second, "/account/sign-in/code", {"code": used})
        assert response.status_code == 400
        assert goes_to_sign_in(second.get("/account"))

    reuse = audit_events("authn_token_reuse")
    assert [event.object_id for event in reuse] == [patient.account.public_id]
    assert [message.subject for message in emails_to(patient.account.email)] == ["A sign-in code was used twice"]


def test_an_older_code_still_inside_the_drift_window_is_refused_after_a_newer_one_d4(app):
    patient = make_patient()
    first, second = new_browser(app), new_browser(app)
    with time_machine.travel(START + timedelta(seconds=30), tick=False):
        sign_in(first, patient)
        previous_step = patient.code(START)
        assert previous_step != patient.code()
        sign_in_password(second, patient)
        response = post_form(second, "/account/sign-in/code", {"code": previous_step})
        assert response.status_code == 400
    assert len(audit_events("authn_token_reuse")) == 1


def test_five_wrong_codes_abandon_the_pending_sign_in_d7(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, patient)
        wrong = wrong_code(patient, START)
        statuses = [post_form(browser, "/account/sign-in/code", {"code": wrong}).status_code for _ in range(4)]
        assert statuses == [400, 400, 400, 400]
        fifth = post_form(browser, "/account/sign-in/code", {"code": wrong}, form_page="/account/sign-in/code")
        assert goes_to_sign_in(fifth)
        assert goes_to_sign_in(browser.get("/account/sign-in/code"))
        assert goes_to_sign_in(browser.get("/account"))
        # The password must be entered again: the right code alone no longer gets in.
        assert goes_to_sign_in(
            post_form(browser, "/account/sign-in/code", {"code": patient.code()}, form_page="/account/sign-in")
        )

    abandoned = audit_events("authn_login_fail_max")
    assert [(event.object_id, json.loads(event.details)) for event in abandoned] == [
        (patient.account.public_id, {"step": "code"})
    ]
    assert len(audit_events("authn_mfa_fail")) == 5


MALFORMED_CODES = {
    "inner space": lambda code: code[:5] + " " + code[5],
    "full-width digits": lambda code: "".join(chr(ord(char) + 0xFEE0) for char in code),
    "arabic-indic digits": lambda code: "".join(chr(ord(char) - ord("0") + 0x0660) for char in code),
    "seven digits": lambda code: code + "0",
    "empty": lambda code: "",
    "repeated field": lambda code: [code[:3] + " " + code[3:], code],
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CODES))
def test_a_malformed_code_is_refused_cleanly_d8(app, browser, case):
    """D8: only six ASCII digits are a code. Each case is built from the right code, so a lenient parser
    would let it in; a form that repeats the field is read by its first value only."""
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, patient)
        response = post_form(browser, "/account/sign-in/code", {"code": MALFORMED_CODES[case](patient.code())})
    assert response.status_code == 400
    soup = Pages.parse(response)
    assert soup.title.get_text().startswith("Error: ")


def test_a_code_sent_as_json_is_refused_cleanly_d8(app, browser):
    patient = make_patient()
    sign_in_password(browser, patient)
    token = csrf_token(browser, "/account/sign-in/code")
    response = browser.post("/account/sign-in/code", json={"code": [1, 2]}, headers={"X-CSRFToken": token})
    assert response.status_code == 400


def test_a_code_with_surrounding_spaces_is_accepted_d8(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, patient)
        response = post_form(browser, "/account/sign-in/code", {"code": f"  {patient.code()} "})
    assert response.headers["Location"] == "/account"


def test_there_is_no_route_to_turn_off_the_authenticator_d15(app):
    words = ("disable", "remove", "turn-off", "turn_off", "skip", "opt-out")
    # Staff taking a wrongly attached recording off a request, or a part marked to withhold off a recording:
    # nothing to do with the second factor.
    unrelated = {"admin.recording_remove", "admin.redaction_range_remove"}
    offending = [
        (rule.rule, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if any(word in f"{rule.rule} {rule.endpoint}".lower() for word in words) and rule.endpoint not in unrelated
    ]
    assert offending == []
    authenticator_rules = {
        rule.rule for rule in app.url_map.iter_rules() if re.search(r"authenticator|mfa|totp|two-factor", rule.rule)
    }
    # Setting one up (again), the emailed link that allows it after a staff reset, and that staff reset.
    assert authenticator_rules == {
        "/account/authenticator/set-up",
        "/admin/authenticator/set-up",
        "/account/authenticator/set-up/<token>",
        "/admin/authenticator/set-up/<token>",
        "/admin/patients/<public_id>/reset-authenticator",
        "/admin/staff/<public_id>/reset-authenticator",
    }


def test_an_account_without_an_authenticator_must_set_one_up_before_anything_else_d15(app, browser):
    """D15: MFA is mandatory: an account with no authenticator (new, or reset by staff) gets nothing but set-up."""
    patient = make_patient(enrolled=False)
    response = sign_in_password(browser, patient)
    assert response.headers["Location"] == "/account/authenticator/set-up"
    assert goes_to_sign_in(browser.get("/account"))
    assert goes_to_sign_in(browser.get("/account/sign-in/code"))
    assert browser.get("/account/authenticator/set-up").status_code == 200


@pytest.mark.parametrize("prefix", ["/account", "/admin"])
def test_the_code_page_offers_only_the_authenticator_or_a_recovery_code_d16_d17(app, browser, prefix):
    """D16: no text-message or email code; D17: no "remember this device"."""
    account = make_patient() if prefix == "/account" else make_staff()
    sign_in_password(browser, account)
    soup = Pages.parse(browser.get(f"{prefix}/sign-in/code"))
    main = soup.find("main")
    forms = main.find_all("form")
    assert [form["action"] for form in forms] == [f"{prefix}/sign-in/code"]
    fields = {element.get("name") for element in forms[0].find_all(["input", "select", "textarea", "button"])}
    assert fields - {None} == {"csrf_token", "code"}
    assert soup.find("input", attrs={"type": "checkbox"}) is None
    words = main.get_text(" ", strip=True).lower()
    for offer in ("text message", "sms", "email me", "send me", "send a code", "remember", "trust this"):
        assert offer not in words, offer
    links = [link["href"] for link in main.find_all("a")]
    assert links == [f"{prefix}/sign-in/recovery-code"]


@pytest.mark.parametrize("prefix", ["/account", "/admin"])
def test_the_sign_in_page_has_no_remember_me_d17_e11(app, browser, prefix):
    soup = Pages.parse(browser.get(f"{prefix}/sign-in"))
    assert soup.find("input", attrs={"type": "checkbox"}) is None
    assert "remember" not in soup.find("main").get_text(" ", strip=True).lower()


# ---------------------------------------------------------------------------------------------------------
# C. Rate limits
# ---------------------------------------------------------------------------------------------------------


def wrong_passwords(client: FlaskClient, account: SignInAccount, count: int) -> list[int]:
    return [sign_in_password(client, account, password="not-the-password-at-all").status_code for _ in range(count)]


def test_ten_wrong_passwords_in_five_minutes_lock_the_account_for_a_while_c1_c7(app, browser):
    """C1: the 10-per-5-minutes rung. The 5-per-minute rung is let pass between the two bursts of five."""
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        assert wrong_passwords(browser, patient, 5) == [400] * 5
        clock.shift(timedelta(seconds=61))
        assert wrong_passwords(browser, patient, 5) == [400] * 5
        clock.shift(timedelta(seconds=61))
        assert sign_in_password(browser, patient).status_code == 429
        assert goes_to_sign_in(browser.get("/account/sign-in/code"))

    failures = audit_events("authn_login_fail")
    assert len(failures) == 10
    assert {(event.object_id, json.loads(event.details)["reason"]) for event in failures} == {
        (patient.account.public_id, "wrong password")
    }
    breaches = audit_events("authn_login_fail_max")
    assert breaches, "C7: the breach of the per-account limit is audited"
    assert json.loads(breaches[0].details)["scope"] == "account"


def test_six_wrong_passwords_in_one_minute_are_throttled_c1(app, browser):
    """The per-account count is keyed on the normalised address: changing its case or adding spaces does not
    start a new count for the same account."""
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        assert wrong_passwords(browser, patient, 6) == [400] * 5 + [429]
        for variant in ("PATIENT@Example.ORG", "  patient@example.org "):
            response = post_form(browser, "/account/sign-in", {"email": variant, "password": patient.password})
            assert response.status_code == 429, variant


def test_every_sign_in_attempt_counts_even_with_the_right_password_c1(app, browser):
    """C1: attempts are counted before the password is checked, so five sign-ins in a minute, even successful
    ones, use up the per-minute rung; the right password then gets 429 too, until the minute has passed (C4)."""
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(5):
            assert sign_in(browser, patient).headers["Location"] == "/account"
        assert sign_in_password(browser, patient).status_code == 429
        clock.shift(timedelta(seconds=61))
        assert sign_in(browser, patient).headers["Location"] == "/account"
    assert len(audit_events("authn_password_accepted")) == 6


def test_wrong_passwords_sent_in_parallel_cannot_get_past_the_limit_c1(app):
    """C1: twelve browsers send a wrong password for one account at the same moment. The limit is counted
    atomically in the store before any password is checked, so at most the per-minute rung (5) get an answer;
    counting failures after the fact would let every one of them through."""
    patient = make_patient()
    senders = 12
    email = patient.account.email
    barrier = threading.Barrier(senders, timeout=30)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def send(client: FlaskClient, token: str) -> None:
        try:
            barrier.wait()
            response = client.post(
                "/account/sign-in",
                data={"email": email, "password": "not-the-password-at-all", "csrf_token": token},
                headers={"Referer": "https://localhost/account/sign-in"},
            )
            statuses.append(response.status_code)
        except BaseException as error:  # reported by the main thread below
            errors.append(error)

    with time_machine.travel(START, tick=False):
        browsers = [new_browser(app) for _ in range(senders)]
        tokens = [csrf_token(client, "/account/sign-in") for client in browsers]
        db.session.rollback()  # the test's own read must not hold the database while the requests write
        threads = [threading.Thread(target=send, args=pair) for pair in zip(browsers, tokens, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    assert errors == []
    assert sorted(statuses) == [400] * 5 + [429] * (senders - 5)
    assert len(audit_events("authn_login_fail")) == 5


def test_codes_refused_on_the_patient_pages_give_no_extra_tries_on_the_staff_pages_c1_d7(app, browser):
    """The second-factor count is one per account, shared by the patient and staff code pages: a patient
    limited on /account/sign-in/code gets 429 on /admin/sign-in/code too, and no code is checked there."""
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in_password(browser, patient)
        wrong = wrong_code(patient, START)
        for _ in range(5):  # the fifth also abandons the pending sign-in (D7)
            post_form(browser, "/account/sign-in/code", {"code": wrong}, form_page="/account/sign-in")
        assert sign_in_password(browser, patient).headers["Location"] == "/account/sign-in/code"
        mfa_failures = len(audit_events("authn_mfa_fail"))

        for path in ("/admin/sign-in/code", "/admin/sign-in/recovery-code", "/account/sign-in/code"):
            refused = post_form(
                browser,
                path,
                {"code": patient.code(), "recovery-code": "ABCD-EFGH-JKLM-NPQR"},
                form_page="/account/sign-in",
            )
            assert refused.status_code == 429, path
        assert goes_to_sign_in(browser.get("/account"))
        assert len(audit_events("authn_mfa_fail")) == mfa_failures
        assert audit_events("authn_login_success") == []

        clock.shift(timedelta(seconds=61))
        done = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
        assert done.headers["Location"] == "/account"


def test_one_second_factor_count_covers_sign_in_confirm_it_is_you_and_set_up_c1_e12(app, browser):
    """Every page that takes a code shares one count per account (sign-in code, recovery code, set-up and
    confirm-it-is-you): a member of staff who used the minute's five tries signing in gets 429 on the others,
    whatever they send."""
    staff = make_staff()
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, staff)
        wrong = wrong_code(staff, START)
        for _ in range(4):
            assert post_form(browser, "/admin/sign-in/code", {"code": wrong}).status_code == 400
        assert post_form(browser, "/admin/sign-in/code", {"code": staff.code()}).headers["Location"] == "/admin/"

        confirm = post_form(
            browser, "/admin/confirm-it-is-you", {"password": staff.password, "code": staff.code(START)}
        )
        set_up = post_form(browser, "/admin/authenticator/set-up", {"code": "123456"})
    assert (confirm.status_code, set_up.status_code) == (429, 429)
    assert audit_events("reauthentication") == []
    assert len(audit_events("authn_mfa_fail")) == 4


def test_signing_out_other_devices_has_a_password_count_that_choosing_a_new_password_does_not_use_c1(app, browser):
    """Signing out other devices takes the current password: five tries a minute. Changing the password has a
    count of its own, so a patient whose new passwords the policy keeps refusing is not blocked elsewhere."""
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        sign_in(browser, patient)
        wrong = "not my password at all"
        weak = [
            post_form(
                browser,
                "/account/change-password",
                {"current-password": patient.password, "new-password": "password", "confirm-password": "password"},
            ).status_code
            for _ in range(5)
        ]
        statuses = [
            post_form(browser, "/account/sign-out-other-devices", {"password": wrong}).status_code for _ in range(5)
        ]
        last = post_form(browser, "/account/sign-out-other-devices", {"password": patient.password})
        sixth_change = post_form(
            browser,
            "/account/change-password",
            {"current-password": wrong, "new-password": SENTINEL_NEW_PASSWORD, "confirm-password": "x"},
        )
    assert weak == [400] * 5
    assert statuses == [400] * 5
    assert last.status_code == 429
    assert sixth_change.status_code == 429
    assert audit_events("sessions_ended") == []


def limiter_keys() -> list[str]:
    """Every key in the limiter's memory store (the test configuration's `memory://`)."""
    storage = limiter.storage
    keys: list[str] = []
    for name in ("storage", "expirations", "events"):
        keys += [str(key) for key in getattr(storage, name, {})]
    return keys


def test_the_limiter_never_logs_or_stores_what_was_typed_in_the_email_box_c7_l2(app, browser, caplog):
    """L2: the per-account key is a hash of the normalised address, so neither the address nor a password typed
    into the email box by mistake reaches the limiter's log lines (it logs the key when a limit is reached)
    or its store's key names."""
    caplog.set_level(logging.DEBUG, logger="flask-limiter")
    patient = make_patient()
    typed_in_email_box = "Pa55word-In-The-Email-Box"
    with time_machine.travel(START, tick=False):
        for email in (patient.account.email, typed_in_email_box):
            statuses = [
                post_form(browser, "/account/sign-in", {"email": email, "password": "whatever"}).status_code
                for _ in range(6)
            ]
            assert statuses == [400] * 5 + [429], email
        keys = limiter_keys()

    limiter_lines = [record.getMessage() for record in caplog.records if record.name == "flask-limiter"]
    assert len([line for line in limiter_lines if "exceeded" in line]) == 2, limiter_lines
    hashed = hashlib.sha256(patient.account.email.encode()).hexdigest()[:16]
    assert any(hashed in key for key in keys), keys
    for typed in (patient.account.email, typed_in_email_box, typed_in_email_box.lower(), "Email-Box", "email-box"):
        assert not [line for line in limiter_lines if typed in line], typed
        assert not [key for key in keys if typed in key], typed


def test_one_address_trying_many_accounts_is_throttled_whatever_x_forwarded_for_says_c2_c5_c7(app, browser):
    """C2: the per-IP limit (20 failures per 5 minutes); C5: with PROXY_FIX_HOPS=0, X-Forwarded-For is not
    believed, so changing it does not start a new count."""
    assert app.config["PROXY_FIX_HOPS"] == 0
    statuses = []
    with time_machine.travel(START, tick=False):
        for n in range(25):
            token = csrf_token(browser, "/account/sign-in")
            response = browser.post(
                "/account/sign-in",
                data={"email": f"nobody{n}@example.org", "password": "Summer2030!", "csrf_token": token},
                headers={"X-Forwarded-For": f"1.2.3.{n}"},
            )
            statuses.append(response.status_code)
    assert statuses == [400] * 20 + [429] * 5
    assert len(audit_events("authn_login_fail")) == 20
    breaches = audit_events("excess_rate_limit_exceeded")
    assert breaches and json.loads(breaches[0].details)["scope"] == "ip"
    assert {event.ip_address for event in audit_events("authn_login_fail")} == {"127.0.0.1"}


def test_one_per_ip_count_is_shared_by_every_password_and_code_form_c2_c7(app, browser, monkeypatch):
    """Issue 11, C2: on main each page counted its own 20 per 5 minutes, so an address got 20 guesses on the
    patient sign-in, 20 more on the staff sign-in and more again on the code pages. Now one count per address
    covers them all (the limit is lowered here to keep the test short)."""
    monkeypatch.setitem(app.config, "RATELIMIT_SIGN_IN_IP", "5 per 5 minutes")
    patient = make_patient()
    unknown = {"email": "nobody@example.org", "password": "not the password"}
    with time_machine.travel(START, tick=False):
        counted = [
            post_form(browser, "/account/sign-in", unknown).status_code,
            post_form(browser, "/admin/sign-in", unknown).status_code,
            sign_in_password(browser, patient).status_code,
            post_form(browser, "/account/sign-in/code", {"code": wrong_code(patient, START)}).status_code,
            post_form(browser, "/admin/sign-in", unknown).status_code,
        ]
        right_code = post_form(browser, "/account/sign-in/code", {"code": patient.code(START)})
        staff_sign_in = post_form(browser, "/admin/sign-in", unknown)
        confirm_page = post_form(browser, "/account/confirm-email", {"password": "x"}, form_page="/account/sign-in")
    assert counted == [400, 400, 302, 400, 400]
    assert (right_code.status_code, staff_sign_in.status_code, confirm_page.status_code) == (429, 429, 429)
    breaches = audit_events("excess_rate_limit_exceeded")
    assert breaches and {json.loads(event.details)["scope"] for event in breaches} == {"ip"}


def comparable(response) -> str:
    """The body without the per-response CSP nonce and any CSRF token."""
    body = response.get_data(as_text=True)
    body = re.sub(r'nonce="[^"]*"', 'nonce=""', body)
    return re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', body)


def test_while_throttled_the_right_and_a_wrong_password_get_the_same_answer_c3(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        wrong_passwords(browser, patient, 5)
        right = sign_in_password(browser, patient)
        wrong = sign_in_password(browser, patient, password="another-wrong-password")
        unknown = post_form(browser, "/account/sign-in", {"email": "someone@example.org", "password": "x"})
    assert right.status_code == wrong.status_code == 429
    assert comparable(right) == comparable(wrong)
    assert right.headers.get("Retry-After") == wrong.headers.get("Retry-After")
    assert "Too many attempts" in comparable(right)
    # The right password did not advance the sign-in behind the 429.
    assert goes_to_sign_in(browser.get("/account/sign-in/code"))
    assert unknown.status_code == 400  # another account from the same address is not locked out by this one


def test_the_victim_can_sign_in_once_the_windows_have_passed_c4(app, browser):
    """C4: no permanent lock-out. time-machine moves `time.time()`, which the limiter's memory storage reads,
    so the windows expire as they would in real time: no `limiter.reset()` here."""
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        assert wrong_passwords(browser, patient, 6)[-1] == 429
        clock.shift(timedelta(minutes=10))
        # Ten minutes on, the per-minute and 5-minute rungs are clear.
        assert wrong_passwords(browser, patient, 5) == [400] * 5
        assert sign_in_password(browser, patient).status_code == 429
        clock.shift(timedelta(hours=1, minutes=1))
        assert sign_in(browser, patient).headers["Location"] == "/account"
        assert browser.get("/account").status_code == 200


def test_wrong_codes_are_throttled_per_account_across_sign_ins_d7_c7(app, browser):
    """Abandoning a sign-in after 5 wrong codes does not reset the count: the next sign-in's first code is 429."""
    patient = make_patient()
    with time_machine.travel(START, tick=False):
        sign_in_password(browser, patient)
        wrong = wrong_code(patient, START)
        for _ in range(5):
            post_form(browser, "/account/sign-in/code", {"code": wrong}, form_page="/account/sign-in")
        sign_in_password(browser, patient)
        assert post_form(browser, "/account/sign-in/code", {"code": patient.code()}).status_code == 429
    assert any(json.loads(event.details).get("scope") == "code" for event in audit_events("authn_login_fail_max"))


# ---------------------------------------------------------------------------------------------------------
# E. Sessions
# ---------------------------------------------------------------------------------------------------------


def cookie_attributes(header: str) -> tuple[str, str, dict]:
    first, *rest = (part.strip() for part in header.split(";"))
    name, value = first.split("=", 1)
    attributes = {}
    for part in rest:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val if _ else True
    return name, value, attributes


def test_the_session_cookie_is_a_host_only_secure_http_only_lax_cookie_e1(app, browser):
    patient = make_patient()
    response = sign_in(browser, patient)
    name, value, attributes = cookie_attributes(set_cookie_header(response))
    assert name == "__Host-session"
    assert value == session_cookie(browser, app)
    assert attributes.get("secure") is True
    assert attributes.get("httponly") is True
    assert attributes.get("samesite") == "Lax"
    assert attributes.get("path") == "/"
    assert "domain" not in attributes


def test_a_cookie_copied_before_signing_out_no_longer_works_e3_e13(app, browser):
    patient = make_patient()
    sign_in(browser, patient)
    copied = session_cookie(browser, app)
    response = post_form(browser, "/account/sign-out", {}, form_page="/account")
    assert response.status_code == 200
    assert Pages.parse(response).h1.get_text(strip=True) == "You have signed out"
    assert cookie_attributes(set_cookie_header(response))[2].get("max-age") == "0", "the cookie is removed"
    assert response.headers["Clear-Site-Data"] == '"cache", "cookies", "storage"'
    assert goes_to_sign_in(with_cookie(app, copied).get("/account"))
    assert goes_to_sign_in(browser.get("/account"))
    assert session_rows(patient) == []
    assert [event.object_id for event in audit_events("session_ended")] == [patient.account.public_id]


@pytest.mark.parametrize("prefix", ["/account", "/admin"])
def test_sign_out_is_a_post_only_route_e10(app, browser, prefix):
    account = make_patient() if prefix == "/account" else make_staff()
    sign_in(browser, account)
    response = browser.get(f"{prefix}/sign-out")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) - {"OPTIONS"} == {"POST"}
    home = "/account" if prefix == "/account" else "/admin/"
    assert browser.get(home).status_code == 200


@pytest.mark.parametrize(
    ("make", "blueprint", "public", "sign_out", "expected"),
    [
        (
            make_patient,
            "portal",
            PORTAL_PUBLIC_ENDPOINTS,
            "/account/sign-out",
            {"/account", "/account/change-password"},
        ),
        (
            lambda: make_staff(role="admin"),
            "admin",
            ADMIN_PUBLIC_ENDPOINTS,
            "/admin/sign-out",
            {"/admin/", "/admin/staff"},
        ),
    ],
    ids=["patient", "staff"],
)
def test_every_signed_in_page_has_a_sign_out_form_and_is_not_cached_e10_k5(
    app, browser, make, blueprint, public, sign_out, expected
):
    """E10: a sign-out button on every signed-in page, as a POST form with a CSRF token; K5: no-store."""
    sign_in(browser, make())
    checked = []
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint
        if not endpoint.startswith(f"{blueprint}.") or rule.arguments or "GET" not in rule.methods:
            continue
        if endpoint in public or endpoint.split(".")[1] in {"sign_in_code", "sign_in_recovery"}:
            continue
        response = browser.get(rule.rule)
        assert response.status_code == 200, rule.rule
        assert "no-store" in response.headers["Cache-Control"], rule.rule
        if response.mimetype == "text/csv":  # a download (dashboard, audit export): not a page, still no-store
            checked.append(rule.rule)
            continue
        form = sign_out_form(Pages.parse(response), sign_out)
        assert form["method"].lower() == "post"
        token = form.find("input", attrs={"name": "csrf_token"})
        assert token is not None and token["value"], rule.rule
        checked.append(rule.rule)
    assert expected <= set(checked)


def test_a_patient_is_signed_out_after_30_minutes_idle_e4(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, patient)
        clock.shift(timedelta(minutes=29))
        assert browser.get("/account").status_code == 200
        clock.shift(timedelta(minutes=29))  # the last request counts, not the sign-in
        assert browser.get("/account").status_code == 200
        clock.shift(timedelta(minutes=31))
        response = browser.get("/account")
    assert goes_to_sign_in(response)
    assert session_rows(patient) == []


def test_a_staff_member_is_signed_out_after_15_minutes_idle_e4(app, browser):
    staff = make_staff()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, staff)
        clock.shift(timedelta(minutes=14))
        assert browser.get("/admin/").status_code == 200
        clock.shift(timedelta(minutes=16))
        assert goes_to_sign_in(browser.get("/admin/"), "/admin")


def test_a_session_ends_after_12_hours_however_active_e5(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, patient)
        for minutes in range(10, 12 * 60 + 1, 10):
            clock.shift(timedelta(minutes=10))
            assert browser.get("/account").status_code == 200, f"signed out after {minutes} minutes"
        clock.shift(timedelta(minutes=1))
        assert goes_to_sign_in(browser.get("/account"))


def test_deactivating_an_account_ends_every_session_at_once_e6(app):
    admin, patient = make_staff(role="admin"), make_patient()
    phone, laptop = new_browser(app), new_browser(app)
    sign_in(phone, patient)
    sign_in(laptop, patient)
    assert len(session_rows(patient)) == 2
    set_account_active(admin.account, patient.account, False)
    assert goes_to_sign_in(phone.get("/account"))
    assert goes_to_sign_in(laptop.get("/account"))
    assert session_rows(patient) == []


def test_signing_out_other_devices_needs_the_password_and_keeps_this_one_e8(app):
    patient = make_patient()
    here, there = new_browser(app), new_browser(app)
    sign_in(here, patient)
    sign_in(there, patient)
    refused = post_form(here, "/account/sign-out-other-devices", {"password": "not my password"})
    assert refused.status_code == 400
    assert there.get("/account").status_code == 200
    done = post_form(here, "/account/sign-out-other-devices", {"password": patient.password})
    assert done.headers["Location"] == "/account"
    assert goes_to_sign_in(there.get("/account"))
    assert here.get("/account").status_code == 200
    assert len(session_rows(patient)) == 1


def test_the_session_id_is_256_random_bits_and_only_its_hash_is_stored_e9(app, browser):
    patient = make_patient()
    sign_in(browser, patient)
    value = session_cookie(browser, app)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", value)
    rows = session_rows()
    assert [row.id_hash for row in rows] == [hashlib.sha256(value.encode()).hexdigest()]
    stored = " ".join(str(getattr(row, column.key)) for row in rows for column in WebSession.__table__.columns)
    assert value not in stored


def test_no_cookie_but_the_session_is_set_while_signing_in_e11(app, browser):
    """E11: no remember-me cookie; the session cookie outlives neither the browser nor the absolute lifetime."""
    patient = make_patient()
    responses = [browser.get("/account/sign-in"), sign_in_password(browser, patient)]
    responses.append(browser.get("/account/sign-in/code"))
    responses.append(post_form(browser, "/account/sign-in/code", {"code": patient.code()}))
    responses.append(browser.get("/account"))
    headers = [header for response in responses for header in response.headers.getlist("Set-Cookie")]
    assert headers
    assert {cookie_attributes(header)[0] for header in headers} == {COOKIE}
    longest = app.config["SESSION_ABSOLUTE_HOURS"] * 3600
    for header in headers:
        attributes = cookie_attributes(header)[2]
        assert int(attributes.get("max-age", 0)) <= longest, header
        if "expires" in attributes:
            lifetime = parsedate_to_datetime(attributes["expires"]) - datetime.now(UTC)
            assert lifetime.total_seconds() <= longest, header


def test_a_fourth_patient_device_ends_the_oldest_session_e14(app):
    assert app.config["MAX_SESSIONS_PATIENT"] == 3
    patient = make_patient()
    devices = [new_browser(app) for _ in range(4)]
    with time_machine.travel(START, tick=False) as clock:
        for device in devices:
            sign_in(device, patient)
            clock.shift(timedelta(minutes=1))
        assert goes_to_sign_in(devices[0].get("/account"))
        assert [device.get("/account").status_code for device in devices[1:]] == [200, 200, 200]
    assert len(session_rows(patient)) == 3


def test_a_second_staff_sign_in_ends_the_first_e14(app):
    assert app.config["MAX_SESSIONS_STAFF"] == 1
    staff = make_staff()
    first, second = new_browser(app), new_browser(app)
    with time_machine.travel(START, tick=False) as clock:
        sign_in(first, staff)
        clock.shift(timedelta(minutes=1))
        sign_in(second, staff)
        assert goes_to_sign_in(first.get("/admin/"), "/admin")
        assert second.get("/admin/").status_code == 200
    assert len(session_rows(staff)) == 1


def test_new_recovery_codes_need_a_second_factor_from_the_last_15_minutes_e12(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, patient)
        clock.shift(timedelta(minutes=14))
        assert browser.get("/account/recovery-codes/new").status_code == 200
        clock.shift(timedelta(minutes=2))
        stale = browser.get("/account/recovery-codes/new")
        assert stale.status_code == 302
        assert where(stale) == ("/account/confirm-it-is-you", {"next": ["/account/recovery-codes/new"]})
        # A new 30-second step, so the code is not the one used to sign in.
        clock.shift(timedelta(seconds=30))
        confirmed = post_form(
            browser,
            stale.headers["Location"],
            {"password": patient.password, "code": patient.code(), "next": "/account/recovery-codes/new"},
        )
        assert confirmed.headers["Location"] == "/account/recovery-codes/new"
        assert browser.get("/account/recovery-codes/new").status_code == 200
    assert len(audit_events("reauthentication")) == 1


def test_changing_the_password_is_not_a_fresh_second_factor_e12(app, browser):
    """E12: a password change proves only the password. It moves the session to a new id, but a second factor
    from more than 15 minutes ago is still stale: new recovery codes and a new authenticator still ask the
    patient to confirm it is them."""
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, patient)
        clock.shift(timedelta(minutes=16))
        before = session_cookie(browser, app)
        changed = post_form(
            browser,
            "/account/change-password",
            {
                "current-password": patient.password,
                "new-password": SENTINEL_NEW_PASSWORD,
                "confirm-password": SENTINEL_NEW_PASSWORD,
            },
        )
        assert changed.headers["Location"] == "/account"
        assert session_cookie(browser, app) not in (None, before)
        assert browser.get("/account").status_code == 200
        assert goes_to_sign_in(with_cookie(app, before).get("/account"))

        for path in ("/account/recovery-codes/new", "/account/authenticator/set-up"):
            assert where(browser.get(path)) == ("/account/confirm-it-is-you", {"next": [path]}), path
        refused = post_form(browser, "/account/recovery-codes/new", {}, form_page="/account")
        assert where(refused)[0] == "/account/confirm-it-is-you"
    subjects = [message.subject for message in emails_to(patient.account.email)]
    assert "Your password was changed" in subjects and "You have new recovery codes" not in subjects


def test_re_authentication_with_a_wrong_password_is_refused_e12(app, browser):
    patient = make_patient()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(browser, patient)
        clock.shift(timedelta(minutes=16, seconds=30))
        refused = post_form(
            browser, "/account/confirm-it-is-you", {"password": "wrong password here", "code": patient.code()}
        )
        assert refused.status_code == 400
        assert browser.get("/account/recovery-codes/new").status_code == 302


# ---------------------------------------------------------------------------------------------------------
# K11. Where sign-in returns to
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("next_value", "landing"),
    [
        ("https://evil.example/", "/account"),
        ("//evil.example", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
        ("/account/\\\\evil.example", "/account"),
        ("/account/change-password", "/account/change-password"),
    ],
)
def test_sign_in_returns_only_to_a_page_of_the_portal_k11(app, browser, next_value, landing):
    patient = make_patient()
    path = f"/account/sign-in?next={quote(next_value, safe='')}"
    response = post_form(browser, path, {"email": patient.account.email, "password": patient.password})
    assert response.headers["Location"] == "/account/sign-in/code"
    response = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert response.headers["Location"] == landing


def test_the_guard_sends_a_signed_out_visitor_back_to_the_page_they_wanted_k11(app, browser):
    patient = make_patient()
    redirect_to_sign_in = browser.get("/account/change-password")
    location = redirect_to_sign_in.headers["Location"]
    assert where(redirect_to_sign_in) == ("/account/sign-in", {"next": ["/account/change-password"]})
    post_form(browser, location, {"email": patient.account.email, "password": patient.password})
    response = post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert response.headers["Location"] == "/account/change-password"


# ---------------------------------------------------------------------------------------------------------
# L. What the logs and the audit trail keep
# ---------------------------------------------------------------------------------------------------------

SENTINEL_PASSWORD = "S3ntinel-pw-9f8e7d6c5b"
SENTINEL_NEW_PASSWORD = "S3ntinel-new-pw-4a3b2c1d0e"
SENTINEL_WRONG_PASSWORD = "S3ntinel-wrong-pw-7e6d5c"
NHS_NUMBER = "9434765919"


def log_lines(caplog) -> list[str]:
    """Every captured record as the JSON formatter writes it, plus its bare message, without the random request
    id (whose hex digits could by chance contain a six-digit code)."""
    formatter = JsonFormatter()
    lines = []
    for record in caplog.records:
        data = json.loads(formatter.format(record))
        data.pop("request_id", None)
        lines.append(json.dumps(data, ensure_ascii=False))
        lines.append(record.getMessage())
    return lines


def audit_text() -> list[str]:
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars()
    values = [
        " ".join(
            str(value)
            for value in (
                event.action,
                event.actor_id,
                event.object_type,
                event.object_id,
                event.details,
                event.ip_address,
                event.user_agent,
            )
        )
        for event in events
    ]
    db.session.rollback()
    return values


def test_no_secret_or_nhs_number_reaches_the_logs_or_the_audit_trail_l1_l2_l3(app, caplog):
    """A whole journey through the real pages with sentinel values: register, confirm the email with the
    password, set up the authenticator, sign out, sign in with a recovery code, a wrong password, reset the
    password, sign in with a code. Nothing secret, and no NHS number, may appear in any log record or audit row.

    Every logger is captured at DEBUG. SQLAlchemy's own loggers keep the WARNING level SQLAlchemy gives them
    (statement echo is off, as in production), so they add nothing here.
    """
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    email = "sentinel.patient@example.org"
    sentinels: set[str] = set()

    def keep_cookie(client: FlaskClient) -> None:
        value = session_cookie(client, app)
        if value:
            sentinels.add(value)

    with time_machine.travel(START, tick=False) as clock:
        first = new_browser(app)
        registered = post_form(
            first,
            "/account/register",
            {
                "given-name": "Ada",
                "family-name": "Lovelace",
                "dob-day": "10",
                "dob-month": "12",
                "dob-year": "1955",
                "nhs-number": "943 476 5919",
                "postcode": "SE28 8BE",
                "email": email,
                "mobile": "07700 900982",
                "password": SENTINEL_PASSWORD,
                "confirm-password": SENTINEL_PASSWORD,
                "terms": "yes",
            },
        )
        assert registered.headers["Location"] == "/account/register/check-your-email"
        confirm_link = link_in(emails_to(email)[-1])
        sentinels.add(confirm_link.rsplit("/", 1)[1])
        opened = first.get(confirm_link)
        assert (opened.status_code, opened.headers["Location"]) == (303, "/account/confirm-email")
        keep_cookie(first)  # the session now holding the link's token
        confirmed = post_form(first, "/account/confirm-email", {"password": SENTINEL_PASSWORD})
        assert confirmed.headers["Location"] == "/account/authenticator/set-up"
        keep_cookie(first)
        set_up = Pages.parse(first.get("/account/authenticator/set-up"))
        secret = set_up.select_one("#setup-key").get_text().replace(" ", "")
        code = pyotp.TOTP(secret).now()
        sentinels.update({secret, code})
        shown = post_form(first, "/account/authenticator/set-up", {"code": code})
        assert shown.status_code == 200
        recovery_codes = [item.get_text(strip=True) for item in Pages.parse(shown).select("#recovery-codes li")]
        assert len(recovery_codes) == 10
        sentinels.update(recovery_codes)
        sentinels.update(shown_code.replace("-", "") for shown_code in recovery_codes)
        keep_cookie(first)
        assert first.get("/account").status_code == 200
        assert post_form(first, "/account/sign-out", {}, form_page="/account").status_code == 200

        clock.shift(timedelta(minutes=1))
        second = new_browser(app)
        wrong = post_form(second, "/account/sign-in", {"email": email, "password": SENTINEL_WRONG_PASSWORD})
        assert wrong.status_code == 400
        post_form(second, "/account/sign-in", {"email": email, "password": SENTINEL_PASSWORD})
        keep_cookie(second)
        recovered = post_form(second, "/account/sign-in/recovery-code", {"recovery-code": recovery_codes[0]})
        assert recovered.headers["Location"] == "/account"
        keep_cookie(second)

        third = new_browser(app)
        assert post_form(third, "/account/forgot-password", {"email": email}).status_code == 302
        reset_link = link_in(emails_to(email)[-1])
        assert "/reset-password/" in reset_link
        sentinels.add(reset_link.rsplit("/", 1)[1])
        opened = third.get(reset_link)
        assert (opened.status_code, opened.headers["Location"]) == (303, "/account/reset-password")
        keep_cookie(third)
        reset = post_form(
            third,
            "/account/reset-password",
            {"password": SENTINEL_NEW_PASSWORD, "confirm-password": SENTINEL_NEW_PASSWORD},
        )
        assert goes_to_sign_in(reset)

        clock.shift(timedelta(minutes=1))
        fourth = new_browser(app)
        post_form(fourth, "/account/sign-in", {"email": email, "password": SENTINEL_NEW_PASSWORD})
        keep_cookie(fourth)
        late_code = pyotp.TOTP(secret).now()
        sentinels.add(late_code)
        assert post_form(fourth, "/account/sign-in/code", {"code": late_code}).headers["Location"] == "/account"
        keep_cookie(fourth)
        assert fourth.get("/account").status_code == 200

    sentinels.update({SENTINEL_PASSWORD, SENTINEL_NEW_PASSWORD, SENTINEL_WRONG_PASSWORD})
    forbidden = sentinels | {NHS_NUMBER, "943 476 5919"}
    lines = log_lines(caplog)
    assert any("POST /account/sign-in/code" in line for line in lines), "the journey was logged"
    audit = audit_text()
    assert any(line.startswith("password_reset ") for line in audit)
    # L1: each sign-in is one structured event, with who, what, outcome, where from and which request.
    signed_in = audit_events("authn_login_success")
    assert [json.loads(event.details)["factor"] for event in signed_in] == ["recovery_code", "totp"]
    for event in signed_in + audit_events("authn_login_fail") + audit_events("authn_password_accepted"):
        assert event.actor_type in ("anonymous", "patient") and event.object_type == "patient"
        assert event.object_id and event.outcome in ("success", "failure")
        assert event.ip_address == "127.0.0.1" and event.user_agent and event.request_id
    for value in sorted(forbidden):
        assert not [line for line in lines if value in line], f"a log record holds {value!r}"
        assert not [line for line in audit if value in line], f"an audit row holds {value!r}"


INJECTED_EMAIL = 'alice\r\n{"event":"authn_login_success"}@x.org'


def test_a_line_break_in_the_email_cannot_forge_a_log_record_l4(app, browser, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="portal")
    response = post_form(browser, "/account/sign-in", {"email": INJECTED_EMAIL, "password": "whatever it is"})
    assert response.status_code == 400
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert any('"POST /account/sign-in 400"' in line for line in lines)
    for line in lines:
        assert "\r" not in line and "\n" not in line, line
        record = json.loads(line)
        assert isinstance(record, dict) and "event" not in record
    assert audit_events("authn_login_success") == []
    assert len(audit_events("authn_login_fail")) == 1
    # Were the address logged, the formatter keeps it, line breaks escaped, inside one record.
    record = logging.makeLogRecord({"name": "portal", "levelno": logging.INFO, "msg": "sign-in for %s"})
    record.args = (INJECTED_EMAIL,)
    written = formatter.format(record)
    assert "\r" not in written and "\n" not in written
    assert json.loads(written)["message"] == f"sign-in for {INJECTED_EMAIL}"


# ---------------------------------------------------------------------------------------------------------
# M3. The session store unavailable
# ---------------------------------------------------------------------------------------------------------


def test_a_signed_in_page_is_refused_when_the_session_store_cannot_be_read_m3(app, browser, monkeypatch):
    patient = make_patient()
    sign_in(browser, patient)
    assert browser.get("/account").status_code == 200
    real_execute = db.session.execute
    looked_up = []

    def unreachable(statement, *args, **kwargs):
        if isinstance(statement, Select) and "web_session" in str(statement):
            looked_up.append(statement)
            raise OperationalError(str(statement), {}, ConnectionError("could not connect to server"))
        return real_execute(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "execute", unreachable)
    response = browser.get("/account")
    monkeypatch.undo()
    assert looked_up, "the session lookup went through the patched call"
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "Lovelace" not in body and patient.account.email not in body
    assert browser.get("/account").status_code == 200, "the session survives the outage"
    assert db.session.execute(select(func.count()).select_from(WebSession)).scalar_one() == 1
    db.session.rollback()


def test_a_signed_in_page_whose_database_goes_away_midway_gets_the_503_page_m3(app, browser, monkeypatch):
    """The database fails after the account was read (a restart mid-request): the rollback expires the
    account's row and the database cannot read it again, so the 503 page is drawn without it, never a 500."""
    patient = make_patient()
    sign_in(browser, patient)
    real_execute = Session.execute
    outage = []

    def failing_from_the_view_on(session, statement, *args, **kwargs):
        if outage or "recording_request" in str(statement):
            outage.append(statement)
            raise OperationalError(str(statement), {}, ConnectionError("server closed the connection"))
        return real_execute(session, statement, *args, **kwargs)

    monkeypatch.setattr(Session, "execute", failing_from_the_view_on)
    response = browser.get("/requests")
    monkeypatch.undo()
    assert len(outage) > 1, "the page asked the database again after it failed, and was refused"
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    assert "quote this reference" in body
    assert "Lovelace" not in body
    assert browser.get("/requests").status_code == 200, "the session survives the outage"


def test_a_form_sent_while_the_session_store_cannot_be_read_gets_503_not_400_m3(app, browser, monkeypatch):
    """The CSRF check runs before the sign-in check and reads its token from the session: when the session
    cannot be read, the answer is the 503 page, not a 400 blaming the form."""
    patient = make_patient()
    sign_in(browser, patient)
    token = csrf_token(browser, "/requests/new")
    real_execute = db.session.execute

    def unreachable(statement, *args, **kwargs):
        if isinstance(statement, Select) and "web_session" in str(statement):
            raise OperationalError(str(statement), {}, ConnectionError("could not connect to server"))
        return real_execute(statement, *args, **kwargs)

    monkeypatch.setattr(db.session, "execute", unreachable)
    response = browser.post(
        "/requests/new",
        data={"csrf_token": token, "description": "About my prescription"},
        headers={"Referer": "https://localhost/requests/new"},
    )
    monkeypatch.undo()
    assert response.status_code == 503
    assert "quote this reference" in response.get_data(as_text=True)
    assert browser.get("/requests/new").status_code == 200, "the session survives the outage"
