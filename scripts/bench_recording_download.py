"""Benchmark: a large recording sent to the patient's player through the portal on gunicorn, decrypted as it
streams from each store, against Flask's `send_file` of the same plain file on the same server.

Set-up, all in one run: a WAV recording of --size-mb megabytes (random audio samples) is uploaded through the
real service twice, once into each store (RECORDING_STORE=filesystem, then database), and released to a
patient; the patient signs in with both factors in two browsers and opens each release's link. One gunicorn
server with deploy/gunicorn.conf.py's settings (gthread; one worker, so its memory can be watched) serves the
portal and, on the same app, a baseline route that returns the same plain file with `send_file` (which the
kernel's sendfile() sends without the file's bytes passing through the worker), and a second that streams the
plain file in the portal's blocks (1 MiB) as any response must whose bytes the worker makes: the floor for a
store whose audio is decrypted on the way. Each round downloads the four side by side (in a rotating order) over
HTTP on 127.0.0.1 and reads the whole body. It prints, per case, the median throughput, the ratio to
`send_file` (target: at least 0.5), and the worker's resident memory growth during a download above what it
used just before (target: under 20 MB), and checks once that each body is the plain audio, byte for byte.

It prints figures and never fails on them: speed targets belong in benchmarks, not in the test suite.

    PORTAL_ENV=test .venv/bin/python scripts/bench_recording_download.py
    PORTAL_ENV=test .venv/bin/python scripts/bench_recording_download.py --size-mb 200 --repeats 3 \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_recordings

The playing route (`/downloads/recordings/<id>/play`) is the one measured: it streams the whole recording
through the same code as the download button without using up a download. Without --database-url the
database is a SQLite file in a temporary folder; a PostgreSQL database should be a scratch one
(scripts/ci_database.py creates and drops one).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import bench_support  # first: importing it puts the project's packages on the path

from core.config import PROJECT_ROOT

BASELINE_PATH = "/bench/plain"
STREAMED_PATH = "/bench/plain-streamed"
STREAMED = "plain file streamed, no sendfile"
PIECE = 1024 * 1024


def bench_app():
    """The app gunicorn serves: the portal (test settings from the environment) plus the baseline route."""
    from flask import Response, send_file

    from core.factory import create_app
    from core.services.recording_store import RecordingBody

    app = create_app("test", {"LOG_LEVEL": "WARNING"})
    plain = os.environ["BENCH_PLAIN_FILE"]

    @app.get(BASELINE_PATH)
    def bench_plain():
        return send_file(plain, mimetype="audio/wav", conditional=True)

    @app.get(STREAMED_PATH)
    def bench_plain_streamed():
        def blocks():
            with open(plain, "rb") as handle:
                while block := handle.read(RecordingBody.BLOCK):
                    yield block

        size = str(os.path.getsize(plain))
        return Response(blocks(), mimetype="audio/wav", headers={"Content-Length": size}, direct_passthrough=True)

    return app


def write_wav(path: Path, size_mb: int) -> None:
    """A WAV file of about `size_mb` MB: 8 kHz 16-bit mono, random samples (which, like speech, do not
    compress), written a megabyte at a time."""
    frames = size_mb * 1_000_000 // 2
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        written = 0
        while written < frames:
            step = min(PIECE // 2, frames - written)
            out.writeframesraw(os.urandom(step * 2))
            written += step


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise RuntimeError("gunicorn started no worker")


def wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/healthz", headers={"Host": "localhost"})
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def fetch(port: int, path: str, cookie: str | None, worker: int, *, digest: bool = False, url: str = "") -> dict:
    """GET `path` and read the whole body, watching the worker's memory every 5 ms meanwhile, and counting the
    CPU time the worker, the database's backends (PostgreSQL) and this client spent on it."""
    backends = bench_support.backend_pids(url) if url else []
    worker_cpu, database_cpu, client_cpu = (
        bench_support.cpu_seconds([worker]),
        bench_support.cpu_seconds(backends),
        time.process_time(),
    )
    before = rss_kib(worker)
    peak = before
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(worker))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    headers = {"Host": "localhost"}
    if cookie:
        headers["Cookie"] = cookie
    hasher = hashlib.sha256() if digest else None
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    received = 0
    while piece := response.read(PIECE):
        received += len(piece)
        if hasher is not None:
            hasher.update(piece)
    elapsed = time.perf_counter() - started
    connection.close()
    done.set()
    watcher.join()
    # Backends that connected during the download (the store opens its connection at the first read) count too.
    backends = sorted(set(backends) | set(bench_support.backend_pids(url))) if url else []
    cpu = {
        "worker": bench_support.cpu_seconds([worker]) - worker_cpu,
        "database": bench_support.cpu_seconds(backends) - database_cpu if backends else 0.0,
        "client": time.process_time() - client_cpu,
    }
    return {
        "cpu": cpu,
        "status": response.status,
        "bytes": received,
        "seconds": elapsed,
        "growth_kib": peak - before,
        "sha256": hasher.hexdigest() if hasher else None,
    }


def bare_read(url: str, object_name: str) -> tuple[float, float | None]:
    """Reading the stored chunks of `object_name` from the database with nothing of the portal: the driver alone
    (psycopg in binary format, or sqlite3), 16 chunks a statement, as the store reads. Returns bytes per second
    and, on PostgreSQL, the CPU seconds its backend spent per byte sent (None on SQLite, which has none)."""
    backend = None
    if url.startswith("postgresql"):
        import psycopg

        connection, mark = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True), "%s"
        cursor = connection.cursor(binary=True)
        backend = connection.info.backend_pid
    else:
        import sqlite3

        connection, mark = sqlite3.connect(url.removeprefix("sqlite:///")), "?"
        cursor = connection.cursor()
    chunks = f"FROM recording_chunk WHERE object_name = {mark}"
    try:
        count = cursor.execute(f"SELECT count(*) {chunks}", (object_name,)).fetchone()[0]
        query = f"SELECT data {chunks} AND chunk_index >= {mark} AND chunk_index < {mark} ORDER BY chunk_index"
        backend_cpu = bench_support.cpu_seconds([backend]) if backend else 0.0
        received, started = 0, time.perf_counter()
        for first in range(0, count, 16):
            cursor.execute(query, (object_name, first, first + 16))
            received += sum(len(row[0]) for row in cursor.fetchall())
        rate = received / (time.perf_counter() - started)
        return rate, (bench_support.cpu_seconds([backend]) - backend_cpu) / received if backend else None
    finally:
        connection.close()


def main() -> int:
    parser = bench_support.argument_parser(__doc__)
    parser.add_argument("--size-mb", type=int, default=200, help="the recording's size in MB (default 200)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--port", type=int, default=5150, help="the port gunicorn listens on (default 5150)")
    parser.add_argument("--database-url", help="a scratch database (default: TEST_DATABASE_URL, else SQLite)")
    args = parser.parse_args()

    from core.extensions import db
    from tests.accounts_support import make_patient, session_cookie, signed_in_browser
    from tests.release_support import open_link, released_request

    with (
        bench_support.database_url(args.database_url, "bench-recordings-") as url,
        tempfile.TemporaryDirectory(prefix="bench-recordings-") as folder,
    ):
        work = Path(folder)
        plain = work / "call.wav"
        write_wav(plain, args.size_mb)
        size = plain.stat().st_size
        with plain.open("rb") as handle:
            expected = hashlib.file_digest(handle, "sha256").hexdigest()
        config = {"RECORDINGS_DIR": str(work / "recordings"), "RECORDING_MAX_BYTES": size + 1}
        app = bench_support.build_app(url, config)
        cases: dict[str, tuple[str, str | None]] = {
            "send_file (plain file)": (BASELINE_PATH, None),
            STREAMED: (STREAMED_PATH, None),
        }
        with app.test_request_context():
            patient = make_patient(verified=True)
            for store in ("filesystem", "database"):
                app.config["RECORDING_STORE"] = store
                started = time.perf_counter()
                _patient, _req, release, token = released_request(app, work, patient=patient, samples=(plain,))
                upload_seconds = time.perf_counter() - started
                browser = signed_in_browser(app, patient)
                assert open_link(browser, token).status_code == 200
                cookie = f"{app.config['SESSION_COOKIE_NAME']}={session_cookie(browser, app)}"
                recording_id = release.items[0].recording.public_id
                cases[f"portal, {store} store"] = (f"/downloads/recordings/{recording_id}/play", cookie)
                stored_name = release.items[0].recording.stored_name
                print(f"Uploaded and released into the {store} store in {upload_seconds:.1f} s (encrypting included)")
            db.session.remove()
            db.engine.dispose()

        environment = {
            **os.environ,
            "PORTAL_ENV": "test",
            "TEST_DATABASE_URL": url,
            "RECORDINGS_DIR": config["RECORDINGS_DIR"],
            "BENCH_PLAIN_FILE": str(plain),
            "GUNICORN_BIND": f"127.0.0.1:{args.port}",
            "GUNICORN_WORKERS": "1",
            "PYTHONPATH": f"{PROJECT_ROOT}{os.pathsep}{PROJECT_ROOT / 'scripts'}",
        }
        server = subprocess.Popen(  # noqa: S603 (our own gunicorn, with fixed arguments)
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                str(PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
                "--log-level",
                "warning",
                "bench_recording_download:bench_app()",
            ],
            cwd=PROJECT_ROOT,
            env=environment,
        )
        try:
            wait_for(args.port)
            worker = worker_pid(server.pid)
            print(f"gunicorn: deploy/gunicorn.conf.py (gthread, 1 worker, 4 threads) on 127.0.0.1:{args.port}")
            print(f"Recording: {size / 1e6:.1f} MB WAV; {args.repeats} timed rounds after one checked warm-up each")
            for name, (path, cookie) in cases.items():
                check = fetch(args.port, path, cookie, worker, digest=True)
                same = check["status"] == 200 and check["bytes"] == size and check["sha256"] == expected
                print(f"  warm-up {name}: HTTP {check['status']}, {check['bytes']:,} bytes, identical: {same}")
                if not same:
                    return 1
            results: dict[str, list[dict]] = {name: [] for name in cases}
            names = list(cases)
            rss_start = rss_kib(worker)
            for round_number in range(args.repeats):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    path, cookie = cases[name]
                    results[name].append(fetch(args.port, path, cookie, worker, url=url))
            rss_end = rss_kib(worker)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)

        print()
        baseline = statistics.median(size / r["seconds"] for r in results[names[0]])
        width = max(len(name) for name in names)
        print(f"{'case':<{width}}  {'median MB/s':>11}  {'ratio':>6}  {'max RSS growth in a download':>28}")
        for name in names:
            throughput = statistics.median(size / r["seconds"] for r in results[name])
            growth = max(r["growth_kib"] for r in results[name]) / 1024
            print(f"{name:<{width}}  {throughput / 1e6:>11.1f}  {throughput / baseline:>6.2f}  {growth:>25.1f} MB")
        print("\nCPU time per 100 MB sent (medians): the gunicorn worker, the database's backends, this client")
        for name in names:
            parts = {
                part: statistics.median(r["cpu"][part] for r in results[name]) / size * 1e8
                for part in ("worker", "database", "client")
            }
            print(
                f"{name:<{width}}  worker {parts['worker'] * 1000:>5.0f} ms"
                f"  database {parts['database'] * 1000:>5.0f} ms  client {parts['client'] * 1000:>5.0f} ms"
            )
        print(f"worker RSS from the first timed round to the last: {(rss_end - rss_start) / 1024:+.1f} MB")
        streamed = statistics.median(size / r["seconds"] for r in results[STREAMED])
        for store in ("filesystem", "database"):
            mine = statistics.median(size / r["seconds"] for r in results[f"portal, {store} store"])
            print(
                f"portal, {store} store / the plain file streamed without sendfile (what decrypting costs):"
                f" {mine / streamed:.2f}"
            )
        reads = [bare_read(url, stored_name) for _ in range(args.repeats)]
        bare = statistics.median(rate for rate, _ in reads)
        database_store = statistics.median(size / r["seconds"] for r in results["portal, database store"])
        print(
            f"\nThe ceiling for the database store: the same sealed chunks read in this process straight through the"
            f" driver, 16 a statement, with no HTTP and no decryption: {bare / 1e6:.1f} MB/s, {bare / baseline:.2f}"
            f" of send_file; the portal's database store reaches {database_store / bare:.2f} of it"
        )
        if reads[0][1] is not None:
            backend = statistics.median(cpu for _, cpu in reads) * 1e8 * 1000
            print(
                f"The database's backend alone spent {backend:.0f} ms of CPU per 100 MB on that read: at half of"
                f" send_file's speed ({baseline / 2e6:.0f} MB/s) it would need {backend * baseline / 2e8 / 1000:.2f}"
                " cores for itself"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
