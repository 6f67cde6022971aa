"""The NHS.UK macros are escaped too: user data containing markup never reaches the page as markup."""

from __future__ import annotations

from jinja2 import ChainableUndefined

HOSTILE = '<script>alert("x")</script><b onmouseover="steal()">name</b>'


def test_user_data_passed_to_an_nhs_macro_comes_out_escaped(app):
    template = app.jinja_env.from_string(
        '{% from "nhsuk/components/inset-text/macro.jinja" import insetText %}'
        '{% from "nhsuk/components/input/macro.jinja" import input %}'
        '{{ insetText({"text": name}) }}'
        '{{ input({"label": {"text": name}, "id": "name", "name": "name", "value": name, "hint": {"text": name}}) }}'
    )
    html = template.render(name=HOSTILE)
    assert "<script>" not in html
    assert "<b onmouseover" not in html
    assert html.count("&lt;script&gt;alert(") == 4  # inset text, label, hint and the input's value


def test_the_macro_files_themselves_are_autoescaped(app):
    """Flask escapes only .html/.xml by default; ours escapes the NHS macros' .jinja files as well."""
    template = app.jinja_env.get_template("nhsuk/components/inset-text/template.jinja")
    assert "&lt;script&gt;" in template.render(params={"text": HOSTILE})


def test_missing_macro_parameters_are_tolerated_as_the_design_system_expects(app):
    """The macros read nested options such as params.hint.text that callers usually leave out."""
    assert app.jinja_env.undefined is ChainableUndefined
    html = app.jinja_env.from_string(
        '{% from "nhsuk/components/input/macro.jinja" import input %}{{ input({"id": "a", "name": "a"}) }}'
    ).render()
    assert 'id="a"' in html


def test_page_title_and_header_escape_configured_practice_details(database_url):
    from core.factory import create_app

    other = create_app("test", {"SQLALCHEMY_DATABASE_URI": database_url, "PRACTICE_NAME": HOSTILE})
    body = other.test_client().get("/").get_data(as_text=True)
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(" in body
