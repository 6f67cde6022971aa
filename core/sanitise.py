"""The one HTML sanitiser: every piece of admin-authored HTML passes through `sanitise_html`.

nh3 (Rust ammonia) with one explicit allow-list. bleach is not used: its README says it has been
unmaintained since 2026-06-05, with no further security releases. Output is for HTML element context only
(never an attribute, script, style or JSON context).
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "h2", "h3", "h4", "p", "br", "strong", "em", "ul", "ol", "li", "a",
        "blockquote", "table", "thead", "tbody", "tr", "th", "td", "abbr", "hr",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}}
ALLOWED_URL_SCHEMES = frozenset({"https", "mailto", "tel"})
LINK_REL = "noopener noreferrer"

_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(ALLOWED_URL_SCHEMES),
    link_rel=LINK_REL,
    strip_comments=True,
    # Whatever is inside these is dropped whole, not kept as text.
    clean_content_tags={"script", "style"},
)

# CommonMark with tables; raw HTML in the source is shown as text, never passed through.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def sanitise_html(html: str) -> str:
    """Return `html` with every tag, attribute and URL scheme outside the allow-list removed."""
    return _cleaner.clean(html)


def render_markdown(source: str) -> str:
    """Render Markdown `source` to sanitised HTML. The sanitiser is always the last step."""
    return sanitise_html(_markdown.render(source))
