"""The notice editor (admins only): the content pages, their versions, preview, drafts, publishing, diffs
and roll-back.

The editor is one page, `/admin/content/<slug>`: its form posts back to that address, and the button pressed
says what to do (`action`): preview (the first button, so also what Enter in a field does), save as a draft, or
publish. Keeping every answer at the editor's own address means that confirming a second factor, which
returns to the page the form was on, always lands on the editor. Publishing and rolling back need a second
factor from the last 15 minutes (`fresh_second_factor`); an admin whose factor has gone stale while typing
has the text saved as a draft first, so nothing typed is lost on the way.

One version's page (`content_version`) is open to every member of staff: staff open the notice a request
recorded when the patient asked (from the request's page). Everything else here is in ADMIN_ONLY_ENDPOINTS.
"""

from __future__ import annotations

import functools

from flask import abort, flash, g, redirect, render_template, request, url_for

from admin import bp
from admin.forms import NoticeEditorForm
from admin.guard import fresh_second_factor
from core.auth import is_fresh
from core.forms import FormErrors
from core.services import content
from core.services.content import MAX_SOURCE_LENGTH, ContentError


def _overview_or_404(slug: str) -> content.PageOverview:
    if content.page_definition(slug) is None:
        abort(404)
    return content.page_overview(slug)


def _editor(overview: content.PageOverview, form: NoticeEditorForm, *, exc: ContentError | None = None, preview=None):
    errors = FormErrors()
    if exc is not None:
        form.add_service_error(errors, exc)
    page = render_template(
        "admin/content/edit.html",
        overview=overview,
        form=form,
        errors=errors,
        page=preview,
        max_source_length=MAX_SOURCE_LENGTH,
    )
    return page, 400 if errors else 200


def _keep_the_text_while_confirming(view):
    """Before a stale second factor sends the admin to confirm it is them, save what they typed as a draft
    (when it is valid and differs from the newest version): the editor opens on it when they come back."""

    @functools.wraps(view)
    def wrapper(overview: content.PageOverview):
        if not is_fresh():
            form = NoticeEditorForm()
            try:
                draft = content.keep_as_draft(g.staff_user, slug=overview.page.slug, **form.text())
            except ContentError:
                draft = None
            if draft is not None:
                flash(f"Your changes are saved as draft version {draft.version}. Confirm it is you, then publish.")
        return view(overview)

    return wrapper


@bp.get("/content")
def content_list():
    return render_template("admin/content/list.html", overviews=content.content_overview())


@bp.route("/content/<slug>", methods=["GET", "POST"])
def content_edit(slug: str):
    overview = _overview_or_404(slug)
    if request.method == "GET":
        version = overview.editing
        opened = {
            "title": version.title if version else overview.page.title,
            "source": version.source_text if version else "",
        }
        return _editor(overview, NoticeEditorForm(formdata=None, data=opened))
    action = NoticeEditorForm().action.data
    if action == "draft":
        return _save_draft(overview)
    if action == "publish":
        return _publish(overview)
    return _preview(overview)


def _preview(overview: content.PageOverview):
    """Render the page as it would look, saving nothing."""
    form = NoticeEditorForm()
    try:
        preview = content.preview(
            slug=overview.page.slug, title=form.title.data or "", source_text=form.source.data or ""
        )
    except ContentError as exc:
        return _editor(overview, form, exc=exc)
    return _editor(overview, form, preview=preview)


def _save(overview: content.PageOverview, save, done: str, next_endpoint: str):
    """Save the editor's text with `save` (a draft, or a published version); on a problem show the editor
    again with every message, otherwise flash `done` (given the new version's number) and move on."""
    form = NoticeEditorForm()
    try:
        version = save(g.staff_user, slug=overview.page.slug, **form.text())
    except ContentError as exc:
        return _editor(overview, form, exc=exc)
    flash(done.format(number=version.version))
    return redirect(url_for(next_endpoint, slug=overview.page.slug))


def _save_draft(overview: content.PageOverview):
    return _save(
        overview,
        content.save_draft,
        "Saved as draft version {number}. The public page has not changed.",
        "admin.content_edit",
    )


@_keep_the_text_while_confirming
@fresh_second_factor
def _publish(overview: content.PageOverview):
    return _save(
        overview,
        content.publish_edit,
        "Version {number} is published: the public page shows it now.",
        "admin.content_versions",
    )


@bp.get("/content/<slug>/versions")
def content_versions(slug: str):
    overview = _overview_or_404(slug)
    return render_template(
        "admin/content/versions.html",
        overview=overview,
        versions=content.page_versions(slug),
        errors=FormErrors(),
    )


def _version_number(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else None


@bp.get("/content/<slug>/diff")
def content_diff(slug: str):
    overview = _overview_or_404(slug)
    from_number, to_number = _version_number("from"), _version_number("to")
    if from_number is None or to_number is None:
        errors = FormErrors()
        if from_number is None:
            errors.add("from", "Select the version to compare from")
        if to_number is None:
            errors.add("to", "Select the version to compare with")
        versions = content.page_versions(slug)
        page = render_template("admin/content/versions.html", overview=overview, versions=versions, errors=errors)
        return page, 400
    diff = content.diff_versions(slug, from_number=from_number, to_number=to_number)
    if diff is None:
        abort(404)
    return render_template("admin/content/diff.html", overview=overview, diff=diff)


def _version_page(overview: content.PageOverview, version, *, errors: FormErrors | None = None):
    errors = errors or FormErrors()
    page = render_template(
        "admin/content/version.html",
        overview=overview,
        version=version,
        page=content.rendered_version(version),
        errors=errors,
    )
    return page, 400 if errors else 200


@bp.get("/content/<slug>/versions/<int(max=999999999):number>")
def content_version(slug: str, number: int):
    """One version as it looks and its source text. Every member of staff may read it (see the module's
    docstring); the roll-back button is shown to admins only."""
    overview = _overview_or_404(slug)
    version = content.get_version(slug, number) or abort(404)
    if version.published_at is None and not g.staff_user.is_admin:
        abort(404)  # drafts are for admins; staff open the published versions requests recorded
    return _version_page(overview, version)


@bp.post("/content/<slug>/versions/<int(max=999999999):number>/roll-back")
@fresh_second_factor
def content_roll_back(slug: str, number: int):
    overview = _overview_or_404(slug)
    version = content.get_version(slug, number) or abort(404)
    try:
        new_version = content.roll_back(g.staff_user, slug=slug, number=number)
    except ContentError as exc:
        errors = FormErrors()
        errors.add("roll-back", str(exc))
        return _version_page(overview, version, errors=errors)
    flash(f"The text of version {number} is published again, as version {new_version.version}.")
    return redirect(url_for("admin.content_versions", slug=slug))
