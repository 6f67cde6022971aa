"""Practice settings (issue 5): admins change the practice's details and its release and retention policies
at /admin/settings; the change is checked, audited and in force at once, in every worker.

Every save goes through the real page as an admin's browser sends it (CSRF token, Referer, both factors
within 15 minutes). SECURITY rows: G4 (admins only), J1 (CSRF), E12 (a fresh second factor), K8 (links in
emails built from the configured address, never the Host header; the address must be one the portal answers
for), L1/X8 (audited with before and after), M3 (the four-eyes check does not fail open).
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask import Flask, current_app
from flask.testing import FlaskClient
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from core.extensions import db
from core.factory import create_app
from core.models.accounts import RegisterEntry
from core.models.audit import AuditEvent
from core.models.requests import Recording
from core.models.settings import PracticeSettings
from core.services import accounts, recordings, registration_keys, releases
from core.services import requests as requests_service
from core.services.audit import verify_chain
from core.services.requests import RequestError
from core.services.settings import Settings, SettingsError, form_values_of, practice_settings, save_settings
from tests.accounts_support import (
    SignInAccount,
    csrf_token,
    emails_to,
    make_patient,
    make_staff,
    post_form,
    signed_in_browser,
)
from tests.conftest import Pages, https_client_for
from tests.release_support import SAMPLE_WAV, released_request

PAGE = "/admin/settings"
DEFAULT_NAME = "Thamesmead Medical Associates"
NEW_HOST = "recordings.example-practice.nhs.uk"


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def admin() -> SignInAccount:
    return make_staff(email="ava@practice.example", name="Ava Admin", role="admin")


@pytest.fixture
def admin_browser(app, admin) -> FlaskClient:
    return signed_in_browser(app, admin)


def parse(response) -> BeautifulSoup:
    return Pages.parse(response)


def form_on_page(client: FlaskClient) -> dict[str, str]:
    """What the settings form sends as it stands: every field's value, the checked radio, the CSRF token."""
    response = client.get(PAGE)
    assert response.status_code == 200, response.status_code
    form = parse(response).find("form", action=PAGE)
    data = {}
    for field in form.find_all("input"):
        if field.get("type") in ("radio", "checkbox"):
            if field.has_attr("checked"):
                data[field["name"]] = field["value"]
        else:
            data[field["name"]] = field.get("value", "")
    return data


def save(client: FlaskClient, **changes: str):
    """Open the settings page, change the fields named (snake_case for kebab-case ids), and send it."""
    data = form_on_page(client)
    data.update({name.replace("_", "-"): value for name, value in changes.items()})
    return client.post(PAGE, data=data)


def saved(response) -> None:
    assert response.status_code == 302, (response.status_code, error_summary(response))
    assert response.headers["Location"] == PAGE


def error_summary(response) -> list[str]:
    summary = BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one(".nhsuk-error-summary")
    return [item.get_text(strip=True) for item in summary.select("li")] if summary else []


def stored_row() -> PracticeSettings | None:
    db.session.expire_all()
    return db.session.get(PracticeSettings, 1)


def settings_events(action: str = "settings_changed") -> list[AuditEvent]:
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def header_name(client: FlaskClient, path: str = "/") -> str:
    soup = parse(client.get(path))
    return soup.select_one(".nhsuk-header").get_text(" ", strip=True)


def prepared_by_admin(tmp_path, monkeypatch):
    """A request whose release a clinician admin prepared (so needs no separate clinical review)."""
    monkeypatch.setitem(current_app.config, "RECORDINGS_DIR", str(tmp_path / "recordings"))
    patient = make_patient(verified=True)
    preparer = make_staff(email="dr.prep@practice.example", name="Dr Pat Prep", role="admin").account
    preparer.is_clinician = True
    db.session.commit()
    today = requests_service.practice_today()
    details = requests_service.CallDetails(
        calls_from=today - timedelta(days=5), calls_to=today - timedelta(days=5), description="A call about results"
    )
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    with SAMPLE_WAV.open("rb") as stream:
        recordings.attach_recording(preparer, req, stream, recordings.RecordingDetails(original_name="call.wav"))
    releases.prepare_release(preparer, req)
    return preparer, req


# ---------------------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------------------


def test_with_no_saved_settings_every_value_is_the_configured_default(app, admin_browser):
    assert stored_row() is None
    current = practice_settings()
    assert current == Settings.from_config(app.config)
    assert (current.practice_name, current.release_link_days, current.release_four_eyes) == (DEFAULT_NAME, 7, True)
    assert current.version == 0 and current.overridden == frozenset()

    soup = parse(admin_browser.get(PAGE))
    assert soup.select_one("#practice-name")["value"] == DEFAULT_NAME
    assert soup.select_one("#release-link-days")["value"] == "7"
    assert soup.select_one("#release-four-eyes")["value"] == "yes" and soup.select_one("#release-four-eyes").has_attr(
        "checked"
    )
    hints = [hint.get_text(strip=True) for hint in soup.select("form .nhsuk-hint")]
    assert sum(hint.endswith("This is the default.") for hint in hints) == 12


def test_a_value_equal_to_its_default_is_stored_as_the_default_and_the_page_says_which_are_changed(
    admin_browser,
):
    saved(save(admin_browser, release_link_days="14"))
    assert stored_row().release_link_days == 14
    soup = parse(admin_browser.get(PAGE))
    assert "The default is 7 days." in soup.select_one("#release-link-days-hint").get_text()
    assert "This is the default." in soup.select_one("#practice-name-hint").get_text()

    saved(save(admin_browser, release_link_days="7"))
    assert stored_row().release_link_days is None  # "use the default" again
    assert practice_settings().release_link_days == 7
    assert practice_settings().overridden == frozenset()


def test_sending_the_form_unchanged_writes_and_audits_nothing(admin_browser):
    response = save(admin_browser)
    saved(response)
    assert "Nothing was changed" in parse(admin_browser.get(PAGE)).select_one(".nhsuk-notification-banner").get_text()
    assert stored_row() is None
    assert settings_events() == []


# ---------------------------------------------------------------------------------------------------------
# Checking: every problem is a 400 with a clear message, and nothing is saved
# ---------------------------------------------------------------------------------------------------------

INVALID = [
    ("practice_name", "", "Enter the practice's name"),
    ("practice_name", "x" * 201, "Practice name must be 200 characters or fewer"),
    ("practice_address", "  ", "Enter the practice's address"),
    ("practice_address", "y" * 301, "Address must be 300 characters or fewer"),
    ("practice_phone", "", "Enter the practice's phone number"),
    (
        "practice_phone",
        "020 8333 5000 ext 4",
        "Phone number must only include numbers 0 to 9, spaces and a + at the start",
    ),
    ("practice_phone", "0208-333-5000", "Phone number must only include numbers 0 to 9, spaces and a + at the start"),
    ("practice_phone", "12345", "Phone number must be between 7 and 20 characters, like 020 8333 5000"),
    (
        "practice_phone",
        "+44 20 8333 5000 00000",
        "Phone number must be between 7 and 20 characters, like 020 8333 5000",
    ),
    ("practice_email", "reception", "Enter an email address in the correct format, like reception@example.nhs.uk"),
    (
        "practice_email",
        "a@b@example.org",
        "Enter an email address in the correct format, like reception@example.nhs.uk",
    ),
    ("public_base_url", "", "Enter the portal's web address"),
    ("public_base_url", "localhost", "The portal's web address must start with https://"),
    ("public_base_url", "ftp://localhost", "The portal's web address must start with https://"),
    ("public_base_url", "javascript:alert(1)", "The portal's web address must start with https://"),
    ("public_base_url", "https:///path-only", "Enter a web address in the correct format"),
    ("public_base_url", "https://local host", "Enter the portal's web address without spaces"),
    ("public_base_url", "https://localhost:99999", "Enter a web address in the correct format"),
    ("public_base_url", "https://evil.example\\@localhost", "Enter a web address in the correct format"),
    ("public_base_url", "https://l\u043ecalhost", "Enter a web address in the correct format"),  # Cyrillic "o"
    (
        "public_base_url",
        "https://localhost/portal",
        "Enter only the portal's address, with nothing after the host name",
    ),
    (
        "public_base_url",
        "https://localhost/?next=x",
        "Enter only the portal's address, with nothing after the host name",
    ),
    ("public_base_url", "https://localhost#top", "Enter only the portal's address, with nothing after the host name"),
    (
        "public_base_url",
        "https://ava:secret@localhost",
        "The portal's web address must not include a user name or password",
    ),
    ("public_base_url", "https://evil.example", "The portal's web address must use a host name the portal answers for"),
    ("public_base_url", "https://localhost.evil.example", "must use a host name the portal answers for"),
    ("release_link_days", "", "Enter how many days a download link works"),
    ("release_link_days", "0", "Link lifetime must be between 1 and 90 days"),
    ("release_link_days", "91", "Link lifetime must be between 1 and 90 days"),
    ("release_link_days", "seven", "Link lifetime must be a whole number of days, like 7"),
    ("release_link_days", "1.5", "Link lifetime must be a whole number of days, like 7"),
    ("release_link_days", "-3", "Link lifetime must be a whole number of days, like 7"),
    ("release_link_days", "٣", "Link lifetime must be a whole number of days, like 7"),  # an Arabic-Indic 3
    ("release_link_days", "9" * 12, "Link lifetime must be between 1 and 90 days"),
    ("release_max_downloads", "0", "Downloads allowed must be between 1 and 20"),
    ("release_max_downloads", "21", "Downloads allowed must be between 1 and 20"),
    ("release_four_eyes", "", "Select whether a second admin must approve each release"),
    ("release_four_eyes", "maybe", "Select whether a second admin must approve each release"),
    ("release_four_eyes", "no", "Confirm that one admin may prepare and approve a release alone"),
    ("purge_after_days", "-1", "Days before copies are deleted must be a whole number of days, like 30"),
    ("purge_after_days", "3651", "Days before copies are deleted must be between 0 and 3650 days"),
    ("recordings_kept_months", "0", "Months recordings are kept must be between 1 and 240 months"),
    ("recordings_kept_months", "241", "Months recordings are kept must be between 1 and 240 months"),
    ("registration_key_days", "", "Enter how many days a registration key works"),
    ("registration_key_days", "0", "Registration key lifetime must be between 1 and 90 days"),
    ("registration_key_days", "91", "Registration key lifetime must be between 1 and 90 days"),
    ("registration_key_days", "2.5", "Registration key lifetime must be a whole number of days, like 30"),
    ("redaction_fill", "", "Select what replaces a part of a recording that is withheld"),
    ("redaction_fill", "music", "Select what replaces a part of a recording that is withheld"),
]


@pytest.mark.parametrize(("name", "value", "message"), INVALID, ids=[f"{n}={v[:24]!r}" for n, v, _ in INVALID])
def test_an_invalid_value_is_refused_with_a_clear_message_and_nothing_changes(admin_browser, name, value, message):
    response = save(admin_browser, **({"practice_name": "Riverside Surgery"} | {name: value}))

    assert response.status_code == 400
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    assert soup.title.get_text().startswith("Error: ")
    [problem] = error_summary(response)
    assert message in problem
    field = "confirm-four-eyes-off" if message.startswith("Confirm") else name.replace("_", "-")
    assert soup.select_one(f".nhsuk-error-summary a[href='#{field}']") is not None
    assert message in soup.select_one(f"#{field}-error").get_text()
    assert stored_row() is None
    assert settings_events() == []
    assert practice_settings().practice_name == DEFAULT_NAME


def test_a_refused_save_leaves_saved_settings_exactly_as_they_were(admin_browser):
    saved(save(admin_browser, practice_name="Riverside Surgery", release_link_days="14"))
    before = {column: getattr(stored_row(), column) for column in ("version", "practice_name", "release_link_days")}

    response = save(admin_browser, practice_name="Another Name", release_link_days="14", release_max_downloads="99")

    assert response.status_code == 400
    assert soup_value(response, "practice-name") == "Another Name"  # the admin's typing is kept on the page
    assert {column: getattr(stored_row(), column) for column in before} == before
    assert len(settings_events()) == 1


def soup_value(response, field_id: str) -> str:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser").select_one(f"#{field_id}")["value"]


def test_plain_http_is_refused_in_production_but_allowed_elsewhere(app, admin_browser, monkeypatch):
    """K8: production links must be https://, as production configuration already demands."""
    monkeypatch.setitem(app.config, "ENV_NAME", "production")
    response = save(admin_browser, public_base_url="http://localhost")
    assert response.status_code == 400
    assert "must start with https://" in error_summary(response)[0]

    monkeypatch.setitem(app.config, "ENV_NAME", "test")
    saved(save(admin_browser, public_base_url="http://localhost:8080/"))
    assert practice_settings().public_base_url == "http://localhost:8080"


def test_several_problems_are_listed_together_in_the_order_of_the_form(admin_browser):
    response = save(admin_browser, recordings_kept_months="0", practice_phone="phone", practice_name="")
    assert response.status_code == 400
    assert error_summary(response) == [
        "Enter the practice's name",
        "Phone number must only include numbers 0 to 9, spaces and a + at the start",
        "Months recordings are kept must be between 1 and 240 months",
    ]


def test_a_save_based_on_an_old_copy_of_the_page_is_refused_and_shows_the_newer_values(app, admin_browser):
    """Two admins editing at once: the second to save is told, and the first one's change is not lost."""
    other = make_staff(email="ben@practice.example", name="Ben Admin", role="admin")
    stale_form = form_on_page(admin_browser)
    saved(save(signed_in_browser(app, other), practice_name="Ben's Surgery"))

    response = admin_browser.post(PAGE, data={**stale_form, "practice-name": "Ava's Surgery"})

    assert response.status_code == 400
    assert "Someone else changed the settings while you were editing them" in error_summary(response)[0]
    assert soup_value(response, "practice-name") == "Ben's Surgery"
    assert stored_row().practice_name == "Ben's Surgery"


# ---------------------------------------------------------------------------------------------------------
# Who may change them (G4, J1, E12)
# ---------------------------------------------------------------------------------------------------------


def test_staff_without_the_admin_role_can_neither_see_nor_change_the_settings_g4(app, admin_browser):
    clerk = make_staff(email="sam@practice.example", name="Sam Clerk", role="staff")
    data = form_on_page(admin_browser) | {"practice-name": "Clerk's Surgery"}
    clerk_browser = signed_in_browser(app, clerk)

    assert clerk_browser.get(PAGE).status_code == 403
    data["csrf_token"] = csrf_token(clerk_browser, "/admin/")  # the clerk's own token: only the role stops it
    assert clerk_browser.post(PAGE, data=data).status_code == 403
    assert "Settings" not in parse(clerk_browser.get("/admin/")).select_one(".nhsuk-header").get_text()
    assert stored_row() is None
    assert settings_events() == []


def test_a_save_without_the_csrf_token_is_refused_j1(admin_browser):
    data = form_on_page(admin_browser) | {"practice-name": "Forged Surgery"}
    del data["csrf_token"]
    response = admin_browser.post(PAGE, data=data)
    assert response.status_code == 400
    assert stored_row() is None
    assert practice_settings().practice_name == DEFAULT_NAME


def test_a_save_from_another_site_is_refused_j4(admin_browser):
    data = form_on_page(admin_browser) | {"practice-name": "Forged Surgery"}
    response = admin_browser.post(PAGE, data=data, headers={"Referer": "https://evil.example/settings"})
    assert response.status_code == 400
    assert stored_row() is None


def test_saving_needs_a_second_factor_from_the_last_15_minutes_e12(app, admin):
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        browser = signed_in_browser(app, admin)
        data = form_on_page(browser) | {"practice-name": "Late Surgery"}
        traveller.shift(timedelta(minutes=10))
        assert browser.get("/admin/").status_code == 200
        traveller.shift(timedelta(minutes=6))

        assert browser.get(PAGE).status_code == 200  # reading the page needs no fresh factor
        response = browser.post(PAGE, data=data, headers={"Referer": f"https://localhost{PAGE}"})

    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/confirm-it-is-you?next=/admin/settings"
    assert stored_row() is None


def test_the_admin_navigation_links_to_the_settings(admin_browser):
    link = parse(admin_browser.get("/admin/")).find("a", string=lambda s: s and s.strip() == "Settings")
    assert link is not None and link["href"] == PAGE


# ---------------------------------------------------------------------------------------------------------
# Audit (L1, X8)
# ---------------------------------------------------------------------------------------------------------


def test_a_save_is_audited_once_with_each_changed_value_before_and_after(admin, admin_browser):
    saved(save(admin_browser, practice_name="Riverside Surgery", release_max_downloads="5"))

    [changed] = settings_events()
    assert (changed.actor_type, changed.actor_id) == ("staff", admin.account.public_id)
    assert (changed.object_type, changed.object_id, changed.outcome) == ("practice_settings", "1", "success")
    details = json.loads(changed.details)
    assert details == {
        "version": 1,
        "changed": {
            "practice_name": {"before": DEFAULT_NAME, "after": "Riverside Surgery", "default": False},
            "release_max_downloads": {"before": 3, "after": 5, "default": False},
        },
    }
    assert settings_events("four_eyes_release_turned_off") == []
    assert verify_chain().ok


def test_the_redaction_fill_is_a_setting_saved_and_audited(admin_browser):
    """Silence by default; an admin may choose a soft tone for redacted copies made from then on."""
    assert practice_settings().redaction_fill == "silence"
    assert Pages.parse(admin_browser.get("/admin/settings")).select_one("#redaction-fill")["value"] == "silence"

    saved(save(admin_browser, redaction_fill="tone"))

    assert practice_settings().redaction_fill == "tone"
    [changed] = settings_events()
    assert json.loads(changed.details)["changed"] == {
        "redaction_fill": {"before": "silence", "after": "tone", "default": False}
    }


def test_the_registration_key_lifetime_is_a_setting_saved_audited_and_used_for_new_keys_a7(admin, admin_browser):
    """Issue 11: a key lasts 30 days by default; admins change it here like the other settings."""
    assert practice_settings().registration_key_days == 30
    assert Pages.parse(admin_browser.get("/admin/settings")).select_one("#registration-key-days")["value"] == "30"

    saved(save(admin_browser, registration_key_days="14"))

    [changed] = settings_events()
    assert json.loads(changed.details)["changed"] == {
        "registration_key_days": {"before": 30, "after": 14, "default": False}
    }
    db.session.add(
        RegisterEntry(
            nhs_number="9434765919", date_of_birth=date(1955, 12, 10), family_name="Lovelace", postcode="SE28 8BE"
        )
    )
    db.session.commit()
    [issued] = registration_keys.issue_keys_for_numbers(["9434765919"])
    assert issued.expires_at - datetime.now(UTC) > timedelta(days=13, hours=23)
    assert issued.expires_at - datetime.now(UTC) <= timedelta(days=14)


def test_turning_four_eyes_off_needs_a_confirmation_and_is_audited_on_its_own(admin, admin_browser):
    refused = save(admin_browser, release_four_eyes="no")
    assert refused.status_code == 400
    assert stored_row() is None

    saved(save(admin_browser, release_four_eyes="no", confirm_four_eyes_off="yes"))

    assert practice_settings().release_four_eyes is False
    [changed] = settings_events()
    assert json.loads(changed.details)["changed"] == {
        "release_four_eyes": {"before": True, "after": False, "default": False}
    }
    [off] = settings_events("four_eyes_release_turned_off")
    assert off.actor_id == admin.account.public_id
    page = parse(admin_browser.get(PAGE))
    assert "Four-eyes release is off" in page.select_one(".nhsuk-card--warning").get_text()
    assert page.select_one("#confirm-four-eyes-off") is None  # nothing to confirm while it is off

    saved(save(admin_browser, release_four_eyes="yes"))  # turning it back on needs no confirmation
    assert practice_settings().release_four_eyes is True
    assert len(settings_events("four_eyes_release_turned_off")) == 1


# ---------------------------------------------------------------------------------------------------------
# In force at once
# ---------------------------------------------------------------------------------------------------------


def test_the_practice_details_on_every_page_change_with_the_next_request(app, admin_browser):
    visitor = https_client_for(app)
    assert DEFAULT_NAME in header_name(visitor)

    saved(
        save(
            admin_browser,
            practice_name="Riverside Surgery",
            practice_address="1 High Street, Leeds, LS1 1AA",
            practice_phone="0113 496 0000",
            practice_email="Reception@Riverside.example",
        )
    )

    soup = parse(visitor.get("/"))
    assert "Riverside Surgery" in soup.select_one(".nhsuk-header").get_text()
    footer = soup.select_one("footer").get_text(" ", strip=True)
    assert "1 High Street, Leeds, LS1 1AA" in footer and "0113 496 0000" in footer
    assert soup.select_one("footer a[href='tel:01134960000']") is not None
    assert soup.select_one("footer a[href='mailto:reception@riverside.example']") is not None
    assert soup.title.get_text().endswith("Riverside Surgery")
    assert DEFAULT_NAME not in soup.get_text()


def test_a_cached_public_page_is_not_served_with_the_old_practice_details(app, admin_browser):
    """The content pages answer conditional requests with 304; a settings change must change their ETag and
    Last-Modified, or browsers would keep showing the old header and footer."""
    visitor = https_client_for(app)
    first = visitor.get("/call-recording-notice")
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert visitor.get("/call-recording-notice", headers={"If-None-Match": etag}).status_code == 304

    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=2)):
        saved(save(admin_browser, practice_name="Riverside Surgery"))

        by_etag = visitor.get("/call-recording-notice", headers={"If-None-Match": etag})
        by_date = visitor.get("/call-recording-notice", headers={"If-Modified-Since": last_modified})

    assert by_etag.status_code == 200 and "Riverside Surgery" in by_etag.get_data(as_text=True)
    assert by_date.status_code == 200 and "Riverside Surgery" in by_date.get_data(as_text=True)
    assert by_etag.headers["ETag"] != etag


def test_a_release_approved_after_a_change_gets_the_new_lifetime_and_downloads(
    app, admin_browser, tmp_path, monkeypatch
):
    saved(save(admin_browser, release_link_days="30", release_max_downloads="5"))

    with time_machine.travel(datetime(2026, 6, 1, 9, 0, tzinfo=UTC), tick=False):
        patient, _req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)

    expires_at = release.expires_at.replace(tzinfo=UTC) if release.expires_at.tzinfo is None else release.expires_at
    assert expires_at == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
    assert release.max_downloads == 5
    [email] = [m for m in emails_to(patient.account.email) if "ready" in m.subject]
    assert "The link works until Wednesday 1 July 2026. Each recording can be downloaded 5 times." in email.body_text


def test_with_four_eyes_turned_off_the_admin_who_prepared_a_release_may_approve_it(
    admin_browser, tmp_path, monkeypatch
):
    preparer, req = prepared_by_admin(tmp_path, monkeypatch)
    with pytest.raises(RequestError, match="Another admin must approve this release"):
        releases.approve_release(preparer, req)

    saved(save(admin_browser, release_four_eyes="no", confirm_four_eyes_off="yes"))

    releases.approve_release(preparer, db.session.get(type(req), req.id))
    assert db.session.get(type(req), req.id).status == "released"


def test_the_four_eyes_check_refuses_when_the_settings_cannot_be_read_m3(tmp_path, monkeypatch):
    """M3: an unreadable setting is an error, never "four eyes off"."""
    _preparer, req = prepared_by_admin(tmp_path, monkeypatch)
    second = make_staff(email="ben@practice.example", name="Ben Admin", role="admin").account

    def unreadable():
        raise OperationalError("SELECT practice_settings.version", {}, Exception("database unavailable"))

    monkeypatch.setattr("core.services.releases.practice_settings", unreadable)
    with pytest.raises(OperationalError):
        releases.approve_release(second, req)
    assert db.session.get(type(req), req.id).status == "ready_for_approval"


def test_links_in_emails_use_the_new_address_of_the_portal_k8(app, admin, admin_browser, monkeypatch):
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", ["localhost", "127.0.0.1", NEW_HOST])
    saved(save(admin_browser, public_base_url=f"https://{NEW_HOST}/"))

    accounts.invite_staff(admin.account, email="nia@practice.example", name="Nia New", role="staff")

    [invitation] = emails_to("nia@practice.example")
    assert f"https://{NEW_HOST}/admin/" in invitation.body_text
    assert "https://localhost" not in invitation.body_text
    assert "Thamesmead Medical Associates" in invitation.body_text


def test_emails_sign_off_with_the_new_practice_name_and_phone(admin_browser):
    saved(save(admin_browser, practice_name="Riverside Surgery", practice_phone="0113 496 0000"))
    patient = make_patient(verified=True)

    accounts.regenerate_recovery_codes(patient.account)

    [notice] = emails_to(patient.account.email)
    assert "If this was not you, phone the practice on 0113 496 0000 straight away." in notice.body_text
    assert notice.body_text.rstrip().endswith("Riverside Surgery")
    assert DEFAULT_NAME not in notice.body_text and "020 8333 5000" not in notice.body_text


def test_the_purge_delay_applies_to_the_next_purge(app, admin_browser, tmp_path, monkeypatch):
    start = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        released_request(app, tmp_path, monkeypatch=monkeypatch)
    ten_days_after_expiry = start + timedelta(days=7 + 10)
    assert releases.purge_release_copies(now=ten_days_after_expiry, dry_run=True).purged == 0  # default: 30 days

    saved(save(admin_browser, purge_after_days="5"))

    assert releases.purge_release_copies(now=ten_days_after_expiry).purged == 1
    assert db.session.execute(select(func.count()).where(Recording.purged_at.is_not(None))).scalar() == 1


def test_the_request_form_warns_about_calls_older_than_the_new_keeping_period(app, admin_browser):
    patient_browser = signed_in_browser(app, make_patient(verified=True))
    today = requests_service.practice_today()
    call = today - timedelta(days=400)  # about 13 months ago
    answers = {
        "calls-from-day": str(call.day),
        "calls-from-month": str(call.month),
        "calls-from-year": str(call.year),
        "description": "A call about my test results",
        "preferred-format": "download",
    }

    def warning() -> str:
        assert post_form(patient_browser, "/requests/new", answers).status_code == 302
        card = parse(patient_browser.get("/requests/new/check")).select_one(".nhsuk-card--warning")
        return card.get_text(" ", strip=True) if card else ""

    assert warning() == ""  # 36 months by default
    saved(save(admin_browser, recordings_kept_months="12"))
    assert "may no longer have recordings of calls before" in warning()


# ---------------------------------------------------------------------------------------------------------
# Every worker at once, with one cheap query
# ---------------------------------------------------------------------------------------------------------


def test_two_application_instances_sharing_the_database_both_see_a_change_at_once(database_url, admin):
    """Two workers: each keeps its own copy of the settings; a save through one is in force in the other on
    its very next request, with no restart and no message between them."""
    first = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    second = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    second_visitor = https_client_for(second)
    assert DEFAULT_NAME in header_name(second_visitor)  # the second worker has read (and kept) the defaults
    with second.app_context():
        assert practice_settings().release_link_days == 7

    admin_browser = signed_in_browser(first, admin)
    saved(save(admin_browser, practice_name="Riverside Surgery", release_link_days="21"))

    assert "Riverside Surgery" in header_name(second_visitor)
    with second.app_context():
        assert practice_settings().release_link_days == 21

    saved(save(admin_browser, practice_name="Riverside Health Centre"))  # and again: not only the first save
    assert "Riverside Health Centre" in header_name(second_visitor)
    with second.app_context():
        assert practice_settings().practice_name == "Riverside Health Centre"
        assert practice_settings().release_link_days == 21


def test_reading_the_settings_costs_one_query_until_they_change(app: Flask, admin_browser):
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = db.engine
    practice_settings()  # fill this worker's copy
    event.listen(engine, "before_cursor_execute", count)
    try:
        practice_settings()
        assert len(statements) == 1 and "practice_settings.version" in statements[0]

        saved(save(admin_browser, practice_name="Riverside Surgery"))
        statements.clear()
        assert practice_settings().practice_name == "Riverside Surgery"
        assert len(statements) == 2  # the version, then the changed row
        statements.clear()
        practice_settings()
        assert len(statements) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_pages_still_show_the_practice_details_when_the_settings_cannot_be_read(app, admin_browser, monkeypatch):
    """An error page must render even when the database is down: the header falls back to the details this
    worker last read (never to a decision: see the M3 test above)."""
    saved(save(admin_browser, practice_name="Riverside Surgery"))
    assert "Riverside Surgery" in header_name(https_client_for(app))

    def unreadable():
        raise OperationalError("SELECT practice_settings.version", {}, Exception("database unavailable"))

    monkeypatch.setattr("core.factory.practice_settings", unreadable)
    assert "Riverside Surgery" in header_name(https_client_for(app))


def test_a_row_made_again_with_the_same_version_is_not_mistaken_for_the_old_one(admin_browser):
    """A restored backup, or a row deleted and saved again, can repeat a version number with other values."""
    saved(save(admin_browser, practice_name="Riverside Surgery"))
    assert practice_settings().practice_name == "Riverside Surgery"  # this worker's copy: version 1
    row = stored_row()
    db.session.delete(row)
    db.session.commit()
    db.session.add(PracticeSettings(id=1, version=1, practice_name="Restored Surgery", updated_at=datetime.now(UTC)))
    db.session.commit()

    assert practice_settings().practice_name == "Restored Surgery"


@pytest.mark.parametrize("earlier_saves", [0, 1], ids=["first-save", "later-save"])
def test_admins_saving_the_same_page_at_the_same_moment_one_wins_and_the_others_are_told(app, admin, earlier_saves):
    """The row is created and locked in each save's own transaction, and the version compared under the lock:
    of six saves sent at once from the same copy of the page, exactly one is applied and audited."""
    admin_id = admin.account.id
    if earlier_saves:
        save_settings(admin.account, form_values_of(practice_settings()) | {"practice_name": "Earlier Surgery"})
    base = form_values_of(practice_settings())
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def worker(number: int) -> None:
        try:
            with app.app_context():
                actor = db.session.get(type(admin.account), admin_id)
                start.wait(timeout=30)
                save_settings(actor, base | {"practice_name": f"Surgery {number}"}, expected_version=earlier_saves)
                outcomes.append("saved")
        except SettingsError as exc:
            outcomes.append("conflict" if exc.conflict else f"refused: {exc}")
        except BaseException as exc:  # hand anything else to the test
            outcomes.append(f"error: {exc!r}")

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes) == ["conflict"] * 5 + ["saved"]
    row = stored_row()
    assert row.version == earlier_saves + 1 and row.practice_name.startswith("Surgery ")
    assert len(settings_events()) == earlier_saves + 1
