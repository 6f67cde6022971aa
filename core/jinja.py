"""The one Jinja configuration: our templates first, then the NHS.UK design system macros.

`autoescape=True` is set for every template, whatever its extension: the NHS macros are `.jinja` files,
which Flask's default `select_autoescape` would not escape, so user data passed to a macro would otherwise
reach the page as raw HTML.

The formatters in `core.formatters` are registered here as filters (`{{ moment | datetime }}`,
`{{ recording.size_bytes | file_size }}`, `{{ req.status | status_tag }}`), for pages and emails alike.

Emails are plain text, one template per message under `templates/emails/`, rendered by `render_email` in an
environment of their own: `.txt` templates are not escaped (an `&` in a practice's name must stay `&`, and a
plain-text body is never read as HTML), anything else would be; a missing value is an error, not a blank; and
there is no HTML part, so nothing in an email is ever markup. Each template has a `subject` block and a
`body` block; the body extends `emails/_layout.txt` (greeting, text, practice name).
"""

from __future__ import annotations

import functools

from flask import Flask
from jinja2 import (
    ChainableUndefined,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from core.config import PROJECT_ROOT
from core.formatters import FILTERS

TEMPLATE_FOLDER = PROJECT_ROOT / "templates"
EMAIL_TEMPLATE_FOLDER = TEMPLATE_FOLDER / "emails"


def configure_jinja(app: Flask) -> None:
    """Set the loader, undefined handling and escaping for `app`, before any template is loaded."""
    app.jinja_options = {
        **app.jinja_options,
        "loader": ChoiceLoader([FileSystemLoader(str(TEMPLATE_FOLDER)), PackageLoader("nhsuk_frontend_jinja")]),
        "undefined": ChainableUndefined,
        "autoescape": True,
    }
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)


@functools.cache
def email_environment() -> Environment:
    """The environment for email templates (see the module's docstring)."""
    environment = Environment(
        loader=FileSystemLoader(str(EMAIL_TEMPLATE_FOLDER)),
        autoescape=select_autoescape(enabled_extensions=(), disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(FILTERS)
    return environment


def render_email(name: str, **context) -> tuple[str, str]:
    """The subject (one line) and the plain-text body of the email template `name`, e.g.
    `render_email("accounts/password-changed.txt", greeting="Dear Sam,", ...)`."""
    template = email_environment().get_template(name)
    subject = "".join(template.blocks["subject"](template.new_context(context))).strip()
    return " ".join(subject.split()), template.render(context)
