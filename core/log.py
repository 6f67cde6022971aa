"""Structured logging with a request id.

Each request gets an id: the proxy's `X-Request-ID` only when TRUST_PROXY_REQUEST_ID is on (the deployment
says its proxy sets that header on every request, replacing any a client sent) and the value has a strict
shape (`REQUEST_ID_PATTERN`: nginx's `$request_id` is 32 hex characters); otherwise a new one,
returned in the `X-Request-ID` header and printed on error pages so staff can find the log line. Request
lines log the URL *rule* (`/downloads/<token>`), never the concrete path or query string, so tokens and
health details in URLs never reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from flask import Flask, Response, has_request_context, request

# A letter or digit first, then 7 to 63 letters, digits, dots, underscores or hyphens: nothing a log reader or
# a spreadsheet could mistake for something else (checked with fullmatch, so no trailing newline either).
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")
logger = logging.getLogger("portal")


def current_request_id() -> str | None:
    """The id of the request being handled, or None outside a request."""
    if has_request_context():
        return request.environ.get("portal.request_id")
    return None


# json.dumps with these settings, made once (json.dumps makes an encoder each time it is given `default`).
# It escapes control characters, so a value holding "\r\n{...}" stays inside one record.
_ENCODER = json.JSONEncoder(default=str)


def _json_line(data: dict) -> str:
    return _ENCODER.encode(data)


def _line_fields(
    created: float, level: str, name: str, message: str, request_id: str | None, extra: Iterable[tuple[str, object]]
) -> dict:
    """A JSON line's fields, in their order: time (UTC, ISO 8601, to the millisecond), level, logger, message, the
    request id if there is one, then the record's own fields (a formatted record and a request line written straight
    share it)."""
    moment = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data = {"time": moment, "level": level, "logger": name, "message": message}
    if request_id:
        data["request_id"] = request_id
    data.update(extra)
    return data


class JsonFormatter(logging.Formatter):
    """One JSON object per line: UTC ISO 8601 time, level, logger, message, request id and extra fields."""

    RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        extra = (
            (key, value)
            for key, value in record.__dict__.items()
            if key not in self.RESERVED and key != "request_id" and not key.startswith("_")
        )
        data = _line_fields(record.created, record.levelname, record.name, record.getMessage(), request_id, extra)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return _json_line(data)


def configure_logging(app: Flask) -> None:
    """Send the portal's logs to stderr, as JSON unless LOG_JSON is off (development)."""
    handler = logging.StreamHandler(sys.stderr)
    if app.config["LOG_JSON"]:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(app.config["LOG_LEVEL"])
    logger.propagate = True  # pytest's caplog listens on the root logger

    @app.before_request
    def assign_request_id() -> None:
        request.environ["portal.request_id"] = request_id_for(request.environ, app.config)
        request.environ["portal.request_started"] = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        request_id = current_request_id()
        if request_id:
            response.headers["X-Request-ID"] = request_id
        rule = request.url_rule.rule if request.url_rule else None
        log_request_line(
            request.method, rule, request.endpoint, response.status_code, request.environ.get("portal.request_started")
        )
        return response


def request_id_for(environ: dict, config) -> str:
    """The id of the request in `environ`: the proxy's, when the deployment trusts it to set one, else new."""
    # Only a proxy the deployment trusts to set the header may name the request (TRUST_PROXY_REQUEST_ID);
    # a client could otherwise choose an id that collides with another request's in the logs. Having a
    # proxy (PROXY_FIX_HOPS) is not enough: a standard proxy passes a client's X-Request-ID on unchanged.
    incoming = environ.get("HTTP_X_REQUEST_ID", "") if config.get("TRUST_PROXY_REQUEST_ID") else ""
    # Kept in the environ, which belongs to this one request (see core.security.csp_nonce).
    return incoming if REQUEST_ID_PATTERN.fullmatch(incoming) is not None else uuid.uuid4().hex


# A request line's message: its method, URL rule and status.
REQUEST_LINE = "%s %s %s"


def log_request_line(
    method: str, rule: str | None, endpoint: str | None, status: int, started: float | None, request_id=None
) -> None:
    """The one line logged for each request (the URL rule, never the path: see the module's docstring).

    Where the portal's logger is set up as configure_logging leaves it (one JSON handler, nothing listening
    above it), the line is written straight to that handler's stream: the same line as the formatter's, without
    building a log record (finding the caller's source line, the thread and process names), which under
    gunicorn cost a cached page about a sixth of its CPU (docs/benchmarks.md). Anything else (a handler or
    filter added, the root logger listening as pytest's caplog does, the level above INFO) goes through
    `logging` as any record does."""
    fields = {
        "method": method,
        "rule": rule,
        "endpoint": endpoint,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
    }
    arguments = (method, rule or "(no route)", status)
    extra = {**fields, "request_id": request_id} if request_id else fields
    handler = _plain_json_handler()
    if handler is None:
        logger.info(REQUEST_LINE, *arguments, extra=extra)
        return
    message = REQUEST_LINE % arguments  # as a log record makes its message
    level = logging.getLevelName(logging.INFO)
    data = _line_fields(time.time(), level, logger.name, message, request_id or current_request_id(), fields.items())
    try:
        line = _json_line(data) + handler.terminator
        with handler.lock:
            handler.stream.write(line)
            handler.stream.flush()
    except Exception:
        # As StreamHandler.emit does: the failure is reported (to stderr), and the line is not written again.
        handler.handleError(
            logger.makeRecord(logger.name, logging.INFO, "", 0, REQUEST_LINE, arguments, None, extra=extra)
        )


def _plain_json_handler() -> logging.StreamHandler | None:
    """The portal logger's one handler, when a request line may be written straight to it: INFO enabled, no
    filter, exactly a StreamHandler with the JSON formatter, no handler on the root logger to pass it on to, and
    log records made as `logging` makes them (a record factory could add fields the line would lack)."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters or (logger.propagate and logging.root.handlers):
        return None
    if logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    handlers = logger.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler if type(handler.formatter) is JsonFormatter else None
