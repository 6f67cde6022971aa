"""The compliance dashboard on the staff home page (issue 5, "Dashboard"; SECURITY G4, K5, L3, N3).

Time is frozen on Monday 16 March 2026, 10:00 in London (GMT), so the window is April 2025 to March 2026,
with British Summer Time from 30 March to 26 October 2025: a time stored at 23:30 UTC on the last day of a
summer month is already the next month in London. The requests are written straight into the tables with
the dates each case needs; `EXPECTED` is worked out by hand from them (the comments say how).
"""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from admin.dashboard import chart, count_scale
from core.extensions import db
from core.models.requests import Complaint, RecordingRequest, Release, RequestEvent
from core.services import dashboard as dashboard_service
from core.services.dashboard import MonthFigures
from core.services.worker import beat, run_due_jobs
from tests.accounts_support import make_patient, make_staff, signed_in_browser
from tests.conftest import check_page

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
TODAY = date(2026, 3, 16)
HOME = "/admin/"
CSV_PATH = "/admin/dashboard.csv"
MONTH_NAMES = [
    "April 2025",
    "May 2025",
    "June 2025",
    "July 2025",
    "August 2025",
    "September 2025",
    "October 2025",
    "November 2025",
    "December 2025",
    "January 2026",
    "February 2026",
    "March 2026",
]
# Per month: received, completed, on time, % on time, median days, extensions, refusals ("" = none).
EXPECTED = {
    "April 2025": ["3", "2", "2", "100", "10.5", "1", "0"],  # A 19 d, M 2 d; extension R at 23:30 BST 30 April
    "May 2025": ["2", "2", "1", "50", "30.5", "0", "1"],  # B 33 d late, C 28 d (refused in full)
    "June 2025": ["2", "1", "1", "100", "30", "0", "0"],  # D released 4 June (closed after its due date)
    "July 2025": ["2", "1", "1", "100", "30", "0", "1"],  # E released 00:30 BST 1 July; G refused, no clock
    "August 2025": ["1", "0", "0", "", "", "1", "1"],  # H extended 00:30 BST 1 August; I partly refused
    "September 2025": ["1", "1", "1", "100", "31", "0", "0"],  # I completed on its due date
    "October 2025": ["2", "3", "2", "67", "11", "0", "0"],  # Q1 10 d, Q2 11 d, Q3 40 d late: 2/3 = 67%
    "November 2025": ["0", "0", "0", "", "", "0", "0"],
    "December 2025": ["1", "0", "0", "", "", "0", "0"],
    "January 2026": ["2", "2", "1", "50", "28", "0", "0"],  # J 36 d late, K 20 d; L's partial refusal not here
    "February 2026": ["1", "1", "1", "100", "27", "0", "1"],  # L refused in full (after refusing part)
    "March 2026": ["2", "0", "0", "", "", "1", "0"],
}
DASH = "\N{EN DASH}"  # what the page shows for a figure that cannot be worked out
_numbers = itertools.count(1)


@pytest.fixture(autouse=True)
def _frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def add_request(
    received_on: date,
    status: str,
    *,
    due_on: date | None = None,
    closed_at: datetime | None = None,
    patient=None,
    requester_name: str = "Rita Requester",
    **fields,
) -> RecordingRequest:
    """A request row as the services would leave it (only what the dashboard reads, and what a row needs)."""
    req = RecordingRequest(
        reference=f"CR-2026-{next(_numbers):05d}",
        status=status,
        received_on=received_on,
        received_via="letter",
        relevant_day=received_on if due_on else None,
        due_on=due_on,
        closed_at=closed_at,
        calls_from=received_on - timedelta(days=3),
        calls_to=received_on - timedelta(days=3),
        patient_id=patient.id if patient else None,
        requester_name=None if patient else requester_name,
        **fields,
    )
    db.session.add(req)
    db.session.commit()
    return req


def add_release(req: RecordingRequest, approved_at: datetime, *, patient, staff) -> None:
    db.session.add(
        Release(
            request_id=req.id,
            patient_id=patient.id,
            prepared_by_id=staff.id,
            prepared_at=approved_at - timedelta(hours=1),
            approved_by_id=staff.id,
            approved_at=approved_at,
            expires_at=approved_at + timedelta(days=7),
            max_downloads=3,
        )
    )
    db.session.commit()


def add_partial_refusal(req: RecordingRequest, occurred_at: datetime) -> None:
    db.session.add(
        RequestEvent(
            request_id=req.id,
            occurred_at=occurred_at,
            kind="refusal",
            actor_type="staff",
            actor_name="Cal Clerk",
            summary="Part of the request was refused",
        )
    )
    db.session.commit()


@pytest.fixture
def year_of_requests(clerk) -> None:
    """The requests behind EXPECTED (letters as in its comments)."""
    patient = make_patient(verified=True).account
    staff = clerk.account
    # Received on the last day before the window: completed in it (2 days), counted only as completed.
    add_request(date(2025, 3, 31), "completed", due_on=date(2025, 4, 30), closed_at=at(2025, 4, 2))  # M
    # Received and completed before the window: nowhere.
    add_request(date(2025, 3, 1), "completed", due_on=date(2025, 4, 1), closed_at=at(2025, 3, 20))  # O
    add_request(date(2025, 4, 1), "completed", due_on=date(2025, 5, 1), closed_at=at(2025, 4, 20))  # A
    add_request(
        date(2025, 4, 10), "no_recordings_found", due_on=date(2025, 5, 12), closed_at=at(2025, 5, 13, 9)
    )  # B: a day late
    add_request(
        date(2025, 4, 15), "in_progress", due_on=date(2025, 7, 15), extended_at=at(2025, 4, 30, 22, 30)
    )  # R: extended at 23:30 BST on 30 April
    add_request(
        date(2025, 5, 2), "refused", due_on=date(2025, 6, 2), closed_at=at(2025, 5, 30), refusal_reason="x"
    )  # C
    d = add_request(date(2025, 5, 5), "completed", due_on=date(2025, 6, 5), closed_at=at(2025, 6, 20), patient=patient)
    add_release(d, at(2025, 6, 4, 12), patient=patient, staff=staff)  # D: answered by the release, in time
    e = add_request(date(2025, 6, 1), "released", due_on=date(2025, 7, 1), patient=patient)
    add_release(e, at(2025, 6, 30, 23, 30), patient=patient, staff=staff)  # E: 00:30 BST on 1 July, its due date
    add_release(e, at(2025, 8, 1), patient=patient, staff=staff)  # a re-issued link changes nothing
    add_request(date(2025, 6, 10), "withdrawn", due_on=date(2025, 7, 10), closed_at=at(2025, 6, 20))  # F
    add_request(date(2025, 7, 1), "refused", closed_at=at(2025, 7, 15), refusal_reason="x")  # G: no clock
    add_request(
        date(2025, 7, 7), "in_progress", due_on=date(2025, 10, 7), extended_at=at(2025, 7, 31, 23, 30)
    )  # H: extended at 00:30 BST on 1 August
    i = add_request(
        date(2025, 8, 1), "completed", due_on=date(2025, 9, 1), closed_at=at(2025, 9, 1), partly_refused=True
    )  # I
    add_partial_refusal(i, at(2025, 8, 20))
    add_partial_refusal(i, at(2025, 9, 5))  # a second partial refusal: still one refused request, in August
    add_request(date(2025, 9, 1), "completed", due_on=date(2025, 10, 1), closed_at=at(2025, 10, 11))  # Q3: 40 d
    add_request(date(2025, 10, 1), "completed", due_on=date(2025, 11, 3), closed_at=at(2025, 10, 11))  # Q1: 10 d
    add_request(date(2025, 10, 2), "completed", due_on=date(2025, 11, 3), closed_at=at(2025, 10, 13))  # Q2: 11 d
    add_request(date(2025, 12, 15), "completed", due_on=date(2026, 1, 15), closed_at=at(2026, 1, 20))  # J: 36 d
    add_request(date(2026, 1, 5), "completed", due_on=date(2026, 2, 5), closed_at=at(2026, 1, 25))  # K: 20 d
    lower = add_request(
        date(2026, 1, 6),
        "refused",
        due_on=date(2026, 2, 6),
        closed_at=at(2026, 2, 2),
        partly_refused=True,
        refusal_reason="x",
    )  # L: 27 d
    add_partial_refusal(lower, at(2026, 1, 10))
    add_request(
        date(2026, 2, 10), "in_progress", due_on=date(2026, 5, 11), extended_at=at(2026, 3, 10)
    )  # P: extended this month
    add_request(date(2026, 3, 2), "submitted", due_on=date(2026, 4, 2))  # N
    add_request(date(2026, 3, 10), "awaiting_identity")  # S


def parse(response) -> BeautifulSoup:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "text/html"
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def table_rows(soup: BeautifulSoup) -> dict[str, list[str]]:
    """The monthly table: month -> its cells as shown, without the headings shown on phones."""
    found = {}
    for row in soup.select("#monthly-figures tbody tr"):
        cells = []
        for cell in row.select("td"):
            for label in cell.select(".nhsuk-table-responsive__heading"):
                label.decompose()
            cells.append(cell.get_text(strip=True))
        found[row.select_one("th").get_text(strip=True)] = cells
    return found


def as_shown(cells: list[str]) -> list[str]:
    """EXPECTED's cells as the page shows them: a dash for none, a % sign on the percentage."""
    shown = [cell or DASH for cell in cells]
    if cells[3]:
        shown[3] = f"{cells[3]}%"
    return shown


def csv_rows(client: FlaskClient) -> list[list[str]]:
    response = client.get(CSV_PATH)
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


# --- The figures ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("year_of_requests")
def test_the_service_works_out_each_months_figures_in_london_months():
    months = dashboard_service.monthly_figures(TODAY)
    assert [month.label for month in months] == MONTH_NAMES
    for month in months:
        cells = [
            month.received,
            month.completed,
            month.on_time,
            month.percent_on_time,
            month.median_days,
            month.extensions,
            month.refusals,
        ]
        assert [("" if cell is None else str(cell)) for cell in cells] == EXPECTED[month.label], month.label


@pytest.mark.usefixtures("year_of_requests")
def test_the_page_table_shows_the_same_figures_with_dashes_where_nothing_was_completed(clerk_browser):
    soup = parse(clerk_browser.get(HOME))
    found = table_rows(soup)
    assert list(found) == MONTH_NAMES, "twelve months, oldest first, the current one last"
    assert found == {month: as_shown(cells) for month, cells in EXPECTED.items()}
    table = soup.select_one("#monthly-figures")
    assert table.caption.get_text(strip=True) == "Requests each month, April 2025 to March 2026"
    assert all(th.get("scope") == "col" for th in table.select("thead th"))
    assert all(th.get("scope") == "row" for th in table.select("tbody th"))


@pytest.mark.usefixtures("year_of_requests")
def test_the_csv_download_carries_the_same_figures_as_the_table(clerk_browser):
    response = clerk_browser.get(CSV_PATH)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="call-recording-requests-2025-04-to-2026-03.csv"'
    )
    assert "no-store" in response.headers["Cache-Control"]  # SECURITY K5
    header, *body = csv_rows(clerk_browser)
    assert header == [
        "Month",
        "Received",
        "Completed",
        "Completed on time",
        "% on time",
        "Median days to complete",
        "Extensions",
        "Refusals",
    ]
    assert [row[0] for row in body] == [f"2025-{month:02d}" for month in range(4, 13)] + [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    assert {name: row[1:] for name, row in zip(MONTH_NAMES, body, strict=True)} == EXPECTED
    shown = table_rows(parse(clerk_browser.get(HOME)))
    assert [as_shown(row[1:]) for row in body] == list(shown.values())


def test_with_no_requests_every_month_shows_zeros_and_dashes_and_the_chart_is_empty(clerk_browser):
    soup = parse(clerk_browser.get(HOME))
    assert table_rows(soup) == {month: ["0", "0", "0", DASH, DASH, "0", "0"] for month in MONTH_NAMES}
    bars = soup.select("svg rect.chart-bar")
    assert len(bars) == 12 and {bar["height"] for bar in bars} == {"0.0"}
    assert soup.select("svg circle.chart-point") == [] and soup.select("svg polyline") == []
    assert [tick.get_text() for tick in soup.select("svg text.count-tick")] == ["0", "1", "2", "3", "4"]
    _header, *body = csv_rows(clerk_browser)
    assert [row[1:] for row in body] == [["0", "0", "0", "", "", "0", "0"]] * 12


# --- The chart -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("year_of_requests")
def test_the_chart_is_an_accessible_svg_with_one_bar_per_month_in_proportion(clerk_browser):
    soup = parse(clerk_browser.get(HOME))
    svg = soup.select_one("#monthly-chart svg")
    assert svg["role"] == "img"
    title_id, desc_id = svg["aria-labelledby"].split()
    assert svg.select_one("title")["id"] == title_id and svg.select_one("desc")["id"] == desc_id
    assert "April 2025 to March 2026" in svg.select_one("title").get_text()
    assert "table" in svg.select_one("desc").get_text()
    # 320 units across: on a 320 px phone the chart is drawn at about 0.9 of its size, so its text stays legible.
    assert svg["width"] == "100%" and svg["viewbox"] == "0 0 320 260"
    assert min(int(text["font-size"]) for text in svg.select("text")) >= 11
    assert soup.find("script", src=lambda src: src and "chart" in src) is None

    bars = svg.select("rect.chart-bar")
    assert [bar["data-month"] for bar in bars] == MONTH_NAMES
    received = [int(EXPECTED[month][0]) for month in MONTH_NAMES]
    assert [int(bar["data-value"]) for bar in bars] == received
    heights = [float(bar["height"]) for bar in bars]
    per_request = heights[0] / received[0]
    assert per_request > 0
    assert heights == pytest.approx([count * per_request for count in received], abs=0.01)
    bottoms = {round(float(bar["y"]) + float(bar["height"]), 1) for bar in bars}
    assert len(bottoms) == 1, "every bar stands on the same baseline"
    assert [text.get_text() for text in svg.select("text.chart-month")] == [name[:3] for name in MONTH_NAMES]
    assert [text.get_text() for text in svg.select("text.chart-year")] == ["2025", "2026"]
    assert [text.get_text() for text in svg.select("text.chart-value")] == [str(count) for count in received]

    # % on time: a point for each month with something completed, the line broken by the months without.
    percents = [int(EXPECTED[month][3]) for month in MONTH_NAMES if EXPECTED[month][3]]
    points = svg.select("circle.chart-point")
    assert [int(point["data-value"]) for point in points] == percents
    (baseline,) = bottoms
    rises = [baseline - float(point["cy"]) for point in points]
    assert rises == pytest.approx([percent * rises[0] / percents[0] for percent in percents], abs=0.01)
    assert [len(line["points"].split()) for line in svg.select("polyline.chart-line")] == [4, 2, 2]
    assert [text.get_text() for text in svg.select("text.percent-tick")] == ["0%", "25%", "50%", "75%", "100%"]


def test_the_count_axis_steps_by_one_two_or_five_and_reaches_the_largest_count():
    assert count_scale(0) == (4, 1)
    assert count_scale(3) == (3, 1)
    assert count_scale(7) == (8, 2)
    assert count_scale(23) == (25, 5)
    assert count_scale(2345) == (2500, 500)
    for largest in range(1, 3000):
        top, step = count_scale(largest)
        assert top >= largest and top - step < largest and top // step <= 5


def test_the_chart_bars_are_drawn_from_the_counts_and_a_line_joins_only_neighbouring_points():
    months = [
        MonthFigures(month=date(2025, month, 1), received=month, completed=1 if month % 3 else 0, on_time=1)
        for month in range(1, 13)
    ]
    drawn = chart(months)
    assert [bar["value"] for bar in drawn["bars"]] == list(range(1, 13))
    assert drawn["bars"][11]["height"] == pytest.approx(12 * drawn["bars"][0]["height"], abs=0.1)
    assert len(drawn["points"]) == 8 and len(drawn["lines"]) == 4  # Jan-Feb, Apr-May, Jul-Aug, Oct-Nov


def test_the_percentage_on_time_rounds_half_up_and_is_none_when_nothing_was_completed():
    assert MonthFigures(month=TODAY, completed=8, on_time=1).percent_on_time == 13  # 12.5
    assert MonthFigures(month=TODAY, completed=3, on_time=2).percent_on_time == 67
    assert MonthFigures(month=TODAY, completed=3, on_time=1).percent_on_time == 33
    assert MonthFigures(month=TODAY).percent_on_time is None


# --- What needs attention ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("year_of_requests")
def test_counts_by_status_cover_every_status_and_link_to_the_filtered_queue(clerk_browser):
    soup = parse(clerk_browser.get(HOME))
    found = {
        row.select_one("th a").get_text(strip=True): (row.select_one("th a")["href"], row.select_one("td").get_text())
        for row in soup.select("#status-counts tbody tr")
    }
    assert found == {
        "Waiting for identity check": ("/admin/requests?status=awaiting_identity", "1"),
        "Received": ("/admin/requests?status=submitted", "1"),
        "Waiting for more information": ("/admin/requests?status=clarification_requested", "0"),
        "Being processed": ("/admin/requests?status=in_progress", "3"),
        "Being checked before release": ("/admin/requests?status=ready_for_approval", "0"),
        "Ready to download": ("/admin/requests?status=released", "1"),
        "Completed": ("/admin/requests?status=completed", "10"),
        "No recordings found": ("/admin/requests?status=no_recordings_found", "1"),
        "Refused": ("/admin/requests?status=refused", "3"),
        "Withdrawn": ("/admin/requests?status=withdrawn", "1"),
    }
    queue = parse(clerk_browser.get("/admin/requests?status=in_progress"))
    assert len(queue.select("#request-queue tbody tr")) == 3


@pytest.mark.usefixtures("year_of_requests")
def test_what_needs_attention_links_to_the_queue_and_counts_complaints_past_their_30_days(clerk_browser):
    """SECURITY N3: staff see overdue requests. R and H are in progress past their due dates."""
    some_request = db.session.execute(db.select(RecordingRequest).limit(1)).scalar_one()
    for acknowledge_by, acknowledged in [(date(2026, 3, 13), None), (date(2026, 4, 1), None), (date(2026, 3, 1), NOW)]:
        db.session.add(
            Complaint(request_id=some_request.id, acknowledge_by=acknowledge_by, body="x", acknowledged_at=acknowledged)
        )
    db.session.commit()
    soup = parse(clerk_browser.get(HOME))
    items = {a.get_text(" ", strip=True): a["href"] for a in soup.select("#request-counts a")}
    assert items == {
        "2 requests are overdue": "/admin/requests?status=open&overdue=1",
        "0 requests are due within 7 working days": "/admin/requests?status=open&due-soon=1",
        "1 request is waiting for an identity check": "/admin/requests?status=awaiting_identity",
        "2 complaints are waiting for acknowledgement": "/admin/complaints",
    }
    complaints = soup.select_one("#complaints-waiting").get_text(" ", strip=True)
    assert complaints == "2 complaints are waiting for acknowledgement (1 is past the 30 days allowed)"


# --- Who sees it, and what it never shows -------------------------------------------------------------------


def test_staff_and_admins_see_the_dashboard_and_its_csv_and_patients_cannot(app):
    """SECURITY G4, G9: for every member of staff; a patient is refused both."""
    admin = make_staff(email="admin@practice.example", name="Ann Admin", role="admin")
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk")
    for member in (admin, clerk):
        client = signed_in_browser(app, member)
        assert parse(client.get(HOME)).h1.get_text(strip=True) == "Call recordings admin"
        assert client.get(CSV_PATH).status_code == 200
    patient = signed_in_browser(app, make_patient(verified=True))
    assert patient.get(HOME).status_code == 403
    assert patient.get(CSV_PATH).status_code == 403


def test_the_dashboard_never_shows_a_patients_name_or_what_a_request_is_about(app, clerk_browser):
    """SECURITY L3: counts only. Neither the page nor the CSV names a patient, a requester or a call."""
    patient = make_patient(given_name="Zenobia", family_name="Quillfeather", verified=True).account
    add_request(
        date(2026, 2, 2),
        "completed",
        due_on=date(2026, 3, 2),
        closed_at=at(2026, 2, 20),
        patient=patient,
        description="About my cardiology referral",
        spoke_to="Dr Marchbanks",
        phone_number="07700900123",
    )
    add_request(date(2026, 3, 2), "submitted", due_on=date(2026, 4, 2), requester_name="Ignatius Thistlewood")
    page = clerk_browser.get(HOME).get_data(as_text=True)
    download = clerk_browser.get(CSV_PATH).get_data(as_text=True)
    assert "1" in table_rows(BeautifulSoup(page, "html.parser"))["February 2026"]  # the requests are counted
    for secret in ("Zenobia", "Quillfeather", "cardiology", "Marchbanks", "07700900123", "Thistlewood", "CR-2026"):
        assert secret not in page
        assert secret not in download


def test_staff_home_warns_when_no_worker_runs_and_shows_when_each_job_last_ran(clerk_browser):
    page = BeautifulSoup(clerk_browser.get("/admin/").get_data(as_text=True), "html.parser")
    warning = page.select_one("#worker-warning")
    assert warning is not None
    assert "No worker has been seen in the last two minutes." in warning.get_text()
    assert "Deadline reminders to staff: late." in warning.get_text()

    beat("host-a:1")
    run_due_jobs(worker="host-a:1")
    page = BeautifulSoup(clerk_browser.get("/admin/").get_data(as_text=True), "html.parser")
    assert page.select_one("#worker-warning") is None
    assert "every job ran on time" in page.select_one("#worker-ok").get_text()
    rows = [" ".join(row.get_text().split()) for row in page.select("#job-status tbody tr")]
    assert len(rows) == 4
    assert any("Check the audit trail's chain" in row and "OK:" in row for row in rows)
