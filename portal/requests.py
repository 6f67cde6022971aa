"""The patient's requests for copies of their call recordings: the list, the request form, and each
request's page (status, due date, timeline, messages, replies, withdrawal and complaints).

A request is always looked up together with the signed-in patient, so another patient's reference is a 404
on every route and method (SECURITY G1/G2)."""

from __future__ import annotations

from flask import abort, g, render_template

from core.models.requests import RecordingRequest
from core.services import requests as requests_service
from portal import bp


def own_request_or_404(reference: str) -> RecordingRequest:
    return requests_service.patient_request(g.account, reference) or abort(404)


@bp.get("/requests/<reference>")
def request_detail(reference: str):
    req = own_request_or_404(reference)
    return render_template("portal/requests/detail.html", req=req)
