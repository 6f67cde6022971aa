"""Error pages: NHS-styled HTML, or JSON for JSON clients, revealing nothing about the internals.

Every error answer says what happened in plain words and what to do next; a 500 or 503 page adds the
request id so that staff can find the full detail in the log. Stack traces, SQL and configuration values
never reach a response.
"""

from __future__ import annotations

import contextlib

from flask import Flask, g, jsonify, render_template, request, session
from flask_wtf.csrf import CSRFError
from limits.errors import StorageError
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError, ServiceUnavailable

from core.extensions import db
from core.log import current_request_id, logger

# Plain-English wording per status, in the NHS style: say what happened, then what to do.
MESSAGES: dict[int, tuple[str, str]] = {
    400: (
        "Sorry, there is a problem with your request",
        "Go back and try again. If you were filling in a form, your answers may not have been saved.",
    ),
    403: ("You cannot see this page", "If you think you should be able to, contact the practice."),
    404: (
        "Page not found",
        "If you typed the web address, check it is correct. If you pasted it, check you copied all of it.",
    ),
    405: (
        "Sorry, that did not work",
        "This page cannot be used in that way. Go back and use the links and buttons on the page.",
    ),
    413: ("The file or form you sent is too large", "Go back and try again with less information or a smaller file."),
    429: (
        "Too many attempts",
        "For your security, this has been tried too many times. Wait a while (an hour at most for signing in), "
        "then try again. If you need help now, contact the practice by phone.",
    ),
    500: (
        "Sorry, there is a problem with the service",
        "Try again later. If you need help now, contact the practice by phone.",
    ),
    503: ("Sorry, the service is unavailable", "Try again later. If you need help now, contact the practice by phone."),
}


def wants_json() -> bool:
    """True for API-style clients: the health check, or a request that prefers JSON over HTML."""
    if request.path in ("/healthz", "/healthz/worker"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status: int, headers: dict | None = None):
    """Render the error page (or JSON) for `status`."""
    title, advice = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    if status == 413 and g.get("too_large_advice"):
        # A form that takes a file sets its own wording, with its limit, before reading the body.
        title, advice = g.too_large_advice
    request_id = current_request_id() if status >= 500 else None
    if status == 503:
        # Something the page depends on is unavailable: the session store, or the database that the signed-in
        # account's row would be read from again. The page is drawn for nobody (no name in the header) rather
        # than asking again and failing as a 500.
        g.account = g.pending_account = None
    if wants_json():
        body = {"error": title, "status": status}
        if request_id:
            body["request_id"] = request_id
        response = jsonify(body)
    else:
        response = render_template(
            "errors/error.html", status=status, title=title, advice=advice, request_id=request_id
        )
    return response, status, headers or {}


def handle_http_exception(exc: HTTPException):
    if isinstance(exc, SecurityError):
        # An untrusted Host header: no URL can be built for this request, so no page can be rendered.
        logger.warning("request for an untrusted host refused")
        return "Sorry, there is a problem with your request.", 400, {"Content-Type": "text/plain; charset=utf-8"}
    if isinstance(exc, CSRFError) and getattr(session, "unavailable", False):
        # The form's token is kept in the session, which the database could not read: the service is
        # unavailable, and the form is not at fault (core.auth answers 503 for the same reason, but the CSRF
        # check runs before it).
        return error_response(ServiceUnavailable.code)
    headers = {}
    if exc.code == 405 and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if exc.code == 429:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
    return error_response(exc.code or 500, headers)


DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


def _roll_back() -> None:
    """Roll back the request's session; on a connection the database server has closed (a restart), the
    ROLLBACK itself fails, and the connection is thrown away instead, so the error page can still be sent."""
    try:
        db.session.rollback()
    except SQLAlchemyError:
        with contextlib.suppress(SQLAlchemyError):
            db.session().invalidate()


def handle_database_unavailable(exc: Exception):
    _roll_back()
    logger.error("database unavailable", exc_info=exc)
    return error_response(ServiceUnavailable.code)


# The store of rate-limit counts (Redis) cannot be reached: a limited form cannot count this attempt, so it is
# refused rather than let through uncounted (SECURITY C1); pages without a limit never ask the store.
LIMIT_STORE_UNAVAILABLE = (RedisError, StorageError)


def handle_limit_store_unavailable(exc: Exception):
    _roll_back()
    logger.error("rate limit store unavailable", exc_info=exc)
    return error_response(ServiceUnavailable.code)


def handle_unexpected_error(exc: InternalServerError):
    original = exc.original_exception or exc
    if isinstance(original, DATABASE_UNAVAILABLE):
        return handle_database_unavailable(original)
    if isinstance(original, LIMIT_STORE_UNAVAILABLE):
        return handle_limit_store_unavailable(original)
    logger.error("unhandled exception", exc_info=original)
    _roll_back()
    return error_response(InternalServerError.code)


def register_error_handlers(app: Flask) -> None:
    """Install the handlers: one for HTTP errors, one for an unreachable database, one for an unreachable
    rate-limit store, one for everything else."""
    for exception_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(exception_class, handle_database_unavailable)
    for exception_class in LIMIT_STORE_UNAVAILABLE:
        app.register_error_handler(exception_class, handle_limit_store_unavailable)
    app.register_error_handler(InternalServerError, handle_unexpected_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    # Flask's own log line for an unhandled exception names the concrete path ("Exception on
    # /downloads/<the token> [GET]"); the 500 handler above logs it with the request id and the URL rule instead.
    app.log_exception = lambda exc_info: None
