# Shared by the deploy/bin scripts: where the portal is, and its settings. Not run on its own.
# PORTAL_ENV_FILE and MIGRATE_ENV_FILE point elsewhere than /etc/call-recording-portal/ (the CI stack does).
set -euo pipefail
PORTAL_HOME="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PORTAL_ENV_FILE="${PORTAL_ENV_FILE:-/etc/call-recording-portal/portal.env}"
MIGRATE_ENV_FILE="${MIGRATE_ENV_FILE:-/etc/call-recording-portal/migrate.env}"
FLASK="$PORTAL_HOME/.venv/bin/flask --app wsgi"
PYTHON="$PORTAL_HOME/.venv/bin/python"

load_env() {  # load_env FILE: export every KEY=value line, read as systemd's EnvironmentFile= reads it
  [ -r "$1" ] || { echo "Cannot read $1 (see deploy/README.md)." >&2; exit 2; }
  local line key value number=0
  while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    line="${line#"${line%%[![:space:]]*}"}"  # leading blanks
    case "$line" in '' | '#'* | ';'*) continue ;; esac
    key="${line%%=*}"
    value="${line#*=}"
    if [[ "$line" != *=* || ! "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
      echo "$1 line $number is not KEY=value." >&2
      exit 2
    fi
    # Values are taken as written (spaces included, nothing expanded); one pair of outer quotes is removed.
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    export "$key=$value"
  done <"$1"
}

# Database addresses hold passwords: they go to other programs through the environment (readable only by the
# same user and root), never as a command-line argument, which every user on the host can read in `ps`.

url_part() {  # url_part URL user|database: one part of a postgresql:// address
  PORTAL_URL="$1" "$PYTHON" - "$2" <<'PY'
import os, sys
from urllib.parse import unquote, urlsplit
url = urlsplit(os.environ["PORTAL_URL"])
print(unquote(url.username or "") if sys.argv[1] == "user" else unquote(url.path.lstrip("/")))
PY
}

with_database() {  # with_database URL NAME: the same address for another database
  PORTAL_URL="$1" "$PYTHON" - "$2" <<'PY'
import os, sys
from urllib.parse import urlsplit, urlunsplit
print(urlunsplit(urlsplit(os.environ["PORTAL_URL"])._replace(path="/" + sys.argv[1])))
PY
}

with_libpq() {  # with_libpq URL COMMAND...: run COMMAND (psql, pg_dump ...) with PGHOST, PGUSER, PGPASSWORD ... from URL
  local url="$1" assignments
  shift
  assignments="$(PORTAL_URL="$url" "$PYTHON" - <<'PY'
import os, shlex
from urllib.parse import parse_qsl, unquote, urlsplit
url = urlsplit(os.environ["PORTAL_URL"])
values = {
    "PGHOST": url.hostname or "",
    "PGPORT": str(url.port or ""),
    "PGUSER": unquote(url.username or ""),
    "PGPASSWORD": unquote(url.password or ""),
    "PGDATABASE": unquote(url.path.lstrip("/")),
}
values.update({"PGSSLMODE": value for key, value in parse_qsl(url.query) if key == "sslmode"})
print(" ".join(f"{key}={shlex.quote(value)}" for key, value in values.items() if value))
PY
)"
  (
    unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGSSLMODE
    [ -z "$assignments" ] || eval "export $assignments"
    exec "$@"
  )
}

admin_psql() {  # admin_psql ARGS...: psql as a role that may create and drop databases
  if [ -n "${PG_ADMIN_URL:-}" ]; then
    with_libpq "$PG_ADMIN_URL" psql --no-psqlrc -v ON_ERROR_STOP=1 "$@"
  else  # Debian's default: the postgres superuser over the local socket (peer authentication)
    runuser -u postgres -- psql --no-psqlrc -v ON_ERROR_STOP=1 "$@"
  fi
}
