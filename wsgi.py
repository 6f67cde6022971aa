"""The WSGI entry point: `gunicorn wsgi:app` in production, `python wsgi.py` for the development server."""

import os

from core.factory import create_app

app = create_app()

if __name__ == "__main__":
    from werkzeug.serving import run_simple

    from core.devserver import QuietRequestHandler

    port = int(os.environ.get("PORT", "5000"))
    run_simple("127.0.0.1", port, app, request_handler=QuietRequestHandler, threaded=True)
