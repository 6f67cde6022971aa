"""Staff sign-in. For now a page that says honestly that staff accounts are not set up yet."""

from flask import render_template

from admin import bp


@bp.get("/sign-in")
def sign_in():
    return render_template("admin/auth/sign-in.html")


@bp.get("/")
def dashboard():
    # Only reachable once staff sign-in exists (the guard redirects everyone until then).
    return render_template("admin/dashboard/index.html")
