"""The files in deploy/ against the code they serve: the proxy's access log hides the token of every emailed
link the portal has, the environment example lists everything production requires, and no script puts a
database password on a command line. (stack_tests/ runs them for real; these catch drift in seconds.)"""

from __future__ import annotations

import base64
import re
import secrets

import pytest
from cryptography.fernet import Fernet

from core.config import PROJECT_ROOT, load_config

DEPLOY = PROJECT_ROOT / "deploy"


def nginx_token_pattern() -> re.Pattern:
    config = (DEPLOY / "nginx" / "call-recording-portal.conf").read_text()
    regex = re.search(r'"~(\^\(\?<portal_link>.*?\$)" "\$portal_link/<token>";', config).group(1)
    return re.compile(regex.replace("(?<portal_link>", "(?P<portal_link>"))


def test_the_access_log_hides_the_token_of_every_emailed_link_the_portal_has(app):
    """SECURITY H13 / L: every route with a token in its path is logged as its prefix and <token>."""
    pattern = nginx_token_pattern()
    token_rules = [rule.rule for rule in app.url_map.iter_rules() if "<token>" in rule.rule]
    assert len(token_rules) >= 7, token_rules
    for rule in token_rules:
        path = rule.replace("<token>", "Ing1ZldjRnUwWUtUb2dIcjY5WDMw.axL1_A.w9zuY5mTi611")
        match = pattern.match(path)
        assert match, f"{rule} would be logged with its token"
        assert rule.startswith(match.group("portal_link") + "/")
        assert pattern.match(path + "/") and pattern.match(path + "/extra"), rule
    for plain in ("/downloads/", "/account/confirm-email", "/admin/invitation", "/call-recording-notice"):
        assert pattern.match(plain) is None, plain


def test_the_environment_example_lists_every_variable_production_requires(monkeypatch):
    """Filled in as its comments say (each secret made by the command shown), it starts in production."""
    for line in (DEPLOY / "portal.env.example").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, value = line.split("=", 1)
        if key.endswith("_ENCRYPTION_KEYS"):
            value = Fernet.generate_key().decode()
        elif key == "RECORDING_KEYS":
            value = "2026-12:" + base64.b64encode(secrets.token_bytes(32)).decode()
        elif not value:
            value = secrets.token_hex(32)
        monkeypatch.setenv(key, value)
    config_class, values = load_config("production")
    assert config_class.ENV_NAME == "production"
    assert values["TRUST_PROXY_REQUEST_ID"] is True


@pytest.mark.parametrize("script", sorted(path.name for path in (DEPLOY / "bin").iterdir()))
def test_no_script_puts_a_database_address_on_a_command_line(script):
    """A command line is readable by every user on the host (`ps`); addresses hold passwords. Database tools
    are run through with_libpq or admin_psql, which hand the address over in the environment."""
    for number, line in enumerate((DEPLOY / "bin" / script).read_text().splitlines(), start=1):
        code = line.split("#", 1)[0]
        if re.search(r"\b(psql|pg_dump|pg_restore)\b", code) and not code.strip().startswith(("echo", "#")):
            assert re.search(r"\b(with_libpq|admin_psql|runuser)\b", code) or "psql()" in code, (
                f"{script}:{number}: {line.strip()}"
            )
            assert not re.search(r'"\$(\w*_URL|owner_url|scratch_url)"\s*(-|$|<)', code.split("with_libpq")[-1]), (
                f"{script}:{number}"
            )
