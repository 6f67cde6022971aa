"""The notice editor in Chromium (issue 5's "done when", SECURITY X5 and X6).

An admin signs in, edits the call-recording notice, previews it, publishes it; an anonymous reader, in a
browser of their own, sees the public page change; the admin compares the two versions and rolls back, and the
reader sees the old text again. Then the admin publishes a hostile payload, and the stored HTML is replaced by
a worse one (as if written before today's sanitiser): the reader's page opens no dialog, never sets
`window.__xss`, breaks no CSP rule and fetches nothing from another origin. axe-core checks the content list,
the editor, the preview, the history, the diff and a version's page.

The axe results are written to test-artifacts/axe-results-notice-editor.json.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import update

from core.extensions import db
from core.models import NoticeVersion
from core.sanitise import ALLOWED_TAGS
from tests.accounts_support import make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import Journey, sign_in_as

pytestmark = pytest.mark.browser

axe_summary = axe_summary_writer("axe-results-notice-editor.json")

NOTICE_PATH = "/call-recording-notice"
EDITOR_HEADING = "Edit: Recording of telephone calls"
NEW_TEXT = (
    "## Why we record calls\n\n"
    "We record calls to keep an accurate record and to help train our staff.\n\n"
    "| Kept for | Who can listen |\n| --- | --- |\n| 3 years | The practice manager |\n\n"
    "Ask us for a copy: [email the practice](mailto:practice@example.org)."
)
# Written in the editor (Markdown: raw HTML is shown as text, never run).
HOSTILE_SOURCE = (
    "Hostile payload below.\n\n"
    "<script>window.__xss = 'script'</script>\n\n"
    "<img src=https://evil.example/pixel.png onerror=\"window.__xss = 'img'; alert('img')\">\n\n"
    "[click me](javascript:window.__xss='link') and [data](data:text/html,<script>alert(1)</script>)\n\n"
    "![tracking pixel](https://evil.example/track.gif)\n\n"
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>'
)
# Put straight into the stored HTML, as if an older sanitiser had let it through: only the render-time
# sanitiser stands between it and the reader.
HOSTILE_STORED_HTML = (
    "<p>Stored payload.</p>"
    "<script>window.__xss = 'stored script'</script>"
    '<img src="https://evil.example/stored.png" onerror="window.__xss = \'stored img\'; alert(2)">'
    '<svg onload="window.__xss = \'svg\'"><image href="https://evil.example/svg.png"></image></svg>'
    "<details open ontoggle=\"window.__xss = 'details'\"><summary>x</summary></details>"
    '<iframe src="https://evil.example/frame"></iframe>'
    '<link rel="stylesheet" href="https://evil.example/style.css">'
    '<base href="https://evil.example/">'
    '<meta http-equiv="refresh" content="0;url=https://evil.example/">'
    '<p style="background:url(https://evil.example/bg.png)">styled</p>'
    '<form action="https://evil.example/"><input autofocus onfocus="window.__xss = \'input\'"></form>'
    "<a href=\"jav&#x09;ascript:window.__xss='obfuscated'\">obfuscated</a>"
    '<object data="https://evil.example/object"></object><embed src="https://evil.example/embed">'
    '<noscript><p title="</noscript><img src=x onerror=alert(3)>"></noscript>'
    "<svg><style><img src=x onerror=\"window.__xss = 'mxss'\"></style></svg>"
)


def public_text(reader: Journey) -> str:
    reader.goto(NOTICE_PATH)
    return reader.page.locator(".portal-content").inner_text()


def test_an_admin_edits_previews_publishes_compares_and_rolls_back_the_notice(app, journeys):
    admin = make_staff(email="alex.admin@practice.example", name="Alex Admin", role="admin")
    db.session.commit()
    db.session.rollback()  # let go of the database: the live server writes next

    reader = journeys("reader")
    original = public_text(reader)
    assert "We may record telephone calls" in original

    editor = journeys("admin")
    page = editor.page
    sign_in_as(editor, admin)
    editor.goto("/admin/content")
    editor.check("content pages", "Content pages")
    page.get_by_role("link", name="Recording of telephone calls", exact=True).click()
    editor.check("editor", EDITOR_HEADING)

    # Preview: shown on the editor page, nothing published.
    page.get_by_label("Page text").fill(NEW_TEXT)
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview).to_be_visible()
    expect(preview.locator("h2", has_text="Why we record calls")).to_be_visible()
    expect(preview.locator("table th", has_text="Kept for")).to_be_visible()
    editor.check("editor with a preview", EDITOR_HEADING)
    assert "help train our staff" not in public_text(reader)

    # Publish: the anonymous reader sees the new text at once.
    page.get_by_label("Summary of the change").fill("Plainer wording, with a table")
    page.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(editor.url_pattern("/admin/content/call-recording-notice/versions"))
    editor.check("version history", "Versions of Recording of telephone calls")
    assert "help train our staff" in public_text(reader)
    assert "Last updated" in reader.page.locator(".portal-last-updated").inner_text()

    # Compare version 1 with version 2.
    page.get_by_label("Compare version").select_option("1")
    page.get_by_label("With version").select_option("2")
    page.get_by_role("button", name="Show the changes").click()
    editor.check("diff", "Changes from version 1 to version 2")
    added = page.locator("tr.portal-diff__added ins")
    expect(added.filter(has_text="help train our staff")).to_have_count(1)
    expect(page.locator("tr.portal-diff__removed").first).to_contain_text("Removed")

    # Roll back to version 1: a new version 3 with the old text.
    page.get_by_role("link", name="Version 1", exact=True).click()
    editor.check("version 1", "Version 1 of Recording of telephone calls")
    page.get_by_role("button", name="Roll back to this version").click()
    expect(page).to_have_url(editor.url_pattern("/admin/content/call-recording-notice/versions"))
    expect(page.locator("tbody tr").first).to_contain_text("Rolled back to version 1")
    assert public_text(reader) == original

    # X5: a hostile payload, through the editor and then straight into the stored HTML.
    _publish_hostile_payload(editor)
    _assert_the_reader_runs_nothing(reader, expect_text="Hostile payload below.")
    db.session.rollback()
    db.session.execute(
        update(NoticeVersion)
        .where(NoticeVersion.slug == "call-recording-notice", NoticeVersion.version == 4)
        .values(html=HOSTILE_STORED_HTML, content_sha256="f" * 64)  # a new hash: caches render it afresh
    )
    db.session.commit()
    _assert_the_reader_runs_nothing(reader, expect_text="Stored payload.")


def _publish_hostile_payload(editor: Journey) -> None:
    page = editor.page
    editor.goto("/admin/content/call-recording-notice")
    page.get_by_label("Page text").fill(HOSTILE_SOURCE)
    page.get_by_label("Summary of the change").fill("Hostile payload for the X5 test")
    page.get_by_role("button", name="Publish").click()
    expect(page).to_have_url(editor.url_pattern("/admin/content/call-recording-notice/versions"))


def _assert_the_reader_runs_nothing(reader: Journey, *, expect_text: str) -> None:
    """SECURITY X5: no dialog, no script run, no request to another origin, no CSP violation."""
    dialogs: list[str] = []

    def record_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    reader.page.on("dialog", record_dialog)
    requests_before = len(reader.requests)
    try:
        reader.goto(NOTICE_PATH)
        reader.page.wait_for_load_state("networkidle")
        reader.page.wait_for_timeout(300)  # give any timer, toggle or focus handler a chance to fire
        new_requests = reader.requests[requests_before:]
        assert [url for url in new_requests if "evil.example" in url] == []
        assert reader.foreign_requests() == []
        assert reader.page.url == reader.url(NOTICE_PATH)  # no meta refresh, no navigation
        assert dialogs == []
        assert reader.page.evaluate("window.__xss") is None
        assert reader.page.evaluate("window.__cspViolations") == []
        content = reader.page.locator(".portal-content")
        expect(content).to_contain_text(expect_text)
        links = content.locator("a[href]").evaluate_all(
            "links => links.map(link => link.origin === location.origin ? 'same origin' : link.protocol)"
        )
        assert set(links) <= {"https:", "mailto:", "tel:", "same origin"}, links
        elements = content.locator("*").evaluate_all("nodes => nodes.map(node => node.localName)")
        assert set(elements) <= ALLOWED_TAGS, elements
    finally:
        reader.page.remove_listener("dialog", record_dialog)
