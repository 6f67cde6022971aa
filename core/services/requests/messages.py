"""What the patient is sent about their request. Emails say only that there is an update and ask the patient
to sign in: never what the calls were about (DESIGN §6)."""

from __future__ import annotations

from core.jinja import render_email
from core.models.requests import RecordingRequest
from core.services.email import queue_email
from core.services.requests.lifecycle import RequestError
from core.services.settings import practice_settings
from core.services.tokens import absolute_url_for

RIGHTS_TEXT = (
    "If you are unhappy with how we have handled your request, you can complain to us using the complaint form "
    "on your request's page. You also have the right to complain to the Information Commissioner's Office "
    "(ICO): https://ico.org.uk/make-a-complaint/ or 0303 123 1113. You also have the right to ask a court to "
    "order us to comply with your request (UK GDPR Article 79)."
)


def email_patient(req: RecordingRequest, template: str, **context) -> None:
    """Tell the patient there is an update (`templates/emails/requests/<template>.txt`); what it is waits
    behind sign-in. The template gets the reference, the link and dates, never the request's text."""
    if req.patient is None:
        return  # Logged for someone without an account: staff reply by the route the request came in.
    subject, body = render_email(
        f"requests/{template}.txt",
        greeting=f"Dear {req.patient.given_name},",
        practice_name=practice_settings().practice_name,
        reference=req.reference,
        link=absolute_url_for("portal.request_detail", reference=req.reference),
        **context,
    )
    queue_email(to=req.patient.email, subject=subject, body=body)


def require_text(value: str, message: str) -> str:
    """`value` without surrounding spaces; RequestError with `message` when nothing is left."""
    value = (value or "").strip()
    if not value:
        raise RequestError(message)
    return value
