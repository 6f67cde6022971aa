"""SECURITY B8: the breached-password check, against a stand-in for the Pwned Passwords range API served on
loopback. Only five characters of the password's SHA-1 may leave the process."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.services.breached import is_breached
from tests.accounts_support import make_patient, make_staff, post_form, signed_in_browser

BREACHED = "correct horse battery staple"  # a passphrase the policy accepts, which the stand-in says is breached
SAFE = "lantern meadow copper violin"


def _sha1(password: str) -> str:
    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()


class RangeApi(BaseHTTPRequestHandler):
    """Answers /range/<prefix> like the real service: suffixes with counts, padded with zero-count lines."""

    requests: list[tuple[str, dict]] = []

    def do_GET(self):
        RangeApi.requests.append((self.path, dict(self.headers)))
        prefix = self.path.rsplit("/", 1)[-1]
        lines = ["0000000000000000000000000000000000A:0"]  # padding, never a match
        if _sha1(BREACHED).startswith(prefix):
            lines.append(f"{_sha1(BREACHED)[5:]}:3861493")
        body = "\r\n".join(lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def range_api(app, monkeypatch) -> Iterator[list]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RangeApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeApi.requests = []
    monkeypatch.setitem(app.config, "PWNED_PASSWORDS_URL", f"http://127.0.0.1:{server.server_port}/range/")
    yield RangeApi.requests
    server.shutdown()
    server.server_close()


@pytest.fixture
def api_down(app, monkeypatch) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setitem(app.config, "PWNED_PASSWORDS_URL", f"http://127.0.0.1:{port}/range/")


def test_a_breached_password_is_found_and_only_five_sha1_characters_leave_b8(range_api):
    assert is_breached(BREACHED) is True
    assert is_breached(SAFE) is False
    sent = [path for path, _headers in range_api]
    assert sent == [f"/range/{_sha1(BREACHED)[:5]}", f"/range/{_sha1(SAFE)[:5]}"]
    assert all(headers.get("Add-Padding") == "true" for _path, headers in range_api)
    for path, headers in range_api:
        assert _sha1(BREACHED)[5:] not in path + str(headers)
        assert BREACHED not in path + str(headers)


def test_the_check_is_off_unless_configured(app):
    assert app.config["PWNED_PASSWORDS_URL"] == ""
    assert is_breached(BREACHED) is None


def test_registration_refuses_a_breached_password_b8(browser, range_api):
    response = post_form(
        browser,
        "/account/register",
        {
            "given-name": "Ada",
            "family-name": "Lovelace",
            "dob-day": "10",
            "dob-month": "12",
            "dob-year": "1955",
            "nhs-number": "943 476 5919",
            "postcode": "SE28 8BE",
            "email": "ada@example.org",
            "password": BREACHED,
            "confirm-password": BREACHED,
            "terms": "yes",
        },
    )
    assert response.status_code == 400
    assert "appeared in a data breach" in response.get_data(as_text=True)


def _change_password(app, account, new: str):
    browser = signed_in_browser(app, account)
    area = "/admin" if account.kind == "staff" else "/account"
    data = {"current-password": account.password, "new-password": new, "confirm-password": new}
    return post_form(browser, f"{area}/change-password", data)


def test_a_staff_password_change_fails_closed_when_the_check_cannot_be_made_b8(app, api_down):
    response = _change_password(app, make_staff(), SAFE)
    assert response.status_code == 400
    assert "could not check this password" in response.get_data(as_text=True)


def test_a_patient_password_change_goes_ahead_when_the_check_cannot_be_made_b8(app, api_down):
    assert _change_password(app, make_patient(), SAFE).status_code == 302


def test_a_password_change_to_a_breached_password_is_refused_for_everyone_b8(app, range_api):
    for account in (make_staff(), make_patient()):
        response = _change_password(app, account, BREACHED)
        assert response.status_code == 400
        assert "appeared in a data breach" in response.get_data(as_text=True)


def test_a_garbled_answer_counts_as_could_not_check_not_as_an_error_b8(app, monkeypatch):
    """A server that answers with something that is not HTTP: patients go ahead (fail open), nothing crashes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def answer_with_nonsense():
        for _ in range(4):
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(4096)
                connection.sendall(b"this is not HTTP at all\r\n\r\n")

    thread = threading.Thread(target=answer_with_nonsense, daemon=True)
    thread.start()
    monkeypatch.setitem(app.config, "PWNED_PASSWORDS_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/range/")
    try:
        assert is_breached(SAFE) is None
        assert _change_password(app, make_patient(), SAFE).status_code == 302
    finally:
        listener.close()
