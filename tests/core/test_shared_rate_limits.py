"""SECURITY C6: with several worker processes, sign-in limits hold across all of them because they are kept in
a shared store (Redis in production), not in each process's memory.

Each "worker" here is a separate Python process with its own application, all using one SQLite database; the
first makes the database and an account, then two workers each try three wrong passwords for that account.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT

REDIS_URL = "redis://127.0.0.1:6379/15"

WORKER = textwrap.dedent(
    """
    import contextvars, json, re, sys
    from flask_migrate import upgrade
    from core.factory import create_app
    from core.extensions import db

    database, storage, prefix, role = sys.argv[1:5]
    app = create_app("test", {
        "SQLALCHEMY_DATABASE_URI": database, "RATELIMIT_STORAGE_URI": storage, "RATELIMIT_KEY_PREFIX": prefix,
    })
    if role == "prepare":
        with app.app_context():
            upgrade(directory=sys.argv[5])
            from tests.accounts_support import make_patient
            make_patient(email="shared@example.org")
        sys.exit(0)

    client = app.test_client()
    def attempt():
        page = client.get("/account/sign-in", base_url="https://localhost")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        response = client.post(
            "/account/sign-in", base_url="https://localhost",
            data={"email": "shared@example.org", "password": "not the password", "csrf_token": token},
            headers={"Referer": "https://localhost/account/sign-in"},
        )
        return response.status_code
    print(json.dumps([contextvars.Context().run(attempt) for _ in range(3)]))
    """
)


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PORTAL_ENV": "test", "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("TEST_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-c", WORKER, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def _two_workers(tmp_path: Path, storage: str) -> list[int]:
    database = f"sqlite:///{tmp_path / 'workers.db'}"
    prefix = f"test-{secrets.token_hex(6)}"
    prepared = _run(database, storage, prefix, "prepare", str(PROJECT_ROOT / "migrations"))
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    statuses: list[int] = []
    for _worker in ("first", "second"):
        result = _run(database, storage, prefix, "attempts")
        assert result.returncode == 0, result.stderr[-2000:]
        statuses += json.loads(result.stdout.strip().splitlines()[-1])
    return statuses


@pytest.mark.skipif(not _redis_reachable(), reason=f"needs Redis at {REDIS_URL} (CI and production have it)")
def test_limits_kept_in_redis_hold_across_worker_processes_c6(tmp_path):
    # Five attempts a minute per account: the second worker's third attempt is the sixth in all.
    assert _two_workers(tmp_path, REDIS_URL) == [400, 400, 400, 400, 400, 429]


def test_limits_kept_in_memory_do_not_hold_across_worker_processes_c6(tmp_path):
    """Why production refuses `memory://` (core.config): each process counts on its own."""
    assert _two_workers(tmp_path, "memory://") == [400] * 6


def test_sign_in_is_refused_with_503_while_the_shared_store_cannot_be_reached_c1(tmp_path):
    """Nothing listens on the store's port: an attempt that cannot be counted is not let through uncounted, and
    the password is never checked (a 503, not the 400 of a wrong password)."""
    from tests.smtp_support import free_port

    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    assert _two_workers(tmp_path, unreachable) == [503] * 6
