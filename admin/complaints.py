"""Complaints about how a request was handled (UK DPA 2018 s.164A), for staff: the list, with those waiting
for an acknowledgement first (the practice must acknowledge within 30 days), and acknowledging one. The
complaint itself is read, and acknowledged, on its request's page."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, url_for

from admin import bp
from admin.forms import AcknowledgeComplaintForm
from admin.requests import render_with_error
from core.formatters import in_london
from core.services import requests as requests_service
from core.services.requests import RequestError


@bp.get("/complaints")
def complaint_list():
    acknowledged = requests_service.recently_acknowledged_complaints()
    return render_template(
        "admin/complaints/list.html",
        awaiting=requests_service.complaints_awaiting_acknowledgement(),
        acknowledged=acknowledged,
        # Late when acknowledged after the day it was due, as that day is counted in London.
        acknowledged_late={c.id for c in acknowledged if in_london(c.acknowledged_at).date() > c.acknowledge_by},
        today=requests_service.practice_today(),
    )


@bp.post("/complaints/<public_id>/acknowledge")
def complaint_acknowledge(public_id: str):
    complaint = requests_service.complaint_by_public_id(public_id) or abort(404)
    form = AcknowledgeComplaintForm()
    message = form.message.data or ""
    field = f"acknowledgement-{complaint.public_id}"
    try:
        requests_service.acknowledge_complaint(g.staff_user, complaint, message)
    except RequestError as exc:
        return render_with_error(complaint.request, field, str(exc), {field: message})
    flash("The complaint is acknowledged. The patient has been emailed to sign in and read your message.")
    return redirect(url_for("admin.request_detail", reference=complaint.request.reference))
