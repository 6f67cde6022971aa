"""The patient-facing blueprint: public pages and patient accounts; requests and downloads to come."""

from flask import Blueprint

bp = Blueprint("portal", __name__)

from portal import account, guard, public  # noqa: E402,F401  (registers the guard and views on bp)
