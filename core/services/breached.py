"""Is a password known from data breaches? The Pwned Passwords range API, by k-anonymity (SECURITY B8).

Only the first 5 hex characters of the password's SHA-1 leave the process; the service answers with every
suffix it knows for that prefix (padded with fake ones, `Add-Padding`), and the comparison happens here. The
check is off unless PWNED_PASSWORDS_URL is set (production: https://api.pwnedpasswords.com/range/).

When the service cannot be reached, `is_breached` says so (None) and the caller decides: staff passwords are
refused until it can be checked (fail closed), a patient's is accepted and the failure logged (fail open), so
an outage elsewhere never stops a patient from registering. The zxcvbn list in `passwords` always applies.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from flask import current_app

from core.log import logger

PREFIX_LENGTH = 5
MAX_RESPONSE_BYTES = 2 * 1024 * 1024


def is_breached(password: str) -> bool | None:
    """True if the password is in the breach corpus, False if not, None if it could not be checked (or the
    check is switched off)."""
    base = current_app.config.get("PWNED_PASSWORDS_URL") or ""
    if not base:
        return None
    if urlsplit(base).scheme not in ("https", "http"):
        raise ValueError("PWNED_PASSWORDS_URL must be an http(s) address")
    digest = hashlib.sha1(password.encode("utf-8"), usedforsecurity=False).hexdigest().upper()
    prefix, suffix = digest[:PREFIX_LENGTH], digest[PREFIX_LENGTH:]
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        base.rstrip("/") + "/" + prefix, headers={"Add-Padding": "true", "User-Agent": "call-recording-portal"}
    )
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            request, timeout=current_app.config["PWNED_PASSWORDS_TIMEOUT_SECONDS"]
        ) as response:
            body = response.read(MAX_RESPONSE_BYTES).decode("ascii", errors="replace")
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        logger.warning("breached-password check unavailable: %s", type(exc).__name__)
        return None
    for line in body.splitlines():
        candidate, _, count = line.strip().partition(":")
        if candidate.upper() == suffix and count.strip() not in ("", "0"):
            return True
    return False
