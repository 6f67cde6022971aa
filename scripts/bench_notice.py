"""Benchmark for the public notice page against a bare Flask app serving the same bytes, side by side.

It migrates a fresh database and loads the default content (as `make run` does), then starts three servers
with the production gunicorn settings (deploy/gunicorn.conf.py: gthread, 2 workers, 4 threads): the portal
(`wsgi:app`, PORTAL_ENV=test on that database, logging a line a request as in production); a bare Flask app
whose one view returns the portal's notice page as bytes (the target's baseline); and the floor, a WSGI
callable of a few lines that asks the portal's version check of the same database on every request and
returns the same bytes (what no server checking the database on every request can beat; the portal's cached
pages skip Flask as it does). It loads them in turn, `--rounds` times each (default 5) for `--seconds` each
(default 3), with 16 connections that keep alive, and prints the requests per second of every run, the
median of each server, the ratios portal / bare Flask (the target), floor / bare Flask and portal / floor (the
portal's own work: its log line, security headers and request id), each also as the median of the rounds'
ratios (the steadier figure on a busy machine). Each run also counts answers other than 200, and the body
served is checked to be the same bytes first. Then, in this process, it times
the one question a cached page asks the database (core.services.content.page_state) and prints its query
plan. Figures only: it never fails on them.

Beside the requests per second it prints the CPU time each server spent per request (its gunicorn master and
workers; for the portal on PostgreSQL, also the database's backends serving its connections, since they take
turns on the same cores): on a machine shared with other work this is the steadier measure of the portal's
own cost, as a busy neighbour slows both servers' requests per second but not the CPU a request needs.

The load comes from wrk when it is installed (`apt-get install wrk`: `wrk -t2 -c16`), else from this script's
own client: 2 processes of 8 threads, each thread one keep-alive connection (http.client). The two do not
give the same figures: compare only figures from one of them. The machine's cores are shared by the servers
and the client, as they would be on one small host.

    PORTAL_ENV=test .venv/bin/python scripts/bench_notice.py
    PORTAL_ENV=test .venv/bin/python scripts/bench_notice.py --client python --ports 5130,5131,5132
    PORTAL_ENV=test TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_notice_db \\
        .venv/bin/python scripts/bench_notice.py

Without --database-url (or TEST_DATABASE_URL) the database is a SQLite file in a temporary folder. A
PostgreSQL database must be a scratch one: every table in it is dropped first.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import bench_support  # first: importing it puts the project's packages on the path
import psutil

from core.extensions import db
from core.services.content import load_default_content, page_state, page_state_engine

PATH = "/call-recording-notice"
CONNECTIONS = 16
BODY_FILE_VARIABLE = "BENCH_NOTICE_BODY_FILE"
DATABASE_VARIABLE = "BENCH_NOTICE_DATABASE_URL"
SERVERS = {
    "portal": "portal",
    "bare": "bare Flask",
    "floor": "floor: the version check, no framework",
}


def bare_app():
    """The baseline: a Flask app with one view returning the bytes in the file BENCH_NOTICE_BODY_FILE names
    (gunicorn loads it as `bench_notice:bare_app()`)."""
    from flask import Flask, Response

    body = Path(os.environ[BODY_FILE_VARIABLE]).read_bytes()
    app = Flask("bare")

    @app.get(PATH)
    def notice():
        return Response(body, mimetype="text/html")

    return app


def floor_app():
    """The floor of what the issue asks of the portal: the page's bytes from a WSGI callable of a few lines (no
    framework: the portal's cached pages skip Flask too), after the portal's own version check
    (core.services.quick_page_state: a connection kept per thread, on PostgreSQL the statement prepared once
    and run through libpq) asked on every request, and nothing else: no comparison, no headers made, no log
    line. The database is the one BENCH_NOTICE_DATABASE_URL names. (gunicorn loads it as
    `bench_notice:floor_app()`.) No server that asks the database on every request can do less."""
    from sqlalchemy import create_engine

    from core.services.quick_page_state import QuickPageState

    body = Path(os.environ[BODY_FILE_VARIABLE]).read_bytes()
    engine = create_engine(os.environ[DATABASE_VARIABLE], isolation_level="AUTOCOMMIT", pool_pre_ping=False)
    check = QuickPageState(engine)
    slug = PATH.lstrip("/")
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]

    def app(environ, start_response):
        if environ["PATH_INFO"] != PATH or check.row(slug) is None:
            start_response("404 NOT FOUND", [("Content-Length", "0")])
            return [b""]
        start_response("200 OK", headers)
        return [body]

    return app


def fetch(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{PATH}", timeout=5) as response:
        return response.read()


# --- load generators: each returns (requests per second, answers other than 200) -------------------------


def load_with_wrk(port: int, seconds: float) -> tuple[float, int]:
    output = subprocess.run(  # noqa: S603 (wrk with fixed arguments)
        [shutil.which("wrk"), "-t2", f"-c{CONNECTIONS}", f"-d{seconds:g}s", f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    if errors:
        print(f"    wrk: {errors.group(0)}")
    return rate, int(bad.group(1)) if bad else 0


def _client_threads(port: int, seconds: float, threads: int, results) -> None:
    """One client process: `threads` threads, each with one keep-alive connection, for `seconds`."""
    counts = [[0, 0] for _ in range(threads)]
    deadline = time.perf_counter() + seconds

    def run(tally: list[int]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < deadline:
            connection.request("GET", PATH)
            response = connection.getresponse()
            response.read()
            tally[0 if response.status == 200 else 1] += 1
        connection.close()

    workers = [threading.Thread(target=run, args=(tally,)) for tally in counts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put((sum(tally[0] for tally in counts), sum(tally[1] for tally in counts)))


def load_with_python(port: int, seconds: float) -> tuple[float, int]:
    processes, per_process = 2, CONNECTIONS // 2
    results = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=_client_threads, args=(port, seconds, per_process, results))
        for _ in range(processes)
    ]
    started = time.perf_counter()
    for client in clients:
        client.start()
    totals = [results.get() for _ in clients]
    elapsed = time.perf_counter() - started
    for client in clients:
        client.join()
    good, bad = sum(t[0] for t in totals), sum(t[1] for t in totals)
    return (good + bad) / elapsed, bad


# --- CPU time: the servers' processes, and the database's backends serving them ---------------------------


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user and system) used so far by process `pid` and its children: the live ones, and those that
    ended and were reaped (gunicorn recycles a worker after max_requests: its CPU counts, not only the
    replacement's)."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        children = [child.pid for child in process.children(recursive=True)]
        own = process.cpu_times()  # its own, and its reaped children's
        return own.user + own.system + own.children_user + own.children_system + bench_support.cpu_seconds(children)
    return 0.0


def measured_run(load, port: int, seconds: float, server_pid: int, database_url: str | None) -> dict:
    """One run of `load`: requests per second, answers other than 200, and the server's CPU per request in
    microseconds (gunicorn, and the database's backends when `database_url` is given)."""
    backends = bench_support.backend_pids(database_url) if database_url else []
    server_before, database_before = process_tree_cpu(server_pid), bench_support.cpu_seconds(backends)
    started = time.perf_counter()
    rate, bad = load(port, seconds)
    elapsed = time.perf_counter() - started
    requests = rate * elapsed
    server = (process_tree_cpu(server_pid) - server_before) / requests * 1e6
    database = (bench_support.cpu_seconds(backends) - database_before) / requests * 1e6
    return {"rate": rate, "bad": bad, "server_us": server, "database_us": database}


# --- the database side ------------------------------------------------------------------------------------


def prepare_database(url: str) -> None:
    app = bench_support.build_app(url)
    with app.app_context():
        load_default_content(config=app.config)
        db.session.remove()
        db.engine.dispose()


def time_the_version_check(url: str, repeats: int = 2000) -> None:
    """The median and 99th percentile of page_state, and the plan of the one statement it runs."""
    app = bench_support.build_app(url, drop_tables=False)
    with app.app_context():
        slug = PATH.lstrip("/")
        page_state(slug)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            page_state(slug)
            times.append((time.perf_counter() - started) * 1_000_000)
        times.sort()
        print(
            f"\nversion check (page_state, in this process, {repeats} times): median {statistics.median(times):.0f} µs,"
            f" 99th percentile {times[int(repeats * 0.99)]:.0f} µs"
        )
        for statement, lines in bench_support.plans_of(lambda: page_state(slug), 400, page_state_engine()):
            print(f"  {statement}")
            for line in lines:
                print(f"    {line}")
        page_state_engine().dispose()
        db.session.remove()
        db.engine.dispose()


def print_summary(runs: dict[str, list[dict]]) -> None:
    rates = {name: [run["rate"] for run in runs[name]] for name in runs}
    medians = {name: statistics.median(rates[name]) for name in runs}
    cpu = {name: statistics.median(run["server_us"] + run["database_us"] for run in runs[name]) for name in runs}
    database_cpu = {name: statistics.median(run["database_us"] for run in runs[name]) for name in runs}

    def ratios(mine: str, theirs: str) -> str:
        rounds = [a / b for a, b in zip(rates[mine], rates[theirs], strict=True)]
        return (
            f"ratio {medians[mine] / medians[theirs]:.2f} (median of the rounds' ratios"
            f" {statistics.median(rounds):.2f}); CPU ratio {cpu[theirs] / cpu[mine]:.2f}"
        )

    print("\nmedians:")
    for name, label in SERVERS.items():
        of_it = f" (of which the database {database_cpu[name]:,.0f} µs)" if database_cpu[name] else ""
        print(f"  {label:<38} {medians[name]:>8,.0f} requests/s, CPU {cpu[name]:>5,.0f} µs a request{of_it}")
    print(f"portal / bare Flask (the target, 0.8):          {ratios('portal', 'bare')}")
    print(f"floor / bare Flask (the most the design allows): {ratios('floor', 'bare')}")
    print(f"portal / floor (the portal's own work):         {ratios('portal', 'floor')}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__)
    parser.add_argument("--database-url", help="a scratch database (default: TEST_DATABASE_URL, else SQLite)")
    parser.add_argument("--rounds", type=int, default=5, help="runs of each server (default 5)")
    parser.add_argument("--seconds", type=float, default=3, help="length of each run (default 3)")
    parser.add_argument("--warm-up", type=float, default=2, help="seconds of load before the timed runs (default 2)")
    parser.add_argument(
        "--client", choices=("auto", "wrk", "python"), default="auto", help="load generator (default: wrk if installed)"
    )
    parser.add_argument(
        "--ports", help="the portal's, the bare app's and the floor's ports, as 5130,5131,5132 (default: free ones)"
    )
    args = parser.parse_args(argv)

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `apt-get install wrk` (Debian), or use --client python")
    load = load_with_wrk if client == "wrk" else load_with_python
    if args.ports:
        portal_port, bare_port, floor_port = (int(port) for port in args.ports.split(","))
    else:
        portal_port, bare_port, floor_port = (bench_support.free_port() for _ in range(3))

    with bench_support.database_url(args.database_url, "bench-notice-") as url, ExitStack() as servers:
        folder = Path(servers.enter_context(tempfile.TemporaryDirectory(prefix="bench-notice-")))
        prepare_database(url)
        portal_env = {"PORTAL_ENV": "test", "TEST_DATABASE_URL": url, "LOG_LEVEL": "INFO"}
        portal_server = servers.enter_context(
            bench_support.gunicorn("wsgi:app", portal_port, portal_env, ready_path=PATH)
        )
        body = fetch(portal_port)
        (folder / "notice.html").write_bytes(body)
        bare_env = {BODY_FILE_VARIABLE: str(folder / "notice.html")}
        bare_spec = "bench_notice:bare_app()"
        bare_server = servers.enter_context(
            bench_support.gunicorn(bare_spec, bare_port, bare_env, "--pythonpath", "scripts", ready_path=PATH)
        )
        floor_env = {**bare_env, DATABASE_VARIABLE: url}
        floor_server = servers.enter_context(
            bench_support.gunicorn(
                "bench_notice:floor_app()", floor_port, floor_env, "--pythonpath", "scripts", ready_path=PATH
            )
        )
        if fetch(bare_port) != body or fetch(floor_port) != body or fetch(portal_port) != body:
            raise SystemExit("the three servers do not send the same bytes")
        print(
            f"database: {url.split(':')[0]}; page {PATH}: {len(body):,} bytes; gunicorn: deploy/gunicorn.conf.py;"
            f" load: {client}, {CONNECTIONS} connections; {args.rounds} rounds of {args.seconds:g} s each"
        )
        for port in (portal_port, bare_port, floor_port):
            load(port, args.warm_up)
        runs: dict[str, list[dict]] = {"portal": [], "bare": [], "floor": []}
        targets = {
            "portal": (portal_port, portal_server.pid, url),
            "bare": (bare_port, bare_server.pid, None),
            "floor": (floor_port, floor_server.pid, url),
        }
        for round_number in range(1, args.rounds + 1):
            for name, (port, pid, database) in targets.items():
                run = measured_run(load, port, args.seconds, pid, database)
                runs[name].append(run)
                note = f"  ({run['bad']} answers other than 200)" if run["bad"] else ""
                database_note = f" + {run['database_us']:,.0f} µs in the database" if database else ""
                print(
                    f"  round {round_number}: {name:<6} {run['rate']:>8,.0f} requests/s,"
                    f" CPU {run['server_us']:>5,.0f} µs a request{database_note}{note}"
                )
        servers.close()
        print_summary(runs)
        time_the_version_check(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
