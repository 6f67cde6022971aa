"""The patient-facing blueprint: public pages, patient accounts, requests and downloads."""

from flask import Blueprint

bp = Blueprint("portal", __name__)

from portal import account, downloads, guard, public, requests  # noqa: E402,F401  (registers the guard and views on bp)
