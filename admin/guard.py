"""The one guard in front of every admin page.

Every admin endpoint refuses a request unless a fully signed-in staff member is present, except the
endpoints named in PUBLIC_ENDPOINTS (the sign-in pages). A new admin view is therefore protected without
anyone remembering to protect it; tests/admin/test_guard.py walks the URL map to prove it.

The staff user is put on `g.staff_user` by staff sign-in, which arrives with staff accounts. Until then no
request carries one, so every protected admin page sends the visitor to the sign-in page.
"""

from __future__ import annotations

from flask import Response, g, redirect, request, url_for

from admin import bp

PUBLIC_ENDPOINTS = frozenset({"admin.sign_in"})


@bp.before_request
def require_staff_user():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if g.get("staff_user") is None:
        return redirect(url_for("admin.sign_in"))
    return None


@bp.after_request
def never_cache_admin_pages(response: Response) -> Response:
    """Staff pages may show patient data: no browser or proxy may store them."""
    response.cache_control.no_store = True
    return response
