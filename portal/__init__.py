"""The patient-facing blueprint: public pages now; account, requests and downloads to come."""

from flask import Blueprint

bp = Blueprint("portal", __name__)

from portal import public  # noqa: E402,F401  (registers the views on bp)
