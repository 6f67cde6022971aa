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

url_part() {  # url_part URL user|database: one part of a postgresql:// address
  "$PYTHON" -c 'import sys; from urllib.parse import urlsplit; u = urlsplit(sys.argv[1]);
print(u.username if sys.argv[2] == "user" else u.path.lstrip("/"))' "$1" "$2"
}

with_database() {  # with_database URL NAME: the same address for another database
  "$PYTHON" -c 'import sys; from urllib.parse import urlsplit, urlunsplit; u = urlsplit(sys.argv[1]);
print(urlunsplit(u._replace(path="/" + sys.argv[2])))' "$1" "$2"
}
