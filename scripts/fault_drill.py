"""The fault drill: stack_tests/test_faults.py with a five-minute SMTP outage (CI runs it with 30 seconds).

On a stack with its own PostgreSQL cluster, Redis and SMTP server (the shared servers are never touched):
PostgreSQL restarted under load, Redis stopped, the SMTP server down for --smtp-minutes (default 5), and a
gunicorn worker killed mid-upload and mid-download. Each fault prints one line with its figures; the exit
status is pytest's.

    .venv/bin/python scripts/fault_drill.py
    .venv/bin/python scripts/fault_drill.py --smtp-minutes 1
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smtp-minutes", type=float, default=5.0, help="how long the SMTP server is down (default 5)")
    args = parser.parse_args()
    env = {**os.environ, "SMTP_OUTAGE_SECONDS": str(round(args.smtp_minutes * 60))}
    command = [sys.executable, "-m", "pytest", "stack_tests/test_faults.py", "-s", "-p", "no:cacheprovider", "-q"]
    # The five-minute outage and the outbox's retries after it take longer than the suite's 5-minute limit.
    command += ["--timeout", str(round(args.smtp_minutes * 60) + 600)]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, check=False).returncode  # noqa: S603


if __name__ == "__main__":
    sys.exit(main())
