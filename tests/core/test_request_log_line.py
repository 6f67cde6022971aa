"""The request line: written straight to the portal's JSON handler where nothing else listens, and the same line
either way; and a worker forked from a loaded portal never shares its parent's database connection."""

from __future__ import annotations

import io
import json
import logging
import os
import time

import pytest
from sqlalchemy import text

from core.extensions import db
from core.factory import forget_inherited_connections
from core.log import JsonFormatter, _plain_json_handler, log_request_line, logger

FIXED_TIME = 1_796_000_000.1234
FIXED_CLOCK = 5_000.0


class Stream(io.StringIO):
    """A stream that counts its flushes."""

    flushes = 0

    def flush(self):
        self.flushes += 1
        super().flush()


@pytest.fixture
def stream(app, monkeypatch) -> Stream:
    """The portal logger's JSON handler (configure_logging's one StreamHandler) writing to a string. The clocks
    stand still, so two ways of writing the same line can be compared byte for byte."""
    written = Stream()
    monkeypatch.setattr(json_handler(), "stream", written)
    monkeypatch.setattr(time, "time", lambda: FIXED_TIME)
    monkeypatch.setattr(time, "time_ns", lambda: int(FIXED_TIME * 1e9))
    monkeypatch.setattr(time, "perf_counter", lambda: FIXED_CLOCK)
    return written


def json_handler() -> logging.StreamHandler:
    [handler] = [each for each in logger.handlers if type(each.formatter) is JsonFormatter]
    return handler


def as_in_production(monkeypatch) -> None:
    """The portal logger as production leaves it: its JSON handler alone, nothing on the root logger. (While a
    test runs, pytest hangs its capture handlers on the root logger and on every logger that does not pass its
    records up, so this is done inside each test.)"""
    monkeypatch.setattr(logger, "handlers", [json_handler()])
    monkeypatch.setattr(logging.root, "handlers", [])
    assert _plain_json_handler() is json_handler()  # so request lines are written straight to it


def written_lines(stream: io.StringIO) -> list[str]:
    lines = stream.getvalue().splitlines()
    stream.seek(0)
    stream.truncate()
    return lines


CASES = [
    ("GET", "/call-recording-notice", "portal.call_recording_notice", 200, FIXED_CLOCK - 0.01234, "a" * 32),
    ("HEAD", "/call-recording-notice", "portal.call_recording_notice", 304, FIXED_CLOCK - 0.5, None),
    ("POST", None, None, 404, None, None),
    ('GET\r\n{"forged": 1}', "/x", "x", 400, FIXED_CLOCK, "b" * 32),
]


@pytest.mark.parametrize("case", CASES, ids=["with-id", "no-id", "no-route", "hostile-method"])
def test_a_line_written_straight_is_byte_for_byte_the_line_logging_writes(app, stream, monkeypatch, case):
    as_in_production(monkeypatch)
    with monkeypatch.context() as no_records:  # written straight: no log record is made
        no_records.setattr(logging.Logger, "makeRecord", lambda *args, **kwargs: pytest.fail("a record was made"))
        log_request_line(*case)
    straight = stream.getvalue()
    assert stream.flushes == 1  # on its way at once, as a StreamHandler sends each record
    written_lines(stream)
    logger.addFilter(lambda record: True)  # a filter: the line now goes through logging's records
    try:
        log_request_line(*case)
    finally:
        logger.filters.clear()
    through_logging = stream.getvalue()
    assert straight == through_logging
    assert straight.endswith("}\n") and straight.count("\n") == 1
    data = json.loads(straight)
    method, rule, endpoint, status, started, request_id = case
    assert list(data) == [
        "time",
        "level",
        "logger",
        "message",
        *(["request_id"] if request_id else []),
        "method",
        "rule",
        "endpoint",
        "status",
        "duration_ms",
    ]
    assert data["time"] == "2026-11-30T00:53:20.123Z"
    assert (data["level"], data["logger"]) == ("INFO", "portal")
    assert data["message"] == f"{method} {rule or '(no route)'} {status}"
    assert (data["method"], data["rule"], data["endpoint"], data["status"]) == (method, rule, endpoint, status)
    assert data["duration_ms"] == (round((FIXED_CLOCK - started) * 1000, 1) if started else None)
    assert "\r" not in straight and "\n" not in straight.removesuffix("\n")


def test_inside_a_request_the_line_carries_that_request_s_id(app, stream, monkeypatch):
    as_in_production(monkeypatch)
    with app.test_request_context("/call-recording-notice", environ_base={"portal.request_id": "c" * 32}):
        log_request_line("GET", "/call-recording-notice", "portal.call_recording_notice", 200, None)
    assert json.loads(written_lines(stream)[0])["request_id"] == "c" * 32


def test_a_cached_page_served_through_the_app_writes_its_one_line(app, stream, monkeypatch):
    as_in_production(monkeypatch)
    client = app.test_client()
    client.get("/call-recording-notice")  # drawn by Flask, then cached
    written_lines(stream)
    response = client.get("/call-recording-notice")
    assert response.status_code == 200
    [line] = written_lines(stream)
    data = json.loads(line)
    assert data["request_id"] == response.headers["X-Request-ID"]
    assert (data["rule"], data["endpoint"], data["status"]) == (
        "/call-recording-notice",
        "portal.call_recording_notice",
        200,
    )


def test_where_anyone_else_listens_the_line_is_a_log_record_they_receive(app, stream, monkeypatch):
    received: list[logging.LogRecord] = []

    class Listener(logging.Handler):
        def emit(self, record):
            received.append(record)

    listener = Listener()
    as_in_production(monkeypatch)
    logging.root.addHandler(listener)
    try:
        log_request_line("GET", "/healthz", "portal.healthz", 200, None, "d" * 32)
    finally:
        logging.root.removeHandler(listener)
    assert [record.getMessage() for record in received] == ["GET /healthz 200"]
    assert received[0].request_id == "d" * 32 and received[0].endpoint == "portal.healthz"
    assert len(written_lines(stream)) == 1  # the portal's own handler still wrote it, once

    json_handler().addFilter(lambda record: record.status != 200)  # a handler's filter is obeyed
    try:
        log_request_line("GET", "/healthz", "portal.healthz", 200, None)
        log_request_line("GET", "/healthz", "portal.healthz", 503, None)
    finally:
        json_handler().filters.clear()
    assert [json.loads(line)["status"] for line in written_lines(stream)] == [503]


def test_above_info_no_request_line_is_written(app, stream, monkeypatch):
    as_in_production(monkeypatch)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        log_request_line("GET", "/healthz", "portal.healthz", 200, None)
    finally:
        logger.setLevel(level)
    assert written_lines(stream) == []


@pytest.mark.parametrize("failing", ["write", "flush"])
def test_a_stream_that_fails_is_reported_once_and_the_line_never_written_twice(app, stream, monkeypatch, failing):
    class Broken(io.StringIO):
        def write(self, value):
            if failing == "write":
                raise OSError("the disk is full")
            return super().write(value)

        def flush(self):
            if failing == "flush":
                raise OSError("the pipe is closed")

    as_in_production(monkeypatch)
    broken = Broken()
    monkeypatch.setattr(json_handler(), "stream", broken)
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(json_handler(), "handleError", reported.append)
    log_request_line("GET", "/healthz", "portal.healthz", 200, None, "e" * 32)  # does not raise
    assert [record.getMessage() for record in reported] == ["GET /healthz 200"]
    assert reported[0].request_id == "e" * 32
    assert broken.getvalue().count("GET /healthz 200") == (1 if failing == "flush" else 0)


def test_a_forked_worker_lets_go_of_the_parent_s_connection_without_closing_it(app):
    """gunicorn's workers are forks of a master that loaded the portal (deploy/gunicorn.conf.py): a pooled
    connection the parent held must be dropped by the child, neither used (two processes on one socket) nor
    closed (which would end the parent's session with the database). The second half can fail only on
    PostgreSQL, where closing the child's copy ends the parent's session; CI runs the suite there too."""
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            pooled = connection.connection.dbapi_connection
        assert db.engine.pool.checkedin() >= 1  # returned to the pool: what a fork inherits
        pid = os.fork()
        if pid == 0:  # the child: exit at once whatever happens, never back into pytest
            code = 1
            try:
                forget_inherited_connections(app)
                with db.engine.connect() as mine:
                    fresh = mine.connection.dbapi_connection is not pooled
                    answered = mine.execute(text("SELECT 2")).scalar_one() == 2
                code = 0 if fresh and answered else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child used its parent's connection"
        # The parent's connection still works: the child did not close it.
        cursor = pooled.cursor()
        cursor.execute("SELECT 3")
        assert cursor.fetchone()[0] == 3
        cursor.close()
        pooled.rollback()
