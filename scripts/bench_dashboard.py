"""Benchmark for the compliance dashboard's figures at 100,000 requests (issue 5: the staff home page must
stay quick however many requests the practice has had).

It builds a fresh database (the migrations, run on an empty one) and adds `--rows` requests (default
100,000) received evenly over the last `--years` years (default 5, so about a fifth fall in the dashboard's
12 months; `--years 1` puts them all there), spread over every status: closed ones closed 5 to 60 days after
they arrived, about half of the completed ones and every released one with an approved release, one in
twenty extended and one in fifty refused in part (with its timeline entry). Then it times, `--repeats`
times each (default 15), and prints the median and the slowest:

- `dashboard.monthly_figures` (the 12 months: the chart, the table and the CSV)
- `dashboard.attention` (counts by status, overdue, due soon, complaints)
- `dashboard.dashboard` (both: everything the home page asks the database for)

With `--plans` it also prints the query plan of each statement the 12-month figures run (EXPLAIN QUERY
PLAN on SQLite, EXPLAIN on PostgreSQL). Figures only: it never fails on them.

    PORTAL_ENV=test .venv/bin/python scripts/bench_dashboard.py
    PORTAL_ENV=test TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_dashboard_db \\
        .venv/bin/python scripts/bench_dashboard.py

Without --database-url (or TEST_DATABASE_URL) the database is a SQLite file in a temporary folder. A
PostgreSQL database must be a scratch one: every table in it is dropped first, and the rows are left behind.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta

import bench_support  # first: importing it puts the project's packages on the path
from sqlalchemy import insert, select, text

from core import legal_clock
from core.extensions import db
from core.models.requests import REQUEST_STATUSES, RecordingRequest, Release, RequestEvent
from core.services import dashboard

TODAY = date(2026, 3, 16)
PATIENTS = 1000
CLOSED = ("completed", "no_recordings_found", "refused", "withdrawn")


def at_ten(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC)


def fill(rows: int, years: int) -> None:
    staff = bench_support.add_people("admin", PATIENTS)
    span = years * 365
    values, answers = [], {}
    for n in range(rows):
        status = REQUEST_STATUSES[n % len(REQUEST_STATUSES)]
        received = TODAY - timedelta(days=span - 1 - (n * span) // rows)
        took = 5 + (n * 7919) % 56
        due = None if status == "awaiting_identity" else legal_clock.due_date(received)
        answered = min(received + timedelta(days=took), TODAY)
        values.append(
            {
                "reference": f"CR-B-{n + 1:07d}",
                "status": status,
                "received_via": "letter",
                "received_on": received,
                "relevant_day": None if due is None else received,
                "due_on": due,
                "closed_at": at_ten(answered) if status in CLOSED else None,
                "extended_at": at_ten(received + timedelta(days=3)) if n % 20 == 7 and due else None,
                "partly_refused": n % 50 == 3,
                "calls_from": received - timedelta(days=3),
                "calls_to": received - timedelta(days=3),
                "patient_id": (n % PATIENTS) + 1,
            }
        )
        if status == "released" or (status == "completed" and n % 2 == 0):
            answers[values[-1]["reference"]] = at_ten(answered - timedelta(days=2 if status == "completed" else 0))
    db.session.execute(insert(RecordingRequest), values)
    ids = dict(db.session.execute(select(RecordingRequest.reference, RecordingRequest.id)).all())
    patient_of = {value["reference"]: value["patient_id"] for value in values}
    db.session.execute(
        insert(Release),
        [
            {
                "public_id": f"{ids[reference]:032x}",
                "request_id": ids[reference],
                "patient_id": patient_of[reference],
                "prepared_by_id": staff.id,
                "prepared_at": approved - timedelta(hours=1),
                "approved_by_id": staff.id,
                "approved_at": approved,
                "expires_at": approved + timedelta(days=7),
                "max_downloads": 3,
            }
            for reference, approved in answers.items()
        ],
    )
    db.session.execute(
        insert(RequestEvent),
        [
            {
                "request_id": ids[value["reference"]],
                "occurred_at": at_ten(value["received_on"] + timedelta(days=4)),
                "kind": "refusal",
                "actor_type": "staff",
                "actor_name": "Bench Clerk",
                "summary": "Part of the request was refused",
            }
            for value in values
            if value["partly_refused"]
        ],
    )
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-running database would have
    db.session.commit()


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__, rows=100_000, things="requests")
    parser.add_argument("--years", type=int, default=5, help="spread them over this many years (default 5)")
    bench_support.add_timing_arguments(parser)
    parser.add_argument("--plans", action="store_true", help="print the query plans of the 12-month figures")
    args = parser.parse_args(argv)

    with bench_support.fresh_database(args.database_url, "bench-dashboard-"):
        _, made_in = bench_support.seconds(lambda: fill(args.rows, args.years))
        months = dashboard.monthly_figures(TODAY)
        print(
            f"database: {db.engine.dialect.name}; {args.rows:,} requests over {args.years} years made in "
            f"{made_in:.1f} s; {sum(m.received for m in months):,} received and "
            f"{sum(m.completed for m in months):,} completed in the 12 months"
        )
        cases = {
            "12-month figures": lambda: dashboard.monthly_figures(TODAY),
            "attention counts": lambda: dashboard.attention(TODAY),
            "whole dashboard": lambda: dashboard.dashboard(TODAY),
        }
        bench_support.print_figures(
            cases, args.repeats, 24, before=db.session.expire_all, after=db.session.rollback, digits=1
        )
        if args.plans:
            print("\nQuery plans of the 12-month figures:")
            for statement, lines in bench_support.plans_of(cases["12-month figures"], 140):
                print(f"\n  {statement}")
                for line in lines:
                    print(f"    {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
