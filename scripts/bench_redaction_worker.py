"""Benchmark: redacting a long recording as the portal does it, through the worker and the encrypted store: the
time and peak memory of making the redacted copy and of drawing the waveform, against a process that only
decrypts the same recording from the store; and how long the redaction page and its waveform take to answer.

Set-up (not timed): a synthetic recording of --minutes minutes (default 60; 8 kHz mono MP3 made by
scripts/bench_redaction.py's generator, not a real call) is attached to a request through the portal's own
service (so it is encrypted into the store), three parts are marked and a redacted copy is asked for, on a
SQLite database in a temporary folder (or --database-url).

Then, each in a fresh child process so that its peak resident memory (getrusage's ru_maxrss) is its own:

- baseline: the app, and the recording read once from the store (decrypting every chunk), nothing else;
- copy: `redaction.process_next_copy`, the worker's step (decode, fill, encode, prove, seal into the store);
- waveform: `redaction.draw_next_waveform`;
- page: as a signed-in member of staff, GET the redaction page and its waveform JSON (median of 5 each).

It prints figures and never fails on them.

    .venv/bin/python scripts/bench_redaction_worker.py
    .venv/bin/python scripts/bench_redaction_worker.py --minutes 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
STEPS = ("baseline", "copy", "waveform", "page")


def child_app(folder: Path, url: str):
    import bench_support  # noqa: F401 (puts the project on the path)

    from core.factory import create_app

    config = {
        "SQLALCHEMY_DATABASE_URI": url,
        "LOG_LEVEL": "WARNING",
        "RECORDINGS_DIR": str(folder / "recordings"),
        "RECORDING_MAX_BYTES": 2_000_000_000,
    }
    return create_app("test", config)


def set_up(folder: Path, url: str) -> dict:
    """Migrate, attach the recording, mark three parts, ask for the copy."""
    import uuid
    from datetime import timedelta

    import bench_support

    from core.extensions import db
    from core.services import recordings, redaction
    from core.services import requests as requests_service
    from tests.accounts_support import make_patient, make_staff

    app = bench_support.build_app(
        url, {"RECORDINGS_DIR": str(folder / "recordings"), "RECORDING_MAX_BYTES": 2_000_000_000}
    )
    with app.test_request_context():
        patient = make_patient(verified=True)
        signing_in = make_staff(email="clerk@practice.example", name="Sam Clerk", role="admin")
        clerk = signing_in.account
        today = requests_service.practice_today()
        details = requests_service.CallDetails(
            calls_from=today - timedelta(days=10), calls_to=today - timedelta(days=3), description="A long call"
        )
        req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
        with (folder / "recording.mp3").open("rb") as stream:
            recording = recordings.attach_recording(
                clerk, req, stream, recordings.RecordingDetails(original_name="long-call.mp3")
            )
        seconds = recording.duration_seconds
        for start, length in ((seconds / 60, 15.5), (seconds / 6, 2.0), (seconds / 2, 30.0)):
            redaction.add_range(
                clerk,
                req,
                recording,
                start_ms=round(start * 1000),
                end_ms=round((start + length) * 1000),
                reason="other-person",
                note="",
            )
        redaction.request_copy(clerk, req, recording)
        found = {"reference": req.reference, "recording": recording.public_id, "staff": clerk.id}
        # A made-up account on a throwaway database: the page step signs in with it.
        found["password"], found["secret"] = signing_in.password, signing_in.secret
        found["duration"], found["size_mb"] = seconds, recording.size_bytes / 2**20
        db.session.remove()
        db.engine.dispose()
    return found


def run_step(step: str, folder: Path, url: str, found: dict) -> dict:
    app = child_app(folder, url)
    from core.extensions import db
    from core.models.requests import Recording
    from core.services import recordings, redaction

    with app.test_request_context():
        recording = db.session.query(Recording).filter_by(public_id=found["recording"]).one()
        started = time.perf_counter()
        if step == "baseline":
            with recordings.open_recording(recording, read_ahead=4) as reader:
                while reader.read(1 << 20):
                    pass
            extra: dict = {}
        elif step == "copy":
            redaction.process_next_copy("bench:1")
            state = redaction.copy_state(recording)
            extra = {"status": state.latest.status, "proof": state.latest.proof, "message": state.latest.message}
            if state.current is not None:
                extra["copy_mb"] = state.current.copy.size_bytes / 2**20
        elif step == "waveform":
            redaction.draw_next_waveform("bench:1")
            extra = {"points": len(redaction.waveform_for(recording).values or [])}
        else:
            extra = page_times(app, found)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **extra}


def page_times(app, found: dict) -> dict:
    """Median time of 5 GETs of the redaction page and of its waveform JSON, signed in as staff."""
    import statistics

    from core.extensions import db
    from core.models.accounts import StaffUser
    from tests.accounts_support import SignInAccount, signed_in_browser

    staff = db.session.get(StaffUser, found["staff"])
    browser = signed_in_browser(app, SignInAccount(staff, found["password"], found["secret"]))
    base = f"/admin/requests/{found['reference']}/recordings/{found['recording']}"
    figures = {}
    for name, path in (("page", f"{base}/redact"), ("waveform_json", f"{base}/waveform.json")):
        times, size = [], 0
        for _ in range(5):
            started = time.perf_counter()
            response = browser.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, (path, response.status_code)
            size = len(response.get_data())
        figures[name] = {"median_ms": statistics.median(times) * 1000, "kb": size / 1024}
    return figures


def in_child(arguments: list[str]) -> dict:
    command = [sys.executable, __file__, *arguments]
    finished = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)  # noqa: S603 (this script)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the generated recording")
    parser.add_argument("--database-url", help="a scratch database (default: SQLite in a temporary folder)")
    parser.add_argument("--child", choices=("setup", *STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--found", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        url = arguments.database_url
        if arguments.child == "setup":
            print(json.dumps(set_up(arguments.folder, url)))
        else:
            print(json.dumps(run_step(arguments.child, arguments.folder, url, json.loads(arguments.found))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-redaction-worker-") as name:
        folder = Path(name)
        url = arguments.database_url or f"sqlite:///{folder}/bench.db"
        generator = [sys.executable, str(SCRIPTS / "bench_redaction.py"), "--child", "generate", "--folder", name]
        generator += ["--minutes", str(arguments.minutes), "--output", "file"]
        subprocess.run(generator, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 (the project's own script)
        common = ["--folder", name, "--database-url", url]
        found = in_child(["--child", "setup", *common])
        print(
            f"Attached a {found['duration'] / 60:.1f}-minute recording ({found['size_mb']:.1f} MB), three parts marked"
        )
        results = {step: in_child(["--child", step, *common, "--found", json.dumps(found)]) for step in STEPS}
    base = results["baseline"]["max_rss_mb"]
    print(f"\n{'step':<10}{'seconds':>9}{'peak RSS MB':>13}{'vs baseline':>13}")
    for step in ("baseline", "copy", "waveform"):
        figures = results[step]
        print(
            f"{step:<10}{figures['seconds']:>9.2f}{figures['max_rss_mb']:>13.1f}{figures['max_rss_mb'] / base:>13.2f}"
        )
    copy = results["copy"]
    levels = [level["peak_dbfs"] for level in (copy["proof"] or {}).get("ranges", [])]
    print(f"\nCopy: {copy['status']}, {copy.get('copy_mb', 0):.1f} MB; measured in the parts: {levels} dBFS")
    print(f"Waveform: {results['waveform']['points']:,} points")
    page = results["page"]
    for name in ("page", "waveform_json"):
        print(f"GET {name}: median {page[name]['median_ms']:.0f} ms, {page[name]['kb']:.0f} KB")


if __name__ == "__main__":
    main()
