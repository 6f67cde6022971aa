"""The notice editor: preview, drafts, publishing, version history, diffs and roll-back (DESIGN §7; SECURITY X2,
X7, X8, X9, E12, G4).

Every journey goes through the real pages with CSRF on, as an admin would use them, and looks at what the
public (a browser that is not signed in) and the audit trail see afterwards.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from bs4 import BeautifulSoup
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from core.extensions import db
from core.factory import create_app
from core.models import NoticeVersion
from core.models.audit import AuditEvent
from core.services import content
from core.services import requests as requests_service
from tests.accounts_support import SignInAccount, make_patient, make_staff, post_form, signed_in_browser
from tests.conftest import check_page, https_client_for

NOTICE = "call-recording-notice"
EDITOR = f"/admin/content/{NOTICE}"
NOW = datetime(2026, 3, 9, 10, 0, 15, tzinfo=UTC)


@pytest.fixture
def admin() -> SignInAccount:
    return make_staff(email="admin@practice.example", name="Ava Admin", role="admin")


@pytest.fixture
def admin_browser(app, admin) -> FlaskClient:
    return signed_in_browser(app, admin)


def parse(response) -> BeautifulSoup:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    check_page(soup)
    return soup


def send_editor(client: FlaskClient, action: str, *, title: str = "Recording of telephone calls", **fields):
    """Press `action` (preview, draft or publish) on the editor with these fields."""
    data = {"action": action, "title": title, "source": fields.get("source", ""), **fields}
    data["change-summary"] = data.pop("summary", "")
    return post_form(client, EDITOR, data)


def public_text(path: str = f"/{NOTICE}") -> str:
    """The public page as an anonymous reader sees it (a browser with no cookies)."""
    from flask import current_app

    response = https_client_for(current_app._get_current_object()).get(path)
    assert response.status_code == 200
    return parse(response).get_text(" ", strip=True)


def version_numbers(slug: str = NOTICE) -> list[int]:
    db.session.rollback()
    return [version.version for version in content.page_versions(slug)]


def events(action: str) -> list[dict]:
    """(actor_type, actor_id, object_id, details) of each audit event `action`, oldest first."""
    db.session.rollback()
    rows = db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)).scalars()
    return [
        {"actor": (row.actor_type, row.actor_id), "object_id": row.object_id, "details": json.loads(row.details)}
        for row in rows
    ]


def error_summary(response) -> str:
    assert response.status_code == 400, response.status_code
    soup = parse(response)
    assert soup.title.get_text(strip=True).startswith("Error: ")
    summary = soup.select_one(".nhsuk-error-summary")
    assert summary is not None, "no error summary"
    return summary.get_text(" ", strip=True)


def published_hash(slug: str = NOTICE) -> str:
    db.session.rollback()
    return content.current_version(slug).content_sha256


# --- Preview, drafts, publishing -------------------------------------------------------------------------


def test_the_editor_opens_on_the_published_text_with_a_formatting_guide(admin_browser):
    page = parse(admin_browser.get(EDITOR))
    published = content.get_version(NOTICE, 1)
    assert page.select_one("textarea#source").get_text() == published.source_text
    assert page.select_one("input#title")["value"] == published.title
    guide = " ".join(page.select_one("details").get_text(" ", strip=True).split())
    for topic in ("## Heading", "- item", "[link text](https://www.example.org)", "| Day | Hours |", "**bold**"):
        assert topic in guide
    assert "HTML typed into the page is not allowed" in guide
    buttons = [button.get_text(strip=True) for button in page.select("form button[name=action]")]
    assert buttons == ["Preview", "Save as draft", "Publish"]  # Preview first: it is what Enter does


def test_the_editor_names_the_page_and_says_the_first_version_came_with_the_portal(admin_browser):
    page = parse(admin_browser.get(EDITOR))
    assert page.h1.get_text(strip=True) == "Edit: Recording of telephone calls"
    assert page.title.get_text(strip=True).startswith("Edit: Recording of telephone calls")
    said = " ".join(page.select_one("main").get_text(" ", strip=True).split())
    assert "The public page shows version 1, installed with the portal on " in said
    assert "Default content" not in said
    listing = " ".join(parse(admin_browser.get("/admin/content")).select_one("main").get_text(" ", strip=True).split())
    assert ", installed with the portal" in listing and "Default content" not in listing


def test_preview_shows_the_page_as_it_will_look_sanitised_and_saves_nothing_x2(admin_browser):
    """A preview renders through the same pipeline as publishing (raw HTML shows as text, a javascript: link is
    not made a link) and writes nothing: no version, no audit event, the public page unchanged."""
    before_versions, before_events = version_numbers(), db.session.execute(select(func.count(AuditEvent.seq))).scalar()
    source = (
        "## Opening hours\n\nWe are open **every** weekday.\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1))"
    )

    response = send_editor(admin_browser, "preview", title="Calls we record", source=source)

    assert response.status_code == 200
    page = parse(response)
    preview = page.select_one("#preview")
    assert preview is not None, "no preview box"
    assert "Preview: not saved or published" in preview.get_text(" ", strip=True)
    assert preview.select_one("h2:not(.nhsuk-card__heading)").get_text() == "Opening hours"
    assert preview.select_one("strong").get_text() == "every"
    assert "<script>alert(1)</script>" in preview.get_text()  # shown as text
    assert preview.select("script") == []
    assert preview.select("a") == []  # markdown-it refuses the javascript: address; the text stays
    assert "[bad](javascript:alert(1))" in preview.get_text()
    assert page.select_one("textarea#source").get_text() == source  # the text stays in the form
    assert version_numbers() == before_versions
    assert db.session.execute(select(func.count(AuditEvent.seq))).scalar() == before_events
    assert "Opening hours" not in public_text()


def test_a_draft_is_saved_as_a_version_but_is_not_public_and_the_editor_opens_on_it_x8(admin_browser, admin):
    response = send_editor(admin_browser, "draft", source="## Draft wording\n\nNot yet.", summary="Trying words")

    assert response.status_code == 302 and response.headers["Location"] == EDITOR
    assert version_numbers() == [2, 1]
    draft = content.get_version(NOTICE, 2)
    assert draft.published_at is None
    assert draft.author_label == "Ava Admin"
    assert "Draft wording" not in public_text()
    editor = parse(admin_browser.get(EDITOR))
    assert editor.select_one("textarea#source").get_text() == "## Draft wording\n\nNot yet."
    assert "You are editing draft version 2" in editor.get_text(" ", strip=True)
    listing = parse(admin_browser.get("/admin/content")).get_text(" ", strip=True)
    assert "Version 2, saved" in listing and "by Ava Admin" in listing
    [event] = events("content.draft_saved")
    assert event["actor"] == ("staff", admin.account.public_id)
    assert event["object_id"] == NOTICE
    assert event["details"]["version"] == 2
    assert event["details"]["before_sha256"] == published_hash()  # the text the public still sees
    assert event["details"]["after_sha256"] == draft.content_sha256
    assert event["details"]["author"] == "Ava Admin"


def test_publishing_makes_the_text_public_with_last_updated_and_audits_both_hashes_x8(app, admin):
    with time_machine.travel(NOW, tick=False):
        admin_browser = signed_in_browser(app, admin)
        before = published_hash()
        response = send_editor(
            admin_browser, "publish", source="## New wording\n\nWe record calls.", summary="Plainer English"
        )

        assert response.status_code == 302
        assert response.headers["Location"] == f"{EDITOR}/versions"
        public = https_client_for(app).get(f"/{NOTICE}")
        history = parse(admin_browser.get(f"{EDITOR}/versions")).get_text(" ", strip=True)
    page = parse(public)
    assert page.select_one(".portal-content h2").get_text() == "New wording"
    last_updated = page.select_one(".portal-last-updated")
    assert last_updated.get_text(" ", strip=True) == "Last updated: 9 March 2026"
    assert last_updated.select_one("time")["datetime"] == "2026-03-09"
    version = content.get_version(NOTICE, 2)
    assert (version.change_summary, version.author_label) == ("Plainer English", "Ava Admin")
    [event] = events("content.published")[-1:]
    assert event["actor"] == ("staff", admin.account.public_id)
    assert (event["details"]["before_sha256"], event["details"]["after_sha256"]) == (before, version.content_sha256)
    assert before != version.content_sha256
    assert "Version 2 is published" in history
    assert "Plainer English" in history


def test_publishing_needs_a_summary_of_the_change_and_every_problem_is_named_at_once(admin_browser):
    response = send_editor(admin_browser, "publish", title=" ", source="  ", summary="")
    summary = error_summary(response)
    assert "Enter a page title." in summary
    assert "Enter the page text." in summary
    assert "Enter a summary of the change." in summary
    assert version_numbers() == [1]
    assert events("content.published")[-1]["actor"] == ("system", None)  # only the default content's


def test_publishing_the_text_the_public_page_already_shows_is_refused(admin_browser):
    published = content.get_version(NOTICE, 1)
    response = send_editor(admin_browser, "publish", source=published.source_text, summary="No change")
    assert "already shows this title and text" in error_summary(response)
    assert version_numbers() == [1]


def test_text_over_the_size_limit_is_refused_with_a_clear_message_and_given_back_whole_x9(admin_browser):
    source = "a" * (content.MAX_SOURCE_LENGTH + 10)
    response = send_editor(admin_browser, "draft", source=source)
    assert "Page text must be 100,000 characters or fewer." in error_summary(response)
    assert parse(response).select_one("textarea#source").get_text() == source
    assert version_numbers() == [1]


def test_the_source_is_escaped_in_the_editor_x7(admin_browser):
    """Text that closes the textarea and opens a script stays text inside the textarea."""
    source = "</textarea><script>alert(1)</script>"
    send_editor(admin_browser, "draft", source=source)
    body = admin_browser.get(EDITOR).get_data(as_text=True)
    assert "<script>alert(1)" not in body
    assert BeautifulSoup(body, "html.parser").select_one("textarea#source").get_text() == source


def test_publishing_with_a_stale_second_factor_keeps_the_text_as_a_draft_and_asks_to_confirm_e12(app, admin):
    """E12: publishing needs both factors within 15 minutes. An admin who typed for longer is sent to confirm
    it is them; what they typed is kept as a draft (not published), and after confirming they publish it."""
    with time_machine.travel(NOW, tick=False) as traveller:
        admin_browser = signed_in_browser(app, admin)
        traveller.shift(timedelta(minutes=10))
        assert admin_browser.get(EDITOR).status_code == 200
        traveller.shift(timedelta(minutes=6))

        asked = send_editor(admin_browser, "publish", source="## Long edit\n\nTyped slowly.", summary="Slow edit")

        location = urlsplit(asked.headers["Location"])
        assert (asked.status_code, location.path, parse_qs(location.query)) == (
            302,
            "/admin/confirm-it-is-you",
            {"next": [EDITOR]},
        )
        assert version_numbers() == [2, 1]
        assert content.get_version(NOTICE, 2).published_at is None
        assert "Long edit" not in public_text()
        confirmed = post_form(
            admin_browser, asked.headers["Location"], {"password": admin.password, "code": admin.code(), "next": EDITOR}
        )
        assert confirmed.headers["Location"] == EDITOR
        editor = parse(admin_browser.get(EDITOR))
        assert editor.select_one("textarea#source").get_text() == "## Long edit\n\nTyped slowly."
        published = send_editor(admin_browser, "publish", source="## Long edit\n\nTyped slowly.", summary="Slow edit")
    assert published.status_code == 302
    assert "Long edit" in public_text()


def test_a_publish_reaches_every_worker_at_once(app, admin_browser, database_url):
    """Two application instances (two workers) sharing one database: both have the old page cached, and both
    serve the new text on the very next request after a publish through one of them (DESIGN §7)."""
    other_worker = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url})
    readers = [https_client_for(app), https_client_for(other_worker)]
    for reader in readers:
        assert "We may record telephone calls" in reader.get(f"/{NOTICE}").get_data(as_text=True)

    send_editor(admin_browser, "publish", source="## Brand new notice\n\nEvery call.", summary="Rewrite")

    for reader in readers:
        body = reader.get(f"/{NOTICE}").get_data(as_text=True)
        assert "Brand new notice" in body
        assert "We may record telephone calls" not in body


# --- History, diffs, roll-back ---------------------------------------------------------------------------


def publish(admin_browser, source: str, summary: str, title: str = "Recording of telephone calls"):
    response = send_editor(admin_browser, "publish", title=title, source=source, summary=summary)
    assert response.status_code == 302, error_summary(response)


def test_the_history_lists_every_version_with_author_date_summary_and_status(admin_browser):
    publish(admin_browser, "First edit.", "One")
    send_editor(admin_browser, "draft", source="A draft.", summary="Two")
    page = parse(admin_browser.get(f"{EDITOR}/versions"))
    for heading in page.select("tbody .nhsuk-table-responsive__heading"):  # shown only on a phone, hidden from AT
        heading.decompose()
    rows = [[cell.get_text(" ", strip=True) for cell in row.select("td")] for row in page.select("tbody tr")]
    assert [row[0] for row in rows] == ["Version 3", "Version 2", "Version 1"]
    assert [row[1] for row in rows] == ["Ava Admin", "Ava Admin", "Installed with the portal"]
    assert [row[3] for row in rows] == ["Two", "One", "Default content loaded at installation"]
    assert [row[4] for row in rows] == [
        "Draft",
        "Published (the public page shows it)",
        "Published, since replaced",
    ]
    assert all(row[2] for row in rows)
    choices = [option["value"] for option in page.select("select#from option")]
    assert choices == ["3", "2", "1"]


def test_the_diff_shows_the_changed_lines_escaped_and_marked_without_relying_on_colour(admin_browser):
    common = [f"Unchanged line {number}." for number in range(1, 21)]
    publish(admin_browser, "\n".join([*common, "Old closing line."]), "Base")
    publish(admin_browser, "\n".join([*common, "<script>alert('diff')</script> new closing line."]), "Change")

    response = admin_browser.get(f"{EDITOR}/diff?from=2&to=3")

    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(" in body
    page = parse(response)
    removed = page.select("tr.portal-diff__removed")
    added = page.select("tr.portal-diff__added")
    assert [row.select_one("del").get_text() for row in removed] == ["Old closing line."]
    assert [row.select_one("ins").get_text() for row in added] == ["<script>alert('diff')</script> new closing line."]
    assert "Removed" in removed[0].get_text() and "Added" in added[0].get_text()  # words, not colour alone
    assert "17 unchanged lines not shown" in page.get_text(" ", strip=True)  # 20 same lines, 3 kept as context
    assert "1 line added and 1 line removed" in page.get_text(" ", strip=True)


def test_the_diff_names_a_changed_title_and_says_when_the_text_is_the_same(admin_browser):
    source = content.get_version(NOTICE, 1).source_text
    publish(admin_browser, source, "New title only", title="Recorded calls")
    page = parse(admin_browser.get(f"{EDITOR}/diff?from=1&to=2")).get_text(" ", strip=True)
    assert "The title changed from “Recording of telephone calls” to “Recorded calls”." in page
    assert "The text of the two versions is the same." in page


@pytest.mark.parametrize("query", ["", "?from=1", "?from=one&to=2", "?from=-1&to=1", "?from=1&to=99999999999999"])
def test_a_diff_without_two_version_numbers_is_a_clear_400(admin_browser, query):
    assert "Select the version" in error_summary(admin_browser.get(f"{EDITOR}/diff{query}"))


def test_a_diff_or_version_that_does_not_exist_is_a_404(admin_browser):
    assert admin_browser.get(f"{EDITOR}/diff?from=1&to=7").status_code == 404
    assert admin_browser.get(f"{EDITOR}/versions/7").status_code == 404
    assert admin_browser.get("/admin/content/no-such-page").status_code == 404
    assert admin_browser.get("/admin/content/no-such-page/versions").status_code == 404


def test_rolling_back_publishes_the_old_text_as_a_new_version_and_is_audited_x8(admin_browser, admin):
    original = content.get_version(NOTICE, 1)
    publish(admin_browser, "## A mistake\n\nWrong.", "Oops")
    before = published_hash()
    version_page = f"{EDITOR}/versions/1"
    page = parse(admin_browser.get(version_page))
    assert page.select_one("button:-soup-contains('Roll back to this version')") is not None

    response = post_form(admin_browser, f"{version_page}/roll-back", {}, form_page=version_page)

    assert response.status_code == 302 and response.headers["Location"] == f"{EDITOR}/versions"
    assert version_numbers() == [3, 2, 1]
    rolled_back = content.get_version(NOTICE, 3)
    assert (rolled_back.title, rolled_back.source_text) == (original.title, original.source_text)
    assert rolled_back.change_summary == "Rolled back to version 1"
    assert rolled_back.author_label == "Ava Admin"
    assert rolled_back.published_at is not None
    assert "A mistake" not in public_text()
    assert "We may record telephone calls" in public_text()
    [event] = events("content.rolled_back")
    assert event["actor"] == ("staff", admin.account.public_id)
    assert event["details"]["rolled_back_to"] == 1
    assert event["details"]["version"] == 3
    assert (event["details"]["before_sha256"], event["details"]["after_sha256"]) == (before, original.content_sha256)


def test_rolling_back_to_the_version_the_public_already_sees_is_refused(admin_browser):
    version_page = f"{EDITOR}/versions/1"
    response = post_form(admin_browser, f"{version_page}/roll-back", {}, form_page=version_page)
    assert "already shows the text of version 1" in error_summary(response)
    assert version_numbers() == [1]


def test_rolling_back_with_a_stale_second_factor_asks_to_confirm_it_is_you_e12(app, admin):
    with time_machine.travel(NOW, tick=False) as traveller:
        admin_browser = signed_in_browser(app, admin)
        publish(admin_browser, "Second text.", "Two")
        traveller.shift(timedelta(minutes=10))
        assert admin_browser.get("/admin/").status_code == 200
        traveller.shift(timedelta(minutes=6))
        version_page = f"{EDITOR}/versions/1"
        response = post_form(admin_browser, f"{version_page}/roll-back", {}, form_page=version_page)
    assert urlsplit(response.headers["Location"]).path == "/admin/confirm-it-is-you"
    assert version_numbers() == [2, 1]
    assert events("content.rolled_back") == []


def test_a_version_page_sanitises_the_stored_html_again_x2(admin_browser):
    """A row written by an older sanitiser (or by hand) cannot put script on the version page either."""
    db.session.execute(
        update(NoticeVersion)
        .where(NoticeVersion.slug == NOTICE, NoticeVersion.version == 1)
        .values(html='<p>Stored</p><script>alert(1)</script><img src=x onerror="alert(2)">')
    )
    db.session.commit()
    response = admin_browser.get(f"{EDITOR}/versions/1")
    box = parse(response).select_one("#version-page")
    assert box.select_one(".portal-content p").get_text() == "Stored"
    assert box.select("script, img") == []
    assert "onerror" not in response.get_data(as_text=True)


# --- Who may do what (SECURITY G4, X8) -------------------------------------------------------------------

EDITOR_CALLS = [
    ("GET", "/admin/content"),
    ("GET", EDITOR),
    ("POST", EDITOR),  # with action=preview, draft or publish (below)
    ("GET", f"{EDITOR}/versions"),
    ("GET", f"{EDITOR}/diff?from=1&to=1"),
    ("POST", f"{EDITOR}/versions/1/roll-back"),
]


def test_staff_who_are_not_admins_get_403_on_every_editor_page_and_change_nothing_x8(app):
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    client = signed_in_browser(app, clerk)
    for method, path in EDITOR_CALLS:
        actions = ["preview", "draft", "publish"] if method == "POST" and path == EDITOR else [None]
        for action in actions:
            data = {"action": action, "title": "Hacked", "source": "Hacked", "change-summary": "x"} if action else {}
            response = client.get(path) if method == "GET" else post_form(client, path, data, form_page="/admin/")
            assert response.status_code == 403, f"{method} {path} {action}: {response.status_code}"
    assert version_numbers() == [1]
    assert "Hacked" not in public_text()


def test_staff_open_the_notice_version_a_request_recorded_from_the_request_page(app, admin_browser):
    """A request records the notice version shown when the patient asked; any member of staff can open that
    version from the request's page, even after the notice has changed, but cannot roll back to it."""
    patient = make_patient(verified=True)
    details = requests_service.CallDetails(
        calls_from=requests_service.practice_today() - timedelta(days=5),
        calls_to=requests_service.practice_today() - timedelta(days=2),
        description="A call",
    )
    req = requests_service.submit_request(patient.account, details, submission_key=uuid.uuid4().hex)
    publish(admin_browser, "## Changed since\n\nNewer words.", "Later change")
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    client = signed_in_browser(app, clerk)

    request_page = parse(client.get(f"/admin/requests/{req.reference}"))
    link = request_page.select_one(f"a[href='{EDITOR}/versions/1']")
    assert link is not None and link.get_text(strip=True).startswith("Version 1")
    version_page = client.get(link["href"])

    assert version_page.status_code == 200
    page = parse(version_page)
    assert "We may record telephone calls" in page.select_one("#version-page").get_text(" ", strip=True)
    assert "Changed since" not in page.get_text()
    assert page.select("form[action$='/roll-back']") == []
    assert page.select(f"a[href^='{EDITOR}/versions']:not([href$='/1'])") == []  # no admin-only links


def test_a_new_admin_navigation_item_leads_to_the_content_pages_for_admins_only(app, admin_browser):
    admin_nav = parse(admin_browser.get("/admin/")).select("header a[href='/admin/content']")
    assert admin_nav
    clerk = make_staff(email="clerk@practice.example", name="Cal Clerk", role="staff")
    assert parse(signed_in_browser(app, clerk).get("/admin/")).select("header a[href='/admin/content']") == []
