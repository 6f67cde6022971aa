"""Configuration classes, read from environment variables.

`PORTAL_ENV` chooses the class: `development`, `test` or `production` (the default, so a deployment that
forgets to say what it is gets the strict settings). A `.env` file in the project root is read in
development; real environment variables always win over it.

Production refuses to start without `SECRET_KEY`, `AUDIT_HMAC_KEY`, `RECOVERY_CODE_HMAC_KEY`, `DATABASE_URL`,
`RECORDING_KEYS`, the encryption keys of each purpose in `core.crypto` and the other keys (see
`ProductionConfig.validate`).
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from cryptography.fernet import Fernet

from core import crypto
from core.services.recording_crypto import RecordingKeyError, new_recording_key, parse_recording_keys

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# State that outlives a process in development (the SQLite database, development keys, recordings, the
# address the development server runs on). PORTAL_INSTANCE_PATH moves it; tests use a folder of their own.
INSTANCE_PATH = Path(os.environ.get("PORTAL_INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()
# Written by `make run` (and `python wsgi.py`): the address the development server is serving on, so that a
# command in another terminal (and the worker) prints and emails links that work.
DEV_SERVER_URL_FILE = "dev-server-url"

MIN_SECRET_KEY_LENGTH = 32
# The settings holding core.crypto's keys, one for each purpose, and the file each is made in in development.
ENCRYPTION_KEY_SETTINGS = tuple(purpose.setting for purpose in crypto.PURPOSES)
DEVELOPMENT_KEY_FILES = {
    "TOTP_ENCRYPTION_KEYS": "dev-totp.key",
    "RECOVERY_CODES_ENCRYPTION_KEYS": "dev-recovery-codes-encryption.key",
    "LINK_TOKEN_ENCRYPTION_KEYS": "dev-link-token-encryption.key",
    "DRAFT_ENCRYPTION_KEYS": "dev-draft-encryption.key",
}


class ConfigurationError(RuntimeError):
    """Raised when the application is started with configuration that would be unsafe."""


def normalise_database_url(url: str) -> str:
    """Point plain PostgreSQL URLs at the psycopg 3 driver, the one we install."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _worker_settings() -> dict:
    values: dict = {}
    if os.environ.get("WORKER_POLL_SECONDS"):
        try:
            values["WORKER_POLL_SECONDS"] = float(os.environ["WORKER_POLL_SECONDS"])
        except ValueError as exc:
            raise ConfigurationError("WORKER_POLL_SECONDS must be a number of seconds, such as 5.") from exc
    if os.environ.get("OUTBOX_CLAIM_SECONDS"):
        values["OUTBOX_CLAIM_SECONDS"] = _env_int("OUTBOX_CLAIM_SECONDS", BaseConfig.OUTBOX_CLAIM_SECONDS)
    return values


def _env_bool(name: str) -> bool:
    """A yes/no variable: 1, true or yes (any case) is yes; 0, false, no or empty is no; anything else is an error,
    so a typo never quietly turns a security setting the wrong way."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("", "0", "false", "no"):
        return False
    raise ConfigurationError(f"{name} must be true or false, not {raw!r}")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from exc


class BaseConfig:
    """Settings shared by every environment. Subclasses override; `from_env` fills in the environment."""

    ENV_NAME = "base"
    DEBUG = False
    TESTING = False

    SECRET_KEY: str | None = None
    # Keys the audit trail's hash chain. Kept outside the database, so whoever can edit the database
    # cannot re-forge the chain after changing a row.
    AUDIT_HMAC_KEY: str | None = None
    SQLALCHEMY_DATABASE_URI: str | None = None
    # hide_parameters: a database error in the log names the statement but never the values (which may be
    # an NHS number, a name or a password hash).
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True, "hide_parameters": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    # The practice. Every practice detail is configuration; these defaults are the first customer's.
    PRACTICE_NAME = "Thamesmead Medical Associates"
    PRACTICE_ADDRESS = "Bentham Road, London, SE28 8BE"
    PRACTICE_PHONE = "020 8333 5000"
    PRACTICE_EMAIL = ""
    SERVICE_NAME = "Call recordings"

    # Cookies: written out explicitly rather than left to Flask's defaults.
    SESSION_COOKIE_NAME = "__Host-session"
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_PATH = "/"
    SESSION_COOKIE_DOMAIN = None
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)

    # CSRF on every state-changing request, globally.
    WTF_CSRF_ENABLED = True
    WTF_CSRF_CHECK_DEFAULT = True
    WTF_CSRF_SSL_STRICT = True
    WTF_CSRF_TIME_LIMIT = 3600

    # Request size limits (SECURITY X9). Recording uploads have their own, larger, limit (below).
    MAX_CONTENT_LENGTH = 1024 * 1024
    MAX_FORM_MEMORY_SIZE = 500 * 1024

    # Hosts we answer for (SECURITY K8). None would mean "any host", which production never allows.
    TRUSTED_HOSTS: list[str] | None = None
    # Number of reverse proxies in front of the app whose X-Forwarded-* headers we trust (SECURITY C5).
    PROXY_FIX_HOPS = 0
    # Take the request id from the proxy's X-Request-ID header (only when it has the strict shape in
    # core.log). Off by default: a client could otherwise choose the id its request is logged under.
    TRUST_PROXY_REQUEST_ID = False

    # Email. "log" writes each message to the log (development); "smtp" sends through MAIL_SERVER.
    MAIL_TRANSPORT = "smtp"
    MAIL_SERVER = "127.0.0.1"
    MAIL_PORT = 25
    MAIL_USE_STARTTLS = False
    MAIL_USERNAME: str | None = None
    MAIL_PASSWORD: str | None = None
    MAIL_FROM = "no-reply@localhost"
    MAIL_TIMEOUT_SECONDS = 10

    RATELIMIT_STORAGE_URI = "memory://"
    # Keeps this portal's counts apart from anything else in the same Redis (another practice, a test run).
    RATELIMIT_KEY_PREFIX = "call-recording-portal"
    RATELIMIT_HEADERS_ENABLED = True
    # Failed attempts allowed (core.limits). Each is a ladder, so waits grow and every window expires.
    RATELIMIT_SIGN_IN_ACCOUNT = "5 per minute; 10 per 5 minutes; 30 per hour"
    RATELIMIT_SIGN_IN_IP = "20 per 5 minutes; 100 per hour"
    RATELIMIT_CODE = "5 per minute; 10 per 5 minutes; 30 per hour"
    RATELIMIT_REGISTER = "10 per hour"
    RATELIMIT_RESET_IP = "5 per 15 minutes; 20 per day"
    # Emails that registration and "forgot password" may send to one address, whoever asks.
    RATELIMIT_EMAILS_TO_ONE_ADDRESS = "3 per hour; 10 per day"

    # The absolute address of the portal, used for every link in an email. Never taken from the Host header.
    PUBLIC_BASE_URL: str | None = None

    # Comma-separated Fernet keys, one list for each purpose in core.crypto; no key serves two. The first
    # encrypts; all decrypt, so a new key can be put first and the old one dropped once nothing is kept under
    # it. Authenticator secrets (kept in the database: run `flask accounts rotate-totp-key` before dropping):
    TOTP_ENCRYPTION_KEYS: str | None = None
    # Kept in the session only, so an old key can be dropped once SESSION_ABSOLUTE_HOURS have passed: recovery
    # codes waiting for their download button, an emailed link's token, the request form's answers.
    RECOVERY_CODES_ENCRYPTION_KEYS: str | None = None
    LINK_TOKEN_ENCRYPTION_KEYS: str | None = None
    DRAFT_ENCRYPTION_KEYS: str | None = None
    TOTP_ISSUER = "Call recordings"
    # Keys the HMAC-SHA256 that stores recovery codes and practice-issued registration keys (both random and
    # high-entropy, so a keyed hash is as strong as argon2 and costs microseconds, not seconds, to check).
    RECOVERY_CODE_HMAC_KEY: str | None = None

    # The breached-password check (core.services.breached). Empty: off. Production: the Pwned Passwords API,
    # https://api.pwnedpasswords.com/range/ (only 5 characters of a SHA-1 leave the server).
    PWNED_PASSWORDS_URL = ""
    PWNED_PASSWORDS_TIMEOUT_SECONDS = 3

    # argon2id cost. The defaults are argon2-cffi's (m=64 MiB, t=3, p=4), above the ASVS minimums.
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_COST_KIB = 65536
    ARGON2_PARALLELISM = 4

    # Sessions (SECURITY F): idle and absolute timeouts, checked on the server at every request.
    SESSION_IDLE_MINUTES_PATIENT = 30
    SESSION_IDLE_MINUTES_STAFF = 15
    SESSION_ABSOLUTE_HOURS = 12
    SESSION_FRESH_MINUTES = 15
    MAX_SESSIONS_PATIENT = 3
    MAX_SESSIONS_STAFF = 1

    # Recordings attached to requests, encrypted at rest (core.services.recording_crypto). RECORDING_STORE
    # says where: "filesystem" (files in RECORDINGS_DIR, never under static/) or "database" (chunks in the
    # recording_chunk table, so every web host sharing the database sees every recording).
    RECORDINGS_DIR = str(INSTANCE_PATH / "recordings")
    RECORDING_STORE = "filesystem"
    # Comma-separated `id:base64-key` pairs (32-byte keys) that wrap each recording's data key. The first wraps;
    # all unwrap, so a new key can be put first and the old one removed once `flask recordings rewrap` has run.
    RECORDING_KEYS: str | None = None
    # 200 MB in the decimal units every page uses (core.formatters), so the limit reads as a round number.
    RECORDING_MAX_BYTES = 200_000_000
    # Releases (DESIGN §6). Practice policies; admins will edit them in the portal's settings.
    RELEASE_LINK_DAYS = 7
    RELEASE_MAX_DOWNLOADS = 3
    RELEASE_FOUR_EYES = True
    # Release copies are deleted this many days after their link expired or their request closed.
    PURGE_AFTER_DAYS = 30
    # How far back the telephone system keeps recordings: older dates get a warning on the request form.
    RECORDINGS_KEPT_MONTHS = 36
    # How many days a registration key issued by the practice works (admins can change it).
    REGISTRATION_KEY_DAYS = 30
    # What replaces a part of a recording withheld before release: "silence" or "tone" (admins can change it).
    REDACTION_FILL = "silence"
    # Comma-separated keys that sign download links, oldest first: the last signs, all verify (SECURITY H7).
    # Separate from SECRET_KEY, so rotating one does not void the other.
    DOWNLOAD_SIGNING_KEYS: str | None = None

    # Identifies a deployment in ETags, so a new release never answers 304 with an old layout. When not set,
    # core.factory derives it from the templates, static files and practice details.
    RELEASE_ID: str | None = None

    # The worker (`flask worker`): how often it looks for email to send and jobs that are due, and how long a
    # message it has started sending is its own. A worker killed mid-send leaves the message to be sent again
    # once the claim runs out: at most once more, never lost.
    WORKER_POLL_SECONDS = 5.0
    OUTBOX_CLAIM_SECONDS = 300

    LOG_LEVEL = "INFO"
    LOG_JSON = True

    @classmethod
    def from_env(cls) -> dict:
        """Read the settings this class takes from the environment and return them as a dict."""
        values: dict = {}
        for name in ("PRACTICE_NAME", "PRACTICE_ADDRESS", "PRACTICE_PHONE", "PRACTICE_EMAIL", "RELEASE_ID"):
            if name in os.environ:
                values[name] = os.environ[name].strip()
        for name in ("SECRET_KEY", "AUDIT_HMAC_KEY", "RECOVERY_CODE_HMAC_KEY"):
            if name in os.environ:
                values[name] = os.environ[name]
        if os.environ.get("DATABASE_URL"):
            values["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
        for name in ("MAIL_TRANSPORT", "MAIL_SERVER", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_FROM"):
            if os.environ.get(name):
                values[name] = os.environ[name]
        if "MAIL_PORT" in os.environ:
            values["MAIL_PORT"] = _env_int("MAIL_PORT", cls.MAIL_PORT)
        if "MAIL_USE_STARTTLS" in os.environ:
            values["MAIL_USE_STARTTLS"] = os.environ["MAIL_USE_STARTTLS"].strip().lower() in ("1", "true", "yes")
        if os.environ.get("RATELIMIT_STORAGE_URI"):
            values["RATELIMIT_STORAGE_URI"] = os.environ["RATELIMIT_STORAGE_URI"]
        if os.environ.get("RATELIMIT_KEY_PREFIX"):
            values["RATELIMIT_KEY_PREFIX"] = os.environ["RATELIMIT_KEY_PREFIX"].strip()
        if os.environ.get("TRUSTED_HOSTS"):
            values["TRUSTED_HOSTS"] = _env_list("TRUSTED_HOSTS", "")
        if "PROXY_FIX_HOPS" in os.environ:
            values["PROXY_FIX_HOPS"] = _env_int("PROXY_FIX_HOPS", cls.PROXY_FIX_HOPS)
        if "TRUST_PROXY_REQUEST_ID" in os.environ:
            values["TRUST_PROXY_REQUEST_ID"] = _env_bool("TRUST_PROXY_REQUEST_ID")
        for name in ("PUBLIC_BASE_URL", "PWNED_PASSWORDS_URL", "DOWNLOAD_SIGNING_KEYS", *ENCRYPTION_KEY_SETTINGS):
            if os.environ.get(name):
                values[name] = os.environ[name].strip()
        for name in (
            "RELEASE_LINK_DAYS",
            "RELEASE_MAX_DOWNLOADS",
            "PURGE_AFTER_DAYS",
            "RECORDINGS_KEPT_MONTHS",
            "REGISTRATION_KEY_DAYS",
        ):
            if name in os.environ:
                values[name] = _env_int(name, getattr(cls, name))
        if "RECORDING_MAX_BYTES" in os.environ:
            values["RECORDING_MAX_BYTES"] = _env_int("RECORDING_MAX_BYTES", cls.RECORDING_MAX_BYTES)
        if "RELEASE_FOUR_EYES" in os.environ:
            values["RELEASE_FOUR_EYES"] = os.environ["RELEASE_FOUR_EYES"].strip().lower() in ("1", "true", "yes")
        if os.environ.get("RECORDINGS_DIR"):
            values["RECORDINGS_DIR"] = os.environ["RECORDINGS_DIR"].strip()
        for name in ("RECORDING_STORE", "RECORDING_KEYS"):
            if os.environ.get(name):
                values[name] = os.environ[name].strip()
        if os.environ.get("REDACTION_FILL"):
            values["REDACTION_FILL"] = os.environ["REDACTION_FILL"].strip().lower()
        if os.environ.get("LOG_LEVEL"):
            values["LOG_LEVEL"] = os.environ["LOG_LEVEL"].upper()
        values.update(_worker_settings())
        return values

    @classmethod
    def validate(cls, config: dict) -> None:
        """Raise ConfigurationError if the final configuration is unsafe for this environment."""
        if not config.get("SQLALCHEMY_DATABASE_URI"):
            raise ConfigurationError("DATABASE_URL must be set.")
        for name in (
            "SECRET_KEY",
            "AUDIT_HMAC_KEY",
            "RECOVERY_CODE_HMAC_KEY",
            *ENCRYPTION_KEY_SETTINGS,
            "DOWNLOAD_SIGNING_KEYS",
            "PUBLIC_BASE_URL",
        ):
            if not config.get(name):
                raise ConfigurationError(f"{name} must be set.")
        try:
            crypto.check_keys(config)
        except crypto.EncryptionKeyError as exc:
            raise ConfigurationError(str(exc)) from exc
        if not config["PUBLIC_BASE_URL"].startswith(("https://", "http://")):
            raise ConfigurationError("PUBLIC_BASE_URL must be an absolute address such as https://portal.example.")
        if config.get("RECORDING_STORE") not in ("filesystem", "database"):
            raise ConfigurationError("RECORDING_STORE must be filesystem or database.")
        if config.get("REDACTION_FILL") not in ("silence", "tone"):
            raise ConfigurationError("REDACTION_FILL must be silence or tone.")
        if not config.get("RECORDING_KEYS"):
            raise ConfigurationError("RECORDING_KEYS must be set.")
        try:
            parse_recording_keys(config["RECORDING_KEYS"])
        except RecordingKeyError as exc:
            raise ConfigurationError(str(exc)) from exc


class DevelopmentConfig(BaseConfig):
    """`make run` on a developer's machine: SQLite under instance/, plain HTTP on 127.0.0.1."""

    ENV_NAME = "development"
    DEBUG = False  # The Werkzeug debugger is never on: it would be remote code execution on a LAN.
    SQLALCHEMY_DATABASE_URI = f"sqlite:///{INSTANCE_PATH / 'portal.db'}"
    # Browsers refuse __Host- cookies without Secure, and development is plain HTTP.
    SESSION_COOKIE_NAME = "session"
    SESSION_COOKIE_SECURE = False
    WTF_CSRF_SSL_STRICT = False
    TRUSTED_HOSTS = ["127.0.0.1", "localhost"]
    LOG_JSON = False
    MAIL_TRANSPORT = "log"

    @classmethod
    def from_env(cls) -> dict:
        values = super().from_env()
        # Every development key lives in instance/, made on first use, so the server, the worker and a command
        # typed in another terminal sign and check with the same keys, and a restart breaks no emailed link.
        if "SECRET_KEY" not in values:
            values["SECRET_KEY"] = _development_key_file("dev-secret.key")
        # The audit key must outlive the process, or yesterday's chain could not be verified today.
        if "AUDIT_HMAC_KEY" not in values:
            values["AUDIT_HMAC_KEY"] = _development_key_file("dev-audit-hmac.key")
        # Authenticator secrets must outlive the process too, or every enrolment would be lost on restart.
        # The session-only purposes' keys outlive it as well, so a restart does not empty a half-filled form.
        for name, file_name in DEVELOPMENT_KEY_FILES.items():
            if name not in values:
                values[name] = _development_key_file(file_name, fernet=True)
        if "DOWNLOAD_SIGNING_KEYS" not in values:
            values["DOWNLOAD_SIGNING_KEYS"] = _development_key_file("dev-download-signing.key")
        # Recovery codes and registration keys must outlive the process, or they would stop working on restart.
        if "RECOVERY_CODE_HMAC_KEY" not in values:
            values["RECOVERY_CODE_HMAC_KEY"] = _development_key_file("dev-recovery-code.key")
        if "RECORDING_KEYS" not in values:
            values["RECORDING_KEYS"] = _development_key_file("dev-recording.key", recording=True)
        values.setdefault("PUBLIC_BASE_URL", development_server_url())
        return values


def development_server_url() -> str:
    """The address the development server runs on, as `make run` recorded it; http://127.0.0.1:5000 before
    it has ever run. Not PORT: a process manager gives each of its processes a PORT of its own."""
    recorded = INSTANCE_PATH / DEV_SERVER_URL_FILE
    if recorded.exists():
        url = recorded.read_text().strip()
        if url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"):
            return url
    return "http://127.0.0.1:5000"


def record_development_server_url(port: int) -> str:
    """Write the address the development server is about to serve on (see `development_server_url`)."""
    url = f"http://127.0.0.1:{port}"
    INSTANCE_PATH.mkdir(parents=True, exist_ok=True)
    (INSTANCE_PATH / DEV_SERVER_URL_FILE).write_text(url + "\n")
    return url


def _development_key_file(name: str, *, fernet: bool = False, recording: bool = False) -> str:
    """Read a development-only key from instance/, creating it (owner-only) on first use.

    The key is written to a file of its own and then linked into place, so two processes starting together
    (the web server and the worker) never read a half-written key, and both end with the same one.
    """
    path = INSTANCE_PATH / name
    if not path.exists():
        INSTANCE_PATH.mkdir(parents=True, exist_ok=True)
        draft = INSTANCE_PATH / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            if recording:
                handle.write(new_recording_key(f"dev-{secrets.token_hex(4)}"))
            else:
                handle.write(Fernet.generate_key().decode() if fernet else secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink()
    return path.read_text().strip()


class TestConfig(BaseConfig):
    """The pytest suite. `TEST_DATABASE_URL` selects the database (SQLite file by default)."""

    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "test-secret-key-not-for-production-0123456789abcdef"  # noqa: S105 (the test suite's own)
    AUDIT_HMAC_KEY = "test-audit-key-not-for-production-0123456789abcdef"
    RECOVERY_CODE_HMAC_KEY = "test-recovery-code-key-not-for-production-0123456789"
    SQLALCHEMY_DATABASE_URI = "sqlite:///:memory:"
    TRUSTED_HOSTS = ["localhost", "127.0.0.1"]
    LOG_JSON = True
    PUBLIC_BASE_URL = "https://localhost"
    TOTP_ENCRYPTION_KEYS = "dGVzdC10b3RwLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24="
    RECOVERY_CODES_ENCRYPTION_KEYS = "dGVzdC1yZWNvdmVyeS1jb2Rlcy1ub3QtZm9yLXByb2Q="
    LINK_TOKEN_ENCRYPTION_KEYS = "dGVzdC1saW5rLXRva2Vucy1ub3QtZm9yLXByb2R1Y3Q="  # noqa: S105 (the test suite's own)
    DRAFT_ENCRYPTION_KEYS = "dGVzdC1yZXF1ZXN0LWRyYWZ0cy1ub3QtZm9yLXByb2Q="
    DOWNLOAD_SIGNING_KEYS = "test-download-key-not-for-production-0123456789abcdef"
    RECORDING_KEYS = "test:dGVzdC1yZWNvcmRpbmcta2V5LW5vdC1mb3ItcHJvZC0="
    # Cheap hashing so the suite runs quickly; tests of the production cost build their own hasher.
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_COST_KIB = 8
    ARGON2_PARALLELISM = 1

    @classmethod
    def from_env(cls) -> dict:
        # Only what a test running the portal's own processes (the worker, the CLI) must point elsewhere.
        values: dict = _worker_settings()
        if os.environ.get("MAIL_PORT"):
            values["MAIL_PORT"] = _env_int("MAIL_PORT", cls.MAIL_PORT)
        if os.environ.get("RECORDINGS_DIR"):
            values["RECORDINGS_DIR"] = os.environ["RECORDINGS_DIR"].strip()
        for name in ("RECORDING_STORE", "RECORDING_KEYS"):
            if os.environ.get(name):
                values[name] = os.environ[name].strip()
        if os.environ.get("TEST_DATABASE_URL"):
            values["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["TEST_DATABASE_URL"])
        return values


class ProductionConfig(BaseConfig):
    """gunicorn behind a TLS-terminating reverse proxy, PostgreSQL, Redis for rate limits."""

    ENV_NAME = "production"
    PROXY_FIX_HOPS = 1

    @classmethod
    def validate(cls, config: dict) -> None:
        super().validate(config)
        for name in ("SECRET_KEY", "AUDIT_HMAC_KEY", "RECOVERY_CODE_HMAC_KEY"):
            value = config[name]
            if len(value) < MIN_SECRET_KEY_LENGTH:
                raise ConfigurationError(f"{name} must be at least {MIN_SECRET_KEY_LENGTH} characters of random data.")
            if value in KNOWN_NON_PRODUCTION_KEYS or len(set(value)) < MIN_DISTINCT_KEY_CHARACTERS:
                raise ConfigurationError(f"{name} must be random: this value is published or too repetitive.")
        if any(
            key == test_key
            for _, key in parse_recording_keys(config["RECORDING_KEYS"]).keys
            for _, test_key in parse_recording_keys(TestConfig.RECORDING_KEYS).keys
        ):
            raise ConfigurationError("RECORDING_KEYS must be your own keys, not the test suite's.")
        for name in (*ENCRYPTION_KEY_SETTINGS, "DOWNLOAD_SIGNING_KEYS"):
            keys = crypto.split_keys(config[name])
            if any(key in KNOWN_NON_PRODUCTION_KEYS for key in keys):
                raise ConfigurationError(f"{name} must be your own keys, not the test suite's.")
            if name == "DOWNLOAD_SIGNING_KEYS" and any(len(key) < MIN_SECRET_KEY_LENGTH for key in keys):
                raise ConfigurationError(f"Each of {name} must be at least {MIN_SECRET_KEY_LENGTH} characters.")
        if not config["PUBLIC_BASE_URL"].startswith("https://"):
            raise ConfigurationError("PUBLIC_BASE_URL must start with https:// in production.")
        if config["RATELIMIT_STORAGE_URI"].startswith("memory://"):
            raise ConfigurationError(
                "RATELIMIT_STORAGE_URI must name a shared store such as redis://127.0.0.1:6379/0 in production:"
                " in-memory limits are per process."
            )
        if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            raise ConfigurationError("DATABASE_URL must point at PostgreSQL in production, not SQLite.")
        if not config.get("TRUSTED_HOSTS"):
            raise ConfigurationError("TRUSTED_HOSTS must list the host names the portal is served on.")
        if config["MAIL_TRANSPORT"] != "smtp":
            raise ConfigurationError(
                "MAIL_TRANSPORT must be smtp in production: log writes whole emails, links included, to the log."
            )


KNOWN_NON_PRODUCTION_KEYS = frozenset(
    {
        TestConfig.SECRET_KEY,
        TestConfig.AUDIT_HMAC_KEY,
        TestConfig.RECOVERY_CODE_HMAC_KEY,
        *(getattr(TestConfig, name) for name in ENCRYPTION_KEY_SETTINGS),
        TestConfig.DOWNLOAD_SIGNING_KEYS,
    }
)
# A random hex or base64 key of 32+ characters uses well over this many different characters.
MIN_DISTINCT_KEY_CHARACTERS = 10

CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "test": TestConfig,
    "production": ProductionConfig,
}


def load_config(env_name: str | None = None, overrides: dict | None = None) -> tuple[type[BaseConfig], dict]:
    """Choose the config class for `env_name` (or `PORTAL_ENV`), apply the environment and overrides, validate.

    Returns the class and the dict of values that differ from its attributes.
    """
    name = (env_name or os.environ.get("PORTAL_ENV") or "production").strip().lower()
    if name not in CONFIGS:
        raise ConfigurationError(f"PORTAL_ENV must be one of {', '.join(CONFIGS)}, not {name!r}.")
    config_class = CONFIGS[name]
    values = config_class.from_env()
    values.update(overrides or {})
    merged = {key: getattr(config_class, key) for key in dir(config_class) if key.isupper()}
    merged.update(values)
    config_class.validate(merged)
    return config_class, values
