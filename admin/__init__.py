"""The staff blueprint under /admin. Deny-by-default: one guard runs before every admin request."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from admin import audit, auth, complaints, content, dashboard, guard, patients, recordings, requests, settings, staff  # noqa: E402,F401  (registers the guard and views on bp)
