"""Benchmark for the audit log viewer at a million events (issue 5: "paginated and fast with a million rows").

It builds a fresh database (the migrations, run on an empty one) and adds `--rows` audit events (default
1,000,000) with ONE bulk `INSERT ... SELECT` over a generated series, computed by the database: no
`record_event`, no HMACs. It is a benchmark database only: its chain does not verify (every row_hmac is zeros).

The events are one a minute from 1 December 2024 (about 23 months for a million): 60% by 20 members of staff,
30% by 5,000 patients, 10% by the system; seven common actions, plus `release_reissued` on exactly one event in
a hundred (the 10,000-event view the CSV case exports); each request reference is named by 50 events in a row.

Then it times the viewer's service functions `--repeats` times each (default 15) and prints the median and the
slowest, in milliseconds: the first page, pages deep in the trail by keyset, a filter by action (common and
rare), by actor (a member of staff, a patient), by object (a request reference), by a month's date range, a
month with an action, the list of actions for the filter, and the access report for a quarter. Last, the CSV
export of the filtered 10,000-event view, read to the end: its time, and its peak Python memory measured
separately with tracemalloc (which slows what it measures). Then the query plan of every statement each case
ran (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL). Figures only: it never fails on them.

    PORTAL_ENV=test .venv/bin/python scripts/bench_audit_log.py
    PORTAL_ENV=test TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_audit_db \\
        .venv/bin/python scripts/bench_audit_log.py

Without --database-url (or TEST_DATABASE_URL) the database is a SQLite file in a temporary folder. A
PostgreSQL database must be a scratch one: every table in it is dropped first, and the rows are left behind.
"""

from __future__ import annotations

import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import date

import bench_support  # first: importing it puts the project's packages on the path
from sqlalchemy import text

from core.extensions import db
from core.services import audit_log
from core.services.audit_log import AuditFilter

STAFF = 20
PATIENTS = 5000
COMMON_ACTIONS = (
    "authn_password_accepted",
    "request_status_changed",
    "recording_listened",
    "session_ended",
    "recording_played",
    "request_note_added",
    "download_page_viewed",
)
RARE_ACTION = "release_reissued"  # exactly one event in a hundred


def _fill_sql(dialect: str, rows: int) -> str:
    """One INSERT ... SELECT that makes `rows` events from a series the database generates itself."""
    if dialect == "sqlite":
        # Only numbers and this script's constants go into the statement.
        series = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {int(rows)}) "  # noqa: S608
        source = "FROM n"
        hex32 = "printf('%032x', {})"
        when = "strftime('%Y-%m-%d %H:%M:%S', '2024-12-01', '+' || i || ' minutes') || '.000000'"
        reference = "'CR-' || (2024 + (i / 500000)) || '-' || printf('%05d', (i / 50) % 10000 + 1)"
        text_of = "CAST({} AS TEXT)"
        action_case = " ".join(f"WHEN {n} THEN '{action}'" for n, action in enumerate(COMMON_ACTIONS))
    else:
        series = ""
        source = f"FROM generate_series(1, {rows}) AS n(i)"
        hex32 = "lpad(to_hex({}), 32, '0')"
        when = "timestamptz '2024-12-01 00:00:00+00' + i * interval '1 minute'"
        reference = "'CR-' || (2024 + (i / 500000)) || '-' || lpad(((i / 50) % 10000 + 1)::text, 5, '0')"
        text_of = "CAST({} AS TEXT)"
        action_case = " ".join(f"WHEN {n} THEN '{action}'" for n, action in enumerate(COMMON_ACTIONS))
    actor_type = "CASE WHEN i % 10 < 6 THEN 'staff' WHEN i % 10 < 9 THEN 'patient' ELSE 'system' END"
    actor_id = (
        f"CASE WHEN i % 10 < 6 THEN {hex32.format(f'i % {STAFF} + 1')} "
        f"WHEN i % 10 < 9 THEN {hex32.format(f'1000000 + i % {PATIENTS}')} ELSE NULL END"
    )
    action = f"CASE WHEN i % 100 = 0 THEN '{RARE_ACTION}' ELSE CASE i % 7 {action_case} END END"
    return (
        f"{series}INSERT INTO audit_event (id, seq, occurred_at, actor_type, actor_id, action, object_type, "
        "object_id, outcome, ip_address, user_agent, request_id, details, prev_hmac, row_hmac) "
        f"SELECT i, i, {when}, {actor_type}, {actor_id}, {action}, 'request', {reference}, "
        "CASE WHEN i % 37 = 0 THEN 'failure' ELSE 'success' END, '192.0.2.' || (i % 250 + 1), "
        f"'Mozilla/5.0 (bench)', {hex32.format('i')}, '{{\"n\":' || {text_of.format('i')} || '}}', "
        f"'{'0' * 64}', '{'0' * 64}' {source}"
    )


def fill(rows: int) -> None:
    dialect = db.engine.dialect.name
    db.session.execute(text(_fill_sql(dialect, rows)))
    db.session.execute(text("UPDATE audit_chain_head SET last_seq = :rows"), {"rows": rows})
    db.session.commit()
    db.session.execute(text("ANALYZE"))  # planner statistics, as a long-running database would have
    db.session.commit()


def public_id(n: int) -> str:
    """The id the fill gives member of staff n (1 to 20), or patient n (1,000,000 upwards)."""
    return f"{n:032x}"


def cases(rows: int) -> dict[str, Callable]:
    middle = rows // 2
    june = {"start_day": date(2025, 6, 1), "end_day": date(2025, 6, 30)}

    def page(filters: AuditFilter = AuditFilter(), **cursor):  # noqa: B008 (an immutable dataclass)
        return lambda: audit_log.events_page(filters, **cursor).rows

    return {
        "first page": page(),
        f"deep page (before={middle:,})": page(before=middle),
        "deepest page (before=60)": page(before=60),
        "newer page (after=500,000)": page(after=middle),
        "action, common (14%)": page(AuditFilter(action="recording_listened")),
        "action, rare (1%), deep": page(AuditFilter(action=RARE_ACTION), before=middle),
        "actor: a member of staff": page(AuditFilter(actor_ids=(public_id(3),))),
        "actor: a patient": page(AuditFilter(actor_ids=(public_id(1000000 + 4326),))),
        "actor type: system": page(AuditFilter(actor_type="system")),
        "actor type: anonymous (none)": page(AuditFilter(actor_type="anonymous")),
        "action and a patient": page(AuditFilter(action="recording_played", actor_ids=(public_id(1000000 + 4326),))),
        "object: a request reference": page(AuditFilter(object_ids=("CR-2025-04321",))),
        "dates: June 2025": page(AuditFilter(**june)),
        "dates: June 2025, a later page": page(AuditFilter(**june), before=290_000),
        "dates and action": page(AuditFilter(action=RARE_ACTION, **june)),
        "actions for the filter": audit_log.actions_in_use,
        "access report, a quarter": lambda: audit_log.access_report(date(2025, 4, 1), date(2025, 6, 30)).staff,
    }


def export(filters: AuditFilter) -> tuple[int, int]:
    """Read the CSV export to the end, as the response would be; returns (characters, lines)."""
    characters = lines = 0
    for chunk in audit_log.export_csv(filters):
        characters += len(chunk)
        lines += chunk.count("\n")
    return characters, lines


def plans(case: Callable) -> list[tuple[str, list[str]]]:
    """Each statement the case runs, with its query plan."""
    seen = bench_support.statements_run_by(case)
    db.session.rollback()
    found = []
    statements = [(s, p) for s, p in seen if not s.lstrip().upper().startswith(("ROLLBACK", "COMMIT"))]
    for statement, lines in bench_support.query_plans(statements):
        statement = bench_support.one_line(statement)
        if statement.startswith("SELECT audit_event.seq, audit_event.occurred_at"):
            statement = "SELECT <the columns> " + statement[statement.index("FROM audit_event") :]
        found.append((statement[:160], lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__, rows=1_000_000, things="audit events")
    bench_support.add_timing_arguments(parser, no_plans=True)
    args = parser.parse_args(argv)

    with bench_support.fresh_database(args.database_url, "bench-audit-"):
        _, made_in = bench_support.seconds(lambda: fill(args.rows))
        print(f"database: {db.engine.dialect.name}; {args.rows:,} audit events made in {made_in:.1f} s")
        all_cases = cases(args.rows)
        bench_support.print_figures(
            all_cases,
            args.repeats,
            36,
            before=db.session.rollback,
            heading=f"{'rows':>5}",
            columns=lambda rows: f"{len(rows):>5}",
        )

        rare = AuditFilter(action=RARE_ACTION)
        export_times = []
        for _ in range(max(3, args.repeats // 3)):
            started = time.perf_counter()
            characters, lines = export(rare)
            export_times.append((time.perf_counter() - started) * 1000)
        tracemalloc.start()
        export(rare)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"\nCSV export of the {lines - 1:,}-event view ({RARE_ACTION}): {characters / 1e6:.1f} MB of text, "
            f"median {statistics.median(export_times):.0f} ms, peak Python memory {peak / 1e6:.1f} MB "
            f"(batches of {audit_log.CSV_BATCH:,})"
        )

        if not args.no_plans:
            all_cases["CSV export (first batches)"] = lambda: next(iter(audit_log.event_batches(rare)))
            bench_support.print_plans(all_cases, plans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
