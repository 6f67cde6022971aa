"""Benchmark for the staff request queue at 100,000 requests (issue 4: "pagination that stays fast with
100,000 requests").

It builds a fresh database (the migrations, run on an empty one), adds `--rows` requests (default 100,000)
with one bulk insert, spread over every status with due dates from two months ago to six months ahead, a
tenth of them assigned to one member of staff and a thousand linked to patient accounts; then times
`core.services.requests.queue` (one COUNT and one page of rows, as the queue page runs it) `--repeats` times
(default 15) for each case below and prints the median and the slowest:

- the first page of open requests (the page staff land on)
- a deep page (page 2,000 of the open requests: OFFSET 49,975)
- the overdue filter, first page
- "assigned to me", first page
- a search by reference, by NHS number and by full name (the POSTed search)

With --http it also times the page itself: GET /admin/requests (the first page, signed in as staff) through
gunicorn with the production settings (deploy/gunicorn.conf.py), `--http-requests` times (default 200) one
after another, printing the 50th and 95th percentiles, first with 100 requests in the database and then with
`--rows`.

It then prints the query plan of each statement the cases ran (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on
PostgreSQL), so a reader can see which index each one uses. Figures only: it never fails on them.

    PORTAL_ENV=test .venv/bin/python scripts/bench_request_queue.py
    PORTAL_ENV=test .venv/bin/python scripts/bench_request_queue.py --http --no-plans
    PORTAL_ENV=test TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_queue_db \\
        .venv/bin/python scripts/bench_request_queue.py

Without --database-url (or TEST_DATABASE_URL) the database is a SQLite file in a temporary folder. A
PostgreSQL database must be a scratch one: every table in it is dropped first, and the rows are left behind.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, timedelta

import bench_support  # first: importing it puts the project's packages on the path
from flask import current_app
from sqlalchemy import func, insert, select, text

from core.extensions import db
from core.models.requests import RecordingRequest
from core.services import requests as requests_service
from core.services.requests import OPEN_STATUSES, QueueFilter

STATUSES = (*OPEN_STATUSES, "completed", "refused", "no_recordings_found", "withdrawn")
TODAY = date(2026, 3, 2)
PATIENTS = 1000
NHS_NUMBER = "9434765919"  # a valid test number; patient 1 has it
QUEUE_PATH = "/admin/requests"  # the queue's first page, as staff land on it
HTTP_FEW = 100


def fill(rows: int) -> int:
    """Staff, patients and `rows` requests. Returns the member of staff's id."""
    staff = bench_support.add_people("staff", PATIENTS, first_nhs_number=NHS_NUMBER)
    add_requests(0, rows, staff.id)
    return staff.id


def add_requests(first: int, rows: int, staff_id: int) -> None:
    """Requests number `first` + 1 to `first` + `rows` (see the module's docstring), committed and analysed."""
    values = []
    for n in range(first, first + rows):
        status = STATUSES[n % len(STATUSES)]
        due = None if status == "awaiting_identity" else TODAY + timedelta(days=(n * 7919) % 240 - 60)
        patient_id = (n % PATIENTS) + 1 if n % 100 == 0 else None
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
                "patient_id": patient_id,
                "requester_name": None if patient_id else f"Requester {n + 1}",
                "assigned_to_id": staff_id if n % 10 == 0 else None,
            }
        )
    if values:
        db.session.execute(insert(RecordingRequest), values)
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-running database would have
    db.session.commit()


def cases(staff_id: int) -> dict[str, Callable[[], requests_service.QueuePage]]:
    def run(filters: QueueFilter, page: int = 1, per_page: int = 25):
        return lambda: requests_service.queue(filters, page=page, per_page=per_page, today=TODAY)

    return {
        "first page (open)": run(QueueFilter()),
        "deep page 2,000 (open)": run(QueueFilter(), page=2000),
        "overdue, first page": run(QueueFilter(overdue=True)),
        "assigned to me, first page": run(QueueFilter(mine_id=staff_id)),
        "search: reference": run(QueueFilter(status="all", search="CR-2025-054321"), per_page=50),
        "search: NHS number": run(QueueFilter(status="all", search=NHS_NUMBER), per_page=50),
        "search: full name": run(QueueFilter(status="all", search="Requester 54322"), per_page=50),
    }


def time_queue_page(staff_id: int, args) -> str:
    """GET the queue's first page through gunicorn (deploy/gunicorn.conf.py) on this database, signed in as
    the member of staff; a line with the 50th and 95th percentiles in milliseconds."""
    cookie = f"{current_app.config['SESSION_COOKIE_NAME']}={bench_support.staff_session(staff_id)}"
    count = db.session.scalar(select(func.count()).select_from(RecordingRequest))
    url = db.engine.url.render_as_string(hide_password=False)
    env = {"PORTAL_ENV": "test", "TEST_DATABASE_URL": url}
    port = args.port or bench_support.free_port()
    with bench_support.gunicorn("wsgi:app", port, env):
        times = bench_support.timed_gets(port, QUEUE_PATH, args.http_requests, headers={"Cookie": cookie})
    return (
        f"GET {QUEUE_PATH} (first page, signed in as staff) through gunicorn, {count:,} requests in the database:"
        f" p50 {bench_support.percentile(times, 0.5):.1f} ms, p95 {bench_support.percentile(times, 0.95):.1f} ms"
        f" ({len(times)} GETs in turn on one connection)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__, rows=100_000, things="requests")
    bench_support.add_timing_arguments(parser, no_plans=True)
    parser.add_argument(
        "--http",
        action="store_true",
        help=f"also time GET {QUEUE_PATH} through gunicorn, signed in as staff, at {HTTP_FEW:,} and at --rows requests",
    )
    parser.add_argument("--http-requests", type=int, default=200, help="GETs timed for each figure (default 200)")
    parser.add_argument("--port", type=int, default=0, help="gunicorn's port for --http (default: a free one)")
    args = parser.parse_args(argv)

    with bench_support.fresh_database(args.database_url, "bench-queue-"):
        http_figures = []
        if args.http:
            staff_id = fill(min(HTTP_FEW, args.rows))
            http_figures.append(time_queue_page(staff_id, args))
            _, made_in = bench_support.seconds(lambda: add_requests(HTTP_FEW, args.rows - HTTP_FEW, staff_id))
        else:
            staff_id, made_in = bench_support.seconds(lambda: fill(args.rows))
        print(f"database: {db.engine.dialect.name}; {args.rows:,} requests made in {made_in:.1f} s")
        all_cases = cases(staff_id)
        bench_support.print_figures(
            all_cases,
            args.repeats,
            30,
            before=db.session.expire_all,
            heading=f"{'rows':>5} {'total':>7}",
            columns=lambda page: f"{len(page.requests):>5} {page.total:>7,}",
        )
        if args.http and args.rows > HTTP_FEW:
            http_figures.append(time_queue_page(staff_id, args))
        for figures in http_figures:
            print(figures)
        if not args.no_plans:
            bench_support.print_plans(all_cases, lambda case: bench_support.plans_of(case, 110))
    return 0


if __name__ == "__main__":
    sys.exit(main())
