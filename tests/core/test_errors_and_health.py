"""Errors and the health check: NHS-styled pages, JSON for machines, nothing about the internals."""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup
from flask import request
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from core.factory import create_app
from tests.conftest import check_page

LEAKS = ("Traceback", "sqlalchemy", "sqlite", "psycopg", 'File "', "SECRET_KEY", "/work/", "site-packages")


def assert_reveals_nothing(body: str) -> None:
    for leak in LEAKS:
        assert leak.lower() not in body.lower(), f"error page reveals {leak!r}"


@pytest.fixture
def broken_database_app():
    """An application whose database cannot be opened: a real failure, not a mock."""
    return create_app("test", {"SQLALCHEMY_DATABASE_URI": "sqlite:////proc/no-such-folder/portal.db"})


def test_health_check_reports_a_reachable_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["database"] == "ok"
    # No worker has run here: monitoring is told, and the load balancer still gets its 200.
    assert response.json["worker"] == "attention"
    assert "no-store" in response.headers["Cache-Control"]


def test_health_check_reports_503_when_the_database_is_unreachable(broken_database_app):
    response = broken_database_app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unreachable"}


def test_a_content_page_without_its_database_gets_the_503_page(broken_database_app):
    response = broken_database_app.test_client().get("/call-recording-notice")
    assert response.status_code == 503
    body = response.get_data(as_text=True)
    soup = BeautifulSoup(body, "html.parser")
    check_page(soup)
    assert soup.h1.get_text(strip=True) == "Sorry, the service is unavailable"
    assert soup.select_one(".portal-reference").get_text(strip=True) == response.headers["X-Request-ID"]
    assert_reveals_nothing(body)


def test_unknown_page_gets_the_nhs_styled_404_m2(pages):
    soup = pages.get_path("/no-such-page", expected_status=404)
    assert soup.h1.get_text(strip=True) == "Page not found"
    assert soup.select_one("header.nhsuk-header") is not None
    assert soup.select_one(".portal-reference") is None


def test_wrong_method_gets_405_with_allow_header_m2(client):
    response = client.post("/call-recording-notice")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    assert soup.h1.get_text(strip=True) == "Sorry, that did not work"


def test_trace_is_refused(client):
    assert client.open("/", method="TRACE").status_code == 405


def test_json_clients_get_json_errors_m2(client):
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json == {"error": "Page not found", "status": 404}


def test_an_unexpected_error_gets_a_generic_500_with_a_reference_and_the_detail_goes_to_the_log_m1_m4(
    database_url, caplog
):
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "PROPAGATE_EXCEPTIONS": False})

    @app.get("/explode")
    def explode():
        raise RuntimeError("secret detail /work/main/core/thing.py password=hunter2")

    response = app.test_client().get("/explode")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    soup = BeautifulSoup(body, "html.parser")
    check_page(soup)
    assert soup.h1.get_text(strip=True) == "Sorry, there is a problem with the service"
    request_id = response.headers["X-Request-ID"]
    assert soup.select_one(".portal-reference").get_text(strip=True) == request_id
    assert "hunter2" not in body
    assert "RuntimeError" not in body
    assert_reveals_nothing(body)
    logged = [record for record in caplog.records if record.getMessage() == "unhandled exception"]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


def test_an_oversized_form_gets_413_m2(database_url):
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})

    @app.post("/form")
    def form():
        return str(len(request.form))

    response = app.test_client().post("/form", data={"x": "a" * (2 * 1024 * 1024)})
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)


@pytest.mark.parametrize("hops", [0, 1])
def test_a_clients_request_id_is_replaced_unless_the_proxys_is_trusted_l1_m1(database_url, hops):
    """Issue 11: behind a proxy (PROXY_FIX_HOPS > 0) a client's X-Request-ID used to be believed; a standard
    proxy passes it on unchanged, so a client could choose the id its request is logged under."""
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "PROXY_FIX_HOPS": hops})
    assert app.config["TRUST_PROXY_REQUEST_ID"] is False
    replaced = app.test_client().get("/", headers={"X-Request-ID": "abc12345-proxy"}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)


NGINX_REQUEST_ID = "5f0c6e0e8a1d4c3b9e7f2a1b0c9d8e7f"  # nginx's $request_id: 32 hex characters


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (NGINX_REQUEST_ID, True),
        ("abc12345-proxy", True),
        ("A" + "b" * 63, True),
        ("A" + "b" * 64, False),  # 65 characters
        ("abc1234", False),  # 7 characters
        ("-abc12345", False),  # must start with a letter or digit
        (".abc12345", False),
        ("abc12345\n", False),
        ("abc 12345", False),
        ("<script>alert(1)</script>", False),
        ("abc12345/../x", False),
        ("", False),
    ],
)
def test_a_trusted_proxys_request_id_is_kept_only_in_its_strict_shape_l1_m1(database_url, sent, kept):
    config = {"SQLALCHEMY_DATABASE_URI": database_url, "PROXY_FIX_HOPS": 1, "TRUST_PROXY_REQUEST_ID": True}
    client = create_app("test", config).test_client()
    try:
        answered = client.get("/", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    except ValueError:  # the test client itself refuses a header with a newline; so would any real server
        assert not kept
        return
    if kept:
        assert answered == sent
    else:
        assert answered != sent and re.fullmatch(r"[0-9a-f]{32}", answered)


def test_an_unhandled_error_is_logged_without_the_path_that_may_hold_a_token(caplog):
    """SECURITY L (logs never hold tokens): Flask's own line names the concrete path; ours names the rule."""
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": "sqlite://", "PROPAGATE_EXCEPTIONS": False})
    token = "secret-token-in-the-path-0123456789"

    @app.get("/broken/<token>")
    def broken(token):
        raise RuntimeError("something went wrong")

    with caplog.at_level("DEBUG"):
        response = app.test_client().get(f"/broken/{token}", base_url="https://localhost")
    assert response.status_code == 500
    assert "unhandled exception" in caplog.text
    assert token not in caplog.text


def test_a_connection_lost_as_the_request_ends_leaves_the_page_as_it_was_m2(https_client, monkeypatch):
    """The database restarts between the page being made and the session being closed: closing (a ROLLBACK
    on the dead connection) fails, and the page made is still the answer, never a bare 500."""
    real_close = Session.close
    failed = []

    def close_on_a_dead_connection(session):
        if not failed:
            failed.append(session)
            raise OperationalError("ROLLBACK", {}, ConnectionError("terminating connection"))
        return real_close(session)

    monkeypatch.setattr(Session, "close", close_on_a_dead_connection)
    response = https_client.get("/call-recording-notice")
    monkeypatch.undo()
    assert failed, "the session was closed through the patched call"
    assert response.status_code == 200
    assert https_client.get("/call-recording-notice").status_code == 200


def test_the_503_page_is_sent_when_even_the_rollback_fails_m2(https_client, monkeypatch):
    """The database goes away mid-request and the ROLLBACK on the dead connection fails too: the connection
    is thrown away and the 503 page (with its reference) is still the answer."""
    real_execute, real_rollback = Session.execute, Session.rollback
    failures = []

    def unreachable(session, statement, *args, **kwargs):
        if "practice_settings" in str(statement):  # every page Flask draws reads it; the notice may be cached
            failures.append("query")
            raise OperationalError(str(statement), {}, ConnectionError("server closed the connection"))
        return real_execute(session, statement, *args, **kwargs)

    def rollback_on_a_dead_connection(session):
        if "rollback" not in failures:
            failures.append("rollback")
            raise OperationalError("ROLLBACK", {}, ConnectionError("server closed the connection"))
        return real_rollback(session)

    monkeypatch.setattr(Session, "execute", unreachable)
    monkeypatch.setattr(Session, "rollback", rollback_on_a_dead_connection)
    response = https_client.get("/account/sign-in")
    monkeypatch.undo()
    assert failures[:2] == ["query", "rollback"], failures
    assert response.status_code == 503
    assert "quote this reference" in response.get_data(as_text=True)
    assert https_client.get("/account/sign-in").status_code == 200
