"""Notice pages are cacheable by browsers and proxies, and never stale after a new version is published."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from bs4 import BeautifulSoup
from flask import request_started, template_rendered
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from core.extensions import db
from core.factory import create_app
from core.security import page_template_script_hash
from core.services.content import get_published_page, page_state_engine, publish_version
from core.services.quick_page_state import QuickPageState
from core.services.settings import form_values_of, practice_settings, save_settings
from portal.public import CachedPagesFirst, RenderedPages
from tests.accounts_support import make_patient, make_staff, signed_in_browser

CONTENT_PATHS = ["/call-recording-notice", "/how-to-request", "/accessibility-statement"]


# Sign-in and registration pages are not here: their forms carry a CSRF token, which needs a session.
@pytest.mark.parametrize("path", [*CONTENT_PATHS, "/", "/healthz", "/no-such-page"])
def test_anonymous_visitors_get_no_cookie(client, path):
    response = client.get(path)
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("path", CONTENT_PATHS)
def test_content_pages_send_validators_and_answer_a_matching_etag_with_304(client, path):
    first = client.get(path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"')  # strong: the body is the same bytes for every signed-out visitor
    assert first.headers["Last-Modified"]
    assert "no-cache" in first.headers["Cache-Control"]

    again = client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag


def test_a_matching_if_modified_since_gets_304(client):
    first = client.get("/call-recording-notice")
    again = client.get("/call-recording-notice", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert again.status_code == 304


def test_an_old_etag_gets_the_new_version_after_publishing(client):
    old = client.get("/call-recording-notice")
    publish_version(
        slug="call-recording-notice",
        title="Recording of telephone calls",
        source_text="We no longer record calls on Sundays.",
        change_summary="Sunday opening",
        author_label="Test",
    )
    fresh = client.get("/call-recording-notice", headers={"If-None-Match": old.headers["ETag"]})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != old.headers["ETag"]
    assert "We no longer record calls on Sundays." in fresh.get_data(as_text=True)


def test_the_page_cache_is_never_stale_even_when_another_worker_publishes(app, database_url):
    """Two application objects on one database stand in for two gunicorn workers."""
    from core.factory import create_app

    other_worker = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    first = app.test_client().get("/how-to-request")
    assert "Ways to ask" in first.get_data(as_text=True)

    with other_worker.app_context():
        publish_version(
            slug="how-to-request",
            title="How to ask for a copy of a call recording",
            source_text="Ask at reception.",
            change_summary="Shorter",
            author_label="Test",
        )
        other_worker.extensions["sqlalchemy"].engines[None].dispose()

    second = app.test_client().get("/how-to-request").get_data(as_text=True)
    assert "Ask at reception." in second
    assert "Ways to ask" not in second


def test_the_cache_serves_a_repeat_read_without_rendering_again(app):
    first = get_published_page("accessibility-statement")
    second = get_published_page("accessibility-statement")
    assert first is second


# --- The whole page is cached in the process, drawn once per (page version, settings version, release) -----


@contextmanager
def counting_renders(app) -> Iterator[list[str]]:
    """The content-page templates drawn while the block runs."""
    drawn: list[str] = []

    def note(_sender, template, context, **_extra):
        if template.name == "portal/public/content-page.html":
            drawn.append(context["page"].slug)

    template_rendered.connect(note, app)
    try:
        yield drawn
    finally:
        template_rendered.disconnect(note, app)


@contextmanager
def counting_statements(app) -> Iterator[list[str]]:
    """The statements sent to the database while the block runs: those through SQLAlchemy (the application's
    engine and the version check's), and each question the cached-page fast path sends straight through the
    driver (QuickPageState.ask sends its one statement to the real database)."""
    seen: list[str] = []
    with app.app_context():
        engines = [page_state_engine(), db.engine]

    def note(_conn, _cursor, statement, _parameters, _context, _many):
        seen.append(statement)

    def ask(check, local, parameters):
        seen.append(check._sql)
        return real_ask(check, local, parameters)

    real_ask = QuickPageState.ask
    for engine in engines:
        event.listen(engine, "before_cursor_execute", note)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(QuickPageState, "ask", ask)
            yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", note)


@contextmanager
def flask_handling(app) -> Iterator[list]:
    """The requests Flask's own request handling started while the block runs (held strongly: blinker would
    drop a receiver such as a list's bound `append` at once, and it would never be called)."""
    started: list = []

    def note(sender, **_extra) -> None:
        started.append(sender)

    request_started.connect(note, app, weak=False)
    try:
        yield started
    finally:
        request_started.disconnect(note, app)


def publish(slug: str, text: str) -> None:
    publish_version(
        slug=slug, title="Recording of telephone calls", source_text=text, change_summary="Test", author_label="Test"
    )


def test_each_version_of_a_page_is_drawn_once_however_often_it_is_read(app, client):
    with counting_renders(app) as drawn:
        bodies = {client.get("/call-recording-notice").data for _ in range(5)}
        assert drawn == ["call-recording-notice"]
        assert len(bodies) == 1

        publish("call-recording-notice", "Calls are recorded for training.")
        for _ in range(3):
            assert b"Calls are recorded for training." in client.get("/call-recording-notice").data
        assert drawn == ["call-recording-notice"] * 2


def test_a_cached_read_asks_the_database_one_question_and_skips_the_rest_of_flask(app, client):
    client.get("/how-to-request")  # Flask draws the page and keeps it
    client.get("/how-to-request")  # the fast path makes its headers, reading the page's state once with its types
    for _ in range(3):
        with flask_handling(app) as flask_requests, counting_statements(app) as statements:
            assert client.get("/how-to-request").status_code == 200
        assert flask_requests == []
        assert len(statements) == 1, statements
        assert "notice_version" in statements[0] and "practice_settings" in statements[0]


def test_a_connection_lost_under_the_fast_path_is_replaced_and_the_page_still_served(app, client):
    """The thread's own connection for the version check is closed under it (as a restarted database would
    leave it): that request is answered by Flask, and the next by the fast path on a new connection."""
    fast_path = app.wsgi_app
    assert isinstance(fast_path, CachedPagesFirst)
    client.get("/call-recording-notice")
    expected = client.get("/call-recording-notice").data
    lost = fast_path.check._local.connection
    lost.close()
    with flask_handling(app) as flask_requests:
        assert client.get("/call-recording-notice").data == expected
    assert len(flask_requests) == 1
    with flask_handling(app) as flask_requests:
        assert client.get("/call-recording-notice").data == expected
    assert flask_requests == []
    assert fast_path.check._local.connection is not lost


@pytest.mark.parametrize("validator", ["If-None-Match", "If-Modified-Since"])
def test_a_conditional_request_gets_304_without_drawing_the_page(app, client, validator):
    first = client.get("/accessibility-statement")
    header = first.headers["ETag"] if validator == "If-None-Match" else first.headers["Last-Modified"]
    app.extensions.pop("portal.rendered_content_pages", None)  # nothing cached: only a draw could fill it
    with counting_renders(app) as drawn:
        again = client.get("/accessibility-statement", headers={validator: header})
    assert again.status_code == 304
    assert again.data == b""
    assert drawn == []
    assert again.headers["ETag"] == first.headers["ETag"]
    assert "Set-Cookie" not in again.headers


@pytest.mark.parametrize("path", CONTENT_PATHS)
def test_a_cached_page_carries_the_same_headers_as_a_fresh_one_and_no_nonce(https_client, path):
    responses = [https_client.get(path) for _ in range(2)]  # the first is drawn, the second comes from the cache
    for response in responses:
        headers = response.headers
        assert response.status_code == 200
        assert response.mimetype == "text/html"
        assert "Set-Cookie" not in headers
        assert headers["Cache-Control"] == "no-cache"
        assert headers["Last-Modified"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Strict-Transport-Security"]
        csp = headers["Content-Security-Policy"]
        assert "nonce" not in csp
        assert page_template_script_hash() in re.search(r"script-src ([^;]*)", csp).group(1)
        assert "nonce" not in response.get_data(as_text=True)
        soup = BeautifulSoup(response.data, "html.parser")
        header_links = [link["href"] for link in soup.select(".nhsuk-header__account a")]
        assert header_links == ["/account/sign-in", "/account/register"]
    assert responses[0].headers["ETag"] == responses[1].headers["ETag"]
    assert responses[0].data == responses[1].data


def test_a_publish_by_another_worker_shows_at_once_with_a_new_etag(app, database_url):
    other_worker = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    before = app.test_client().get("/call-recording-notice")
    app.test_client().get("/call-recording-notice")  # cached now
    with other_worker.app_context():
        publish("call-recording-notice", "Published by the other worker.")
        other_worker.extensions["sqlalchemy"].engines[None].dispose()
    after = app.test_client().get("/call-recording-notice", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert b"Published by the other worker." in after.data
    assert after.headers["ETag"] != before.headers["ETag"]


def test_a_settings_change_by_another_worker_shows_at_once(app, database_url):
    other_worker = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    before = app.test_client().get("/how-to-request")
    app.test_client().get("/how-to-request")  # cached now
    with other_worker.app_context():
        admin = make_staff(role="admin")
        save_settings(admin.account, form_values_of(practice_settings()) | {"practice_name": "Riverside Surgery"})
        other_worker.extensions["sqlalchemy"].engines[None].dispose()
    after = app.test_client().get("/how-to-request", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert b"Riverside Surgery" in after.data
    assert after.headers["ETag"] != before.headers["ETag"]


def test_a_signed_in_patient_gets_their_own_header_and_the_cache_stays_anonymous(app, client):
    client.get("/call-recording-notice")  # cache the anonymous page
    patient = signed_in_browser(app, make_patient())
    theirs = patient.get("/call-recording-notice")
    assert "Your account" in theirs.get_data(as_text=True)
    assert "no-store" in theirs.headers["Cache-Control"]
    assert "nonce-" in theirs.headers["Content-Security-Policy"]
    anonymous = client.get("/call-recording-notice").get_data(as_text=True)
    assert "Your account" not in anonymous
    assert "Sign in" in anonymous


def test_threads_that_miss_together_draw_the_page_once():
    pages = RenderedPages()
    draws = []
    start = threading.Barrier(8)

    def draw() -> str:
        draws.append(1)
        time.sleep(0.05)
        return "<html>page</html>"

    def read(_):
        start.wait()
        return pages.body("how-to-request", "key-1", draw)

    with ThreadPoolExecutor(8) as pool:
        bodies = set(pool.map(read, range(8)))
    assert bodies == {b"<html>page</html>"}
    assert len(draws) == 1
    # One entry a page: a new key replaces the old one.
    pages.body("how-to-request", "key-2", lambda: "<html>new</html>")
    assert pages.body("how-to-request", "key-1", lambda: "<html>old again</html>") == b"<html>old again</html>"
    assert len(pages._bodies) == 1


def comparable(response) -> dict[str, str]:
    """The headers, less the request id's value (each request has its own)."""
    headers = dict(response.headers)
    assert len(headers.pop("X-Request-ID")) >= 8
    return headers


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_page_served_from_the_cache_has_exactly_the_headers_flask_sends(app, scheme):
    client = app.test_client()
    base = f"{scheme}://localhost"
    app.extensions.pop("portal.rendered_content_pages", None)
    with counting_renders(app) as drawn:
        drawn_by_flask = client.get("/how-to-request", base_url=base)
        from_cache = client.get("/how-to-request", base_url=base)
        # A query string always goes through Flask, which has the page cached by now.
        through_flask = client.get("/how-to-request?from=search", base_url=base)
    assert drawn == ["how-to-request"]
    assert from_cache.data == drawn_by_flask.data == through_flask.data
    assert comparable(from_cache) == comparable(drawn_by_flask) == comparable(through_flask)
    assert ("Strict-Transport-Security" in from_cache.headers) == (scheme == "https")

    etag = {"If-None-Match": drawn_by_flask.headers["ETag"]}
    not_modified = client.get("/how-to-request", base_url=base, headers=etag)
    not_modified_by_flask = client.get("/how-to-request?from=search", base_url=base, headers=etag)
    assert not_modified.status_code == not_modified_by_flask.status_code == 304
    assert comparable(not_modified) == comparable(not_modified_by_flask)

    head = client.head("/how-to-request", base_url=base)
    assert head.data == b""
    assert comparable(head) == comparable(from_cache)


def test_a_page_served_from_the_cache_is_logged_like_any_other(app, client, caplog):
    client.get("/accessibility-statement")
    caplog.clear()
    response = client.get("/accessibility-statement")
    lines = [record for record in caplog.records if record.name == "portal"]
    assert [line.getMessage() for line in lines] == ["GET /accessibility-statement 200"]
    assert lines[0].endpoint == "portal.accessibility_statement"
    assert lines[0].request_id == response.headers["X-Request-ID"]


def test_a_host_that_is_not_trusted_is_refused_before_the_cache(app, client):
    client.get("/call-recording-notice")
    assert client.get("/call-recording-notice", base_url="http://evil.example").status_code == 400


def test_a_page_drawn_with_the_details_last_read_is_sent_but_not_kept(app, client, monkeypatch):
    """The settings could not be read while the page was drawn (the header fell back to the details last read):
    that visitor gets the page, but the next one gets a page drawn again, with the details as they are."""
    import core.factory

    def unreadable():
        raise OperationalError("SELECT practice_settings", {}, ConnectionError("server closed the connection"))

    with counting_renders(app) as drawn:
        monkeypatch.setattr(core.factory, "practice_settings", unreadable)
        assert client.get("/accessibility-statement").status_code == 200
        monkeypatch.undo()
        assert client.get("/accessibility-statement").status_code == 200
        assert client.get("/accessibility-statement").status_code == 200
    assert drawn == ["accessibility-statement"] * 2, "the page drawn with stale details was kept"


def test_any_failure_of_the_fast_path_leaves_the_answer_to_flask(app, client, monkeypatch):
    """Not only a database error: whatever goes wrong before Flask, the visitor still gets the page from Flask,
    with Flask's headers, never a bare 500."""
    client.get("/how-to-request")

    def broken(*_args, **_kwargs):
        raise RuntimeError("the version check could not be made")

    monkeypatch.setattr(CachedPagesFirst, "_answer", broken)
    with flask_handling(app) as flask_requests:
        response = client.get("/how-to-request")
    assert flask_requests, "Flask did not answer"
    assert response.status_code == 200
    assert "Content-Security-Policy" in response.headers
