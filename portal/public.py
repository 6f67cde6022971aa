"""Public pages: the home page, the published content pages and the health check.

Content pages are cacheable by browsers and proxies: no cookie is set, and `ETag`/`Last-Modified` let a
client revalidate cheaply (`Cache-Control: no-cache` means "store, but ask before reuse").

They are also cached whole in the process. A signed-out visitor's request costs one indexed query (which
version and which settings are current: core.services.content.page_state) and the headers: a conditional
request is answered 304 before anything else, and otherwise the page's bytes come from the cache, drawn once
per (page version, settings version, release). The bytes are the same for every visitor: the page is drawn
without a CSP nonce, under a policy that allows its one inline script by hash (core.security.without_nonce),
so the ETag is strong. CachedPagesFirst answers such a request before the rest of Flask's request handling.
A signed-in person, or one with a message waiting, sees their own header or the message: their page is drawn
for them, as every other page is, and not stored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    has_request_context,
    jsonify,
    make_response,
    render_template,
    request,
    session,
)
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import SecurityError
from werkzeug.http import http_date, is_resource_modified, quote_etag, remove_entity_headers
from werkzeug.wsgi import get_host

from core.extensions import limiter
from core.log import log_request_line, logger, request_id_for
from core.security import shared_page_headers, without_nonce
from core.services.content import (
    PAGE_SLUGS,
    PageState,
    page_state,
    page_state_engine,
    published_page,
)
from core.services.health import database_is_reachable
from core.services.quick_page_state import QuickPageState
from core.services.worker import job_status
from portal import bp

PAGES_KEY = "portal.rendered_content_pages"


@bp.get("/")
def home():
    return render_template("portal/public/home.html")


class RenderedPages:
    """The bytes of each content page as a signed-out visitor sees it, for its current cache key only: at
    most one entry per page, so the cache can never grow. Safe under threads: a page is drawn under its own
    lock, so threads that miss together draw it once."""

    def __init__(self) -> None:
        self._bodies: dict[str, tuple[str, bytes]] = {}  # slug: (cache key, body)
        self._locks = {slug: threading.Lock() for slug in PAGE_SLUGS}

    def cached(self, slug: str, key: str) -> bytes | None:
        cached = self._bodies.get(slug)
        return cached[1] if cached is not None and cached[0] == key else None

    def body(self, slug: str, key: str, draw: Callable[[], str]) -> bytes:
        cached = self._bodies.get(slug)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._locks[slug]:
            cached = self._bodies.get(slug)
            if cached is not None and cached[0] == key:
                return cached[1]
            body = draw().encode()
            if not (has_request_context() and request.environ.get("portal.practice_settings_stale")):
                self._bodies[slug] = (key, body)
            return body


@dataclass(frozen=True)
class FastPage:
    """What the fast path sends for one cached page, made once per (page version, settings version, release):
    the driver's row it was made from, the body, and the headers of each answer (200 or 304, over http or
    https), each lacking only the request id."""

    row: tuple
    key: str
    body: bytes
    last_modified: datetime
    headers: dict[tuple[bool, bool], tuple[tuple[str, str], ...]]  # (https, modified): headers


class CachedPagesFirst:
    """WSGI middleware in front of Flask's request handling (inside ProxyFix, so the scheme and client are the
    proxy's): a signed-out visitor's plain GET or HEAD of a content page whose current bytes are cached is
    answered here, with the one version check, the headers Flask's path would send (the security headers
    from core.security, the request id) and the request's log line, and nothing else. Anything else goes to
    Flask as usual: a query string, a session cookie, a host not trusted, a page not cached yet (Flask draws
    and caches it), no published page (404), a database that does not answer.

    The version check is asked through the driver (core.services.quick_page_state.QuickPageState) and its row compared
    with the row the page's FastPage was made from; only when the row changes is the page's state read with
    its types (page_state) and the headers made again."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.pages = {f"/{slug}": slug for slug in PAGE_SLUGS}
        self.trusted_hosts: set[tuple] = set()
        self.check: QuickPageState | None = None
        self.fast_pages: dict[str, FastPage] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        slug = self.pages.get(environ.get("PATH_INFO", ""))
        if slug is None or environ.get("REQUEST_METHOD") not in ("GET", "HEAD") or environ.get("QUERY_STRING"):
            return self.wsgi_app(environ, start_response)
        app = self.app
        if app.config["SESSION_COOKIE_NAME"] in environ.get("HTTP_COOKIE", "") or not self._trusted_host(environ):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        try:
            answer = self._answer(environ, slug)
        except Exception:  # whatever went wrong here, Flask's path answers (and handles it) instead
            logger.exception("cached page fast path failed; answered by Flask")
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        status, headers, body = answer
        start_response(status, headers)
        request_id = headers[-1][1]
        log_request_line(environ["REQUEST_METHOD"], f"/{slug}", _endpoint(slug), int(status[:3]), started, request_id)
        return [body]

    def _answer(self, environ: dict, slug: str) -> tuple[str, list[tuple[str, str]], bytes] | None:
        """The status, headers (the request id last) and body, or None when Flask's path must answer. No
        application context is needed: the app's page cache and the version check are at hand."""
        pages = self.app.extensions.get(PAGES_KEY)
        if pages is None:
            return None  # nothing drawn yet
        check = self.check or self._make_check()
        try:
            row = check.row(slug)
        except (check.error, SQLAlchemyError):  # a database that cannot be reached, or a lost connection
            return None  # Flask's path asks again and answers as it does for any failing request
        if row is None:
            return None
        page = self.fast_pages.get(slug)
        if page is None or page.row != row or pages.cached(slug, page.key) is not page.body:
            page = self._fast_page(slug, row, pages)
            if page is None:
                return None
        modified = True
        if any(name in environ for name in CONDITIONAL_HEADERS):
            modified = is_resource_modified(environ, etag=page.key, last_modified=page.last_modified)
        headers = [*page.headers[environ.get("wsgi.url_scheme") == "https", modified]]
        headers.append(("X-Request-ID", request_id_for(environ, self.app.config)))
        if not modified:
            return "304 NOT MODIFIED", headers, b""
        return "200 OK", headers, (b"" if environ["REQUEST_METHOD"] == "HEAD" else page.body)

    def _make_check(self) -> QuickPageState:
        with self.app.app_context():
            self.check = QuickPageState(page_state_engine())
        return self.check

    def _fast_page(self, slug: str, row: tuple, pages: RenderedPages) -> FastPage | None:
        """The FastPage for the page as `row` describes it, when its bytes are cached; None otherwise. The
        state is read with its types, then the row asked again: if it changed in between (a publish), the
        request goes to Flask rather than pair a row with another state's page."""
        try:
            state = page_state(slug, engine=self.check.engine)
            if state is None or self.check.row(slug) != row:
                return None
        except (SQLAlchemyError, self.check.error):
            return None
        key = state.cache_key(self.app.config["RELEASE_ID"])
        body = pages.cached(slug, key)
        if body is None:
            return None
        page = FastPage(row, key, body, state.last_modified, _fast_headers(key, state.last_modified, len(body)))
        self.fast_pages[slug] = page
        return page

    def _trusted_host(self, environ: dict) -> bool:
        """Flask's check of the Host header (TRUSTED_HOSTS); the few hosts found trusted are remembered."""
        host = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"), environ.get("SERVER_NAME"))
        if host in self.trusted_hosts:
            return True
        try:
            get_host(environ, self.app.config["TRUSTED_HOSTS"])
        except SecurityError:
            return False  # Flask's path refuses it
        if len(self.trusted_hosts) < 64:  # a host name with any port is trusted: keep the set small
            self.trusted_hosts.add(host)
        return True


# The request headers that can turn a GET into a 304 (werkzeug.http.is_resource_modified reads these).
CONDITIONAL_HEADERS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_RANGE")


def _fast_headers(key: str, last_modified: datetime, length: int) -> dict[tuple[bool, bool], tuple]:
    """The headers of each answer the fast path gives for one page, as Flask's path sends them."""
    headers = {}
    for secure in (False, True):
        full = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(length)),
            ("ETag", quote_etag(key)),
            ("Last-Modified", http_date(last_modified)),
            ("Cache-Control", "no-cache"),
            *shared_page_headers(secure=secure),
        ]
        headers[secure, True] = tuple(full)
        remove_entity_headers(full)  # as werkzeug does for Flask's 304
        headers[secure, False] = tuple(full)
    return headers


def _endpoint(slug: str) -> str:
    return f"portal.{slug.replace('-', '_')}"


@bp.record_once
def _serve_cached_pages_first(state) -> None:
    state.app.wsgi_app = CachedPagesFirst(state.app, state.app.wsgi_app)


def _rendered_pages() -> RenderedPages:
    pages = current_app.extensions.get(PAGES_KEY)
    if pages is None:
        pages = current_app.extensions.setdefault(PAGES_KEY, RenderedPages())
    return pages


def _shared_page_wanted() -> bool:
    """True when this visitor sees the page every signed-out visitor sees: no account in the session and no
    message waiting to be shown (the header and the banner area are the only parts that differ)."""
    active = session
    return active.account_kind is None and not active.ended and "_flashes" not in active


def content_page(slug: str) -> Response:
    state = page_state(slug)
    if state is None:
        abort(404)
    if not _shared_page_wanted():
        response = make_response(_draw(slug, state))  # drawn for this visitor alone: never stored
        response.cache_control.no_store = True
        return response
    key = state.cache_key(current_app.config["RELEASE_ID"])
    without_nonce()  # the body is shared by every visitor: it must hold nothing made for this response
    if not is_resource_modified(request.environ, etag=key, last_modified=state.last_modified):
        response = Response(status=304)
    else:
        body = _rendered_pages().body(slug, key, lambda: _draw(slug, state))
        response = Response(body, mimetype="text/html")
    response.set_etag(key)
    response.last_modified = state.last_modified
    response.cache_control.no_cache = True
    return response


def _draw(slug: str, state: PageState) -> str:
    page = published_page(slug, state.version_id, state.content_sha256)
    return render_template("portal/public/content-page.html", page=page)


CONTENT_ENDPOINTS = frozenset(_endpoint(slug) for slug in PAGE_SLUGS)
for _slug in sorted(PAGE_SLUGS):
    bp.add_url_rule(f"/{_slug}", endpoint=_slug.replace("-", "_"), view_func=content_page, defaults={"slug": _slug})


@limiter.request_filter
def _content_pages_have_no_limits() -> bool:
    """No rate limit applies to a content page: skip the limiter's look-up of which ones do."""
    return request.endpoint in CONTENT_ENDPOINTS


@bp.get("/healthz")
def healthz():
    """Liveness and readiness for load balancers: 200 when the database answers, else 503.

    The `worker` field is for monitoring: "ok", or "attention" when no worker has been seen or a job is late or
    failed (/healthz/worker says which). It never turns the answer into a 503: the web side works without it.
    """
    reachable = database_is_reachable()
    body = {"status": "ok" if reachable else "unavailable", "database": "ok" if reachable else "unreachable"}
    if reachable:
        # Only "ok" or "attention" here, for anyone; the details are at /healthz/worker, which the shipped proxy
        # configuration answers only for loopback and the monitoring addresses it lists.
        body["worker"] = "attention" if job_status().problems else "ok"
    response = jsonify(body)
    response.status_code = 200 if reachable else 503
    response.cache_control.no_store = True
    return response


@bp.get("/healthz/worker")
def healthz_worker():
    """For monitoring: 200 when a worker is running and every scheduled job ran when it should, else 503."""
    if not database_is_reachable():
        summary = {"status": "unknown", "problems": ["the database cannot be reached"]}
    else:
        summary = _worker_summary(job_status())
    response = jsonify(summary)
    response.status_code = 200 if summary["status"] == "ok" else 503
    response.cache_control.no_store = True
    return response


def _worker_summary(status) -> dict:
    return {
        "status": "attention" if status.problems else "ok",
        "problems": status.problems,
        "last_seen": _iso(status.worker_last_seen),
        "jobs": {
            job.name: {"last_run": _iso(job.last_run_at), "outcome": job.last_status, "late": job.late}
            for job in status.jobs
        },
    }


def _iso(moment) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
