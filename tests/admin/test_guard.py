"""Who may reach which page: the route inventory (SECURITY G4) and the guards behind it (G7-G10).

POLICY is the one place that says who each endpoint of the application is for. A test fails when the
application has an endpoint the table does not name, or the table names one that no longer exists, so a
page cannot be added without someone deciding who it is for. The other tests call every route with every
method as each kind of visitor (one client per role, signed in through the real pages) and compare the
answer with the table.

These tests use an application of their own with CSRF off, so that a POST reaches the guard instead of
stopping at the CSRF check; everything else about it is the test configuration.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from admin.guard import ADMIN_ONLY_ENDPOINTS, PUBLIC_ENDPOINTS, SIGN_IN_STEP_ENDPOINTS
from core.extensions import db, limiter
from core.factory import create_app
from core.models.audit import AuditEvent
from core.services import accounts
from tests.accounts_support import make_patient, make_staff, sign_in_password, signed_in_browser
from tests.conftest import https_client_for

if TYPE_CHECKING:
    from tests.accounts_support import SignInAccount

PUBLIC = "public"
SIGN_IN_STEP = "sign-in step"  # the code, recovery code and authenticator set-up pages
PATIENT = "patient"
STAFF = "staff"  # any member of staff signed in with both factors, admins included
ADMIN = "admin"  # members of staff with the admin role only

POLICY: dict[str, str] = {
    # Files served by the application itself
    "static": PUBLIC,
    "nhsuk_assets": PUBLIC,
    # The patients' area
    "portal.home": PUBLIC,
    "portal.call_recording_notice": PUBLIC,
    "portal.how_to_request": PUBLIC,
    "portal.accessibility_statement": PUBLIC,
    "portal.healthz": PUBLIC,
    "portal.healthz_worker": PUBLIC,
    "portal.register": PUBLIC,
    "portal.check_email": PUBLIC,
    "portal.confirm_email": PUBLIC,
    "portal.confirm_email_form": PUBLIC,
    "portal.sign_in": PUBLIC,
    "portal.sign_out": PUBLIC,
    "portal.forgot_password": PUBLIC,
    "portal.forgot_password_sent": PUBLIC,
    "portal.reset_password": PUBLIC,
    "portal.set_up_link": PUBLIC,
    "portal.choose_new_password": PUBLIC,
    "portal.sign_in_code": SIGN_IN_STEP,
    "portal.sign_in_recovery": SIGN_IN_STEP,
    "portal.set_up_authenticator": SIGN_IN_STEP,
    "portal.account": PATIENT,
    "portal.registration_key": PATIENT,
    "portal.reauthenticate": PATIENT,
    "portal.regenerate_recovery_codes": PATIENT,
    "portal.download_recovery_codes": PATIENT,
    "portal.change_password": PATIENT,
    "portal.sign_out_other_devices": PATIENT,
    "portal.requests_list": PATIENT,
    "portal.request_new": PATIENT,
    "portal.request_check": PATIENT,
    "portal.request_submit": PATIENT,
    "portal.request_submitted": PATIENT,
    "portal.request_detail": PATIENT,
    "portal.request_reply": PATIENT,
    "portal.request_withdraw": PATIENT,
    "portal.request_complaint": PATIENT,
    "portal.request_new_link": PATIENT,
    "portal.download_link": PUBLIC,
    "portal.download_page": PATIENT,
    "portal.download_play": PATIENT,
    "portal.download_file": PATIENT,
    # The staff area
    "admin.sign_in": PUBLIC,
    "admin.sign_out": PUBLIC,
    "admin.forgot_password": PUBLIC,
    "admin.forgot_password_sent": PUBLIC,
    "admin.reset_password": PUBLIC,
    "admin.set_up_link": PUBLIC,
    "admin.choose_new_password": PUBLIC,
    "admin.accept_invitation": PUBLIC,
    "admin.set_up_account": PUBLIC,
    "admin.sign_in_code": SIGN_IN_STEP,
    "admin.sign_in_recovery": SIGN_IN_STEP,
    "admin.set_up_authenticator": SIGN_IN_STEP,
    "admin.dashboard": STAFF,
    "admin.dashboard_csv": STAFF,
    "admin.reauthenticate": STAFF,
    "admin.regenerate_recovery_codes": STAFF,
    "admin.download_recovery_codes": STAFF,
    "admin.change_password": STAFF,
    "admin.sign_out_other_devices": STAFF,
    "admin.patients_awaiting_verification": STAFF,
    "admin.patient_search": STAFF,
    "admin.patient_detail": STAFF,
    "admin.patient_verify": STAFF,
    "admin.patient_reject": STAFF,
    "admin.patient_reset_authenticator": STAFF,
    "admin.patient_issue_registration_key": STAFF,
    "admin.patient_deactivate": ADMIN,
    "admin.patient_reactivate": ADMIN,
    "admin.patient_end_sessions": ADMIN,
    "admin.staff_list": ADMIN,
    "admin.staff_invite": ADMIN,
    "admin.staff_detail": ADMIN,
    "admin.staff_role": ADMIN,
    "admin.staff_deactivate": ADMIN,
    "admin.staff_reactivate": ADMIN,
    "admin.staff_reset_authenticator": ADMIN,
    "admin.staff_end_sessions": ADMIN,
    "admin.staff_resend_invitation": ADMIN,
    "admin.request_queue": STAFF,
    "admin.request_log_offline": STAFF,
    "admin.request_detail": STAFF,
    "admin.request_assign": STAFF,
    "admin.request_note": STAFF,
    "admin.request_start": STAFF,
    "admin.request_confirm_identity": STAFF,
    "admin.request_clarify": STAFF,
    "admin.request_record_reply": STAFF,
    "admin.request_extend": STAFF,
    "admin.request_no_recordings": STAFF,
    "admin.request_refuse": STAFF,
    "admin.request_close": STAFF,
    "admin.request_prepare_release": STAFF,
    "admin.request_approve_release": ADMIN,
    "admin.request_decline_release": ADMIN,
    "admin.request_revoke_link": STAFF,
    "admin.request_reissue_link": ADMIN,
    "admin.recording_upload": STAFF,
    "admin.recording_upload_form": STAFF,
    "admin.recording_audio": STAFF,
    "admin.recording_remove": STAFF,
    # Withholding parts of a recording (admin.redaction).
    "admin.recording_redact": STAFF,
    "admin.recording_waveform": STAFF,
    "admin.redaction_range_add": STAFF,
    "admin.redaction_range_change": STAFF,
    "admin.redaction_range_remove": STAFF,
    "admin.redaction_produce": STAFF,
    "admin.redaction_status": STAFF,
    "admin.complaint_list": STAFF,
    "admin.complaint_acknowledge": STAFF,
    # The notice editor: editing is for admins; any member of staff may read one version (a request's notice).
    "admin.content_list": ADMIN,
    "admin.content_edit": ADMIN,
    "admin.content_versions": ADMIN,
    "admin.content_diff": ADMIN,
    "admin.content_version": STAFF,
    "admin.content_roll_back": ADMIN,
    # The audit log viewer, its CSV, the chain check and the access report: admins only.
    "admin.audit_log": ADMIN,
    "admin.audit_log_csv": ADMIN,
    "admin.audit_check_chain": ADMIN,
    "admin.audit_access_report": ADMIN,
    "admin.audit_access_report_csv": ADMIN,
    # Practice settings: admins only.
    "admin.settings_page": ADMIN,
    "admin.settings_save": ADMIN,
}

# A harmless value for each URL parameter: no account, link or file has these.
PARAMETER_VALUES = {
    "public_id": "0" * 32,
    "recording_id": "0" * 32,
    "range_id": "0" * 32,
    "token": "not-a-real-token",
    "filename": "no-such-file.txt",
    "reference": "CR-2000-99999",
    "slug": "no-such-page",
    "number": 999999,
}


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    limiter.reset()


@pytest.fixture(scope="module")
def guard_app(database_url) -> Flask:
    return create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False})


def example_url(rule) -> str:
    """The rule's URL with every parameter filled with a harmless value (parameters with defaults keep them)."""
    values = {name: PARAMETER_VALUES[name] for name in rule.arguments if name not in (rule.defaults or {})}
    return rule.build(values, append_unknown=False)[1]


def calls(app: Flask, *policies: str, blueprint: str | None = None) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every route whose endpoint the table puts in one of `policies`."""
    found = []
    for rule in app.url_map.iter_rules():
        if POLICY.get(rule.endpoint) not in policies:
            continue
        if blueprint and not rule.endpoint.startswith(f"{blueprint}."):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, example_url(rule)))
    assert found, f"no routes for {policies} {blueprint or ''}"
    return sorted(found)


def refusals_recorded(test_account: SignInAccount, endpoint: str, method: str) -> int:
    """How many `authz_fail` events name this account, endpoint and method (SECURITY G10)."""
    account = test_account.account
    events = db.session.execute(
        select(AuditEvent).where(
            AuditEvent.action == "authz_fail",
            AuditEvent.actor_type == account.kind,
            AuditEvent.actor_id == account.public_id,
            AuditEvent.object_id == endpoint,
            AuditEvent.outcome == "failure",
        )
    ).scalars()
    return sum(1 for event in events if json.loads(event.details).get("method") == method)


def sign_in_location(response, *, area: str) -> str | None:
    """The `next` of a redirect to the area's sign-in page; fails if the response is anything else."""
    assert response.status_code == 302, response.status_code
    location = urlsplit(response.headers["Location"])
    assert location.path == f"{area}/sign-in", response.headers["Location"]
    return parse_qs(location.query).get("next", [None])[0]


# --- G4: the inventory ------------------------------------------------------------------------------------


def test_every_endpoint_of_the_application_is_in_the_policy_table(app):
    """G4: an endpoint nobody has classified fails the build, and so does a stale row in the table."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert sorted(endpoints - POLICY.keys()) == [], "endpoints missing from POLICY"
    assert sorted(POLICY.keys() - endpoints) == [], "POLICY names endpoints that no longer exist"


def test_the_admin_guard_lists_agree_with_the_policy_table():
    """G4: the guard's own exemptions are exactly the table's public and sign-in pages, and its admin-only
    list is exactly the table's admin pages (a page the guard forgot would be open to every member of staff)."""

    def admin_endpoints(policy: str) -> set[str]:
        return {endpoint for endpoint, value in POLICY.items() if endpoint.startswith("admin.") and value == policy}

    assert set(PUBLIC_ENDPOINTS) == admin_endpoints(PUBLIC)
    assert set(SIGN_IN_STEP_ENDPOINTS) == admin_endpoints(SIGN_IN_STEP)
    assert set(ADMIN_ONLY_ENDPOINTS) == admin_endpoints(ADMIN)


# --- G4: anonymous visitors ------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_matching_sign_in_page_from_every_protected_route(guard_app):
    """G4: staff pages send a visitor to /admin/sign-in, patient pages to /account/sign-in, with the page asked
    for as `next`, whatever the method."""
    client = https_client_for(guard_app)
    checked = []
    for endpoint, method, url in calls(guard_app, SIGN_IN_STEP, PATIENT, STAFF, ADMIN):
        response = client.open(url, method=method)
        area = "/admin" if endpoint.startswith("admin.") else "/account"
        next_path = sign_in_location(response, area=area)
        assert next_path == url, f"{method} {url}: next={next_path}"
        checked.append((method, url))
    assert ("GET", "/admin/") in checked
    assert ("POST", f"/admin/staff/{PARAMETER_VALUES['public_id']}/role") in checked
    assert ("GET", "/account") in checked


def test_public_pages_never_ask_anyone_to_sign_in(guard_app):
    """G4: the table's public pages answer anonymous visitors themselves (a missing file is a plain 404). The
    emailed download link is the one public page that moves on: a 303 to its token-less page, never to sign-in."""
    client = https_client_for(guard_app)
    checked = []
    for endpoint, method, url in calls(guard_app, PUBLIC):
        if method != "GET":
            continue
        response = client.get(url)
        if endpoint == "portal.download_link":
            assert (response.status_code, response.headers["Location"]) == (303, "/downloads/"), f"GET {url}"
        elif endpoint == "portal.healthz_worker":
            # No worker runs in this test: monitoring's endpoint says so, and asks no one to sign in.
            assert response.status_code == 503 and response.json["status"] == "attention", f"GET {url}"
        else:
            assert response.status_code in (200, 404), f"GET {url}: {response.status_code}"
        checked.append(url)
    assert {"/", "/account/sign-in", "/admin/sign-in", "/healthz"} <= set(checked)


# --- G4 and G10: signed-in people on pages that are not theirs ------------------------------------------


def assert_refused(client: FlaskClient, test_account: SignInAccount, route_calls, *, audited: bool = True) -> None:
    for endpoint, method, url in route_calls:
        before = refusals_recorded(test_account, endpoint, method)
        response = client.open(url, method=method)
        assert response.status_code == 403, f"{test_account.kind} {method} {url}: {response.status_code}"
        if audited:
            assert refusals_recorded(test_account, endpoint, method) == before + 1, f"no authz_fail for {method} {url}"


def test_a_signed_in_patient_gets_403_on_every_staff_page_and_each_refusal_is_audited(guard_app):
    """G4, G10: a patient with both factors is refused every staff and admin page, and each refusal writes an
    `authz_fail` event naming the patient, the endpoint and the method."""
    patient = make_patient()
    client = signed_in_browser(guard_app, patient)
    assert client.get("/account").status_code == 200
    assert_refused(client, patient, calls(guard_app, SIGN_IN_STEP, STAFF, ADMIN, blueprint="admin"))


def test_a_member_of_staff_gets_403_on_every_admin_only_page_and_each_refusal_is_audited(guard_app):
    """G4, G10: the `staff` role is refused staff management and the other admin-only pages, audited."""
    staff = make_staff(role="staff")
    client = signed_in_browser(guard_app, staff)
    assert client.get("/admin/").status_code == 200
    assert_refused(client, staff, calls(guard_app, ADMIN))


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_and_admins_get_403_on_every_patient_page(guard_app, role):
    """G4: the patients' area is for patients; staff accounts, admins included, are refused it."""
    staff = make_staff(role=role)
    client = signed_in_browser(guard_app, staff)
    assert_refused(client, staff, calls(guard_app, SIGN_IN_STEP, PATIENT, blueprint="portal"), audited=False)


def test_each_refusal_of_staff_on_a_patient_page_is_audited(guard_app):
    """G10: the patients' area audits its refusals like the staff area does."""
    staff = make_staff(role="staff")
    client = signed_in_browser(guard_app, staff)
    assert_refused(client, staff, calls(guard_app, PATIENT, blueprint="portal"))


def test_the_table_is_not_stricter_than_the_guards(guard_app):
    """G4 from the other side: each role does reach the pages the table gives it (a bogus id is a 404 or a
    form error, never a refusal or a trip back to the sign-in page)."""
    cases = [
        (make_patient(), calls(guard_app, PATIENT)),
        (make_staff(email="clerk@practice.example", role="staff"), calls(guard_app, STAFF)),
        (make_staff(email="boss@practice.example", name="Bo Admin", role="admin"), calls(guard_app, STAFF, ADMIN)),
    ]
    for test_account, route_calls in cases:
        client = signed_in_browser(guard_app, test_account)
        for _endpoint, method, url in route_calls:
            response = client.open(url, method=method)
            assert response.status_code in (200, 302, 400, 404), f"{test_account.kind} {method} {url}"
            if response.status_code == 302:
                assert "/sign-in" not in response.headers["Location"], f"{method} {url} asked for sign-in"


# --- G9: both factors before any staff page -------------------------------------------------------------


@pytest.mark.parametrize("enrolled", [True, False], ids=["code-not-yet-entered", "authenticator-not-set-up"])
def test_staff_with_only_the_password_step_done_are_sent_to_sign_in_from_every_staff_page(guard_app, enrolled):
    """G9 (and D1): an admin who has entered the right password but no code (or has no authenticator yet)
    reaches no staff or admin page; each one sends them back to sign in."""
    admin = make_staff(role="admin", enrolled=enrolled)
    client = https_client_for(guard_app)
    response = sign_in_password(client, admin)
    expected_step = "/admin/sign-in/code" if enrolled else "/admin/authenticator/set-up"
    assert response.headers["Location"] == expected_step
    for _endpoint, method, url in calls(guard_app, STAFF, ADMIN):
        sign_in_location(client.open(url, method=method), area="/admin")
    assert client.get(expected_step).status_code == 200  # the pending sign-in itself is still there


# --- G8: roles are read on every request -----------------------------------------------------------------


def test_an_admin_demoted_during_their_session_is_refused_admin_pages_on_the_next_request(guard_app):
    """G8: the role is re-read from the database each request, not kept in the session."""
    other_admin = make_staff(email="first@practice.example", name="Fran First", role="admin")
    admin = make_staff(email="second@practice.example", name="Sid Second", role="admin")
    client = signed_in_browser(guard_app, admin)
    assert client.get("/admin/staff").status_code == 200

    accounts.set_staff_role(other_admin.account, admin.account, "staff")

    assert client.get("/admin/staff").status_code == 403
    assert client.get("/admin/").status_code == 200  # still a member of staff


# --- G7: a failing check refuses -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/staff", "/admin/patients/awaiting-verification"])
def test_when_the_account_lookup_fails_the_request_is_refused_and_shows_no_data(database_url, monkeypatch, path):
    """G7: if reading the signed-in account raises, the answer is an error or a sign-in page, never the page.

    core.auth imports `get_account` by name, so the lookup is replaced both in the accounts service and
    where the guard's helper calls it.
    """
    failing_app = create_app(
        "test", {"SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False, "PROPAGATE_EXCEPTIONS": False}
    )
    patient = make_patient(email="visible-patient@example.org", family_name="Findable")
    admin = make_staff(role="admin")
    client = signed_in_browser(failing_app, admin)
    assert client.get(path).status_code == 200

    def broken(*_args, **_kwargs):
        raise RuntimeError("account store unavailable")

    monkeypatch.setattr("core.services.accounts.get_account", broken)
    monkeypatch.setattr("core.auth.get_account", broken)
    response = client.get(path)

    assert response.status_code >= 500 or response.status_code == 302, response.status_code
    body = response.get_data(as_text=True)
    for private in (admin.account.email, admin.account.name, patient.account.family_name):
        assert private not in body
