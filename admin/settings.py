"""Practice settings (admins only: see ADMIN_ONLY_ENDPOINTS in admin.guard): the practice's details and its
policies for releases and retention. core.services.settings checks, saves and audits them; a save takes effect
at once in every worker.
"""

from __future__ import annotations

from flask import flash, g, redirect, render_template, request, url_for

from admin import bp
from admin.guard import fresh_second_factor
from core.forms import FormErrors, text
from core.services import settings as settings_service
from core.services.settings import CONFIRM_FOUR_EYES_OFF, FIELD_NAMES, SettingsError

# The longest value each field may hold, plus one so that "too long" is noticed rather than cut off.
FIELD_LIMITS = {
    "practice_name": settings_service.NAME_MAX,
    "practice_address": settings_service.ADDRESS_MAX,
    "practice_phone": 30,
    "practice_email": 320,
    "public_base_url": settings_service.BASE_URL_MAX,
    "release_four_eyes": 3,
    CONFIRM_FOUR_EYES_OFF: 3,
}
NUMBER_LIMIT = 12


def field_id(name: str) -> str:
    """The form field's id and name: the setting's name in kebab case."""
    return name.replace("_", "-")


def _page(values: dict[str, str], errors: FormErrors, status: int = 200):
    current = settings_service.practice_settings()
    return render_template(
        "admin/settings/edit.html",
        values=values,
        errors=errors,
        current=current,
        defaults=settings_service.defaults(),
        link_days_range=settings_service.link_days_range(),
        registration_key_days_range=settings_service.REGISTRATION_KEY_DAYS_RANGE,
    ), status


@bp.get("/settings")
def settings_page():
    current = settings_service.practice_settings()
    values = settings_service.form_values_of(current)
    values["version"] = str(current.version)
    return _page(values, FormErrors())


@bp.post("/settings")
@fresh_second_factor
def settings_save():
    values = {
        name: text(request.form, field_id(name), limit=FIELD_LIMITS.get(name, NUMBER_LIMIT))
        for name in (*FIELD_NAMES, CONFIRM_FOUR_EYES_OFF)
    }
    version = text(request.form, "version", limit=NUMBER_LIMIT)
    expected = int(version) if version.isascii() and version.isdigit() and len(version) <= 9 else None
    try:
        saved = settings_service.save_settings(g.staff_user, values, expected_version=expected)
    except SettingsError as exc:
        errors = FormErrors()
        for name, message in exc.errors.items():
            errors.add(field_id(name), message)
        if exc.conflict:  # show what the other admin saved, to be checked and saved again
            current = settings_service.practice_settings()
            values = settings_service.form_values_of(current)
            version = str(current.version)
        values["version"] = version
        return _page(values, errors, 400)
    if expected is not None and saved.version == expected:
        flash("Nothing was changed: the settings were already as you sent them.")
    else:
        flash("The practice settings have been saved. They apply from now on, everywhere in the portal.")
    return redirect(url_for("admin.settings_page"))
