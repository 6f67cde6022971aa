"""Reaching into the server-side session store, as someone who can write to the session table could."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.extensions import db
from core.models.accounts import WebSession


def tamper_with_session_value(key: str) -> int:
    """Change one character in the middle of the encrypted value kept under `key` in every session that holds
    one, as an edit of the session table would. Returns how many sessions were changed."""
    changed = 0
    for row in db.session.execute(select(WebSession)).scalars():
        data = json.loads(row.data)
        value = data.get(key)
        if not isinstance(value, str):
            continue
        middle = len(value) // 2
        data[key] = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1 :]
        row.data = json.dumps(data, separators=(",", ":"))
        changed += 1
    db.session.commit()
    return changed
