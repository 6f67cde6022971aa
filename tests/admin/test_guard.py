"""The admin area is deny-by-default: every endpoint but the sign-in page refuses a visitor who is not staff."""

from __future__ import annotations

import pytest
from flask import Flask

from admin.guard import PUBLIC_ENDPOINTS
from core.factory import create_app


def admin_rules(app: Flask):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]


def example_url(rule) -> str:
    """Fill every URL parameter with a harmless value so each rule can be requested."""
    values = {
        name: 1 if rule._converters[name].__class__.__name__ == "IntegerConverter" else "x" for name in rule.arguments
    }
    return rule.build(values)[1]


def test_the_admin_area_has_endpoints_to_protect(app):
    assert {rule.endpoint for rule in admin_rules(app)} - PUBLIC_ENDPOINTS


def test_every_admin_endpoint_refuses_anonymous_visitors(database_url):
    # CSRF is off in this one application so that a POST reaches the guard instead of stopping at CSRF.
    app = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    checked = []
    for rule in admin_rules(app):
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(example_url(rule), method=method)
            assert response.status_code == 302, f"{method} {rule.rule} answered {response.status_code}"
            assert response.headers["Location"] == "/admin/sign-in"
            checked.append((method, rule.rule))
    assert ("GET", "/admin/") in checked


@pytest.mark.parametrize("endpoint", sorted(PUBLIC_ENDPOINTS))
def test_the_public_admin_pages_are_reachable(app, endpoint, pages):
    pages.get(endpoint)
