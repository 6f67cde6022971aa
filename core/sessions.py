"""Server-side sessions (SECURITY F, DESIGN §5).

Flask's default session is a signed cookie: signing out cannot stop a copied cookie from working. Here the
cookie holds only a random 256-bit id; the `web_session` row (keyed by the id's SHA-256, so a database dump
holds no usable id) holds the data, which account it belongs to, how far sign-in has got (`stage`) and when.
Every request looks the row up and applies the idle and absolute timeouts; deleting the row ends the session
for every copy of the cookie.

A visitor who never needs a session (reading the notice) gets no cookie and no row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import CallbackDict

from core.extensions import db
from core.models.accounts import Patient, StaffUser, WebSession
from core.services.audit import record_event

TABLE = WebSession.__table__
# Write last_seen_at at most this often for a session that did not otherwise change.
TOUCH_INTERVAL = timedelta(seconds=30)
STAGES = ("anonymous", "password", "enrol", "full")


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ServerSession(CallbackDict, SessionMixin):
    """The session dict plus who it belongs to. Changing any of these marks it for saving."""

    def __init__(self, data: dict | None = None, *, session_id: str | None = None, row=None) -> None:
        def on_update(session: ServerSession) -> None:
            session.modified = True

        super().__init__(data or {}, on_update)
        self.session_id = session_id
        self.account_kind: str | None = row.account_kind if row is not None else None
        self.account_id: int | None = row.account_id if row is not None else None
        self.stage: str = row.stage if row is not None else "anonymous"
        self.created_at: datetime | None = row.created_at if row is not None else None
        self.last_seen_at: datetime | None = row.last_seen_at if row is not None else None
        self.second_factor_at: datetime | None = row.second_factor_at if row is not None else None
        self.modified = False
        self.new_id_wanted = False
        self.ended = False
        # Set when the cookie named a session that has timed out or been ended, so pages can say why.
        self.timed_out = False
        # Set when the session store could not be read; nothing is saved and the request is refused.
        self.unavailable = False

    # -- changes made by sign-in, sign-out and re-authentication --------------------------------------

    def start_stage(self, account, stage: str, *, now: datetime) -> None:
        """Move to a sign-in stage for `account` under a brand-new session id (SECURITY E2)."""
        if stage not in STAGES:
            raise ValueError(f"unknown session stage {stage!r}")
        self.account_kind, self.account_id, self.stage = account.kind, account.id, stage
        if stage == "full":
            self.second_factor_at = now
        self.created_at = self.created_at or now
        self.new_id_wanted = True
        self.modified = True

    def rotate_id(self) -> None:
        """Keep everything but move to a new session id (after a password change, for example)."""
        self.new_id_wanted = True
        self.modified = True

    def prove_second_factor(self, *, now: datetime) -> None:
        self.second_factor_at = now
        self.new_id_wanted = True
        self.modified = True

    def drop_account(self) -> None:
        """Forget who this is but keep a fresh anonymous session (with a new id), e.g. to show a message.
        Emailed links already opened in this browser are kept."""
        links = {key: value for key, value in self.items() if key.startswith("link:")}
        self.clear()
        self.update(links)
        self.account_kind = self.account_id = None
        self.stage = "anonymous"
        self.second_factor_at = None
        self.new_id_wanted = True
        self.modified = True

    def end(self) -> None:
        """End this session: its row is deleted and the cookie removed when the response is sent."""
        self.clear()
        self.account_kind = self.account_id = None
        self.stage = "anonymous"
        self.ended = True

    def is_fresh(self, *, now: datetime, minutes: int) -> bool:
        return self.second_factor_at is not None and now - self.second_factor_at <= timedelta(minutes=minutes)


class ServerSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> ServerSession:
        session_id = request.cookies.get(self.get_cookie_name(app))
        if not session_id or len(session_id) > 100:
            return ServerSession()
        try:
            row = db.session.execute(select(TABLE).where(TABLE.c.id_hash == hash_session_id(session_id))).one_or_none()
            db.session.rollback()  # end the read at once: nothing else in this request should share it
        except SQLAlchemyError:
            # The database cannot say who this is: deny (core.auth answers 503), never guess (SECURITY M3).
            db.session.rollback()
            session = ServerSession()
            session.unavailable = True
            return session
        if row is None:
            session = ServerSession()
            session.timed_out = True
            return session
        now = datetime.now(UTC)
        if self._expired(app, row, now):
            with db.engine.begin() as connection:
                connection.execute(delete(TABLE).where(TABLE.c.id_hash == row.id_hash))
            if row.account_kind is not None:
                _record_timeout(row)
            session = ServerSession()
            session.timed_out = True
            return session
        try:
            data = json.loads(row.data)
        except ValueError:
            data = {}
        return ServerSession(data, session_id=session_id, row=row)

    @staticmethod
    def _expired(app: Flask, row, now: datetime) -> bool:
        config = app.config
        idle_minutes = (
            config["SESSION_IDLE_MINUTES_STAFF"]
            if row.account_kind == "staff"
            else config["SESSION_IDLE_MINUTES_PATIENT"]
        )
        if now - row.last_seen_at > timedelta(minutes=idle_minutes):
            return True
        return now - row.created_at > timedelta(hours=config["SESSION_ABSOLUTE_HOURS"])

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        now = datetime.now(UTC)
        old_hash = hash_session_id(session.session_id) if session.session_id else None

        if session.unavailable:
            return
        if session.ended:
            if old_hash:
                with db.engine.begin() as connection:
                    connection.execute(delete(TABLE).where(TABLE.c.id_hash == old_hash))
            response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app), httponly=True)
            return
        if old_hash is None and not session and session.account_kind is None:
            return  # an anonymous visitor who needed nothing: no row, no cookie

        values = {
            "account_kind": session.account_kind,
            "account_id": session.account_id,
            "stage": session.stage,
            "data": json.dumps(dict(session), separators=(",", ":")),
            "last_seen_at": now,
            "second_factor_at": session.second_factor_at,
        }
        with db.engine.begin() as connection:
            if old_hash is None or session.new_id_wanted:
                if old_hash:
                    removed = connection.execute(delete(TABLE).where(TABLE.c.id_hash == old_hash)).rowcount
                    if removed == 0 and session.account_kind is not None:
                        # Ended elsewhere during this request (sign out everywhere, a password reset): a new
                        # id must not bring it back.
                        response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app))
                        return
                session.session_id = secrets.token_urlsafe(32)
                connection.execute(
                    insert(TABLE).values(
                        id_hash=hash_session_id(session.session_id), created_at=session.created_at or now, **values
                    )
                )
                self._set_cookie(app, response, session.session_id)
            elif session.modified:
                changed = connection.execute(update(TABLE).where(TABLE.c.id_hash == old_hash).values(**values))
                if changed.rowcount == 0:
                    # Ended elsewhere during this request (sign out everywhere): do not bring it back.
                    response.delete_cookie(name, domain=domain, path=path, secure=self.get_cookie_secure(app))
            elif session.last_seen_at is None or now - session.last_seen_at > TOUCH_INTERVAL:
                connection.execute(update(TABLE).where(TABLE.c.id_hash == old_hash).values(last_seen_at=now))

    def _set_cookie(self, app: Flask, response: Response, session_id: str) -> None:
        response.set_cookie(
            self.get_cookie_name(app),
            session_id,
            domain=self.get_cookie_domain(app),
            path=self.get_cookie_path(app),
            secure=self.get_cookie_secure(app),
            httponly=True,
            samesite=self.get_cookie_samesite(app),
        )
        response.vary.add("Cookie")


def _record_timeout(row) -> None:
    model = StaffUser if row.account_kind == "staff" else Patient
    public_id = db.session.execute(select(model.public_id).where(model.id == row.account_id)).scalar_one_or_none()
    record_event(
        action="session_ended",
        actor_type="system",
        object_type=row.account_kind,
        object_id=public_id,
        details={"reason": "timed_out"},
    )
    db.session.commit()


def end_account_sessions(account, *, except_session_id: str | None = None) -> int:
    """End every session of an account (password change, authenticator reset, deactivation, sign out
    everywhere), optionally keeping the current one. Runs in the caller's transaction."""
    statement = delete(TABLE).where(TABLE.c.account_kind == account.kind, TABLE.c.account_id == account.id)
    if except_session_id:
        statement = statement.where(TABLE.c.id_hash != hash_session_id(except_session_id))
    return db.session.execute(statement).rowcount


def enforce_session_limit(account, *, keep_session_id: str | None, limit: int) -> int:
    """Keep at most `limit` signed-in sessions per account: the oldest others are ended (SECURITY E14)."""
    keep_hash = hash_session_id(keep_session_id) if keep_session_id else None
    rows = db.session.execute(
        select(TABLE.c.id_hash)
        .where(TABLE.c.account_kind == account.kind, TABLE.c.account_id == account.id, TABLE.c.stage == "full")
        .order_by(TABLE.c.last_seen_at.desc())
    ).scalars()
    others = [value for value in rows if value != keep_hash]
    surplus = others[max(limit - 1, 0) :]
    if surplus:
        db.session.execute(delete(TABLE).where(TABLE.c.id_hash.in_(surplus)))
    return len(surplus)


def purge_expired_sessions(*, now: datetime, idle: timedelta, absolute: timedelta) -> int:
    """Delete session rows that can no longer be used (run from `flask accounts purge-sessions`): any not seen
    for `idle` (the longest idle timeout), and any older than `absolute`."""
    statement = delete(TABLE).where((TABLE.c.last_seen_at < now - idle) | (TABLE.c.created_at < now - absolute))
    return db.session.execute(statement).rowcount
