"""Configuration: development is convenient, tests are isolated, production fails fast when unsafe."""

from __future__ import annotations

import pytest

from core.config import INSTANCE_PATH, ConfigurationError, TestConfig, load_config, normalise_database_url
from core.factory import create_app

GOOD_KEY = "3f9a7c1e5b8d2046a1c9e7f3b5d80264c1a9e7f35b8d2046"
PRODUCTION_ENV = {
    "SECRET_KEY": GOOD_KEY,
    "AUDIT_HMAC_KEY": "9b1d7f3a5c8e20461a3c5e7f9b1d3f5a7c9e1b3d5f7a9c1e",
    "DATABASE_URL": "postgresql://portal@db.internal:5432/portal",
    "TRUSTED_HOSTS": "recordings.example-practice.nhs.uk",
    "TOTP_ENCRYPTION_KEYS": "bV9xR3pVa0x2c1Z4N2RqTjJwQ1ltSGVhNGZXdFo4c0E=",
    "RECOVERY_CODES_ENCRYPTION_KEYS": "avKjHACzG15HQdcNedVP9g-kVm7JCxHx2fZkXy36Apc=",
    "LINK_TOKEN_ENCRYPTION_KEYS": "Y9v0RSImIyHcMBvOH4mnWiKTFziBrhvsNrI0uSVs2_k=",
    "DRAFT_ENCRYPTION_KEYS": "lePIfZUukfIGG9rZ3yiDGC381IkEzm2qsfC1Gr4HGv4=",
    "PUBLIC_BASE_URL": "https://recordings.example-practice.nhs.uk",
    "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379/0",
    "DOWNLOAD_SIGNING_KEYS": "c7e19a4b2d6f80351e9c7a5b3d1f6e8024a6c8e0b2d4f6a8",
    "RECOVERY_CODE_HMAC_KEY": "5e2b8d4f6a1c3e7b9d0f2a4c6e8b1d3f5a7c9e0b2d4f6a8c",
    "RECORDING_KEYS": "2026-12:q8Jx0rQ3mZ1vYb4Tn6Ld9Wc2Ps5Hf7Ka3Ue8Ro1Gi0E=",
}


@pytest.fixture
def production_env(monkeypatch):
    for name in ("PORTAL_ENV", *PRODUCTION_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in PRODUCTION_ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set."),
        ("AUDIT_HMAC_KEY", "AUDIT_HMAC_KEY must be set."),
        ("DATABASE_URL", "DATABASE_URL must be set."),
        ("TOTP_ENCRYPTION_KEYS", "TOTP_ENCRYPTION_KEYS must be set."),
        ("RECOVERY_CODES_ENCRYPTION_KEYS", "RECOVERY_CODES_ENCRYPTION_KEYS must be set."),
        ("LINK_TOKEN_ENCRYPTION_KEYS", "LINK_TOKEN_ENCRYPTION_KEYS must be set."),
        ("DRAFT_ENCRYPTION_KEYS", "DRAFT_ENCRYPTION_KEYS must be set."),
        ("PUBLIC_BASE_URL", "PUBLIC_BASE_URL must be set."),
        ("DOWNLOAD_SIGNING_KEYS", "DOWNLOAD_SIGNING_KEYS must be set."),
        ("RECOVERY_CODE_HMAC_KEY", "RECOVERY_CODE_HMAC_KEY must be set."),
        ("RECORDING_KEYS", "RECORDING_KEYS must be set."),
    ],
)
def test_production_refuses_to_start_without_its_secrets(production_env, missing, message):
    production_env.delenv(missing)
    with pytest.raises(ConfigurationError, match=message):
        create_app("production")


@pytest.mark.parametrize("name", ["SECRET_KEY", "AUDIT_HMAC_KEY", "RECOVERY_CODE_HMAC_KEY"])
def test_production_refuses_a_short_key(production_env, name):
    production_env.setenv(name, "too-short")
    with pytest.raises(ConfigurationError, match=f"{name} must be at least 32 characters"):
        create_app("production")


@pytest.mark.parametrize(
    "value",
    [
        "test-secret-key-not-for-production-0123456789abcdef",
        "test-audit-key-not-for-production-0123456789abcdef",
        "abababababababababababababababababababab",
    ],
)
def test_production_refuses_published_or_repetitive_keys(production_env, value):
    production_env.setenv("SECRET_KEY", value)
    with pytest.raises(ConfigurationError, match="SECRET_KEY must be random"):
        create_app("production")


def test_production_refuses_sqlite_and_a_missing_host_list(production_env):
    production_env.setenv("DATABASE_URL", "sqlite:///portal.db")
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        load_config("production")
    production_env.setenv("DATABASE_URL", PRODUCTION_ENV["DATABASE_URL"])
    production_env.delenv("TRUSTED_HOSTS")
    with pytest.raises(ConfigurationError, match="TRUSTED_HOSTS"):
        load_config("production")


def test_production_is_the_default_so_a_forgotten_setting_fails_closed(production_env):
    production_env.delenv("SECRET_KEY")
    with pytest.raises(ConfigurationError):
        create_app()


def test_production_starts_with_strict_settings_when_configured(production_env):
    app = create_app("production")
    assert app.config["DEBUG"] is False
    assert app.config["TESTING"] is False
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://portal@db.internal:5432/portal"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["TRUSTED_HOSTS"] == ["recordings.example-practice.nhs.uk"]
    assert app.config["PROXY_FIX_HOPS"] == 1


def test_development_needs_no_settings_and_uses_sqlite_under_instance(monkeypatch):
    for name in ("SECRET_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config_class, values = load_config("development")
    assert config_class.SQLALCHEMY_DATABASE_URI.endswith("instance/portal.db")
    assert len(values["SECRET_KEY"]) == 64
    assert config_class.DEBUG is False


def test_an_unknown_environment_name_is_refused():
    with pytest.raises(ConfigurationError, match="PORTAL_ENV must be one of"):
        load_config("staging")


def test_a_non_numeric_proxy_hop_count_is_refused(production_env):
    production_env.setenv("PROXY_FIX_HOPS", "two")
    with pytest.raises(ConfigurationError, match="PROXY_FIX_HOPS must be a whole number"):
        load_config("production")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_are_pointed_at_the_installed_driver(given, expected):
    assert normalise_database_url(given) == expected


def test_the_release_id_follows_the_practice_details(database_url):
    base = {"SQLALCHEMY_DATABASE_URI": database_url}
    first = create_app("test", base).config["RELEASE_ID"]
    assert create_app("test", base).config["RELEASE_ID"] == first
    assert create_app("test", base | {"PRACTICE_PHONE": "020 8333 5001"}).config["RELEASE_ID"] != first
    assert create_app("test", base | {"RELEASE_ID": "2026.11.25"}).config["RELEASE_ID"] == "2026.11.25"


def test_production_refuses_the_suites_totp_key_a_plain_http_base_url_and_per_process_limits(production_env):
    production_env.setenv("TOTP_ENCRYPTION_KEYS", TestConfig.TOTP_ENCRYPTION_KEYS)
    with pytest.raises(ConfigurationError, match="TOTP_ENCRYPTION_KEYS must be your own"):
        load_config("production")
    production_env.setenv("TOTP_ENCRYPTION_KEYS", PRODUCTION_ENV["TOTP_ENCRYPTION_KEYS"])
    production_env.setenv("PUBLIC_BASE_URL", "http://recordings.example-practice.nhs.uk")
    with pytest.raises(ConfigurationError, match="https://"):
        load_config("production")
    production_env.setenv("PUBLIC_BASE_URL", PRODUCTION_ENV["PUBLIC_BASE_URL"])
    production_env.setenv("RATELIMIT_STORAGE_URI", "memory://")
    with pytest.raises(ConfigurationError, match="shared store"):
        load_config("production")


def test_production_refuses_the_test_suites_download_key_or_a_short_one(production_env):
    """SECURITY H7: download links are signed with the practice's own keys, long enough to resist guessing."""
    both = f"{PRODUCTION_ENV['DOWNLOAD_SIGNING_KEYS']},{TestConfig.DOWNLOAD_SIGNING_KEYS}"
    production_env.setenv("DOWNLOAD_SIGNING_KEYS", both)
    with pytest.raises(ConfigurationError, match="DOWNLOAD_SIGNING_KEYS must be your own"):
        create_app("production")
    production_env.setenv("DOWNLOAD_SIGNING_KEYS", "short-key")
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        create_app("production")


ENCRYPTION_KEY_SETTINGS = (
    "TOTP_ENCRYPTION_KEYS",
    "RECOVERY_CODES_ENCRYPTION_KEYS",
    "LINK_TOKEN_ENCRYPTION_KEYS",
    "DRAFT_ENCRYPTION_KEYS",
)


@pytest.mark.parametrize("name", ENCRYPTION_KEY_SETTINGS)
def test_production_refuses_the_suites_encryption_key_for_any_purpose(production_env, name):
    """Even as an old key after the practice's own: the suite's keys are published."""
    production_env.setenv(name, f"{PRODUCTION_ENV[name]}, {getattr(TestConfig, name)}")
    with pytest.raises(ConfigurationError, match=f"{name} must be your own"):
        create_app("production")


@pytest.mark.parametrize("name", ENCRYPTION_KEY_SETTINGS)
def test_production_refuses_an_encryption_key_that_is_not_a_fernet_key(production_env, name):
    production_env.setenv(name, f"{PRODUCTION_ENV[name]},{GOOD_KEY}")
    with pytest.raises(ConfigurationError, match=f"Key 2 of {name} is not a Fernet key"):
        create_app("production")


@pytest.mark.parametrize("name", ENCRYPTION_KEY_SETTINGS[1:])
def test_production_refuses_one_key_serving_two_purposes(production_env, name):
    """Each purpose has keys of its own, so a value encrypted for one cannot be passed off as another's."""
    production_env.setenv(name, f"{PRODUCTION_ENV[name]},{PRODUCTION_ENV['TOTP_ENCRYPTION_KEYS']}")
    with pytest.raises(ConfigurationError, match=f"{name} and TOTP_ENCRYPTION_KEYS share a key"):
        create_app("production")


def test_development_makes_a_key_for_each_purpose_in_instance(tmp_path, monkeypatch):
    from core import config as config_module

    monkeypatch.setattr(config_module, "INSTANCE_PATH", tmp_path)
    for name in ENCRYPTION_KEY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    first = config_module.DevelopmentConfig.from_env()
    second = config_module.DevelopmentConfig.from_env()
    keys = [first[name] for name in ENCRYPTION_KEY_SETTINGS]
    assert keys == [second[name] for name in ENCRYPTION_KEY_SETTINGS]
    assert len(set(keys)) == len(keys)
    for name, file_name in config_module.DEVELOPMENT_KEY_FILES.items():
        assert (tmp_path / file_name).read_text().strip() == first[name]
        assert (tmp_path / file_name).stat().st_mode & 0o777 == 0o600
    assert load_config("development")[1]["DRAFT_ENCRYPTION_KEYS"] == first["DRAFT_ENCRYPTION_KEYS"]


def test_development_keys_and_the_server_address_outlive_the_process(tmp_path, monkeypatch):
    """A command in another terminal and the running server sign with the same key, and a restart keeps it:
    the invitation link the CLI prints works in the server, and emailed links work after a restart."""
    from core import config as config_module

    monkeypatch.setattr(config_module, "INSTANCE_PATH", tmp_path)
    for name in ("SECRET_KEY", "PUBLIC_BASE_URL", "PORT"):
        monkeypatch.delenv(name, raising=False)
    first = config_module.DevelopmentConfig.from_env()
    second = config_module.DevelopmentConfig.from_env()
    assert first["SECRET_KEY"] == second["SECRET_KEY"] and len(first["SECRET_KEY"]) == 64
    assert (tmp_path / "dev-secret.key").stat().st_mode & 0o777 == 0o600
    assert first["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"
    config_module.record_development_server_url(8123)
    # A process manager gives each process its own PORT: the recorded address wins over it.
    monkeypatch.setenv("PORT", "8223")
    assert config_module.DevelopmentConfig.from_env()["PUBLIC_BASE_URL"] == "http://127.0.0.1:8123"


@pytest.mark.parametrize(
    "value",
    [TestConfig.RECOVERY_CODE_HMAC_KEY, "abababababababababababababababababababab"],
    ids=["the suite's", "repetitive"],
)
def test_production_refuses_the_suites_recovery_code_key_or_a_repetitive_one(production_env, value):
    """Issue 11, SECURITY R2 and A7: recovery codes and registration keys are keyed with the practice's own
    random RECOVERY_CODE_HMAC_KEY, checked like the other keys."""
    production_env.setenv("RECOVERY_CODE_HMAC_KEY", value)
    with pytest.raises(ConfigurationError, match="RECOVERY_CODE_HMAC_KEY must be random"):
        create_app("production")


def test_development_keeps_its_recovery_code_key_in_instance(monkeypatch):
    monkeypatch.delenv("RECOVERY_CODE_HMAC_KEY", raising=False)
    _, values = load_config("development")
    assert values["RECOVERY_CODE_HMAC_KEY"] == (INSTANCE_PATH / "dev-recovery-code.key").read_text().strip()
    assert len(values["RECOVERY_CODE_HMAC_KEY"]) == 64


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, False), ("", False), ("false", False), ("0", False), ("true", True), ("YES", True)]
)
def test_trusting_the_proxys_request_id_is_off_unless_configured(production_env, raw, expected):
    """Issue 11, SECURITY L1: a client's X-Request-ID is believed only when the deployment says so."""
    if raw is None:
        production_env.delenv("TRUST_PROXY_REQUEST_ID", raising=False)
    else:
        production_env.setenv("TRUST_PROXY_REQUEST_ID", raw)
    assert create_app("production").config["TRUST_PROXY_REQUEST_ID"] is expected


def test_a_request_id_setting_that_is_not_true_or_false_is_refused(production_env):
    production_env.setenv("TRUST_PROXY_REQUEST_ID", "sometimes")
    with pytest.raises(ConfigurationError, match="TRUST_PROXY_REQUEST_ID must be true or false"):
        load_config("production")


def test_production_refuses_the_suites_recording_key_or_a_malformed_one(production_env):
    production_env.setenv("RECORDING_KEYS", f"{PRODUCTION_ENV['RECORDING_KEYS']},{TestConfig.RECORDING_KEYS}")
    with pytest.raises(ConfigurationError, match="RECORDING_KEYS must be your own keys"):
        create_app("production")
    production_env.setenv("RECORDING_KEYS", "2026-12:c2hvcnQ=")
    with pytest.raises(ConfigurationError, match="must be 32 bytes"):
        create_app("production")
    production_env.setenv("RECORDING_STORE", "cloud")
    production_env.setenv("RECORDING_KEYS", PRODUCTION_ENV["RECORDING_KEYS"])
    with pytest.raises(ConfigurationError, match="RECORDING_STORE must be filesystem or database"):
        create_app("production")
