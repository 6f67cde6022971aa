"""Load test of the production stack on loopback, with locust (headless).

It starts the stack of stack_tests/test_production_stack.py (nginx with TLS, gunicorn with
deploy/gunicorn.conf.py, the worker, a fresh PostgreSQL database with the two roles, Redis and an SMTP
server), makes the accounts (patients and staff with authenticators, whose secrets only this run knows) and a
few requests with a recording attached, then runs scripts/locustfile.py for --minutes with --users people:
anonymous readers of the notice, patients who sign in and submit requests, and staff who work the queue and
download recordings. It prints requests per second, the 50th, 95th and 99th percentile times per page and
the errors (the target is none), then checks that every request the patients were told was received is in
the database and that `portal audit verify` is OK. It exits non-zero if there were errors or a check failed.
Everything it made (the database, its roles, the folder) is removed at the end.

    .venv/bin/python scripts/load_test.py                       # 20 people for 1 minute
    .venv/bin/python scripts/load_test.py --users 50 --minutes 10

It needs what the stack tests need: nginx, the PostgreSQL client and a server at CI_POSTGRES_URL (default
postgresql://postgres@127.0.0.1:5432/test), Redis on 127.0.0.1:6379. Times are for this machine with
everything on it (the load generator too): compare runs made side by side, not with another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import urllib3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stack_tests.portal_client import PASSWORD, PortalClient, make_accounts
from stack_tests.test_production_stack import VENV_BIN, WAV, Stack, psql, stage
from tests.smtp_support import start_server

SETUP_REQUESTS = 5
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # our own certificate, on loopback


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="people at once (default 20)")
    parser.add_argument("--minutes", type=float, default=1.0, help="how long, in minutes (default 1)")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="people started per second (default 5)")
    return parser.parse_args()


def set_up(stack: Stack, users: int) -> dict:
    """Accounts for every simulated patient and member of staff, and requests with a recording for staff."""
    made = make_accounts(stack.settings, patients=users + SETUP_REQUESTS, staff=users, admins=1, prefix="load")
    patients = [
        {"email": email, "secret": secret, "password": PASSWORD} for kind, email, secret in made if kind == "patient"
    ]
    staff = [
        {"email": email, "secret": secret, "password": PASSWORD} for kind, email, secret in made if kind == "staff"
    ]
    (_kind, admin_email, admin_secret) = next(account for account in made if account[0] == "admin")
    admin = PortalClient(stack.base_url)
    admin.sign_in("admin", admin_email, admin_secret)
    references = []
    for account in patients[users:]:
        patient = PortalClient(stack.base_url)
        patient.sign_in("patient", account["email"], account["secret"])
        reference = patient.ask_for_recordings("I rang about my blood test results.")
        upload_page = f"/admin/requests/{reference}/upload"
        token = admin.form(upload_page)["csrf_token"]
        with WAV.open("rb") as audio:
            uploaded = admin.request(
                "POST",
                f"/admin/requests/{reference}/recordings",
                referer=upload_page,
                data={"csrf_token": token, "direction": "inbound"},
                files={"recording": ("call.wav", audio, "audio/wav")},
            )
        assert uploaded.status_code == 302, uploaded.text[:1000]
        references.append(reference)
    return {
        "patients": patients[:users],
        "staff": staff,
        "references": references,
        "recording_bytes": WAV.stat().st_size,
    }


def percentile(times: dict[str, int], share: float) -> float:
    """The response time (ms) below which `share` of the requests fell, from locust's histogram of times."""
    total = sum(times.values())
    seen = 0
    for time_ms, count in sorted(((float(key), count) for key, count in times.items())):
        seen += count
        if seen >= share * total:
            return time_ms
    return 0.0


def report(json_file: Path, seconds: float) -> int:
    """Print the figures from locust's final statistics; returns the number of failed requests."""
    entries = sorted(json.loads(json_file.read_text()), key=lambda entry: (entry["name"], entry["method"]))
    print(f"\n{'page':58} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}")
    every: dict[str, int] = {}
    for entry in entries:
        times = entry["response_times"]
        for key, count in times.items():
            every[key] = every.get(key, 0) + count
        print(
            f"{entry['method'] + ' ' + entry['name']:58} {entry['num_requests']:>8} {entry['num_failures']:>6} "
            f"{percentile(times, 0.5):>7.0f} {percentile(times, 0.95):>7.0f} {percentile(times, 0.99):>7.0f}"
        )
    requests = sum(entry["num_requests"] for entry in entries)
    failures = sum(entry["num_failures"] for entry in entries)
    print(
        f"{'all pages':58} {requests:>8} {failures:>6} {percentile(every, 0.5):>7.0f} "
        f"{percentile(every, 0.95):>7.0f} {percentile(every, 0.99):>7.0f}"
    )
    print(f"\n{requests / seconds:.1f} requests/s over {seconds:.0f} s; errors: {failures}")
    return failures


def main() -> int:
    args = arguments()
    root = Path(tempfile.mkdtemp(prefix="portal-load-"))
    stack = Stack(root)
    controller, _inbox = start_server(stack.smtp_port)
    try:
        stack.create_database()
        stack.make_certificate()
        stack.start_web()
        stack.start_worker()
        stack.start_nginx()
        stage(f"stack up: nginx {stack.base_url} -> gunicorn :{stack.web_port} (deploy/gunicorn.conf.py), worker")
        accounts = set_up(stack, args.users)
        accounts_file, submitted_file = root / "accounts.json", root / "submitted.txt"
        accounts_file.write_text(json.dumps(accounts))
        submitted_file.touch()
        stage(f"{len(accounts['patients'])} patients, {len(accounts['staff'])} staff and {SETUP_REQUESTS} requests")

        seconds = round(args.minutes * 60)
        json_file = root / "locust.json"  # locust adds .json to the name it is given
        started = time.monotonic()
        subprocess.run(  # noqa: S603 (our own locustfile, with arguments we made)
            [
                str(VENV_BIN / "locust"), "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
                "--host", stack.base_url, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
                "--run-time", f"{seconds}s", "--stop-timeout", "30", "--json-file", str(json_file.with_suffix("")),
                "--only-summary", "--loglevel", "WARNING",
            ],
            env={**os.environ, "LOAD_TEST_ACCOUNTS": str(accounts_file), "LOAD_TEST_SUBMITTED": str(submitted_file)},
            check=False,
            timeout=seconds + 300,
        )  # fmt: skip
        ran = time.monotonic() - started
        print(f"\n{args.users} people for {seconds} s (locust's own run time; {ran:.0f} s with start and stop)")
        failures = report(json_file, seconds)

        submitted = set(submitted_file.read_text().split())
        stored = set(
            psql(stack.settings["DATABASE_URL"], "-tA", "-c", "SELECT reference FROM recording_request").stdout.split()
        )
        missing = submitted - stored
        print(f"requests submitted during the run: {len(submitted)}; missing from the database: {len(missing)}")
        verified = stack.deploy_script("portal", "audit", "verify").strip()
        print(f"portal audit verify: {verified}")
        return 1 if failures or missing or not verified.startswith("OK: ") else 0
    finally:
        stack.tear_down()
        controller.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
