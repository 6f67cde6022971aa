"""Public pages: the home page, the published content pages and the health check.

Content pages are cacheable by browsers and proxies: no cookie is set, and `ETag`/`Last-Modified` let a
client revalidate cheaply (`Cache-Control: no-cache` means "store, but ask before reuse").
"""

from __future__ import annotations

from flask import Response, abort, current_app, jsonify, make_response, render_template, request
from werkzeug.http import is_resource_modified

from core.services.content import get_published_page
from core.services.health import database_is_reachable
from core.services.settings import practice_settings
from core.services.worker import job_status
from portal import bp


@bp.get("/")
def home():
    return render_template("portal/public/home.html")


def content_page(slug: str) -> Response:
    page = get_published_page(slug)
    if page is None:
        abort(404)
    # The header and footer show the practice's details, which admins may change: they are part of the page.
    settings = practice_settings()
    etag = page.etag(f"{current_app.config['RELEASE_ID']}-{settings.details_fingerprint}")
    last_modified = max(page.published_at, settings.updated_at) if settings.updated_at else page.published_at
    if not is_resource_modified(request.environ, etag=etag, last_modified=last_modified):
        response = Response(status=304)
    else:
        response = make_response(render_template("portal/public/content-page.html", page=page))
    response.set_etag(etag, weak=True)  # weak: the body differs per response by its CSP nonce
    response.last_modified = last_modified
    response.cache_control.no_cache = True
    return response


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
