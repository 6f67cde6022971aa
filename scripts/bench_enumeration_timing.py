"""Benchmark for SECURITY A2 and C3: do the public forms take about as long for an unknown email address as
for one that has an account?

For each of these forms it POSTs an address that has an account and one that does not, `--tries` times
each (default 30), interleaved and alternating which goes first, and prints the median and 90th percentile
of each and whether the medians are within 50 ms of each other:

- patient sign-in with a wrong password (POST /account/sign-in)
- staff sign-in with a wrong password (POST /admin/sign-in)
- forgotten password (POST /account/forgot-password)
- registration (POST /account/register; the existing address belongs to a confirmed account)

It uses the production argon2id cost (t=3, m=64 MiB, p=4), the Flask test client over HTTPS with real CSRF
tokens (the form is fetched before each POST; only the POST is timed) and each request in a context of its
own, as tests/conftest.py's HttpsClient does. Rate limits are off (RATELIMIT_ENABLED=False); should
Flask-Limiter ignore that, the limiter is reset before every POST. The unknown address is a new one for
every try, as an attacker's list would be. The first WARM_UP rounds are not counted: they pay for one-off
work such as building the dummy hash that sign-in checks an unknown address against.

It prints figures and never fails on them: speed targets belong in benchmarks, not in the test suite. It
exits 0 unless the application itself fails.

    PORTAL_ENV=test .venv/bin/python scripts/bench_enumeration_timing.py --tries 30
    PORTAL_ENV=test .venv/bin/python scripts/bench_enumeration_timing.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_enum_db

Without --database-url the database is a SQLite file in a temporary folder. A PostgreSQL database should be
a scratch one (scripts/ci_database.py creates and drops one): the migrations are run on it and the accounts
the benchmark makes are left in it.
"""

from __future__ import annotations

import contextvars
import math
import re
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import bench_support  # first: importing it puts the project's packages on the path
from flask import Flask
from flask.testing import FlaskClient

from core.extensions import db, limiter
from core.models.accounts import Patient, StaffUser
from core.services.content import load_default_content
from core.services.passwords import hash_password

THRESHOLD_MS = 50.0  # SECURITY A2: "median difference < 50 ms over 30 tries"
WARM_UP = 2
PASSWORD = "kettle orbit tulip crayon"  # noqa: S105 (the benchmark accounts' own)
WRONG_PASSWORD = "lantern pebble saucer violin"  # noqa: S105 (deliberately wrong)
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
PRODUCTION_ARGON2 = {"ARGON2_TIME_COST": 3, "ARGON2_MEMORY_COST_KIB": 65536, "ARGON2_PARALLELISM": 4}


class BenchClient(FlaskClient):
    """HTTPS, a same-origin Referer on every POST (the strict CSRF check needs it), and every request in a
    context of its own, so nothing cached in `g` leaks from one request into the next."""

    def open(self, *args, **kwargs):
        if not args or isinstance(args[0], str):
            kwargs.setdefault("base_url", "https://localhost")
        if kwargs.get("method") == "POST":
            kwargs["headers"] = {"Referer": "https://localhost/", **dict(kwargs.get("headers") or {})}
        return contextvars.Context().run(super().open, *args, **kwargs)


@dataclass
class Flow:
    name: str
    path: str
    fields: Callable[[str], dict]  # the form for an email address
    expected_status: int
    existing_email: str
    unknown_prefix: str
    times: dict[str, list[float]] = field(default_factory=lambda: {"existing": [], "unknown": []})
    statuses: dict[str, set[int]] = field(default_factory=lambda: {"existing": set(), "unknown": set()})


def build_app(database_url: str) -> Flask:
    """The test app at the production argon2id cost, rate limits off, migrated and with the default content.
    Nothing is dropped: the accounts of earlier runs stay, beside this run's new ones."""
    config = {**PRODUCTION_ARGON2, "RATELIMIT_ENABLED": False}
    app = bench_support.build_app(database_url, config, drop_tables=False)
    with app.app_context():
        load_default_content(config=app.config)
    return app


def make_accounts(app: Flask, tag: str) -> tuple[str, str, float]:
    """A confirmed patient and a staff user, hashed at the app's (production) cost. Returns their email
    addresses and how long one hash took, in ms."""
    patient_email = f"bench-{tag}-patient@example.org"
    staff_email = f"bench-{tag}-staff@practice.example"
    with app.app_context():
        patient_hash = hash_password(PASSWORD)
        started = time.perf_counter()  # the second hash, as the first also pays for one-off set-up
        staff_hash = hash_password(PASSWORD)
        hash_ms = (time.perf_counter() - started) * 1000
        now = datetime.now(UTC)
        db.session.add(
            Patient(
                email=patient_email,
                given_name="Ada",
                family_name="Lovelace",
                nhs_number="9434765919",
                date_of_birth=date(1955, 12, 10),
                postcode="SE28 8BE",
                password_hash=patient_hash,
                password_changed_at=now,
                email_verified_at=now,
            )
        )
        db.session.add(
            StaffUser(
                email=staff_email,
                name="Sam Clerk",
                role="staff",
                password_hash=staff_hash,
                password_changed_at=now,
            )
        )
        db.session.commit()
    return patient_email, staff_email, hash_ms


def registration(email: str) -> dict:
    return {
        "given-name": "Ada",
        "family-name": "Lovelace",
        "dob-day": "10",
        "dob-month": "12",
        "dob-year": "1955",
        "nhs-number": "943 476 5919",
        "postcode": "SE28 8BE",
        "email": email,
        "mobile": "",
        "password": PASSWORD,
        "confirm-password": PASSWORD,
        "terms": "yes",
    }


def flows(patient_email: str, staff_email: str, tag: str) -> list[Flow]:
    def sign_in(email: str) -> dict:
        return {"email": email, "password": WRONG_PASSWORD}

    return [
        Flow("patient sign-in", "/account/sign-in", sign_in, 400, patient_email, f"nobody{tag}p"),
        Flow("staff sign-in", "/admin/sign-in", sign_in, 400, staff_email, f"nobody{tag}s"),
        Flow(
            "forgot password", "/account/forgot-password", lambda e: {"email": e}, 302, patient_email, f"nobody{tag}f"
        ),
        Flow("register", "/account/register", registration, 302, patient_email, f"newpatient{tag}r"),
    ]


def csrf_token(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = CSRF_INPUT.search(page.get_data(as_text=True))
    if match is None:
        raise RuntimeError(f"no CSRF token on {path} ({page.status_code})")
    return match.group(1)


def timed_post(client: FlaskClient, flow: Flow, email: str) -> tuple[float, int]:
    data = {**flow.fields(email), "csrf_token": csrf_token(client, flow.path)}
    if limiter.enabled:
        limiter.reset()
    started = time.perf_counter()
    response = client.post(flow.path, data=data, headers={"Referer": f"https://localhost{flow.path}"})
    response.get_data()
    elapsed = (time.perf_counter() - started) * 1000
    response.close()
    return elapsed, response.status_code


def run(app: Flask, all_flows: list[Flow], tries: int) -> None:
    clients = {
        (flow.name, variant): BenchClient(app, app.response_class, use_cookies=True)
        for flow in all_flows
        for variant in ("existing", "unknown")
    }
    for round_number in range(WARM_UP + tries):
        order = ("existing", "unknown") if round_number % 2 == 0 else ("unknown", "existing")
        for flow in all_flows:
            for variant in order:
                email = (
                    flow.existing_email if variant == "existing" else f"{flow.unknown_prefix}{round_number}@example.org"
                )
                elapsed, status = timed_post(clients[(flow.name, variant)], flow, email)
                flow.statuses[variant].add(status)
                if round_number >= WARM_UP:
                    flow.times[variant].append(elapsed)


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile (defined for any number of values)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def report(app: Flask, all_flows: list[Flow], tries: int, hash_ms: float) -> None:
    config = app.config
    url = config["SQLALCHEMY_DATABASE_URI"]
    print(f"Database: {url.split('@')[-1] if '@' in url else url}")
    print(
        f"argon2id: time cost {config['ARGON2_TIME_COST']}, memory {config['ARGON2_MEMORY_COST_KIB']} KiB, "
        f"parallelism {config['ARGON2_PARALLELISM']} (one hash took {hash_ms:.0f} ms)"
    )
    state = "off (RATELIMIT_ENABLED=False honoured)" if not limiter.enabled else "ON: reset before every POST"
    print(f"Rate limiter: {state}")
    print(f"Tries: {tries} per address and form, interleaved, after {WARM_UP} warm-up rounds; times are ms")
    print()
    header = ("form", "median existing", "median unknown", "difference", "p90 existing", "p90 unknown", "within 50 ms")
    rows = []
    for flow in all_flows:
        existing, unknown = flow.times["existing"], flow.times["unknown"]
        difference = statistics.median(existing) - statistics.median(unknown)
        rows.append(
            (
                flow.name,
                f"{statistics.median(existing):.1f}",
                f"{statistics.median(unknown):.1f}",
                f"{difference:+.1f}",
                f"{p90(existing):.1f}",
                f"{p90(unknown):.1f}",
                "yes" if abs(difference) < THRESHOLD_MS else "NO",
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * width for width in widths), *rows):
        print(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()
    print("difference = median existing - median unknown")
    for flow in all_flows:
        seen = flow.statuses["existing"] | flow.statuses["unknown"]
        if flow.statuses["existing"] != flow.statuses["unknown"] or seen != {flow.expected_status}:
            print(
                f"WARNING {flow.name}: statuses existing {sorted(flow.statuses['existing'])}, "
                f"unknown {sorted(flow.statuses['unknown'])}, expected {flow.expected_status}: figures not comparable"
            )


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__)
    parser.add_argument("--tries", type=int, default=30, help="timed POSTs per address and form (default 30)")
    parser.add_argument("--database-url", help="a scratch database (default: SQLite in a temporary folder)")
    args = parser.parse_args(argv)
    if args.tries < 1:
        parser.error("--tries must be 1 or more")

    with bench_support.database_url(args.database_url, "bench-enumeration-", environment=False) as url:
        app = build_app(url)
        # Digits only: letters in an address would count as words the registration password must not contain.
        tag = f"{secrets.randbelow(10**8):08d}"  # new addresses each run, so a database can be benchmarked again
        patient_email, staff_email, hash_ms = make_accounts(app, tag)
        all_flows = flows(patient_email, staff_email, tag)
        run(app, all_flows, args.tries)
        report(app, all_flows, args.tries, hash_ms)
        with app.app_context():
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
