"""The staff blueprint under /admin. Deny-by-default: one guard runs before every admin request."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

from admin import auth, complaints, guard, patients, recordings, requests, staff  # noqa: E402,F401  (registers the guard and views on bp)
