"""Security headers on every response (SECURITY.md K1-K12, X6) and CSRF switched on globally."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from flask_wtf.csrf import generate_csrf

from core.factory import create_app
from tests.conftest import https_client_for

PATHS = [
    "/",
    "/call-recording-notice",
    "/how-to-request",
    "/accessibility-statement",
    "/healthz",
    "/admin/sign-in",
    "/admin/",
    "/no-such-page",
    "/static/css/portal.css",
    "/assets/images/favicon.svg",
]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_carries_the_security_headers(https_client, path):
    response = https_client.get(path)
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in csp
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'unsafe-inline'" not in script_src
    assert "'unsafe-eval'" not in script_src
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    for feature in ("camera=()", "microphone=()", "geolocation=()"):
        assert feature in headers["Permissions-Policy"]
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert "Server" not in headers
    assert "X-Powered-By" not in headers
    assert "Access-Control-Allow-Origin" not in headers


def test_hsts_is_only_sent_over_https(client):
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_the_inline_script_carries_this_responses_nonce_and_the_nonce_changes(client):
    nonces = []
    for _ in range(2):
        response = client.get("/")
        nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
        soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        inline = [script for script in soup.find_all("script") if not script.get("src")]
        assert inline
        assert all(script.get("nonce") == nonce for script in inline)
        assert len(nonce) >= 22  # 128 bits, URL-safe base64
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


def test_pages_load_nothing_from_another_origin(client):
    soup = BeautifulSoup(client.get("/call-recording-notice").get_data(as_text=True), "html.parser")
    for element, attribute in (("script", "src"), ("link", "href"), ("img", "src")):
        for tag in soup.find_all(element):
            value = tag.get(attribute)
            if value:
                assert value.startswith("/") and not value.startswith("//"), value


def test_a_request_for_an_untrusted_host_is_refused(client):
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400


@pytest.mark.parametrize(
    "path", ["/.git/HEAD", "/.env", "/wsgi.py", "/core/config.py", "/static/../wsgi.py", "/console"]
)
def test_source_and_secret_files_are_not_served(client, path):
    assert client.get(path).status_code == 404


def test_admin_pages_are_never_cached(client):
    assert "no-store" in client.get("/admin/sign-in").headers["Cache-Control"]


def test_csrf_protection_is_on_for_every_post(database_url):
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})

    @app.get("/probe-token")
    def probe_token():
        return generate_csrf()

    @app.post("/probe")
    def probe():
        return "changed"

    client = https_client_for(app)
    refused = client.post("/probe")
    assert refused.status_code == 400
    assert "Sorry, there is a problem with your request" in refused.get_data(as_text=True)
    token = client.get("/probe-token").get_data(as_text=True)
    accepted = client.post("/probe", data={"csrf_token": token}, headers={"Referer": "https://localhost/"})
    assert accepted.status_code == 200
    foreign = client.post("/probe", data={"csrf_token": token}, headers={"Referer": "https://evil.example/"})
    assert foreign.status_code == 400


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("HEAD", "/call-recording-notice", {}, 200),
        ("OPTIONS", "/", {}, 200),
        ("POST", "/how-to-request", {}, 405),
        ("GET", "/no-such-page", {"Accept": "application/json"}, 404),
    ],
)
def test_other_methods_and_statuses_carry_the_headers_too(https_client, method, path, headers, status):
    response = https_client.open(path, method=method, headers=headers)
    assert response.status_code == status
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_a_304_carries_a_policy_under_which_the_cached_page_still_runs(client):
    """The cached body's nonce is an old one: the design system's fixed inline script is allowed by hash."""
    import base64
    import hashlib

    first = client.get("/call-recording-notice")
    soup = BeautifulSoup(first.get_data(as_text=True), "html.parser")
    inline = next(script.string for script in soup.find_all("script") if not script.get("src"))
    expected = "'sha256-" + base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode() + "'"
    revalidated = client.get("/call-recording-notice", headers={"If-None-Match": first.headers["ETag"]})
    assert revalidated.status_code == 304
    assert expected in revalidated.headers["Content-Security-Policy"]
    assert revalidated.headers["X-Content-Type-Options"] == "nosniff"


def test_a_request_id_from_a_client_is_not_trusted_without_a_proxy(client):
    assert client.get("/", headers={"X-Request-ID": "victim-request-id-123"}).headers["X-Request-ID"] != (
        "victim-request-id-123"
    )


def _forgot_password_post(client, headers: dict):
    from tests.accounts_support import csrf_token

    token = csrf_token(client, "/account/forgot-password")
    return client.post(
        "/account/forgot-password", data={"email": "nobody@example.org", "csrf_token": token}, headers=headers
    )


def test_https_forms_work_with_the_referer_our_policy_lets_browsers_send_j4_k3(https_client):
    """Under `Referrer-Policy: same-origin` a browser sends our own page as the Referer of a form POST; the
    strict CSRF check accepts it. A Referer from another origin, or none, is refused (SECURITY J4)."""
    from core.extensions import limiter

    limiter.reset()
    own = _forgot_password_post(https_client, {"Referer": "https://localhost/account/forgot-password"})
    assert own.status_code == 302
    evil = _forgot_password_post(https_client, {"Referer": "https://evil.example/account/forgot-password"})
    assert evil.status_code == 400
    missing = _forgot_password_post(https_client, {})
    assert missing.status_code == 400
