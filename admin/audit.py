"""The audit log viewer (admins only): filtered, paginated by keyset, exported as CSV, with the chain's
verification status, and the access report for the practice's quarterly access review.

Every endpoint here is in ADMIN_ONLY_ENDPOINTS (admin.guard). The filters travel in the address (GET): they
hold no NHS number (one is refused with a message) and the request log names only the URL rule. Checking the
chain is a POST that needs both factors in the last 15 minutes. Queries live in core.services.audit_log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import Response, flash, g, redirect, render_template, request, stream_with_context, url_for
from werkzeug.datastructures import MultiDict

from admin import bp
from admin.guard import fresh_second_factor
from core.forms import FormErrors, date_from_parts, text
from core.services import audit_log as audit_log_service
from core.services.requests import LONDON, practice_today

ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
LAST_YEAR = 2999
# A CSV answer must not run as a page if a browser is ever tricked into rendering it.
FILE_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"


@bp.context_processor
def audit_helpers() -> dict:
    return {"actor_type_labels": audit_log_service.ACTOR_TYPE_LABELS}


# ---------------------------------------------------------------------------------------------------------
# Reading the filters from the address
# ---------------------------------------------------------------------------------------------------------


def _day(errors: FormErrors, args: MultiDict, prefix: str, label: str) -> tuple[date | None, dict]:
    """An optional NHS date input (`prefix-day`, `-month`, `-year`), or `prefix=YYYY-MM-DD` as the page's own
    links carry it. Problems are worded for staff and added to `errors`."""
    parts = {part: text(args, f"{prefix}-{part}", limit=4) for part in ("day", "month", "year")}
    if not any(parts.values()):
        iso = text(args, prefix, limit=10)
        if not iso:
            return None, parts
        match = ISO_DATE.fullmatch(iso)
        if match is None:
            errors.add(f"{prefix}-day", f"The {label} must be a real date, like 1 3 2026")
            return None, parts
        parts = {"year": match[1], "month": match[2].lstrip("0"), "day": match[3].lstrip("0")}
    found = FormErrors()
    value, parts = date_from_parts(
        found, MultiDict({f"{prefix}-{k}": v for k, v in parts.items()}), prefix, label=label, today=date.max
    )
    for name, message in found.items():
        errors.add(name, message.replace("Your ", "The ", 1).replace("like 15 3 1984", "like 1 3 2026"))
    if value is not None and value.year > LAST_YEAR:
        errors.add(f"{prefix}-year", f"The {label} must be before the year {LAST_YEAR + 1}")
        return None, parts
    return value, parts


def _cursor(errors: FormErrors, args: MultiDict, name: str) -> int | None:
    value = text(args, name, limit=20)
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= audit_log_service.MAX_SEQ:
        errors.add("pages", "This page link is not valid. Go back to the newest events and page from there")
        return None
    return int(value)


@dataclass
class ViewerForm:
    values: dict
    errors: FormErrors
    filters: audit_log_service.AuditFilter | None = None
    before: int | None = None
    after: int | None = None
    link_args: dict = field(default_factory=dict)  # the filters as they go into this page's own links


def _read_viewer_form(args: MultiDict) -> ViewerForm:
    errors = FormErrors()
    values = {
        "actor": text(args, "actor", limit=audit_log_service.MAX_ACTOR_LENGTH),
        "actor-type": text(args, "actor-type", limit=16),
        "action": text(args, "action", limit=64),
        "object": text(args, "object", limit=audit_log_service.MAX_OBJECT_LENGTH),
    }
    start_day, values["from"] = _day(errors, args, "from", "start date")
    end_day, values["to"] = _day(errors, args, "to", "end date")
    form = ViewerForm(values, errors)
    form.before = _cursor(errors, args, "before")
    form.after = _cursor(errors, args, "after")
    if form.before is not None and form.after is not None:
        errors.add("pages", "This page link is not valid. Go back to the newest events and page from there")
    try:
        form.filters = audit_log_service.build_filter(
            actor=values["actor"],
            actor_type=values["actor-type"],
            action=values["action"],
            object_text=values["object"],
            start_day=start_day,
            end_day=end_day,
        )
    except audit_log_service.AuditFilterError as error:
        for name, message in error.problems.items():
            errors.add(name, message)
    form.link_args = {key: value for key, value in values.items() if key not in ("from", "to") and value}
    if start_day:
        form.link_args["from"] = start_day.isoformat()
    if end_day:
        form.link_args["to"] = end_day.isoformat()
    return form


def _ordered(errors: FormErrors) -> FormErrors:
    """The errors in the order of the fields on the page."""
    order = ["actor", "actor-type", "action", "object"]
    order += [f"{prefix}-{part}" for prefix in ("from", "to") for part in ("day", "month", "year")] + ["pages"]
    ordered = FormErrors()
    for name in sorted(errors, key=lambda name: order.index(name) if name in order else len(order)):
        ordered.add(name, errors[name])
    return ordered


# ---------------------------------------------------------------------------------------------------------
# The viewer and its CSV
# ---------------------------------------------------------------------------------------------------------


def _viewer(form: ViewerForm, status: int = 200):
    errors = _ordered(form.errors)
    page = None
    if not errors:
        page = audit_log_service.events_page(form.filters, before=form.before, after=form.after)
    actions = audit_log_service.actions_in_use()
    if form.values["action"] and form.values["action"] not in actions:
        actions = sorted([*actions, form.values["action"]])  # kept in the list, so the form shows what was asked
    return render_template(
        "admin/audit/log.html",
        form=form,
        values=form.values,
        errors=errors,
        page=page,
        action_items=[{"value": "", "text": "Any action"}] + [{"value": name, "text": name} for name in actions],
        actor_type_items=[{"value": "", "text": "Anyone"}]
        + [{"value": value, "text": label} for value, label in audit_log_service.ACTOR_TYPE_LABELS.items()],
        chain=audit_log_service.latest_chain_check(),
        paged=form.before is not None or form.after is not None,
        older_url=url_for("admin.audit_log", **form.link_args, before=page.older_before)
        if page and page.older_before
        else None,
        newer_url=url_for("admin.audit_log", **form.link_args, after=page.newer_after)
        if page and page.newer_after
        else None,
        newest_url=url_for("admin.audit_log", **form.link_args),
        csv_url=url_for("admin.audit_log_csv", **form.link_args),
    ), (400 if errors else status)


@bp.get("/audit")
def audit_log():
    """The trail, newest first, 50 events a page, filtered by who, what, which object and when."""
    return _viewer(_read_viewer_form(request.args))


def _csv_response(chunks, filename: str) -> Response:
    response = Response(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Content-Security-Policy"] = FILE_CSP
    return response


def _stamp() -> str:
    return datetime.now(LONDON).strftime("%Y%m%d-%H%M%S")


@bp.get("/audit.csv")
def audit_log_csv():
    """The filtered trail (every page of it) as CSV, streamed in batches; the export itself is audited."""
    form = _read_viewer_form(request.args)
    form.before = form.after = None  # the export is of the whole filtered view, not of one page
    if form.errors:
        return _viewer(form)
    audit_log_service.record_export(g.staff_user, report="audit_log", filters=form.filters.describe())
    return _csv_response(audit_log_service.export_csv(form.filters), f"audit-{_stamp()}.csv")


@bp.post("/audit/check-chain")
@fresh_second_factor
def audit_check_chain():
    """Walk the whole chain now, store the result for this page, and audit the check."""
    check = audit_log_service.check_chain_now(g.staff_user)
    if check.ok:
        flash(f"The audit chain is intact: {check.checked:,} events checked.")
    else:
        flash(f"The audit chain is broken at event {check.broken_seq:,}: {check.reason}.")
    return redirect(url_for("admin.audit_log"))


# ---------------------------------------------------------------------------------------------------------
# The access report
# ---------------------------------------------------------------------------------------------------------


def _read_period(args: MultiDict) -> tuple[date, date, dict, FormErrors]:
    """The report's period from the address; the last full quarter when none is given."""
    errors = FormErrors()
    values: dict = {}
    start_day, values["from"] = _day(errors, args, "from", "start date")
    end_day, values["to"] = _day(errors, args, "to", "end date")
    default_start, default_end = audit_log_service.previous_quarter(practice_today())
    if start_day is None and end_day is None and not errors:
        start_day, end_day = default_start, default_end
    elif not errors:
        if start_day is None:
            errors.add("from-day", "Enter the start date")
        if end_day is None:
            errors.add("to-day", "Enter the end date")
        if start_day and end_day and end_day < start_day:
            errors.add("to-day", "The end date must be the same as or after the start date")
    return start_day, end_day, values, errors


def _period_parts(day: date) -> dict:
    return {"day": str(day.day), "month": str(day.month), "year": str(day.year)}


@bp.get("/audit/access-report")
def audit_access_report():
    """Who listened to, uploaded, released or revoked which recordings in a period, and which patients played
    or downloaded them: for the practice's quarterly access review."""
    start_day, end_day, values, errors = _read_period(request.args)
    if errors:
        return render_template(
            "admin/audit/access-report.html", report=None, values=values, errors=_ordered(errors)
        ), 400
    report = audit_log_service.access_report(start_day, end_day)
    period = {"from": start_day.isoformat(), "to": end_day.isoformat()}
    return render_template(
        "admin/audit/access-report.html",
        report=report,
        values={"from": _period_parts(start_day), "to": _period_parts(end_day)},
        errors=errors,
        csv_url=url_for("admin.audit_access_report_csv", **period),
    )


@bp.get("/audit/access-report.csv")
def audit_access_report_csv():
    """The access report as CSV; the export is audited."""
    start_day, end_day, values, errors = _read_period(request.args)
    if errors:
        return render_template(
            "admin/audit/access-report.html", report=None, values=values, errors=_ordered(errors)
        ), 400
    audit_log_service.record_export(
        g.staff_user, report="access_report", filters={"from": start_day.isoformat(), "to": end_day.isoformat()}
    )
    report = audit_log_service.access_report(start_day, end_day)
    filename = f"access-report-{start_day:%Y%m%d}-{end_day:%Y%m%d}.csv"
    return _csv_response(audit_log_service.export_access_csv(report), filename)
