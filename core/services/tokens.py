"""Emailed links: proving an email address, resetting a password, accepting a staff invitation.

A link carries one opaque, random id signed with itsdangerous under a salt of its own purpose, so a token for
one purpose is useless for another. `max_age` is always passed when loading. The `AccountToken` row (which
keeps only the id's SHA-256) decides the rest: a link works once (`used_at` set by an atomic update), and
`void_tokens` cancels outstanding links (a password change voids every reset link).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from core.extensions import db
from core.models.accounts import AccountToken
from core.services.settings import practice_settings


@dataclass(frozen=True)
class Purpose:
    name: str
    lifetime: timedelta


VERIFY_EMAIL = Purpose("verify-email", timedelta(hours=24))
RESET_PASSWORD = Purpose("reset-password", timedelta(hours=1))
STAFF_INVITATION = Purpose("staff-invitation", timedelta(hours=72))
# Sent after staff remove a lost authenticator: setting up a new one needs this link as well as the password.
SET_UP_AGAIN = Purpose("set-up-authenticator", timedelta(hours=72))


def _serializer(purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=f"portal-{purpose.name}")


def issue_token(purpose: Purpose, account, *, now: datetime | None = None) -> str:
    """Create the row for a new link and return the signed token to put in it (caller commits)."""
    now = now or datetime.now(UTC)
    raw_id = secrets.token_urlsafe(24)
    row = AccountToken(
        id=_stored_id(raw_id),
        purpose=purpose.name,
        account_kind=account.kind,
        account_id=account.id,
        created_at=now,
        expires_at=now + purpose.lifetime,
    )
    db.session.add(row)
    return _serializer(purpose).dumps(raw_id)


def _stored_id(raw_id: str) -> str:
    """The row holds only a hash of the id in the link, so a copy of the database holds no working link."""
    return hashlib.sha256(raw_id.encode()).hexdigest()


def _load(purpose: Purpose, token: str, now: datetime) -> AccountToken | None:
    if not isinstance(token, str) or len(token) > 200:
        return None
    try:
        token_id = _serializer(purpose).loads(token, max_age=int(purpose.lifetime.total_seconds()))
    except BadSignature:  # also covers SignatureExpired
        return None
    if not isinstance(token_id, str):
        return None
    row = db.session.execute(
        select(AccountToken).where(AccountToken.id == _stored_id(token_id), AccountToken.purpose == purpose.name)
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    return row


def peek_token(purpose: Purpose, token: str, *, now: datetime | None = None) -> AccountToken | None:
    """The token's row if the link is still good, without using it up (for showing a form)."""
    return _load(purpose, token, now or datetime.now(UTC))


def token_has_expired(purpose: Purpose, token: str, *, now: datetime | None = None) -> bool:
    """Whether `token` is a genuine link of this purpose, neither used nor cancelled, whose time is up: its
    page then says it expired rather than that it does not work. A forged, used or cancelled link is False,
    so only someone holding a real link learns anything, and only that its time passed."""
    now = now or datetime.now(UTC)
    if not isinstance(token, str) or len(token) > 200:
        return False
    serializer = _serializer(purpose)
    signature_expired = False
    try:
        token_id = serializer.loads(token, max_age=int(purpose.lifetime.total_seconds()))
    except SignatureExpired as exc:  # raised only once the signature is known to be good
        signature_expired = True
        token_id = serializer.load_payload(exc.payload) if exc.payload is not None else None
    except BadSignature:
        return False
    if not isinstance(token_id, str):
        return False
    row = db.session.execute(
        select(AccountToken).where(AccountToken.id == _stored_id(token_id), AccountToken.purpose == purpose.name)
    ).scalar_one_or_none()
    if row is None or row.used_at is not None:
        return False
    return signature_expired or row.expires_at <= now


def redeem_token(purpose: Purpose, token: str, *, now: datetime | None = None) -> AccountToken | None:
    """Use the link up and return its row, or None if it is forged, expired, used or voided.

    The conditional UPDATE makes two simultaneous uses of one link end with exactly one success.
    """
    now = now or datetime.now(UTC)
    row = _load(purpose, token, now)
    if row is None:
        return None
    claimed = db.session.execute(
        update(AccountToken).where(AccountToken.id == row.id, AccountToken.used_at.is_(None)).values(used_at=now)
    )
    if claimed.rowcount != 1:
        return None
    return row


def _unused(purpose: Purpose, account) -> tuple:
    """The conditions for this account's links of this purpose that were neither used nor cancelled."""
    return (
        AccountToken.account_kind == account.kind,
        AccountToken.account_id == account.id,
        AccountToken.purpose == purpose.name,
        AccountToken.used_at.is_(None),
    )


def has_unused_token(purpose: Purpose, account, *, since: datetime | None = None) -> bool:
    """Whether a link of this purpose (sent after `since`, if given) is neither used nor cancelled (even if it
    has expired since: the account then needs a new one)."""
    conditions = _unused(purpose, account)
    if since is not None:
        conditions += (AccountToken.created_at > since,)
    return db.session.execute(select(AccountToken.id).where(*conditions)).first() is not None


def void_tokens(purpose: Purpose, account, *, now: datetime | None = None) -> None:
    """Cancel every unused link of this purpose for the account (caller commits)."""
    db.session.execute(update(AccountToken).where(*_unused(purpose, account)).values(used_at=now or datetime.now(UTC)))


def absolute_url_for(endpoint: str, **values) -> str:
    """An address for an email: the portal's address from the practice settings (PUBLIC_BASE_URL unless an
    admin changed it), never the Host header of a request.

    Works in a request, a CLI command or a job alike (the URL map is bound to no host).
    """
    path = current_app.url_map.bind("").build(endpoint, values)
    return practice_settings().public_base_url.rstrip("/") + path
