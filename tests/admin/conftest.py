"""Fixtures shared by the staff-area tests: a member of staff (not an admin) and a browser signed in as them."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.accounts_support import SignInAccount, make_staff, signed_in_browser


@pytest.fixture
def clerk() -> SignInAccount:
    return make_staff(email="clerk@practice.example", name="Cal Clerk")


@pytest.fixture
def clerk_browser(app, clerk) -> FlaskClient:
    return signed_in_browser(app, clerk)
