"""The development web server (`make run`) and the live server used by browser tests.

Werkzeug's request handler announces `Server: Werkzeug/x Python/y`; ours says nothing about versions
(SECURITY K6). Production runs gunicorn instead, which is configured the same way (deploy/gunicorn.conf.py).
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


def serve() -> None:
    """`python wsgi.py` (what `make run` starts): record the address, build the app, serve on 127.0.0.1:PORT.

    The address is written to instance/ before the application is built, so this process, the worker and any
    command run in another terminal all put the same, working address in the links they make.
    """
    import os

    from werkzeug.serving import run_simple

    from core.config import record_development_server_url
    from core.factory import create_app

    port = int(os.environ.get("PORT", "5000"))
    if "PUBLIC_BASE_URL" not in os.environ:
        record_development_server_url(port)
    app = create_app()
    run_simple("127.0.0.1", port, app, request_handler=QuietRequestHandler, threaded=True)
