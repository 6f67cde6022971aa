"""The public pages a patient reads: the home page, the notice and its companions, as a person would see them."""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup
from flask import url_for

PUBLIC_ENDPOINTS = [
    "portal.home",
    "portal.call_recording_notice",
    "portal.how_to_request",
    "portal.accessibility_statement",
    "admin.sign_in",
]


@pytest.mark.parametrize("endpoint", PUBLIC_ENDPOINTS)
def test_every_public_page_renders_with_the_practice_details_in_header_and_footer(pages, endpoint):
    soup = pages.get(endpoint)
    header = soup.select_one("header.nhsuk-header")
    footer = soup.select_one("footer.nhsuk-footer")
    assert "Thamesmead Medical Associates" in header.get_text()
    footer_text = " ".join(footer.get_text().split())
    assert "Bentham Road, London, SE28 8BE" in footer_text
    assert "020 8333 5000" in footer_text
    assert footer.select_one('a[href="tel:02083335000"]') is not None


def test_the_stable_urls_are_the_ones_external_checks_rely_on(app):
    with app.test_request_context():
        assert url_for("portal.home") == "/"
        assert url_for("portal.call_recording_notice") == "/call-recording-notice"
        assert url_for("portal.how_to_request") == "/how-to-request"
        assert url_for("portal.accessibility_statement") == "/accessibility-statement"
        assert url_for("portal.healthz") == "/healthz"
        assert url_for("admin.sign_in") == "/admin/sign-in"
        assert url_for("admin.dashboard") == "/admin/"


def test_home_page_links_to_the_notice_and_to_asking_for_a_copy(pages):
    soup = pages.get("portal.home")
    links = {a["href"] for a in soup.select("main a[href]")}
    assert "/call-recording-notice" in links
    assert "/how-to-request" in links


def normalised_text(soup) -> str:
    return " ".join(soup.select_one("main").get_text(" ").split())


def test_the_notice_keeps_every_point_of_the_practices_own_notice(pages):
    soup = pages.get("portal.call_recording_notice")
    text = normalised_text(soup)
    purposes = [item.get_text(" ", strip=True) for item in soup.select("main h2 + p + ul")[0].select("li")]
    assert purposes == [
        "review and improve our services",
        "monitor and review the quality of care",
        "train, develop and manage staff and medical trainees",
        "prevent, detect, investigate and prosecute allegations, complaints, claims or fraud relating to "
        "patients or other organisations",
        "protect staff and patients",
    ]
    assert "technical fault with the telephone system" in text
    assert "equipment that does not allow calls to be recorded" in text
    uses = [h3.get_text(strip=True) for h3 in soup.select("main h3")]
    assert uses == [
        "Quality monitoring",
        "Training and development",
        "Complaints and disputes",
        "Employee safety and wellbeing",
    ]
    assert "shared within the practice, including with team members, managers and GPs" in text
    assert "With your consent, we may share call recordings with NHS England" in text
    assert "for the life of the patient plus at least ten years after death" in text
    assert "We record all calls for medico-legal and training purposes." in text
    assert "contacting the practice in writing" in text
    assert soup.select_one('main a[href="/how-to-request"]') is not None


def test_the_notice_is_structured_with_real_headings_not_numbered_paragraphs(pages):
    soup = pages.get("portal.call_recording_notice")
    headings = [h2.get_text(strip=True) for h2 in soup.select("main h2")]
    assert headings[:3] == ["Why we record calls", "When calls may not be recorded", "How we use call recordings"]
    assert "How long we keep call recordings" in headings
    assert not any(heading[0].isdigit() for heading in headings)


def test_how_to_request_explains_online_and_offline_routes_and_the_one_month_deadline(pages):
    text = normalised_text(pages.get("portal.how_to_request"))
    for route in ("Online:", "By letter:", "By phone:", "At the practice:"):
        assert route in text
    assert "Bentham Road, London, SE28 8BE" in text
    assert "within one month of receiving your request" in text
    assert "What happens next" in text
    assert "complain to the Information Commissioner's Office" in text


def test_content_pages_show_when_they_were_last_updated(pages):
    soup = pages.get("portal.accessibility_statement")
    last_updated = soup.select_one("main .portal-last-updated time")
    assert last_updated is not None
    assert last_updated["datetime"]


def test_practice_details_come_from_configuration(database_url):
    from core.factory import create_app

    other = create_app(
        "test",
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "PRACTICE_NAME": "Riverside Surgery",
            "PRACTICE_ADDRESS": "1 High Street, Leeds, LS1 1AA",
            "PRACTICE_PHONE": "0113 496 0000",
        },
    )
    body = other.test_client().get("/").get_data(as_text=True)
    assert "Riverside Surgery" in body
    assert "1 High Street, Leeds, LS1 1AA" in body
    assert 'href="tel:01134960000"' in body
    assert "Thamesmead" not in body


@pytest.mark.parametrize("path", ["/", "/call-recording-notice", "/how-to-request", "/accessibility-statement"])
def test_signed_out_visitors_can_sign_in_or_create_an_account_from_the_header(https_client, path):
    """A patient on any public page finds the way in at the top of the page, and the page stays one
    cacheable, cookie-free page for everyone (it does not depend on who is signed in)."""
    response = https_client.get(path)
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    links = {link.get_text(strip=True): link["href"] for link in soup.select("header .nhsuk-header__account a")}
    assert links == {"Sign in": "/account/sign-in", "Create an account": "/account/register"}


def test_the_staff_sign_in_page_does_not_offer_patient_accounts(https_client):
    soup = BeautifulSoup(https_client.get("/admin/sign-in").get_data(as_text=True), "html.parser")
    assert soup.select("header .nhsuk-header__account a") == []
