"""`flask worker` as its own process, against a real SMTP server that answers slowly: stopped with SIGTERM it
finishes the message it is sending and loses none; killed outright, the message it was sending is sent again
once its claim runs out, never lost and never more than twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from core.config import PROJECT_ROOT
from core.extensions import db
from core.models import OutboundEmail
from core.services.db import transactional
from core.services.email import queue_email
from tests.smtp_support import free_port

MESSAGES = 8


class SlowInbox:
    """An SMTP server that takes `delay` seconds to accept each message, so a signal lands mid-send."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.subjects: list[str] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        await asyncio.sleep(self.delay)
        self.subjects.append(message_from_bytes(envelope.content)["Subject"])
        return "250 Message accepted"


@pytest.fixture
def slow_smtp():
    port = free_port()
    inbox = SlowInbox(delay=0.4)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


@transactional
def queue_messages() -> list[str]:
    subjects = [f"Update {number}" for number in range(MESSAGES)]
    for subject in subjects:
        queue_email(to="patient@example.org", subject=subject, body="There is an update. Sign in to see it.")
    return subjects


def start_worker(database_url: str, smtp_port: int, *args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORTAL_ENV": "test",
        "TEST_DATABASE_URL": database_url,
        "MAIL_PORT": str(smtp_port),
        "WORKER_POLL_SECONDS": "0.2",
        "OUTBOX_CLAIM_SECONDS": "2",
    }
    flask = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", *args]
    return subprocess.Popen(flask, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def statuses() -> Counter:
    db.session.rollback()
    found = Counter(db.session.execute(select(OutboundEmail.status)).scalars())
    db.session.rollback()
    return found


def test_sigterm_finishes_the_message_being_sent_and_loses_none(database_url, slow_smtp):
    port, inbox = slow_smtp
    subjects = queue_messages()
    db.session.rollback()
    worker = start_worker(database_url, port)
    try:
        wait_for(lambda: len(inbox.subjects) >= 2)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=20)
    finally:
        worker.kill()
    assert worker.returncode == 0, output.decode()
    assert b"SIGTERM received" in output and b"stopped" in output
    stopped_after = len(inbox.subjects)
    assert stopped_after < MESSAGES, "the worker should have stopped before the end of the outbox"
    # Every message the server accepted is recorded as sent: none is left to go out a second time.
    assert statuses()["sent"] == stopped_after

    restarted = start_worker(database_url, port, "--once")
    output, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, output.decode()
    assert sorted(inbox.subjects) == sorted(subjects)  # each exactly once
    assert statuses() == Counter({"sent": MESSAGES})


def test_a_killed_worker_loses_no_message_and_sends_none_more_than_twice(database_url, slow_smtp):
    port, inbox = slow_smtp
    subjects = queue_messages()
    db.session.rollback()
    worker = start_worker(database_url, port)
    try:
        wait_for(lambda: len(inbox.subjects) >= 2)
        time.sleep(0.2)  # inside the next message's slow answer
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        worker.kill()
    time.sleep(2.5)  # the dead worker's claim runs out (OUTBOX_CLAIM_SECONDS=2)
    restarted = start_worker(database_url, port, "--once")
    output, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, output.decode()
    wait_for(lambda: statuses() == Counter({"sent": MESSAGES}))
    received = Counter(inbox.subjects)
    assert set(received) == set(subjects), "a message was lost"
    assert max(received.values()) <= 2
