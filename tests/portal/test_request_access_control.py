"""Who may reach a patient's request pages (SECURITY G1, G2, G4, G10).

Every route with a request reference in its address is found in the URL map, so a page added later is
covered without anyone remembering to add it here. Patient B, signed in with both factors and sending valid
CSRF tokens, tries each route and method on patient A's request: each answer is the same 404 as for a
reference that does not exist, A's request and everything hanging off it is unchanged, and each refusal is in
the audit trail. Signed-out visitors are sent to sign in; staff are refused the patients' area.
"""

from __future__ import annotations

import json

import pytest
from bs4 import BeautifulSoup
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy import func, select

from core.extensions import db
from core.models.audit import AuditEvent
from core.models.email import OutboundEmail
from core.models.requests import Complaint, RecordingRequest, RequestEvent
from core.services import requests as requests_service
from core.services.requests import CallDetails
from tests.accounts_support import csrf_token, make_patient, make_staff, signed_in_browser
from tests.conftest import https_client_for

# What each form on the request pages would send, so that a refusal is not just a missing field.
FORM_DATA = {
    "portal.request_reply": {"answer": "Patient B's answer"},
    "portal.request_complaint": {"complaint": "Patient B's complaint"},
}


def reference_routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every patient route that takes a request reference."""
    found = [
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("portal.") and "reference" in rule.arguments
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    return sorted(found)


def all_request_routes(app: Flask) -> list[tuple[str, str, str]]:
    """Every route of the patient's request pages, with or without a reference."""
    found = [
        (rule.endpoint, method, rule.rule.replace("<reference>", "CR-2026-00001"))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/requests")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
    ]
    return sorted(found)


def test_the_inventory_finds_every_request_page(app):
    """Guards the tests below against finding nothing: each page of the brief is in the URL map."""
    routes = {(endpoint, method) for endpoint, method, _rule in reference_routes(app)}
    assert routes >= {
        ("portal.request_detail", "GET"),
        ("portal.request_submitted", "GET"),
        ("portal.request_reply", "POST"),
        ("portal.request_withdraw", "GET"),
        ("portal.request_withdraw", "POST"),
        ("portal.request_complaint", "GET"),
        ("portal.request_complaint", "POST"),
        ("portal.request_new_link", "POST"),
    }


def snapshot(req_id: int) -> dict:
    """Everything about a request that a page could change."""
    db.session.expire_all()
    req = db.session.get(RecordingRequest, req_id)
    columns = {column.name: getattr(req, column.key) for column in RecordingRequest.__table__.columns}
    return {
        "request": columns,
        "events": db.session.execute(
            select(func.count(RequestEvent.id)).where(RequestEvent.request_id == req_id)
        ).scalar_one(),
        "complaints": db.session.execute(
            select(func.count(Complaint.id)).where(Complaint.request_id == req_id)
        ).scalar_one(),
        "emails": db.session.execute(select(func.count(OutboundEmail.id))).scalar_one(),
    }


def refusals(account) -> list[tuple[str, str]]:
    events = db.session.execute(
        select(AuditEvent).where(
            AuditEvent.action == "authz_fail",
            AuditEvent.actor_id == account.public_id,
            AuditEvent.outcome == "failure",
        )
    ).scalars()
    return sorted((event.object_id, json.loads(event.details)["method"]) for event in events)


@pytest.fixture
def request_of_a(app):
    """Patient A's request, waiting for A's answer to a question (so every action would otherwise work)."""
    patient_a = make_patient(verified=True, email="a@example.org", nhs_number="9434765919")
    staff = make_staff()
    today = requests_service.practice_today()
    details = CallDetails(calls_from=today, calls_to=today, description="A's private description")
    req = requests_service.submit_request(patient_a.account, details, submission_key="a-key")
    requests_service.ask_for_clarification(staff.account, req, "Which number did you call from?")
    return patient_a, req


@pytest.fixture
def browser_b(app) -> tuple:
    patient_b = make_patient(verified=True, email="b@example.org", nhs_number="9434765870", given_name="Bea")
    return patient_b, signed_in_browser(app, patient_b)


def send(client: FlaskClient, endpoint: str, method: str, path: str, token: str):
    if method == "GET":
        return client.get(path)
    data = {"csrf_token": token, **FORM_DATA.get(endpoint, {})}
    return client.post(path, data=data, headers={"Referer": "https://localhost/requests"})


def test_another_patients_reference_is_a_404_on_every_route_and_method_and_changes_nothing(
    app, request_of_a, browser_b
):
    """G1, G2: patient B gets a plain 404 for each of A's request pages, GET or POST; A's request, its
    timeline, complaints and emails are exactly as before; and B learns nothing of A's request."""
    _patient_a, req = request_of_a
    _patient_b, client = browser_b
    token = csrf_token(client, "/requests/new")
    before = snapshot(req.id)
    routes = reference_routes(app)
    for endpoint, method, rule in routes:
        response = send(client, endpoint, method, rule.replace("<reference>", req.reference), token)
        assert response.status_code == 404, f"{method} {rule}: {response.status_code}"
        body = response.get_data(as_text=True)
        assert "Page not found" in body
        assert "private description" not in body and "Which number" not in body
    assert snapshot(req.id) == before


def test_a_reference_that_does_not_exist_gets_the_same_answer_as_another_patients(app, request_of_a, browser_b):
    """G1: 404 either way, with the same page, so a reference cannot be probed for."""
    _patient_a, req = request_of_a
    _patient_b, client = browser_b
    theirs = client.get(f"/requests/{req.reference}")
    nobodys = client.get("/requests/CR-2026-99999")
    assert theirs.status_code == nobodys.status_code == 404

    def main_content(response) -> str:
        return BeautifulSoup(response.get_data(as_text=True), "html.parser").find("main").get_text(" ", strip=True)

    assert main_content(theirs) == main_content(nobodys)
    assert "Page not found" in main_content(theirs)


def test_each_refused_request_page_is_in_the_audit_trail(app, request_of_a, browser_b):
    """G10: each 404 for a request that is not the patient's own writes an `authz_fail` naming the patient, the
    page and the method (not whether the reference exists)."""
    _patient_a, req = request_of_a
    patient_b, client = browser_b
    token = csrf_token(client, "/requests/new")
    routes = reference_routes(app)
    for endpoint, method, rule in routes:
        send(client, endpoint, method, rule.replace("<reference>", req.reference), token)
    assert refusals(patient_b.account) == sorted((endpoint, method) for endpoint, method, _rule in routes)


def test_the_owner_reaches_the_same_pages(app, request_of_a):
    """The other side of G1: the 404s above come from ownership, not from pages that never work."""
    patient_a, req = request_of_a
    client = signed_in_browser(app, patient_a)
    for path in ("", "/submitted", "/withdraw", "/complaint"):
        assert client.get(f"/requests/{req.reference}{path}").status_code == 200, path
    token = csrf_token(client, f"/requests/{req.reference}")
    response = client.post(
        f"/requests/{req.reference}/reply",
        data={"csrf_token": token, "answer": "From my mobile"},
        headers={"Referer": f"https://localhost/requests/{req.reference}"},
    )
    assert response.status_code == 302
    assert snapshot(req.id)["request"]["status"] == "in_progress"
    assert refusals(patient_a.account) == []


def test_signed_out_visitors_are_sent_to_sign_in_from_every_request_page(app):
    """G4: with the page asked for as `next`, whatever the method (a POST carries a valid CSRF token, so it
    reaches the guard)."""
    client = https_client_for(app)
    token = csrf_token(client, "/account/sign-in")
    for endpoint, method, path in all_request_routes(app):
        response = send(client, endpoint, method, path, token)
        assert response.status_code == 302, f"{method} {path}: {response.status_code}"
        assert response.headers["Location"] == url_for("portal.sign_in", next=path), response.headers["Location"]


@pytest.mark.parametrize("role", ["staff", "admin"])
def test_staff_are_refused_every_request_page_of_the_patients_area(app, request_of_a, role):
    """G4: staff see requests in the staff area only; the patients' pages are 403 for them, even with the
    reference of a real request, and nothing changes."""
    _patient_a, req = request_of_a
    staff = make_staff(email=f"{role}-2@practice.example", name="Sol Second", role=role)
    client = signed_in_browser(app, staff)
    token = csrf_token(client, "/admin/")  # the sign-out form in the header carries one
    before = snapshot(req.id)
    for endpoint, method, path in all_request_routes(app):
        path = path.replace("CR-2026-00001", req.reference)
        response = send(client, endpoint, method, path, token)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
    assert snapshot(req.id) == before
