"""Writing and verifying the audit trail.

`record_event` is called inside a service's transaction, so an event is stored exactly when the change it
describes is. Each row's HMAC covers its own fields and the previous row's HMAC, keyed with
AUDIT_HMAC_KEY from configuration (never stored in the database): editing, deleting or reordering a row
breaks the chain from that row on, and `verify_chain` reports the first break.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, has_request_context, request
from sqlalchemy import select, update

from core.extensions import db
from core.log import current_request_id, logger
from core.models.audit import GENESIS_HMAC, AuditAnchor, AuditChainHead, AuditCheck, AuditEvent
from core.services.db import transactional

SYSTEM_CHECKER = "system"
ACTOR_TYPES = frozenset({"anonymous", "patient", "staff", "system"})
OUTCOMES = frozenset({"success", "failure"})
# Keys that must never appear in audit details: a last line of defence against logging a secret.
FORBIDDEN_DETAIL_KEYS = frozenset({"password", "code", "totp", "token", "recovery_code", "secret", "nhs_number"})


class AuditError(RuntimeError):
    """The audit trail cannot be written; the change that wanted auditing must not happen either."""


@dataclass(frozen=True)
class ChainVerification:
    ok: bool
    checked: int
    broken_seq: int | None = None
    reason: str | None = None
    # The HMAC of the last event checked: the chain's head as this check found it.
    head_hmac: str | None = None


def _canonical(event: AuditEvent) -> bytes:
    fields = [
        event.seq,
        event.occurred_at.isoformat(timespec="microseconds"),
        event.actor_type,
        event.actor_id,
        event.action,
        event.object_type,
        event.object_id,
        event.outcome,
        event.ip_address,
        event.user_agent,
        event.request_id,
        event.details,
        event.prev_hmac,
    ]
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=True).encode()


def _sign(event: AuditEvent) -> str:
    key = current_app.config["AUDIT_HMAC_KEY"].encode()
    return hmac.new(key, _canonical(event), hashlib.sha256).hexdigest()


def _check_details(details: dict) -> str:
    forbidden = sorted(FORBIDDEN_DETAIL_KEYS & {key.lower() for key in details})
    if forbidden:
        raise AuditError(f"audit details must not hold secrets: {forbidden}")
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def record_event(
    *,
    action: str,
    actor_type: str = "system",
    actor_id: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    outcome: str = "success",
    details: dict | None = None,
) -> AuditEvent:
    """Append one event to the trail in the current transaction (the caller commits).

    The source IP, user agent and request id are taken from the request being handled, if any.
    """
    if actor_type not in ACTOR_TYPES:
        raise AuditError(f"unknown actor type {actor_type!r}")
    if outcome not in OUTCOMES:
        raise AuditError(f"unknown outcome {outcome!r}")
    serialised = _check_details(details or {})

    # Take the chain head first: this UPDATE makes any concurrent append wait until we commit.
    claimed = db.session.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1).values(last_seq=AuditChainHead.last_seq + 1)
    )
    if claimed.rowcount != 1:
        raise AuditError("the audit chain head is missing: run the database migrations")
    head = db.session.execute(
        select(AuditChainHead.last_seq, AuditChainHead.last_hmac).where(AuditChainHead.id == 1)
    ).one()

    in_request = has_request_context()
    event = AuditEvent(
        seq=head.last_seq,
        occurred_at=datetime.now(UTC),
        actor_type=actor_type,
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        ip_address=request.remote_addr if in_request else None,
        user_agent=(request.user_agent.string[:300] or None) if in_request else None,
        request_id=current_request_id(),
        details=serialised,
        prev_hmac=head.last_hmac,
    )
    event.row_hmac = _sign(event)
    db.session.add(event)
    db.session.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hmac=event.row_hmac))
    return event


def verify_chain() -> ChainVerification:
    """Walk the whole trail in order, recomputing every HMAC; report the first row that does not fit."""
    expected_seq = 1
    head = db.session.execute(select(AuditChainHead).where(AuditChainHead.id == 1)).scalar_one_or_none()
    if head is None:
        return ChainVerification(ok=False, checked=0, reason="the chain head row is missing")
    last_hmac = GENESIS_HMAC
    checked = 0
    rows = db.session.execute(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000))
    for event in rows.scalars():
        if event.seq != expected_seq:
            return ChainVerification(False, checked, expected_seq, f"event {expected_seq} is missing")
        if event.prev_hmac != last_hmac:
            return ChainVerification(False, checked, event.seq, "it does not follow the event before it")
        if not hmac.compare_digest(event.row_hmac, _sign(event)):
            return ChainVerification(False, checked, event.seq, "its contents were changed after it was written")
        last_hmac = event.row_hmac
        expected_seq += 1
        checked += 1
    if head.last_seq != checked or head.last_hmac != last_hmac:
        return ChainVerification(False, checked, checked + 1, "events after it were removed from the end")
    anchored = _first_broken_anchor(checked)
    if anchored is not None:
        return anchored
    return ChainVerification(ok=True, checked=checked, head_hmac=last_hmac)


def _first_broken_anchor(checked: int) -> ChainVerification | None:
    """Every daily anchor must still be in the chain, with the HMAC it had: a trail cut back past an anchor
    (with its head row moved back to match) is caught here, even though what remains chains perfectly."""
    anchors = db.session.execute(select(AuditAnchor).order_by(AuditAnchor.seq)).scalars()
    for anchor in anchors:
        if anchor.seq > checked:
            return ChainVerification(
                False,
                checked,
                checked + 1,
                f"events up to {anchor.seq}, anchored on {anchor.recorded_at:%Y-%m-%d}, are missing",
            )
        row_hmac = db.session.execute(select(AuditEvent.row_hmac).where(AuditEvent.seq == anchor.seq)).scalar_one()
        if not hmac.compare_digest(row_hmac, anchor.row_hmac):
            return ChainVerification(False, checked, anchor.seq, "it is not the event anchored at this number")
    return None


@transactional
def record_anchor(result: ChainVerification) -> AuditAnchor | None:
    """Keep the head an intact check found (its event number and HMAC) as an anchor, and say it in the log,
    which the portal cannot rewrite. Nothing is anchored for a broken or empty chain."""
    if not result.ok or not result.checked or result.head_hmac is None:
        return None
    anchor = AuditAnchor(recorded_at=datetime.now(UTC), seq=result.checked, row_hmac=result.head_hmac)
    db.session.add(anchor)
    logger.info(
        "audit chain anchored at event %s, HMAC %s",
        result.checked,
        result.head_hmac,
        extra={"audit_anchor_seq": result.checked, "audit_anchor_hmac": result.head_hmac},
    )
    return anchor


@transactional
def record_chain_check(result: ChainVerification, *, checked_by=None) -> AuditCheck:
    """Store the result of `verify_chain` as an AuditCheck, so the audit viewer can show when the chain was last
    checked, by whom and where it broke, without walking the whole trail on every page view; and audit the
    check itself (`audit_chain_checked`, outcome "failure" when the chain is broken).

    `checked_by` is the member of staff who asked for it, or None for the scheduled `flask audit verify`.
    """
    check = AuditCheck(
        checked_at=datetime.now(UTC),
        ok=result.ok,
        checked=result.checked,
        broken_seq=result.broken_seq,
        reason=result.reason[:300] if result.reason else None,
        checked_by=checked_by.public_id if checked_by is not None else SYSTEM_CHECKER,
    )
    db.session.add(check)
    who = {"actor_type": checked_by.kind, "actor_id": checked_by.public_id} if checked_by is not None else {}
    record_event(
        action="audit_chain_checked",
        **who,
        object_type="audit_chain",
        outcome="success" if result.ok else "failure",
        details={
            "intact": result.ok,
            "checked": result.checked,
            "broken_seq": result.broken_seq,
            "reason": result.reason,
        },
    )
    return check
