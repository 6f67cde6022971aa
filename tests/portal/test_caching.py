"""Notice pages are cacheable by browsers and proxies, and never stale after a new version is published."""

from __future__ import annotations

import pytest

from core.services.content import get_published_page, publish_version

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
    assert etag.startswith('W/"')
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
