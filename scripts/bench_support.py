"""What the benchmarks in scripts/ share: the project on the import path, the database they run on (from
--database-url or TEST_DATABASE_URL, else a SQLite file in a temporary folder), the app made on it with
the migrations, the common arguments, the people the request benchmarks need, the timing of cases and the
query plans of the statements they run; and for the HTTP figures, gunicorn with the production settings, a
signed-in staff session and a keep-alive client.

Import it before anything from the project: importing it is what puts the project's packages on the path.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TypeVar

# Run as `python scripts/...`, only scripts/ is on the path; the project's packages sit one level up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import Engine, MetaData, event, insert

from core.config import PROJECT_ROOT, normalise_database_url
from core.extensions import db
from core.factory import create_app
from core.models.accounts import Patient, StaffUser, WebSession
from core.sessions import hash_session_id

T = TypeVar("T")
Plans = list[tuple[str, list[str]]]  # each statement with the lines of its query plan


def argument_parser(doc: str, *, rows: int | None = None, things: str = "") -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the script's docstring; with `rows`, a --rows option
    for how many `things` to create."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    if rows is not None:
        parser.add_argument("--rows", type=int, default=rows, help=f"{things} to create (default {rows:,})")
    return parser


def add_timing_arguments(parser: argparse.ArgumentParser, *, no_plans: bool = False) -> None:
    """--repeats and --database-url (whose default is TEST_DATABASE_URL, else SQLite); --no-plans if asked."""
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per case (default 15)")
    parser.add_argument("--database-url", help="a scratch database (default: TEST_DATABASE_URL, else SQLite)")
    if no_plans:
        parser.add_argument("--no-plans", action="store_true", help="do not print the query plans")


@contextmanager
def database_url(given: str | None, prefix: str, *, environment: bool = True) -> Iterator[str]:
    """The URL of the database to benchmark: `given`, else (with `environment`) TEST_DATABASE_URL, else a
    SQLite file in a temporary folder named with `prefix`, which is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        url = given or (os.environ.get("TEST_DATABASE_URL") if environment else None)
        yield normalise_database_url(url) if url else f"sqlite:///{folder}/bench.db"


def build_app(url: str, config: dict | None = None, *, drop_tables: bool = True) -> Flask:
    """The test app on the database at `url`, logging warnings only (a line per request would bury the figures),
    migrated to the latest revision; with `drop_tables`, every table in the database is dropped first."""
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": url, "LOG_LEVEL": "WARNING", **(config or {})})
    with app.app_context():
        if drop_tables:
            existing = MetaData()
            existing.reflect(bind=db.engine)
            existing.drop_all(bind=db.engine)
        upgrade(directory=str(PROJECT_ROOT / "migrations"))
    return app


@contextmanager
def fresh_database(given: str | None, prefix: str) -> Iterator[Flask]:
    """Inside the app context of a freshly migrated database (see `database_url` and `build_app`); the
    session is removed and the engine disposed of afterwards."""
    with database_url(given, prefix) as url:
        app = build_app(url)
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()


def seconds(work: Callable[[], T]) -> tuple[T, float]:
    """What `work` returns, and how many seconds it took."""
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def timed(
    case: Callable[[], T], repeats: int, *, before: Callable[[], object], after: Callable[[], object] | None = None
) -> tuple[list[float], T]:
    """Runs `case` once to warm the caches, then `repeats` times timed, with `before` (and `after`) run
    outside the timing each time. Returns the times in milliseconds and the last result."""
    result = case()  # warm the caches once
    times = []
    for _ in range(repeats):
        before()
        started = time.perf_counter()
        result = case()
        times.append((time.perf_counter() - started) * 1000)
        if after is not None:
            after()
    return times, result


def print_figures(
    cases: dict[str, Callable[[], T]],
    repeats: int,
    width: int,
    *,
    before: Callable[[], object],
    after: Callable[[], object] | None = None,
    digits: int = 2,
    heading: str = "",
    columns: Callable[[T], str] | None = None,
) -> None:
    """Times each case (see `timed`) and prints a table of them: the case's name, `width` wide, then the median
    and the slowest in milliseconds to `digits` places; with `columns`, more columns (headed `heading`) made
    from the case's result."""
    print(f"{'case':<{width}} {'median ms':>10} {'max ms':>8}" + (f" {heading}" if columns else ""))
    for name, case in cases.items():
        times, result = timed(case, repeats, before=before, after=after)
        line = f"{name:<{width}} {statistics.median(times):>10.{digits}f} {max(times):>8.{digits}f}"
        print(f"{line} {columns(result)}" if columns else line)


def statements_run_by(case: Callable[[], object], engine: Engine | None = None) -> list[tuple[str, object]]:
    """Runs `case` and returns each statement it sent to the database (through `engine`, by default the
    application's), with its parameters."""
    seen: list[tuple[str, object]] = []
    engine = engine or db.engine

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        case()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def query_plans(statements: list[tuple[str, object]]) -> Plans:
    """Each statement with its query plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)."""
    explain = "EXPLAIN QUERY PLAN " if db.engine.dialect.name == "sqlite" else "EXPLAIN "
    found = []
    with db.engine.connect() as connection:
        for statement, parameters in statements:
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            found.append((statement, [str(row[-1]) for row in rows]))
    return found


def one_line(statement: str) -> str:
    return " ".join(statement.split())


def plans_of(case: Callable[[], object], width: int, engine: Engine | None = None) -> Plans:
    """Each statement `case` runs (through `engine`, by default the application's), on one line and cut to
    `width` characters, with its query plan."""
    statements = statements_run_by(case, engine)
    return [(one_line(statement)[:width], lines) for statement, lines in query_plans(statements)]


def add_people(role: str, patients: int, *, first_nhs_number: str | None = None) -> StaffUser:
    """A member of staff (Bench Clerk, with `role`) and `patients` verified patients, patient{n}@example.org,
    with n in ten digits as NHS number (patient 1 has `first_nhs_number` if given); flushed, not committed.
    Returns the member of staff."""
    staff = StaffUser(email="bench@practice.example", name="Bench Clerk", role=role)
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
                "nhs_number": first_nhs_number if n == 1 and first_nhs_number else f"{n:010d}",
                "postcode": "SE28 8BE",
                "password_hash": "not-a-hash",
                "password_changed_at": now,
                "identity_status": "verified",
            }
            for n in range(1, patients + 1)
        ],
    )
    db.session.flush()
    return staff


def print_plans(cases: dict[str, Callable], plans: Callable[[Callable], Plans]) -> None:
    """Under each case's name, the statements it runs, each followed by its query plan."""
    for name, case in cases.items():
        print(f"\n{name}:")
        for statement, lines in plans(case):
            print(f"  {statement}")
            for line in lines:
                print(f"    {line}")


# --- servers: the portal (or another app) under gunicorn with the production settings ---------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """A gunicorn server started by `gunicorn`: the file its output goes to and its master's process id."""

    log: Path
    pid: int


@contextmanager
def gunicorn(app_spec: str, port: int, env: dict, *extra: str, ready_path: str = "/healthz") -> Iterator[Server]:
    """`app_spec` served by gunicorn with deploy/gunicorn.conf.py on 127.0.0.1:`port`, with `env` added to
    this process's environment, until the block ends; yields the Server. Waits (60 s at most) until
    `ready_path` answers 200."""
    gunicorn_bin = Path(sys.executable).parent / "gunicorn"
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as folder:
        log = Path(folder) / "gunicorn.log"
        environment = {**os.environ, **env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
        with log.open("ab") as handle:
            process = subprocess.Popen(  # noqa: S603 (our own gunicorn with fixed arguments)
                [str(gunicorn_bin), "-c", "deploy/gunicorn.conf.py", *extra, app_spec],
                cwd=PROJECT_ROOT,
                env=environment,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_until_up(port, ready_path, process, log)
            yield Server(log, process.pid)
        finally:
            _stop(process)


def _wait_until_up(port: int, path: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn on port {port} stopped:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"gunicorn on port {port} did not answer within 60 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def timed_gets(port: int, path: str, repeats: int, headers: dict[str, str] | None = None) -> list[float]:
    """GET `path` `repeats` times, one after another on one keep-alive connection, after one untimed GET;
    the times in milliseconds. Any answer other than 200 stops the benchmark."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times = []
    try:
        for number in range(repeats + 1):
            started = time.perf_counter()
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"GET {path} answered {response.status}")
            if number:
                times.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def staff_session(staff_id: int) -> str:
    """A session signed in with both factors for member of staff `staff_id`, written as sign-in writes it;
    returns the cookie value that names it."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db.session.execute(
        insert(WebSession).values(
            id_hash=hash_session_id(session_id),
            account_kind="staff",
            account_id=staff_id,
            stage="full",
            data="{}",
            created_at=now,
            last_seen_at=now,
            second_factor_at=now,
        )
    )
    db.session.commit()
    return session_id


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user and system, every thread) used so far by the processes `pids` that still run."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to the database at `url` (none for SQLite): the server runs on this
    machine, so the CPU they use for a download can be read here."""
    if not url.startswith("postgresql"):
        return []
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [row[0] for row in rows]
