"""The one kind of error a service raises when it refuses what it was asked: `ServiceError`.

Its message is fit to show the person who asked. A refusal about one answer names that answer's form field
(`field="reason"`); one about several answers carries `problems` (field -> message, in the order of the page).
Views show each message beside the field it names (`core.forms.PortalForm.add_service_error`) and never read
the message's words to decide where it goes. A refusal that names no field is about the whole action (the
request's state no longer allows it, say) and is shown against the page's main question.
"""

from __future__ import annotations


class ServiceError(ValueError):
    def __init__(self, message: str = "", *, field: str | None = None, problems: dict[str, str] | None = None):
        self.problems: dict[str | None, str] = dict(problems) if problems else {field: message}
        self.field = field if field is not None else (next(iter(self.problems)) if problems else None)
        super().__init__(message or next(iter(self.problems.values())))
