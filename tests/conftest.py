"""Shared fixtures: one application per test session, its database built by running the migrations.

The database is SQLite in a temporary folder unless TEST_DATABASE_URL names another (CI sets it to a fresh
PostgreSQL database). Every table is emptied after each test, and the default content is loaded before
each test, as `make run` does on a new installation.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask, url_for
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import MetaData, delete, insert, text
from sqlalchemy.orm import close_all_sessions

from core.config import PROJECT_ROOT, normalise_database_url
from core.extensions import db, limiter
from core.factory import create_app
from core.models.audit import GENESIS_HMAC, AuditChainHead
from core.services.content import load_default_content
from tests.smtp_support import free_port

MIGRATIONS = str(PROJECT_ROOT / "migrations")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def pytest_report_header(config) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return f"database: {url.split('@')[-1]} (TEST_DATABASE_URL)"
    return "database: SQLite file in a temporary folder (set TEST_DATABASE_URL to use another)"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return normalise_database_url(url)
    return f"sqlite:///{tmp_path_factory.mktemp('database') / 'portal-test.db'}"


def drop_everything(app: Flask) -> None:
    """Drop every table in the database, including Alembic's, so migrations start from nothing."""
    with app.app_context():
        existing = MetaData()
        existing.reflect(bind=db.engine)
        existing.drop_all(bind=db.engine)


@pytest.fixture(scope="session")
def app(database_url) -> Flask:
    application = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    drop_everything(application)
    with application.app_context():
        upgrade(directory=MIGRATIONS)
    return application


@pytest.fixture(autouse=True)
def _database(app: Flask) -> Iterator[None]:
    """Load the default content before each test and empty every table after it."""
    with app.app_context():
        load_default_content(config=app.config)
    limiter.reset()  # rate-limit counts live in memory and would otherwise carry over between tests
    yield
    with app.app_context():
        empty_every_table()


def empty_every_table() -> None:
    """Remove every row, then put back the audit chain's head row as the migration made it.

    PostgreSQL uses TRUNCATE, which the audit trail's append-only trigger (rightly) does not block for the
    table's owner; SQLite has no such trigger.
    """
    # Close every session first, including the one the test itself used: an open transaction holding a
    # read lock would make PostgreSQL's TRUNCATE wait forever.
    close_all_sessions()
    tables = db.metadata.sorted_tables
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(table.name for table in tables)
        db.session.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    else:
        for table in reversed(tables):
            db.session.execute(delete(table))
    db.session.execute(insert(AuditChainHead).values(id=1, last_seq=0, last_hmac=GENESIS_HMAC))
    db.session.commit()


class HttpsClient(FlaskClient):
    """A test client that talks HTTPS, so Secure cookies, HSTS and strict CSRF checks behave as in production.

    Each request runs in a context of its own, as separate requests do in production. pytest-flask keeps a
    request context pushed for the whole test, and Flask would otherwise reuse its application context (and
    so `g`, and the database session) for every request: Flask-WTF's cached CSRF token and the rate limiter's
    failed-attempt mark would then leak from one request into the next.
    """

    def open(self, *args, **kwargs):
        if not args or isinstance(args[0], str):
            kwargs.setdefault("base_url", "https://localhost")
        return contextvars.Context().run(self._open_and_read, *args, **kwargs)

    def _open_and_read(self, *args, **kwargs):
        """A streamed body (`stream_with_context`: the CSV exports) is read here, in the request's own context,
        as a server reads it; read later, outside it, it could not close the request context it holds.
        `was_streamed` keeps what `is_streamed` said before the read."""
        response = super().open(*args, **kwargs)
        response.was_streamed = response.is_streamed
        if response.is_streamed:
            response.get_data()
        return response


class BrowserClient(HttpsClient):
    """An HTTPS client that posts forms as a browser does on this site: with a same-origin Referer, which our
    Referrer-Policy lets browsers send and the strict HTTPS CSRF check requires."""

    def open(self, *args, **kwargs):
        if kwargs.get("method") == "POST":
            kwargs["headers"] = {"Referer": "https://localhost/", **dict(kwargs.get("headers") or {})}
        return super().open(*args, **kwargs)


def https_client_for(app: Flask, client_class: type[FlaskClient] = HttpsClient) -> FlaskClient:
    return client_class(app, app.response_class, use_cookies=True)


def new_browser(app: Flask) -> FlaskClient:
    """Another browser (or device), with cookies of its own."""
    return https_client_for(app, BrowserClient)


@pytest.fixture
def https_client(app: Flask) -> FlaskClient:
    return https_client_for(app)


@pytest.fixture
def browser(app: Flask) -> FlaskClient:
    return new_browser(app)


def check_page(soup: BeautifulSoup) -> None:
    """The checks every HTML page must pass: one <h1>, a <title>, no duplicate ids, forms with an action."""
    headings = soup.find_all("h1")
    assert len(headings) == 1, f"expected one <h1>, found {[h.get_text(strip=True) for h in headings]}"
    assert soup.title is not None and soup.title.get_text(strip=True), "page has no <title>"
    ids = [element["id"] for element in soup.find_all(id=True)]
    duplicates = sorted({value for value in ids if ids.count(value) > 1})
    assert not duplicates, f"duplicate ids: {duplicates}"
    for form in soup.find_all("form"):
        assert form.get("action"), f"form without an action: {str(form)[:120]}"


class Pages:
    """Fetches pages by endpoint, checks each with `check_page`, and returns the parsed HTML."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, endpoint: str, *, expected_status: int = 200, headers: dict | None = None, **values) -> BeautifulSoup:
        response = self.client.get(url_for(endpoint, **values), headers=headers or {})
        assert response.status_code == expected_status, f"{endpoint}: {response.status_code}"
        return self.parse(response)

    def get_path(self, path: str, *, expected_status: int = 200) -> BeautifulSoup:
        response = self.client.get(path)
        assert response.status_code == expected_status, f"{path}: {response.status_code}"
        return self.parse(response)

    @staticmethod
    def parse(response) -> BeautifulSoup:
        assert response.mimetype == "text/html"
        soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        check_page(soup)
        return soup


@pytest.fixture
def pages(client: FlaskClient) -> Pages:
    return Pages(client)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def smtp_port(app):
    """Point the application at a free loopback port for SMTP; start a server there with `start_server`."""
    port = free_port()
    app.config.update(MAIL_TRANSPORT="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port, MAIL_FROM="portal@example.org")
    yield port
    app.config.update(MAIL_TRANSPORT="smtp", MAIL_PORT=25)
