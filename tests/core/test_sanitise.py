"""The sanitiser's allow-list. (The full hostile corpus and property tests come with the notice editor.)"""

from __future__ import annotations

import pytest

from core.sanitise import render_markdown, sanitise_html


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "<svg><script>alert(1)</script></svg>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        '<iframe src="https://example.org"></iframe>',
        '<p style="background:url(javascript:alert(1))">x</p>',
        '<meta http-equiv="refresh" content="0;url=https://example.org">',
        '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    ],
)
def test_hostile_html_loses_everything_outside_the_allow_list(payload):
    cleaned = sanitise_html(payload).lower()
    for forbidden in ("<script", "onerror", "javascript:", "data:", "<iframe", "style=", "<meta", "<img", "<svg"):
        assert forbidden not in cleaned


def test_allowed_markup_survives_and_links_get_a_safe_rel():
    html = sanitise_html('<h2>Title</h2><p><a href="mailto:a@example.org" title="Email">mail</a></p>')
    assert (
        html == '<h2>Title</h2><p><a href="mailto:a@example.org" title="Email" rel="noopener noreferrer">mail</a></p>'
    )


def test_markdown_tables_and_phone_links_render():
    html = render_markdown("| Day | Hours |\n| --- | --- |\n| Monday | 8 to 6 |\n\n[Call](tel:02083335000)")
    assert "<table>" in html
    assert "<th>Day</th>" in html
    assert 'href="tel:02083335000"' in html


def test_raw_html_in_markdown_is_shown_as_text_not_markup():
    assert render_markdown("<b>bold</b>") == "<p>&lt;b&gt;bold&lt;/b&gt;</p>\n"
