"""The staff blueprint under /admin. Deny-by-default: one guard runs before every admin request."""

from flask import Blueprint

bp = Blueprint("admin", __name__)

# Importing the modules registers the guard and the views on bp.
from admin import (  # noqa: E402,F401
    audit,
    auth,
    complaints,
    content,
    dashboard,
    guard,
    patients,
    recordings,
    redaction,
    request_actions,
    requests,
    settings,
    staff,
)
