"""Public pages: the home page, the published content pages and the health check.

Content pages are cacheable by browsers and proxies: no cookie is set, and `ETag`/`Last-Modified` let a
client revalidate cheaply (`Cache-Control: no-cache` means "store, but ask before reuse").

They are also cached whole in the process. A signed-out visitor's request costs one indexed query (which
version and which settings are current: core.services.content.page_state) and the headers: a conditional
request is answered 304 before anything else, and otherwise the page's bytes come from the cache, drawn once
per (page version, settings version, release). The bytes are the same for every visitor: the page is drawn
without a CSP nonce, under a policy that allows its one inline script by hash (core.security.without_nonce),
so the ETag is strong. A signed-in person, or one with a message waiting, sees their own header or the
message: their page is drawn for them, as every other page is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from flask import Response, abort, current_app, jsonify, make_response, render_template, request, session
from werkzeug.http import is_resource_modified

from core.security import without_nonce
from core.services.content import PAGE_SLUGS, PageState, page_state, published_page
from core.services.health import database_is_reachable
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

    def body(self, slug: str, key: str, draw: Callable[[], str]) -> bytes:
        cached = self._bodies.get(slug)
        if cached is not None and cached[0] == key:
            return cached[1]
        with self._locks[slug]:
            cached = self._bodies.get(slug)
            if cached is not None and cached[0] == key:
                return cached[1]
            body = draw().encode()
            self._bodies[slug] = (key, body)
            return body


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
        return make_response(_draw(slug, state))  # drawn for this visitor alone; core.auth marks it no-store
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


for _slug in ("call-recording-notice", "how-to-request", "accessibility-statement"):
    bp.add_url_rule(f"/{_slug}", endpoint=_slug.replace("-", "_"), view_func=content_page, defaults={"slug": _slug})


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
