"""Setting up the authenticator on the phone that shows the page (issue 12, "Phones"), in Chromium at 320 px wide:
a link that opens the authenticator app with the account (otpauth://), the QR code for another device, the
key in groups of four in the page's text colour, and recovery codes that can be read, copied (our own
script) and downloaded (a text file from the server, right after they are shown).

Screenshots: test-artifacts/screenshots/phone-*.png; axe results: test-artifacts/axe-results-phone.json.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pyotp
import pytest
from playwright.sync_api import expect

from core.extensions import db
from tests.accounts_support import make_patient, make_staff
from tests.browser.conftest import axe_summary_writer
from tests.browser.journey import setup_key_on

pytestmark = pytest.mark.browser

NARROWEST = {"width": 320, "height": 640}
TEXT_COLOUR = "rgb(33, 43, 50)"  # the design system's text colour (#212b32)
axe_summary = axe_summary_writer("axe-results-phone.json")


def style(locator, prop: str) -> str:
    return locator.evaluate(f"(element) => getComputedStyle(element).{prop}")


def fits_the_phone(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROWEST["width"]


@pytest.mark.parametrize("kind", ["patient", "staff"])
def test_setting_up_on_a_phone_taps_a_link_reads_the_key_and_saves_the_recovery_codes(journeys, live_server_url, kind):
    make = make_patient if kind == "patient" else make_staff
    account = make(email=f"{kind}.phone@example.org", enrolled=False)
    db.session.rollback()  # let go of the database: the live server reads and writes next
    area = "/account" if kind == "patient" else "/admin"

    journey = journeys(f"phone-{kind}")
    page = journey.page
    page.set_viewport_size(NARROWEST)
    journey.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server_url)
    journey.goto(f"{area}/sign-in")
    page.get_by_label("Email address").fill(account.account.email)
    page.get_by_label("Password", exact=True).fill(account.password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(journey.url_pattern(f"{area}/authenticator/set-up"))
    journey.check("set up an authenticator app at 320 px", "Set up an authenticator app")
    fits_the_phone(page)

    # The set-up key: groups of four, in the text colour and the page's own font, not red monospace.
    key = page.locator("#setup-key")
    secret = setup_key_on(page)
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    groups = page.locator("#setup-key .app-setup-key__group")
    expect(groups).to_have_count(8)
    assert [groups.nth(index).inner_text() for index in range(8)] == re.findall(".{4}", secret)
    assert style(key, "color") == TEXT_COLOUR
    assert "monospace" not in style(key, "fontFamily") and "menlo" not in style(key, "fontFamily").lower()

    # A link for the phone showing the page, the QR code for another device; no "your phone's camera".
    link = page.get_by_role("link", name="Add to your authenticator app")
    uri = link.get_attribute("href")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parse_qs(parts.query)["secret"] == [secret]
    assert unquote(parts.path).endswith(f":{account.account.email}")
    expect(page.locator(".app-qr-code svg")).to_be_visible()
    assert page.locator(".app-qr-code svg").bounding_box()["width"] <= NARROWEST["width"]
    assert "camera" not in page.locator("main").inner_text()

    page.get_by_label("Security code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Save your recovery codes")
    journey.check("recovery codes at 320 px", "Save your recovery codes")
    fits_the_phone(page)

    # Readable: the text colour, not the red of <code>.
    codes_shown = page.locator("#recovery-codes li")
    expect(codes_shown).to_have_count(10)
    codes = [codes_shown.nth(index).inner_text().strip() for index in range(10)]
    assert all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code) for code in codes), codes
    assert {style(codes_shown.nth(index).locator("span"), "color") for index in range(10)} == {TEXT_COLOUR}

    # Copy: the ten codes, one a line, go to the clipboard, and the page says so.
    page.get_by_role("button", name="Copy the codes").click()
    expect(page.locator("#recovery-codes-status")).to_contain_text("The codes are copied")
    assert page.evaluate("navigator.clipboard.readText()").split() == codes

    # Download: a text file from the server, only for this session and only now (tests/core covers the rest).
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download the codes as a text file").click()
    download = download_info.value
    assert download.suggested_filename == "recovery-codes.txt"
    text = Path(download.path()).read_text(encoding="utf-8")
    assert [line.split(". ", 1)[1] for line in text.splitlines() if re.fullmatch(r"\d+\. [A-Z2-7-]{19}", line)] == codes
    assert "share them with nobody" in text
    expect(page.locator("h1")).to_have_text("Save your recovery codes")  # the page stays, codes still shown
    journey.check("recovery codes copied and downloaded at 320 px", "Save your recovery codes")
    assert journey.foreign_requests() == []
