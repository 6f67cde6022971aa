"""Practice settings (admins only: see ADMIN_ONLY_ENDPOINTS in admin.guard): the practice's details and its
policies for releases and retention. core.services.settings checks, saves and audits them; a save takes effect
at once in every worker.
"""

from __future__ import annotations

from flask import flash, g, redirect, render_template, url_for

from admin import bp
from admin.forms import SettingsForm
from admin.guard import fresh_second_factor
from core.forms import FormErrors
from core.services import settings as settings_service
from core.services.settings import CONFIRM_FOUR_EYES_OFF, FIELD_NAMES, SettingsError


def _page(form: SettingsForm, errors: FormErrors, status: int = 200):
    current = settings_service.practice_settings()
    return render_template(
        "admin/settings/edit.html",
        form=form,
        errors=errors,
        current=current,
        defaults=settings_service.defaults(),
        link_days_range=settings_service.link_days_range(),
        registration_key_days_range=settings_service.REGISTRATION_KEY_DAYS_RANGE,
    ), status


def _current_form() -> SettingsForm:
    """The form filled in with the settings in force (not with what was posted)."""
    current = settings_service.practice_settings()
    return SettingsForm(
        formdata=None, data={**settings_service.form_values_of(current), "version": str(current.version)}
    )


@bp.get("/settings")
def settings_page():
    return _page(_current_form(), FormErrors())


@bp.post("/settings")
@fresh_second_factor
def settings_save():
    form = SettingsForm()
    expected = form.expected_version()
    try:
        saved = settings_service.save_settings(
            g.staff_user, form.settings_values((*FIELD_NAMES, CONFIRM_FOUR_EYES_OFF)), expected_version=expected
        )
    except SettingsError as exc:
        errors = FormErrors()
        form.add_service_error(errors, exc)
        if exc.conflict:  # show what the other admin saved, to be checked and saved again
            form = _current_form()
        return _page(form, errors, 400)
    if expected is not None and saved.version == expected:
        flash("Nothing was changed: the settings were already as you sent them.")
    else:
        flash("The practice settings have been saved. They apply from now on, everywhere in the portal.")
    return redirect(url_for("admin.settings_page"))
