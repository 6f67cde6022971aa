"""Benchmark for issue 11, finding 2: how long does checking a wrong recovery code take, before and after?

Before: ten unused codes stored as argon2id hashes (how main stored them), so a wrong code is checked against
all ten at the production argon2id cost (t=3, m=64 MiB, p=4). After: the same ten codes stored as keyed
HMAC-SHA256 digests (RECOVERY_CODE_HMAC_KEY), compared with hmac.compare_digest. Both accounts are in one
database and are timed side by side in one run, alternating which goes first, through the service the sign-in
page calls (`totp.use_recovery_code`, including its database query). It prints the median and 90th percentile
per wrong code for each, and the ratio of the medians.

It prints figures and never fails on them: speed targets belong in benchmarks, not in the test suite.

    PORTAL_ENV=test .venv/bin/python scripts/bench_recovery_codes.py --tries 10
    PORTAL_ENV=test .venv/bin/python scripts/bench_recovery_codes.py \\
        --database-url postgresql://postgres@127.0.0.1:5432/bench_codes_db

Without --database-url the database is a SQLite file in a temporary folder; a PostgreSQL database should be a
scratch one (scripts/ci_database.py creates and drops one).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time
from datetime import UTC, datetime

import bench_support  # first: importing it puts the project's packages on the path

from core.extensions import db
from core.models.accounts import RecoveryCode, StaffUser
from core.services import totp
from core.services.passwords import hash_secret

PRODUCTION_ARGON2 = {"ARGON2_TIME_COST": 3, "ARGON2_MEMORY_COST_KIB": 65536, "ARGON2_PARALLELISM": 4}


def _staff(email: str) -> StaffUser:
    staff = StaffUser(email=email, name="Bench Mark", role="staff")
    db.session.add(staff)
    db.session.flush()
    return staff


def _store(staff: StaffUser, codes: list[str], digest) -> None:
    db.session.add_all(
        RecoveryCode(account_kind="staff", account_id=staff.id, code_hash=digest(code)) for code in codes
    )


def _codes() -> list[str]:
    return ["".join(secrets.choice(totp.RECOVERY_CODE_ALPHABET) for _ in range(16)) for _ in range(10)]


def _time_wrong_code(staff: StaffUser) -> float:
    wrong = "".join(secrets.choice(totp.RECOVERY_CODE_ALPHABET) for _ in range(16))
    started = time.perf_counter()
    accepted = totp.use_recovery_code(staff, wrong, now=datetime.now(UTC))
    elapsed = time.perf_counter() - started
    db.session.rollback()
    assert not accepted
    return elapsed


def _summary(name: str, timings: list[float]) -> str:
    ordered = sorted(timings)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{name:<34} median {statistics.median(ordered) * 1000:10.2f} ms   p90 {p90 * 1000:10.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = bench_support.argument_parser(__doc__)
    parser.add_argument("--tries", type=int, default=10, help="timed wrong codes per account (default 10)")
    parser.add_argument("--database-url", help="a scratch database (default: SQLite in a temporary folder)")
    args = parser.parse_args(argv)

    with bench_support.database_url(args.database_url, "bench-recovery-codes-", environment=False) as url:
        app = bench_support.build_app(url, PRODUCTION_ARGON2)
        with app.app_context():
            tag = secrets.token_hex(4)
            before = _staff(f"argon2-{tag}@bench.example")
            after = _staff(f"hmac-{tag}@bench.example")
            _store(before, _codes(), hash_secret)
            _store(after, _codes(), totp.recovery_code_digest)
            db.session.commit()
            assert totp.has_legacy_recovery_codes(before) and not totp.has_legacy_recovery_codes(after)

            _time_wrong_code(before), _time_wrong_code(after)  # warm up: connections, hasher, statements
            timings: dict[str, list[float]] = {"before": [], "after": []}
            for attempt in range(args.tries):
                order = (
                    (("before", before), ("after", after))
                    if attempt % 2 == 0
                    else (("after", after), ("before", before))
                )
                for name, staff in order:
                    timings[name].append(_time_wrong_code(staff))

            print(f"database: {db.engine.dialect.name}; {args.tries} wrong codes per account; 10 unused codes each")
            print(_summary("before (argon2id, production cost)", timings["before"]))
            print(_summary("after (HMAC-SHA256, compare_digest)", timings["after"]))
            ratio = statistics.median(timings["before"]) / statistics.median(timings["after"])
            print(f"a wrong code costs {ratio:,.0f} times less after (ratio of the medians)")
            db.session.remove()
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
