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
    # "*": no attribute on every element. Without it ammonia keeps its default generic attributes (lang and
    # title on any element), which the allow-list does not name.
    attributes={"*": set()} | {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    url_schemes=set(ALLOWED_URL_SCHEMES),
    link_rel=LINK_REL,
    strip_comments=True,
    # Whatever is inside these is dropped whole, not kept as text.
    clean_content_tags={"script", "style"},
)

# CommonMark with tables; raw HTML in the source is shown as text, never passed through.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


# Enough for any input the property tests have found (two passes settle it); a bound, so no input can loop.
_MAX_PASSES = 4


def sanitise_html(html: str) -> str:
    """Return `html` with every tag, attribute and URL scheme outside the allow-list removed.

    Cleaned until cleaning changes nothing: removing an element can change how the rest parses (from
    `<a><marquee><a href=x>` the cleaner keeps `<a><a href=x>`, which a parser reads as two sibling links), so
    the output of one pass is not always what a browser would build from it. At the fixed point it is, so the
    page a browser builds is the one that was checked, and sanitising is idempotent (SECURITY X3).
    """
    cleaned = _cleaner.clean(html)
    for _ in range(_MAX_PASSES - 1):
        again = _cleaner.clean(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned


def render_markdown(source: str) -> str:
    """Render Markdown `source` to sanitised HTML. The sanitiser is always the last step."""
    return sanitise_html(_markdown.render(source))
