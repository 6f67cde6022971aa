"""Create or drop a PostgreSQL database for one CI run: `ci_database.py create|drop SERVER_URL NAME`.

SERVER_URL is any database URL on the server (CI uses postgresql://postgres@127.0.0.1:5432/test); the
new database is created beside it, so that leftovers from an earlier run can never hide a bug.
"""

from __future__ import annotations

import re
import sys

import psycopg
from psycopg import sql

NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("create", "drop") or not NAME.match(argv[3]):
        print(__doc__, file=sys.stderr)
        return 2
    action, server_url, name = argv[1], argv[2], argv[3]
    try:
        with psycopg.connect(server_url, autocommit=True, connect_timeout=10) as connection:
            if action == "create":
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"Created PostgreSQL database {name}.")
            else:
                connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                print(f"Dropped PostgreSQL database {name}.")
    except psycopg.OperationalError as exc:
        print(f"Cannot reach PostgreSQL at {server_url.split('@')[-1]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
