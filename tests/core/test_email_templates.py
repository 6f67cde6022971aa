"""Every email is a text template under templates/emails/, and each is compared, with fixed inputs, to the
text committed under tests/golden/emails/: any change of wording shows up as a diff of that file.

After a deliberate change of wording, write the files again and review the diff before committing it:

    UPDATE_GOLDEN=1 PORTAL_ENV=test .venv/bin/pytest tests/core/test_email_templates.py
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import jinja2
import pytest
from jinja2 import meta

from core.config import PROJECT_ROOT
from core.jinja import EMAIL_TEMPLATE_FOLDER, email_environment, render_email

GOLDEN = PROJECT_ROOT / "tests" / "golden" / "emails"
PRACTICE = {"practice_name": "Thamesmead Medical Associates", "practice_phone": "020 8310 1111"}
PATIENT = {"greeting": "Dear Sam,", **PRACTICE}
LINK = "https://portal.example.nhs.uk/link/abc123"
UPDATE = {"reference": "CR-2026-00042", "link": "https://portal.example.nhs.uk/requests/CR-2026-00042"}

EXAMPLES: dict[str, dict] = {
    "accounts/registration-attempt.txt": {
        **PATIENT,
        "forgot_password_link": "https://portal.example.nhs.uk/account/forgot-password",
    },
    "accounts/confirm-email-address.txt": {**PATIENT, "greeting": "Hello,", "link": LINK},
    "accounts/identity-confirmed-by-key.txt": PATIENT,
    "accounts/identity-confirmed.txt": PATIENT,
    "accounts/identity-not-confirmed.txt": PATIENT,
    "accounts/recovery-code-used.txt": {**PATIENT, "codes_left": 7},
    "accounts/sign-in-code-reused.txt": PATIENT,
    "accounts/authenticator-changed.txt": PATIENT,
    "accounts/authenticator-removed.txt": {**PATIENT, "link": LINK},
    "accounts/new-recovery-codes.txt": PATIENT,
    "accounts/password-changed.txt": PATIENT,
    "accounts/reset-password.txt": {**PATIENT, "link": LINK},
    "accounts/password-reset.txt": PATIENT,
    "accounts/staff-invitation.txt": {
        **PATIENT,
        "greeting": "Dear Alex Clerk,",
        "inviter_name": "Pat Admin",
        "link": LINK,
    },
    "accounts/staff-invitation-resent.txt": {**PATIENT, "greeting": "Dear Alex Clerk,", "link": LINK},
    "requests/request-received.txt": {**PATIENT, **UPDATE, "waiting_for_identity": False, "due_on": date(2026, 4, 2)},
    "requests/request-logged.txt": {**PATIENT, **UPDATE},
    "requests/request-started.txt": {**PATIENT, **UPDATE, "due_on": date(2026, 4, 2)},
    "requests/more-information-needed.txt": {**PATIENT, **UPDATE},
    "requests/time-limit-extended.txt": {**PATIENT, **UPDATE},
    "requests/search-finished.txt": {**PATIENT, **UPDATE},
    "requests/decision-made.txt": {**PATIENT, **UPDATE},
    "requests/request-withdrawn.txt": {**PATIENT, **UPDATE},
    "requests/complaint-received.txt": {**PATIENT, **UPDATE, "acknowledge_by": date(2026, 5, 1)},
    "requests/complaint-acknowledged.txt": {**PATIENT, **UPDATE},
    "releases/recordings-ready.txt": {
        **PATIENT,
        "reference": "CR-2026-00042",
        "link": "https://portal.example.nhs.uk/downloads/signed-token",
        # 23:30 UTC on 30 June is 1 July in London: the email names the London day.
        "expires_at": datetime(2026, 6, 30, 23, 30, tzinfo=UTC),
        "max_downloads": 3,
    },
    "staff/reminders.txt": {
        **PRACTICE,
        "greeting": "Dear Alex Clerk,",
        "due_soon_working_days": 5,
        "overdue": [
            {
                "reference": "CR-2026-00040",
                "due_on": date(2026, 3, 2),
                "days": -3,
                "status": "Being processed",
                "assigned_to": "Alex Clerk",
                "link": "https://portal.example.nhs.uk/admin/requests/CR-2026-00040",
            }
        ],
        "due_soon": [
            {
                "reference": "CR-2026-00041",
                "due_on": date(2026, 3, 5),
                "days": 0,
                "status": "Received",
                "assigned_to": None,
                "link": "https://portal.example.nhs.uk/admin/requests/CR-2026-00041",
            },
            {
                "reference": "CR-2026-00042",
                "due_on": date(2026, 3, 9),
                "days": 2,
                "status": "Waiting for more information",
                "assigned_to": "Pat Admin",
                "link": "https://portal.example.nhs.uk/admin/requests/CR-2026-00042",
            },
        ],
        "complaints": [
            {
                "reference": "CR-2026-00007",
                "acknowledge_by": date(2026, 3, 4),
                "late": True,
                "link": "https://portal.example.nhs.uk/admin/complaints",
            }
        ],
    },
}

# What an email may show. Patients' emails carry no health information: no calls, descriptions, questions,
# answers or decisions, only that there is an update, a reference, a date and a link to sign in.
PATIENT_EMAIL_VALUES = {
    "greeting",
    "practice_name",
    "practice_phone",
    "reference",
    "link",
    "forgot_password_link",
    "due_on",
    "acknowledge_by",
    "expires_at",
    "max_downloads",
    "codes_left",
    "waiting_for_identity",
    "inviter_name",
}
STAFF_DIGEST_VALUES = PATIENT_EMAIL_VALUES | {"overdue", "due_soon", "due_soon_working_days", "complaints"}


def message_templates() -> list[str]:
    return sorted(
        path.relative_to(EMAIL_TEMPLATE_FOLDER).as_posix()
        for path in EMAIL_TEMPLATE_FOLDER.rglob("*.txt")
        if not path.name.startswith("_")
    )


def golden_text(name: str, context: dict) -> str:
    subject, body = render_email(name, **context)
    return f"Subject: {subject}\n\n{body}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_email_reads_exactly_as_its_golden_file(name):
    text = golden_text(name, EXAMPLES[name])
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


def test_every_email_template_has_an_example_and_every_golden_file_a_template():
    assert message_templates() == sorted(EXAMPLES)
    goldens = sorted(path.relative_to(GOLDEN).as_posix() for path in GOLDEN.rglob("*.txt"))
    assert goldens == sorted(EXAMPLES)


@pytest.mark.parametrize("path", sorted(EMAIL_TEMPLATE_FOLDER.rglob("*.txt")), ids=lambda path: path.name)
def test_emails_can_show_only_a_reference_dates_and_links(path: Path):
    """Every value a template (or a layout) reads is on the list above: adding, say, the request's description
    to an email fails here first."""
    source = path.read_text(encoding="utf-8")
    names = meta.find_undeclared_variables(email_environment().parse(source))
    allowed = STAFF_DIGEST_VALUES if path.parent.name == "staff" else PATIENT_EMAIL_VALUES
    assert names <= allowed


def test_an_email_is_plain_text_so_nothing_is_escaped_or_read_as_markup():
    context = {**EXAMPLES["accounts/staff-invitation.txt"], "inviter_name": 'Jo <b>"Boss"</b> & Co'}
    _subject, body = render_email("accounts/staff-invitation.txt", **context)
    assert 'Jo <b>"Boss"</b> & Co has invited you' in body
    assert "&amp;" not in body and "&lt;" not in body


def test_a_missing_value_is_an_error_not_a_blank():
    context = dict(EXAMPLES["accounts/reset-password.txt"])
    del context["link"]
    with pytest.raises(jinja2.UndefinedError):
        render_email("accounts/reset-password.txt", **context)


def test_a_request_waiting_for_an_identity_check_gets_no_due_date():
    context = {**EXAMPLES["requests/request-received.txt"], "waiting_for_identity": True, "due_on": None}
    _subject, body = render_email("requests/request-received.txt", **context)
    assert "Before we can start, the practice needs to confirm your identity" in body
    assert "respond by" not in body
