"""What the sign-in pages of both areas share: the journey (which area's pages these are), form pages, the
answer to a link that does not work, and the recovery codes kept for their download button."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Response, current_app, make_response, render_template, request, url_for

from core import crypto
from core.auth import current_session, follow_emailed_link
from core.forms import FormErrors, PortalForm
from core.services.settings import practice_settings
from core.services.tokens import peek_token, token_has_expired

# Where the app keeps each area's journey, by blueprint name (see core.auth_views).
JOURNEYS = "sign-in-journeys"


@dataclass(frozen=True)
class Journey:
    kind: str  # "patient" or "staff"
    blueprint: str  # "portal" or "admin"
    home: str  # endpoint to land on after signing in
    prefix: str  # URL prefix of the account pages within the blueprint
    area: str  # the part of the site a `next` address after sign-in may point into

    def url(self, view: str, **values) -> str:
        return url_for(f"{self.blueprint}.{view}", **values)

    def names(self, account) -> tuple[str, ...]:
        return (account.given_name, account.family_name) if self.kind == "patient" else tuple(account.name.split())


def current_journey() -> Journey:
    """The journey of the area (blueprint) this request is in."""
    return current_app.extensions[JOURNEYS][request.blueprint]


def form_page(template: str, form: PortalForm, errors: FormErrors | None = None, **context) -> tuple[str, int]:
    """A form's page, with the form's own errors after `errors` (a service's refusals): status 400 if any."""
    errors = errors if errors is not None else FormErrors()
    for field_id, message in form.page_errors().items():
        errors.add(field_id, message)
    return render_template(template, form=form, errors=errors, **context), 400 if errors else 200


def link_invalid(journey: Journey, purpose=None, token: str | None = None):
    """The answer to a link that is forged, expired, used or cancelled: "This link does not work" (404).

    Given the link's `purpose` and `token`, a genuine link whose time ran out says so, and how long links
    last; a forged, used or cancelled one gets the general wording."""
    expired_after = None
    if purpose is not None and token and token_has_expired(purpose, token):
        hours = int(purpose.lifetime.total_seconds() // 3600)
        expired_after = f"{hours} hour" if hours == 1 else f"{hours} hours"
    return render_template("shared/auth/link-invalid.html", journey=journey, expired_after=expired_after), 404


def open_emailed_link(purpose, token: str, form_endpoint: str, journey: Journey):
    """The GET of a link from an email: "This link does not work" (404), or on to its token-less form page."""
    row = peek_token(purpose, token)
    if row is None or row.account_kind != journey.kind:
        return link_invalid(journey, purpose if row is None else None, token)
    return follow_emailed_link(purpose.name, token, form_endpoint)


# Recovery codes can be downloaded only straight after they are shown, in the same session: kept encrypted in
# the server-side session (never in plain text), for this long, and forgotten at the next page of the area.
RECOVERY_CODES_KEY = "recovery-codes"
RECOVERY_CODES_DOWNLOAD_WINDOW = timedelta(minutes=10)
RECOVERY_CODES_FILENAME = "recovery-codes.txt"


def show_recovery_codes(journey: Journey, codes: list[str]):
    """The page that shows new recovery codes once, keeping them (encrypted) for its download button."""
    kept = {"codes": codes, "shown_at": datetime.now(UTC).isoformat()}
    current_session()[RECOVERY_CODES_KEY] = crypto.encrypt(crypto.RECOVERY_CODES, json.dumps(kept))
    return render_template("shared/auth/recovery-codes.html", codes=codes, journey=journey)


def codes_kept_for_download() -> list[str] | None:
    stored = current_session().get(RECOVERY_CODES_KEY)
    if not isinstance(stored, str):
        return None
    try:
        kept = json.loads(crypto.decrypt(crypto.RECOVERY_CODES, stored))
        shown_at = datetime.fromisoformat(kept["shown_at"])
        codes = [code for code in kept["codes"] if isinstance(code, str)]
    except (crypto.DecryptionError, ValueError, KeyError, TypeError):
        return None
    if datetime.now(UTC) - shown_at > RECOVERY_CODES_DOWNLOAD_WINDOW:
        return None
    return codes


def recovery_codes_file(codes: list[str]) -> Response:
    """The codes as a text file to keep: an attachment that no browser or proxy stores, and that runs nothing."""
    lines = [
        f"Recovery codes for your {practice_settings().practice_name} account ({current_app.config['SERVICE_NAME']}).",
        "Each code works once. Keep them safe and share them with nobody.",
        "",
        *(f"{number}. {code}" for number, code in enumerate(codes, start=1)),
        "",
    ]
    response = make_response("\r\n".join(lines))
    response.mimetype = "text/plain"  # sent as "text/plain; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{RECOVERY_CODES_FILENAME}"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def forget_recovery_codes_elsewhere() -> None:
    """Before every page of an area: any page but the download forgets the codes kept for its button."""
    if request.endpoint != f"{request.blueprint}.download_recovery_codes" and RECOVERY_CODES_KEY in current_session():
        current_session().pop(RECOVERY_CODES_KEY)
