"""A real SMTP server for tests: aiosmtpd on a free loopback port, keeping what it receives in memory."""

from __future__ import annotations

import socket
from email.message import Message as EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message


class Inbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[EmailMessage] = []

    def handle_message(self, message) -> None:
        self.messages.append(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> tuple[Controller, Inbox]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox
