"""Registration under pressure: a double click, a re-registration over an account staff already checked, and
names from many alphabets."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select

from core.extensions import db
from core.models.accounts import Patient
from core.services import accounts
from tests.accounts_support import csrf_token, emails_to, make_patient, make_staff, post_form
from tests.conftest import new_browser
from tests.portal.test_email_flooding import REGISTRATION


def test_a_double_clicked_registration_answers_both_clicks_the_same_and_logs_no_personal_details(app, caplog):
    """Two submissions of one new address at once: one account, the same page for both, no 500, and nothing
    from the form (NHS number, date of birth, password hash) in any log record (SECURITY L3, M1)."""
    browsers = [new_browser(app) for _ in range(4)]
    tokens = [csrf_token(browser, "/account/register") for browser in browsers]
    barrier = threading.Barrier(len(browsers))
    statuses: list[int] = []

    def submit(browser, token):
        barrier.wait()
        response = browser.post(
            "/account/register",
            data={**REGISTRATION, "csrf_token": token},
            headers={"Referer": "https://localhost/account/register"},
        )
        statuses.append(response.status_code)

    caplog.set_level(logging.DEBUG)
    threads = [threading.Thread(target=submit, args=pair) for pair in zip(browsers, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(statuses) == [302] * 4
    assert db.session.execute(select(func.count()).select_from(Patient)).scalar_one() == 1
    logged = "\n".join(record.getMessage() + str(record.exc_info or "") for record in caplog.records)
    for secret in ("9434765919", "943 476 5919", "1955-12-10", "$argon2id$"):
        assert secret not in logged


def test_re_registering_an_unconfirmed_account_clears_an_earlier_identity_decision(browser):
    """New identity details replace the old ones, so a check staff made of the old ones no longer applies."""
    patient = make_patient(email="target@example.org", email_confirmed=False, verified=True)
    assert patient.account.identity_status == "verified"

    response = post_form(browser, "/account/register", {**REGISTRATION, "nhs-number": "401 023 2137"})

    assert response.status_code == 302
    db.session.expire_all()
    replaced = db.session.get(Patient, patient.account.id)
    assert (replaced.nhs_number, replaced.identity_status, replaced.identity_method) == (
        "4010232137",
        "unverified",
        None,
    )


def test_staff_cannot_record_an_identity_check_before_the_email_is_confirmed():
    patient = make_patient(email_confirmed=False)
    staff = make_staff()
    with pytest.raises(accounts.AccountError, match="not confirmed their email"):
        accounts.verify_identity(staff.account, patient.account, method="photo_id", note="")
    with pytest.raises(accounts.AccountError, match="not confirmed their email"):
        accounts.reject_identity(staff.account, patient.account, reason="No match")


@pytest.mark.parametrize(
    "name", ["सिंह", "Smith \u2013 Jones", "Smith - Jones", "Nguyễn", "Ó Súilleabháin", "D'Arcy", "Jr.", "Anne-Marie"]
)
def test_names_in_many_alphabets_and_styles_are_accepted(browser, name):
    response = post_form(browser, "/account/register", {**REGISTRATION, "family-name": name})
    assert response.status_code == 302, name


@pytest.mark.parametrize("name", ["Ann--Lee", "Ann-", "A..B", "Your NHS record is locked: call 0800"])
def test_text_that_is_not_a_name_is_refused(browser, name):
    response = post_form(browser, "/account/register", {**REGISTRATION, "given-name": name})
    assert response.status_code == 400, name
    assert "must only include letters" in response.get_data(as_text=True)


def test_an_email_to_an_unproved_address_does_not_greet_by_the_name_typed(browser):
    """Whatever was typed as a name goes nowhere until the address is proved."""
    post_form(browser, "/account/register", {**REGISTRATION, "given-name": "Urgent Call Us Now"})
    [proof] = emails_to("target@example.org")
    assert proof.body_text.startswith("Hello,")
    assert "Urgent" not in proof.body_text
