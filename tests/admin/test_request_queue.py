"""The staff queue of requests, the staff home page's counts, logging a request received offline, and the
complaints list (issue 4, "Staff"; SECURITY G4, J1, L3).

The queue is sorted by due date and filtered by status, overdue, due within 7 working days and "assigned to
me" through the address; a search (reference, NHS number or name) is sent by POST so that an NHS number never
appears in an address. Time is frozen on Monday 2 March 2026, 10:00 in London, so the due-date tags are fixed.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from core import legal_clock
from core.extensions import db
from core.models.requests import Complaint, RecordingRequest
from core.services import requests as requests_service
from core.services.requests import OPEN_STATUSES, QueueFilter
from tests.accounts_support import emails_to, make_patient, make_staff, post_form
from tests.conftest import check_page

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday; London is on GMT
TODAY = date(2026, 3, 2)
QUEUE = "/admin/requests"
LOG_OFFLINE = "/admin/requests/new"
WORK_STATUSES = [status for status in OPEN_STATUSES if status != "released"]
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def create_request(
    *,
    status: str = "submitted",
    due_on: date | None = None,
    received_on: date = date(2026, 2, 2),
    patient=None,
    requester_name: str | None = "Rita Requester",
    assigned_to=None,
    **fields,
) -> RecordingRequest:
    """A request row as the services would leave it in `status` (only the columns the queue reads)."""
    req = RecordingRequest(
        reference=f"CR-2026-{next(_numbers):05d}",
        status=status,
        received_on=received_on,
        received_via="online" if patient else "letter",
        relevant_day=received_on if due_on else None,
        due_on=due_on,
        calls_from=received_on - timedelta(days=5),
        calls_to=received_on - timedelta(days=5),
        patient_id=patient.id if patient else None,
        requester_name=None if patient else requester_name,
        assigned_to_id=assigned_to.id if assigned_to else None,
        **fields,
    )
    db.session.add(req)
    db.session.commit()
    return req


def parse(response) -> BeautifulSoup:
    assert response.mimetype == "text/html"
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def rows(soup: BeautifulSoup) -> list[dict]:
    """The queue table: one dict per row, by column heading."""
    table = soup.select_one("table#request-queue")
    if table is None:
        return []
    headings = [th.get_text(strip=True) for th in table.select("thead th")]
    found = []
    for row in table.select("tbody tr"):
        cells = []
        for cell in row.select("td"):
            for label in cell.select(".nhsuk-table-responsive__heading"):
                label.decompose()
            cells.append(cell.get_text(" ", strip=True))
        found.append(dict(zip(headings, cells, strict=True)))
    return found


def references(client: FlaskClient, path: str = QUEUE) -> list[str]:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return [row["Reference"] for row in rows(parse(response))]


def error_summary(response) -> str:
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None, "no error summary"
    return summary.get_text(" ", strip=True)


# --- The queue ------------------------------------------------------------------------------------------


@pytest.fixture
def queue(clerk):
    """Seven requests: their due dates, statuses and assignment make every filter pick a different set."""
    other = make_staff(email="other@practice.example", name="Olu Other").account
    return {
        "overdue": create_request(status="in_progress", due_on=date(2026, 2, 27), assigned_to=clerk.account),
        "in_3": create_request(status="submitted", due_on=date(2026, 3, 5)),
        "in_7": create_request(status="clarification_requested", due_on=date(2026, 3, 11)),
        "in_14": create_request(status="in_progress", due_on=date(2026, 3, 20), assigned_to=other),
        "identity": create_request(status="awaiting_identity", due_on=None),
        "completed": create_request(status="completed", due_on=date(2026, 2, 1)),
        "released": create_request(status="released", due_on=date(2026, 2, 20)),
    }


def refs(queue: dict, *names: str) -> list[str]:
    return [queue[name].reference for name in names]


def test_the_queue_lists_open_requests_soonest_due_first_with_the_clock_not_started_last(clerk_browser, queue):
    assert references(clerk_browser) == refs(queue, "released", "overdue", "in_3", "in_7", "in_14", "identity")


def test_each_row_shows_the_patient_received_date_due_date_with_its_tag_status_and_assignee(clerk_browser, queue):
    by_reference = {row["Reference"]: row for row in rows(parse(clerk_browser.get(QUEUE)))}

    overdue = by_reference[queue["overdue"].reference]
    assert overdue == {
        "Reference": queue["overdue"].reference,
        "Patient": "Rita Requester (no account)",
        "Received": "2 February 2026",
        "Due": "27 February 2026 Overdue",
        "Status": "Being processed",
        "Assigned to": "Cal Clerk",
    }
    assert by_reference[queue["in_3"].reference]["Due"] == "5 March 2026 Due in 3 working days"
    assert by_reference[queue["in_7"].reference]["Due"] == "11 March 2026 Due in 7 working days"
    assert by_reference[queue["in_14"].reference]["Due"] == "20 March 2026 Due in 14 working days"
    assert by_reference[queue["released"].reference]["Due"] == "20 February 2026"  # released in time: no tag
    assert by_reference[queue["identity"].reference]["Due"] == "Not started (identity)"
    assert by_reference[queue["in_14"].reference]["Assigned to"] == "Olu Other"


def test_the_overdue_tag_is_red_and_links_lead_to_each_request(clerk_browser, queue):
    soup = parse(clerk_browser.get(QUEUE))
    assert [tag.get_text(strip=True) for tag in soup.select("#request-queue .nhsuk-tag--red")] == ["Overdue"]
    links = [a["href"] for a in soup.select("#request-queue tbody a")]
    assert links[0] == f"/admin/requests/{queue['released'].reference}"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=open&overdue=1", ["overdue"]),
        ("?status=open&due-soon=1", ["in_3", "in_7"]),
        ("?status=open&mine=1", ["overdue"]),
        ("?status=awaiting_identity", ["identity"]),
        ("?status=completed", ["completed"]),
        ("?status=all", ["completed", "released", "overdue", "in_3", "in_7", "in_14", "identity"]),
        ("?status=no-such-status", ["released", "overdue", "in_3", "in_7", "in_14", "identity"]),
        ("?status=all&overdue=1&due-soon=1", []),
    ],
)
def test_filters_in_the_address_choose_the_requests(clerk_browser, queue, query, expected):
    assert references(clerk_browser, QUEUE + query) == refs(queue, *expected)


def test_the_filter_form_keeps_what_was_chosen(clerk_browser, queue):
    soup = parse(clerk_browser.get(QUEUE + "?status=in_progress&overdue=1&mine=1"))
    form = soup.select_one("form[method=get]")
    assert form["action"] == QUEUE
    assert form.select_one("select#status option[selected]")["value"] == "in_progress"
    assert {box["name"] for box in form.select("input[type=checkbox][checked]")} == {"overdue", "mine"}


def test_searching_by_reference_nhs_number_or_name_is_a_post_so_no_nhs_number_reaches_an_address(clerk_browser, queue):
    """L3: the search form is sent by POST; a `q` in the address is ignored."""
    patient = make_patient(verified=True, nhs_number="9434765919").account
    own = create_request(status="in_progress", due_on=date(2026, 3, 9), patient=patient)
    closed = create_request(status="withdrawn", due_on=date(2026, 3, 9), patient=patient)
    logged = create_request(
        status="submitted", due_on=date(2026, 3, 9), requester_name="Lou Logged", requester_nhs_number="9434765870"
    )

    soup = parse(clerk_browser.get(QUEUE))
    search_form = soup.select_one("form[method=post] input#q").find_parent("form")
    assert search_form["action"] == QUEUE

    def search(term: str) -> list[str]:
        response = post_form(clerk_browser, QUEUE, {"q": term})
        assert response.status_code == 200
        return [row["Reference"] for row in rows(parse(response))]

    assert search(queue["in_7"].reference) == [queue["in_7"].reference]
    assert search(queue["in_7"].reference.lower()) == [queue["in_7"].reference]
    assert search("943 476 5919") == [own.reference, closed.reference]  # closed ones too
    assert search("9434765870") == [logged.reference]
    assert search("lovelace") == [own.reference, closed.reference]
    assert search("Ada Lovelace") == [own.reference, closed.reference]
    assert set(search("rita requester")) == set(refs(queue, *queue))
    assert search("CR-1999-00001") == []
    assert "9434765919" not in clerk_browser.get(QUEUE + "?q=9434765919").get_data(as_text=True)
    assert references(clerk_browser, QUEUE + "?q=" + queue["in_7"].reference) != [queue["in_7"].reference]


def test_a_search_without_the_csrf_token_is_refused_j1(clerk_browser, queue):
    response = clerk_browser.post(QUEUE, data={"q": queue["in_7"].reference})
    assert response.status_code == 400
    assert queue["in_7"].reference not in response.get_data(as_text=True)


def test_pages_of_25_with_previous_and_next_links_that_keep_the_filters(clerk_browser, clerk):
    for day in range(30):
        create_request(status="in_progress", due_on=TODAY + timedelta(days=day), assigned_to=clerk.account)
    create_request(status="in_progress", due_on=TODAY)  # someone else's

    first = parse(clerk_browser.get(QUEUE + "?status=open&mine=1"))
    assert len(rows(first)) == 25
    assert "page 1 of 2" in first.select_one("main h2").get_text()
    next_link = first.select_one("a[rel=next]")["href"]
    assert parse_qs(urlsplit(next_link).query) == {"status": ["open"], "mine": ["1"], "page": ["2"]}
    assert first.select_one("a[rel=prev]") is None

    second = parse(clerk_browser.get(next_link))
    assert len(rows(second)) == 5
    assert second.select_one("a[rel=next]") is None
    assert parse_qs(urlsplit(second.select_one("a[rel=prev]")["href"]).query) == {"status": ["open"], "mine": ["1"]}
    assert len(rows(parse(clerk_browser.get(QUEUE + "?status=open&mine=1&page=99")))) == 5  # past the end: last
    assert len(rows(parse(clerk_browser.get(QUEUE + "?page=-3")))) == 25
    assert len(rows(parse(clerk_browser.get(QUEUE + "?page=two")))) == 25


def test_the_queue_is_correct_and_renders_one_page_of_25_with_100000_requests(app, clerk_browser, clerk):
    """Correctness at size: 100,000 requests made with one bulk insert. The service filters, counts and
    pages in SQL; this checks the first page, a deep page, the last page and filtered pages against the same
    order computed here. (Speed is measured by scripts/bench_request_queue.py, not asserted here.)"""
    statuses = (*OPEN_STATUSES, "completed", "refused")
    values, expected = [], []
    for n in range(100_000):
        status = statuses[n % len(statuses)]
        due = None if status == "awaiting_identity" else TODAY + timedelta(days=(n * 7919) % 240 - 60)
        values.append(
            {
                "reference": f"CR-2025-{n + 1:06d}",
                "status": status,
                "received_via": "letter",
                "received_on": date(2026, 1, 5),
                "relevant_day": None if due is None else date(2026, 1, 5),
                "due_on": due,
                "calls_from": date(2026, 1, 1),
                "calls_to": date(2026, 1, 1),
                "requester_name": f"Requester {n + 1}",
                "assigned_to_id": clerk.account.id if n % 10 == 0 else None,
            }
        )
        expected.append((due is None, due or TODAY, n, status, values[-1]["reference"]))
    db.session.execute(insert(RecordingRequest), values)
    db.session.commit()
    assert db.session.execute(select(func.count(RecordingRequest.id))).scalar_one() == 100_000
    expected.sort()
    open_order = [ref for _none, _due, _n, status, ref in expected if status in OPEN_STATUSES]
    overdue_order = [
        ref for none, due, _n, status, ref in expected if not none and due < TODAY and status in WORK_STATUSES
    ]
    last_page = -(-len(open_order) // 25)

    assert references(clerk_browser) == open_order[:25]
    assert references(clerk_browser, QUEUE + "?page=1000") == open_order[24_975:25_000]
    assert references(clerk_browser, QUEUE + f"?page={last_page}") == open_order[(last_page - 1) * 25 :]
    assert references(clerk_browser, QUEUE + "?status=open&overdue=1&page=3") == overdue_order[50:75]
    heading = parse(clerk_browser.get(QUEUE + "?status=open&overdue=1")).select_one("main h2").get_text(" ", strip=True)
    assert heading == f"{len(overdue_order)} requests, page 1 of {-(-len(overdue_order) // 25)}"
    mine = references(clerk_browser, QUEUE + "?status=awaiting_identity&mine=1")
    assert len(mine) == 25 and all(int(ref.rsplit("-", 1)[1]) % 10 == 1 for ref in mine)

    response = post_form(clerk_browser, QUEUE, {"q": "CR-2025-054321"})
    assert [row["Reference"] for row in rows(parse(response))] == ["CR-2025-054321"]


# --- The staff home page ----------------------------------------------------------------------------------


def test_the_staff_home_page_counts_what_needs_attention_and_links_to_the_filtered_queue(clerk_browser, queue):
    req = queue["in_14"]
    db.session.add(Complaint(request_id=req.id, acknowledge_by=date(2026, 3, 20), body="Too slow"))
    db.session.add(Complaint(request_id=req.id, acknowledge_by=date(2026, 3, 21), body="Also rude"))
    db.session.commit()

    soup = parse(clerk_browser.get("/admin/"))
    items = {a.get_text(" ", strip=True): a["href"] for a in soup.select("#request-counts a")}
    assert items == {
        "1 request is overdue": "/admin/requests?status=open&overdue=1",
        "2 requests are due within 7 working days": "/admin/requests?status=open&due-soon=1",
        "1 request is waiting for an identity check": "/admin/requests?status=awaiting_identity",
        "2 complaints are waiting for acknowledgement": "/admin/complaints",
    }
    for href in list(items.values())[:3]:
        assert len(references(clerk_browser, href)) in (1, 2)


def test_the_admin_navigation_links_to_requests_and_complaints(clerk_browser):
    soup = parse(clerk_browser.get(QUEUE))
    nav = {a.get_text(strip=True): a["href"] for a in soup.select("header nav a")}
    assert nav["Requests"] == QUEUE
    assert nav["Complaints"] == "/admin/complaints"


# --- Logging a request received offline ---------------------------------------------------------------


def offline_form(**changes) -> dict:
    form = {
        "received-via": "letter",
        "received-day": "20",
        "received-month": "2",
        "received-year": "2026",
        "requester": "registered",
        "patient-nhs-number": "943 476 5919",
        "identity-checked": "no",
        "calls-from-day": "10",
        "calls-from-month": "2",
        "calls-from-year": "2026",
        "calls-to-day": "12",
        "calls-to-month": "2",
        "calls-to-year": "2026",
        "approximate-time": "Morning",
        "phone-number": "07700 900982",
        "spoke-to": "Reception",
        "description": "About my prescription",
        "format": "download",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def only_request() -> RecordingRequest:
    db.session.expire_all()
    return db.session.execute(select(RecordingRequest)).scalar_one()


def request_count() -> int:
    return db.session.execute(select(func.count(RecordingRequest.id))).scalar_one()


def test_a_letter_from_a_registered_patient_is_logged_against_their_account_from_its_true_received_date(
    clerk_browser, clerk
):
    patient = make_patient(verified=True, nhs_number="9434765919")

    response = post_form(clerk_browser, LOG_OFFLINE, offline_form())

    req = only_request()
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/requests/{req.reference}"
    assert (req.patient_id, req.received_via, req.received_on) == (patient.account.id, "letter", date(2026, 2, 20))
    assert (req.status, req.logged_by_id, req.requester_name) == ("submitted", clerk.account.id, None)
    assert req.due_on == legal_clock.due_date(date(2026, 2, 20)) == date(2026, 3, 20)
    assert (req.calls_from, req.calls_to, req.spoke_to) == (date(2026, 2, 10), date(2026, 2, 12), "Reception")
    assert req.notice_version_id is None  # the patient saw no notice on the portal for this one
    assert [email.subject for email in emails_to(patient.account.email)] == [
        f"We have logged your request ({req.reference})"
    ]
    page = parse(clerk_browser.get(response.headers["Location"]))
    assert f"Request {req.reference} has been logged" in page.get_text()


def test_a_request_from_someone_without_an_account_waits_for_identity_with_their_details(clerk_browser):
    response = post_form(
        clerk_browser,
        LOG_OFFLINE,
        offline_form(
            **{
                "received-via": "phone",
                "requester": "unregistered",
                "patient-nhs-number": None,
                "requester-name": "Bea Caller",
                "requester-nhs-number": "943 476 5870",
                "requester-dob-day": "1",
                "requester-dob-month": "4",
                "requester-dob-year": "1960",
                "requester-contact": "12 High Street, Anytown",
                "calls-to-day": "",
                "calls-to-month": "",
                "calls-to-year": "",
            }
        ),
    )

    assert response.status_code == 302
    req = only_request()
    assert (req.status, req.patient_id, req.due_on, req.received_via) == ("awaiting_identity", None, None, "phone")
    assert (req.requester_name, req.requester_nhs_number) == ("Bea Caller", "9434765870")
    assert (req.requester_date_of_birth, req.requester_contact) == (date(1960, 4, 1), "12 High Street, Anytown")
    assert req.calls_from == req.calls_to == date(2026, 2, 10)


def test_an_identity_check_already_made_starts_the_clock_on_its_date(clerk_browser):
    post_form(
        clerk_browser,
        LOG_OFFLINE,
        offline_form(
            **{
                "requester": "unregistered",
                "requester-name": "Bea Caller",
                "requester-contact": "bea@example.org",
                "identity-checked": "yes",
                "identity-date-day": "27",
                "identity-date-month": "2",
                "identity-date-year": "2026",
            }
        ),
    )
    req = only_request()
    assert (req.status, req.relevant_day, req.due_on) == ("submitted", date(2026, 2, 27), date(2026, 3, 27))


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"received-via": "online"}, "received-via", "Select how the request was received"),
        ({"received-day": "3", "received-month": "3"}, "received-day", "must be today or in the past"),
        ({"received-day": "31", "received-month": "2"}, "received-day", "must be a real date"),
        ({"received-day": ""}, "received-day", "must include a day"),
        ({"requester": None}, "requester", "Select whether the patient has an account"),
        ({"patient-nhs-number": "1234567890"}, "patient-nhs-number", "Enter a valid NHS number"),
        ({"patient-nhs-number": "9434765889"}, "patient-nhs-number", "No patient account has this NHS number"),
        ({"requester": "unregistered", "requester-contact": "x"}, "requester-name", "Enter the name of the person"),
        (
            {"requester": "unregistered", "requester-name": "Bea", "requester-nhs-number": "123"},
            "requester-nhs-number",
            "Enter a valid NHS number",
        ),
        ({"requester": "unregistered", "requester-name": "Bea"}, "requester-contact", "Enter how the practice"),
        ({"identity-checked": "yes"}, "identity-date-day", "Enter the date identity was checked"),
        ({"identity-checked": None}, "identity-checked", "Select whether the requester's identity"),
        ({"calls-from-day": ""}, "calls-from-day", "must include a day"),
        ({"calls-to-day": "5"}, "calls-to-day", "must be on or after the first date"),
        ({"calls-from-day": "3", "calls-from-month": "3"}, "calls-from-day", "must be today or in the past"),
        ({"format": "fax"}, "format", "Select how the patient would like to receive"),
    ],
)
def test_mistakes_on_the_offline_form_are_shown_beside_their_field_and_nothing_is_logged(
    clerk_browser, changes, field, message
):
    make_patient(verified=True, nhs_number="9434765919")
    response = post_form(clerk_browser, LOG_OFFLINE, offline_form(**changes))

    assert response.status_code == 400
    assert message in error_summary(response)
    soup = parse(response)
    assert soup.select_one(f".nhsuk-error-summary a[href='#{field}']") is not None
    assert request_count() == 0


def test_two_accounts_with_one_nhs_number_are_not_guessed_between(clerk_browser):
    make_patient(email="one@example.org", nhs_number="9434765919")
    make_patient(email="two@example.org", nhs_number="9434765919")
    response = post_form(clerk_browser, LOG_OFFLINE, offline_form())
    assert response.status_code == 400
    assert "More than one patient account has this NHS number" in error_summary(response)
    assert request_count() == 0


def test_the_offline_form_keeps_what_was_typed_when_it_has_a_mistake(clerk_browser):
    make_patient(verified=True, nhs_number="9434765919")
    response = post_form(clerk_browser, LOG_OFFLINE, offline_form(**{"received-day": "40", "spoke-to": "Dr <b>"}))
    soup = parse(response)
    assert soup.select_one("#received-day")["value"] == "40"
    assert soup.select_one("#spoke-to")["value"] == "Dr <b>"
    assert soup.select_one("input[name=received-via][checked]")["value"] == "letter"
    assert "<b>" not in re.sub(r"value=\"[^\"]*\"", "", response.get_data(as_text=True).split("<main", 1)[1])


# --- Complaints -----------------------------------------------------------------------------------------


def test_the_complaints_list_shows_those_awaiting_acknowledgement_first_with_overdue_ones_tagged(clerk_browser):
    late = create_request(status="completed", due_on=date(2026, 2, 2))
    recent = create_request(status="in_progress", due_on=date(2026, 3, 20))
    done = create_request(status="completed", due_on=date(2026, 1, 20))
    db.session.add_all(
        [
            Complaint(request_id=recent.id, acknowledge_by=date(2026, 3, 30), body="Not told anything"),
            Complaint(request_id=late.id, acknowledge_by=date(2026, 2, 27), body="Still waiting"),
            Complaint(
                request_id=done.id,
                acknowledge_by=date(2026, 2, 1),
                body="Old",
                acknowledged_at=datetime(2026, 2, 3, 9, tzinfo=UTC),
            ),
        ]
    )
    db.session.commit()

    soup = parse(clerk_browser.get("/admin/complaints"))
    awaiting = [
        [cell.get_text(" ", strip=True) for cell in row.select("td")]
        for row in soup.select("#complaints-awaiting tbody tr")
    ]
    assert [row[0] for row in awaiting] == [late.reference, recent.reference]
    assert awaiting[0][3] == "27 February 2026 Overdue"
    assert awaiting[1][3] == "30 March 2026"
    acknowledged = soup.select("#complaints-acknowledged tbody tr")
    assert [row.select_one("td").get_text(strip=True) for row in acknowledged] == [done.reference]
    assert "Late" in acknowledged[0].get_text()
    assert soup.select_one("#complaints-awaiting a")["href"] == f"/admin/requests/{late.reference}#complaints"
    assert requests_service.queue_count(QueueFilter()) == 1
