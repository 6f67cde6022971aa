"""gunicorn's settings for the portal: `gunicorn -c deploy/gunicorn.conf.py wsgi:app` (the systemd unit does).

Threads, not plain sync workers: a patient downloading a 200 MB recording on a slow line keeps one thread busy
for minutes, and a sync worker that long without a heartbeat would be killed. GUNICORN_BIND,
GUNICORN_WORKERS and GUNICORN_THREADS override the defaults below.

The master loads the portal once and each worker is a fork of it (`preload_app`): a worker that is recycled or
killed is replaced in milliseconds rather than importing the portal again, and the workers share the master's
memory. The master opens no database connection; each worker drops any it could have inherited
(`post_fork`). Because the code is loaded once, `systemctl reload` (SIGHUP) starts fresh workers from the same
code and settings: after an upgrade or a change to portal.env, restart (deploy/README.md).
"""

import gc
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 60
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak can never grow without bound. Not too often: a new worker draws
# the public pages again. (Before workers were forks of a loaded master, each new one also imported the
# portal, about a second of CPU, which at 2,000 requests cost the cached notice page more than serving it did.)
max_requests = 50000
max_requests_jitter = 5000
# Only nginx on this host may say who the client is and that the request came over HTTPS.
forwarded_allow_ips = "127.0.0.1,::1"
# The portal writes one JSON line per request itself, without paths that hold tokens: no access log here.
accesslog = None
errorlog = "-"
loglevel = "info"
# No `Server` banner with a version (SECURITY K6).
proc_name = "call-recording-portal"
limit_request_line = 4094
limit_request_fields = 100


preload_app = True


def pre_fork(server, worker):
    # What the master loaded lives as long as the workers: the garbage collector never needs to walk it, in
    # the master or in a worker (which would also write to the pages the two share). Garbage is collected
    # first, so none of it is kept for good; after the first fork only what is new is walked.
    gc.collect()
    gc.freeze()


def post_fork(server, worker):
    from flask import Flask

    app = server.app.wsgi()
    if isinstance(app, Flask) and "sqlalchemy" in app.extensions:
        from core.factory import forget_inherited_connections

        forget_inherited_connections(app)
    else:  # another app (a benchmark's baseline) or the portal wrapped: say so, nothing is dropped
        server.log.warning("post_fork: %r is not the portal's Flask app; no database connection dropped", app)
