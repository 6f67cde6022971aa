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

It then prints the query plan of each statement the cases ran (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on
PostgreSQL), so a reader can see which index each one uses. Figures only: it never fails on them.

    PORTAL_ENV=test .venv/bin/python scripts/bench_request_queue.py
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
from sqlalchemy import insert, text

from core.extensions import db
from core.models.requests import RecordingRequest
from core.services import requests as requests_service
from core.services.requests import OPEN_STATUSES, QueueFilter

STATUSES = (*OPEN_STATUSES, "completed", "refused", "no_recordings_found", "withdrawn")
TODAY = date(2026, 3, 2)
PATIENTS = 1000
NHS_NUMBER = "9434765919"  # a valid test number; patient 1 has it


def fill(rows: int) -> int:
    """Staff, patients and `rows` requests. Returns the member of staff's id."""
    staff = bench_support.add_people("staff", PATIENTS, first_nhs_number=NHS_NUMBER)
    values = []
    for n in range(rows):
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
                "assigned_to_id": staff.id if n % 10 == 0 else None,
            }
        )
    db.session.execute(insert(RecordingRequest), values)
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-running database would have
    db.session.commit()
    return staff.id


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


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__, rows=100_000, things="requests")
    bench_support.add_timing_arguments(parser, no_plans=True)
    args = parser.parse_args(argv)

    with bench_support.fresh_database(args.database_url, "bench-queue-"):
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
        if not args.no_plans:
            bench_support.print_plans(all_cases, lambda case: bench_support.plans_of(case, 110))
    return 0


if __name__ == "__main__":
    sys.exit(main())
