"""Rate limits on sign-in and other guessable forms (SECURITY C1-C7), with Flask-Limiter.

Limits come from configuration, so production can tighten them, and are kept in RATELIMIT_STORAGE_URI
(Redis in production, so every worker shares them). Every attempt counts, and it is counted (atomically, in
the store) before the password or code is checked: attempts sent in parallel cannot slip past a limit, as
they could if only failures were counted after the fact. Each limit
is a ladder (per minute, per 5 minutes, per hour), so repeated failures wait longer and longer, and every
window expires: there is no permanent lock-out (C4). A limited request gets the same 429 page whether the
password was right or not, because the limit is checked before the password is (C3). A breach is audited.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, session

from core.services.audit import record_event
from core.services.db import transactional


def configured_limit(name: str) -> Callable[[], str]:
    """The limit string in RATELIMIT_<name>, read at request time (so tests and deployments can change it)."""

    def limit() -> str:
        return current_app.config[f"RATELIMIT_{name}"]

    return limit


@transactional
def _record_breach(scope: str, limit: str) -> None:
    record_event(
        action="authn_login_fail_max" if scope in ("account", "code") else "excess_rate_limit_exceeded",
        actor_type=session.account_kind or "anonymous",
        outcome="failure",
        details={"scope": scope, "limit": limit},
    )


def on_breach(scope: str):
    def breached(request_limit) -> None:
        _record_breach(scope, str(request_limit.limit))

    return breached
