"""Forms anyone can fill in must not let anyone flood a person's inbox (registration, forgotten password)."""

from __future__ import annotations

from tests.accounts_support import csrf_token, emails_to, make_patient

REGISTRATION = {
    "given-name": "Ada",
    "family-name": "Lovelace",
    "dob-day": "10",
    "dob-month": "12",
    "dob-year": "1955",
    "nhs-number": "943 476 5919",
    "postcode": "SE28 8BE",
    "email": "target@example.org",
    "password": "kettle orbit tulip crayon",
    "confirm-password": "kettle orbit tulip crayon",
    "terms": "yes",
}


def _post_from(browser, path: str, data: dict, address: str):
    """A POST as if from another computer each time, so only the per-address limit can stop it."""
    token = csrf_token(browser, path)
    return browser.post(
        path,
        data={**data, "csrf_token": token},
        headers={"Referer": f"https://localhost{path}"},
        environ_overrides={"REMOTE_ADDR": address},
    )


def test_forgotten_password_emails_to_one_address_are_limited_whoever_asks(browser):
    make_patient(email="target@example.org")
    answers = [
        _post_from(browser, "/account/forgot-password", {"email": "Target@Example.org "}, f"192.0.2.{n}").status_code
        for n in range(1, 6)
    ]
    assert answers == [302, 302, 302, 429, 429]
    assert len([m for m in emails_to("target@example.org") if m.subject == "Reset your password"]) == 3


def test_registrations_for_one_address_are_limited_whoever_sends_them(browser):
    answers = [
        _post_from(browser, "/account/register", REGISTRATION, f"198.51.100.{n}").status_code for n in range(1, 6)
    ]
    assert answers == [302, 302, 302, 429, 429]
    assert len(emails_to("target@example.org")) == 3


def test_a_registration_with_mistakes_does_not_count_towards_the_limit(browser):
    """Only an accepted form sends an email, so only an accepted form counts."""
    mistakes = {**REGISTRATION, "nhs-number": "943 476 5918"}
    for n in range(1, 6):
        assert _post_from(browser, "/account/register", mistakes, f"203.0.113.{n}").status_code == 400
    assert _post_from(browser, "/account/register", REGISTRATION, "203.0.113.99").status_code == 302
