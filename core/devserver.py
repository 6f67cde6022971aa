"""The development web server (`make run`) and the live server used by browser tests.

Werkzeug's request handler announces `Server: Werkzeug/x Python/y`; ours says nothing about versions
(SECURITY K6). Production runs gunicorn instead, which is configured the same way in README.
"""

from __future__ import annotations

from werkzeug.serving import WSGIRequestHandler


class QuietRequestHandler(WSGIRequestHandler):
    """A request handler that sends no `Server` banner."""

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "server":
            return
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-") -> None:
        # The application logs each request itself (with a request id and without query strings).
        return
