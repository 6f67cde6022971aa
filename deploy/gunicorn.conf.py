"""gunicorn's settings for the portal: `gunicorn -c deploy/gunicorn.conf.py wsgi:app` (the systemd unit does).

Threads, not plain sync workers: a patient downloading a 200 MB recording on a slow line keeps one thread busy
for minutes, and a sync worker that long without a heartbeat would be killed. GUNICORN_BIND,
GUNICORN_WORKERS and GUNICORN_THREADS override the defaults below.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 60
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then, so a slow leak can never grow without bound. Not too often: a new worker
# imports the portal and draws the public pages again (about a second of CPU), which at 2,000 requests cost
# the cached notice page more than serving it did (scripts/bench_notice.py).
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
