"""Flask-Login on top of the server-side session store (docs/decisions/flask-login.md).

`current_user` is the account only once both factors are done; the pending stages are `g.pending_account`.
Flask-Login writes nothing: no cookie of its own, no keys in the session, and the session store stays the one
record of who is signed in (ending a session row signs `current_user` out on the next request).
"""

from __future__ import annotations

import contextvars
import json

from flask import Flask, g
from flask.testing import FlaskClient
from flask_login import current_user
from sqlalchemy import select

import core.auth_views
from core.extensions import db
from core.models.accounts import WebSession
from core.sessions import end_account_sessions
from tests.accounts_support import make_patient, make_staff, post_form, session_cookie, sign_in, sign_in_password

# What Flask-Login keeps in Flask's session when its own login_user() and remember-me are used.
FLASK_LOGIN_SESSION_KEYS = {"_user_id", "_fresh", "_id", "_remember", "_remember_seconds", "next"}


def who_is_signed_in(app: Flask, client: FlaskClient) -> tuple[str | None, str | None]:
    """(current_user's id or None, the pending account's kind or None) for a request carrying the client's
    session cookie."""
    cookie = session_cookie(client, app)
    headers = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}={cookie}"} if cookie else {}

    def in_a_request_of_its_own():  # as the test client's requests are (tests.conftest.HttpsClient)
        with app.test_request_context("/account", base_url="https://localhost", headers=headers):
            user_id = current_user.get_id() if current_user.is_authenticated else None
            return user_id, g.pending_account.kind if g.pending_account is not None else None

    return contextvars.Context().run(in_a_request_of_its_own)


def cookie_names(client: FlaskClient) -> set[str]:
    return {cookie.key for cookie in client._cookies.values()}


def session_data() -> list[str]:
    rows = list(db.session.execute(select(WebSession.data)).scalars())
    db.session.rollback()
    return rows


def test_current_user_is_the_account_only_once_both_factors_are_done(app, browser):
    patient = make_patient()
    assert who_is_signed_in(app, browser) == (None, None)
    sign_in_password(browser, patient)
    assert who_is_signed_in(app, browser) == (None, "patient")  # the password step: pending, not current_user
    post_form(browser, "/account/sign-in/code", {"code": patient.code()})
    assert who_is_signed_in(app, browser) == (f"patient:{patient.account.id}", None)
    post_form(browser, "/account/sign-out", {}, form_page="/account")
    assert who_is_signed_in(app, browser) == (None, None)


def test_an_account_still_setting_up_its_authenticator_is_not_current_user(app, browser):
    staff = make_staff(enrolled=False)
    response = sign_in_password(browser, staff)
    assert response.headers["Location"].startswith("/admin/authenticator/set-up")
    assert who_is_signed_in(app, browser) == (None, "staff")
    assert browser.get("/admin/").headers["Location"].startswith("/admin/sign-in?next=/admin/")


def test_flask_login_sets_no_cookie_and_keeps_nothing_in_the_session(app, browser):
    patient = make_patient()
    set_cookies = []
    responses = [sign_in_password(browser, patient)]
    responses.append(post_form(browser, "/account/sign-in/code", {"code": patient.code()}))
    responses.append(browser.get("/account"))
    responses.append(browser.get("/account/change-password"))
    for response in responses:
        set_cookies += [header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")]
    assert set(set_cookies) == {app.config["SESSION_COOKIE_NAME"]}
    assert cookie_names(browser) == {app.config["SESSION_COOKIE_NAME"]}
    for data in session_data():
        assert not FLASK_LOGIN_SESSION_KEYS & set(json.loads(data)), data
    response = post_form(browser, "/account/sign-out", {}, form_page="/account")
    assert {header.split("=", 1)[0] for header in response.headers.getlist("Set-Cookie")} == {
        app.config["SESSION_COOKIE_NAME"]
    }
    assert cookie_names(browser) == set()


def test_a_remember_me_cookie_neither_signs_anyone_in_nor_hides_who_is_signed_in(app, browser):
    patient = make_patient()
    browser.set_cookie("remember_token", f"patient:{patient.account.id}|forged", domain="localhost")
    assert browser.get("/account").headers["Location"] == "/account/sign-in?next=/account"
    sign_in(browser, patient)
    assert browser.get("/account").status_code == 200
    assert who_is_signed_in(app, browser) == (f"patient:{patient.account.id}", None)


def test_ending_every_session_of_the_account_signs_current_user_out(app, browser):
    patient = make_patient()
    sign_in(browser, patient)
    assert browser.get("/account").status_code == 200
    end_account_sessions(patient.account)
    db.session.commit()
    assert who_is_signed_in(app, browser) == (None, None)
    assert browser.get("/account").headers["Location"] == "/account/sign-in?next=/account"


def test_the_sign_in_pages_are_one_set_of_views_registered_for_both_areas(app):
    login_manager = app.login_manager
    assert login_manager.session_protection is None
    for area, kind in (("portal", "patient"), ("admin", "staff")):
        assert login_manager.blueprint_login_views[area] == f"{area}.sign_in"
        assert app.extensions["sign-in-journeys"][area].kind == kind
    for view in ("sign_in", "sign_in_code", "reauthenticate", "change_password", "choose_new_password"):
        # The module's own function (with its limits) serves both areas' endpoints.
        assert app.view_functions[f"portal.{view}"] is getattr(core.auth_views, view)
        assert app.view_functions[f"admin.{view}"] is getattr(core.auth_views, view)
    rules = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
    assert rules["portal.sign_in"] == "/account/sign-in"
    assert rules["admin.sign_in"] == "/admin/sign-in"


def test_a_page_that_needs_a_full_sign_in_sends_someone_part_way_through_to_sign_in(app, browser):
    patient = make_patient()
    sign_in_password(browser, patient)
    for path in ("/account/change-password", "/account/confirm-it-is-you", "/account/sign-out-other-devices"):
        assert browser.get(path).headers["Location"] == f"/account/sign-in?next={path}"
