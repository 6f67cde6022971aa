"""The one Jinja configuration: our templates first, then the NHS.UK design system macros.

`autoescape=True` is set for every template, whatever its extension: the NHS macros are `.jinja` files,
which Flask's default `select_autoescape` would not escape, so user data passed to a macro would otherwise
reach the page as raw HTML.

The formatters in `core.formatters` are registered here as filters (`{{ moment | datetime }}`,
`{{ recording.size_bytes | file_size }}`, `{{ req.status | status_tag }}`), for pages and emails alike.
"""

from flask import Flask
from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader

from core.config import PROJECT_ROOT
from core.formatters import FILTERS

TEMPLATE_FOLDER = PROJECT_ROOT / "templates"


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
