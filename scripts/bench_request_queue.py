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

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# Run as `python scripts/...`, only scripts/ is on the path; the project's packages sit one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import MetaData, event, insert, text

from core.config import PROJECT_ROOT, normalise_database_url
from core.extensions import db
from core.factory import create_app
from core.models.accounts import Patient, StaffUser
from core.models.requests import RecordingRequest
from core.services import requests as requests_service
from core.services.requests import OPEN_STATUSES, QueueFilter

STATUSES = (*OPEN_STATUSES, "completed", "refused", "no_recordings_found", "withdrawn")
TODAY = date(2026, 3, 2)
PATIENTS = 1000
NHS_NUMBER = "9434765919"  # a valid test number; patient 1 has it


def build_app(database_url: str) -> Flask:
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "LOG_LEVEL": "WARNING"})
    with app.app_context():
        existing = MetaData()
        existing.reflect(bind=db.engine)
        existing.drop_all(bind=db.engine)
        upgrade(directory=str(PROJECT_ROOT / "migrations"))
    return app


def fill(rows: int) -> int:
    """Staff, patients and `rows` requests. Returns the member of staff's id."""
    staff = StaffUser(email="bench@practice.example", name="Bench Clerk", role="staff")
    db.session.add(staff)
    now = datetime.now(UTC)
    db.session.execute(
        insert(Patient),
        [
            {
                "email": f"patient{n}@example.org",
                "given_name": "Pat",
                "family_name": f"Family{n}",
                "date_of_birth": date(1960, 1, 1),
                "nhs_number": NHS_NUMBER if n == 1 else f"{n:010d}",
                "postcode": "SE28 8BE",
                "password_hash": "not-a-hash",
                "password_changed_at": now,
                "identity_status": "verified",
            }
            for n in range(1, PATIENTS + 1)
        ],
    )
    db.session.flush()
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


def timed(case: Callable, repeats: int) -> tuple[list[float], requests_service.QueuePage]:
    times, result = [], None
    case()  # warm the caches once
    for _ in range(repeats):
        db.session.expire_all()
        started = time.perf_counter()
        result = case()
        times.append((time.perf_counter() - started) * 1000)
    return times, result


def plans(case: Callable) -> list[tuple[str, list[str]]]:
    """Each statement the case runs, with its query plan."""
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        case()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    explain = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else "EXPLAIN "
    found = []
    with db.engine.connect() as connection:
        for statement, parameters in seen:
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            lines = [str(row[-1]) for row in rows]
            found.append((" ".join(statement.split())[:110], lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="requests to create (default 100,000)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per case (default 15)")
    parser.add_argument("--database-url", help="a scratch database (default: TEST_DATABASE_URL, else SQLite)")
    parser.add_argument("--no-plans", action="store_true", help="do not print the query plans")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-queue-") as folder:
        url = args.database_url or os.environ.get("TEST_DATABASE_URL")
        url = normalise_database_url(url) if url else f"sqlite:///{folder}/bench.db"
        app = build_app(url)
        with app.app_context():
            started = time.perf_counter()
            staff_id = fill(args.rows)
            made_in = time.perf_counter() - started
            print(f"database: {db.engine.dialect.name}; {args.rows:,} requests made in {made_in:.1f} s")
            print(f"{'case':<30} {'median ms':>10} {'max ms':>8} {'rows':>5} {'total':>7}")
            all_cases = cases(staff_id)
            for name, case in all_cases.items():
                times, result = timed(case, args.repeats)
                print(
                    f"{name:<30} {statistics.median(times):>10.2f} {max(times):>8.2f} "
                    f"{len(result.requests):>5} {result.total:>7,}"
                )
            if not args.no_plans:
                for name, case in all_cases.items():
                    print(f"\n{name}:")
                    for statement, lines in plans(case):
                        print(f"  {statement}")
                        for line in lines:
                            print(f"    {line}")
            db.session.remove()
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
