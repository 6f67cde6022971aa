"""HTTP security: per-request CSP nonce and the security headers every response carries.

See SECURITY.md rows K1-K12 and X6. Headers are set in one `after_request` hook so that every response,
error pages and static files included, gets them. A page whose body is cached and sent to many visitors (the
public content pages) asks for `without_nonce()`: it is drawn with no nonce, and its policy allows inline
script by hash only.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from functools import cache
from importlib.resources import files

from flask import Flask, Response, abort, request

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
        "interest-cohort",
    )
)
HSTS_VALUE = "max-age=31536000; includeSubDomains"


NO_NONCE = "portal.csp_without_nonce"
STYLE_NONCE = "portal.csp_style_nonce"


def csp_nonce() -> str:
    """The CSP nonce for this request: 128 bits from `secrets`, made on first use; "" for a request that
    asked for `without_nonce()` (templates then write no nonce attribute).

    Kept in the WSGI environ, which belongs to exactly one request (`g` can outlive a request when an
    application context is already active, as in tests).
    """
    environ = request.environ
    if environ.get(NO_NONCE):
        return ""
    return environ.setdefault("portal.csp_nonce", secrets.token_urlsafe(16))


def without_nonce() -> None:
    """Draw and serve this request's page without a nonce: its policy allows only our own scripts and the
    design system's one inline script, by hash. For pages whose body is cached and sent to every visitor,
    which must therefore hold nothing that differs per response. Call it before anything is rendered."""
    if "portal.csp_nonce" in request.environ:
        raise RuntimeError("this request already used a nonce")
    request.environ[NO_NONCE] = True


def allow_style_nonce() -> None:
    """Let this response's page add a <style> carrying its nonce: the redaction page's waveform
    (wavesurfer.js draws in a shadow root whose one <style> gets the nonce through its `cspNonce` option).
    Every other page keeps `style-src 'self'`; no page allows 'unsafe-inline'."""
    if request.environ.get(NO_NONCE):
        raise RuntimeError("this request is drawn without a nonce")
    request.environ[STYLE_NONCE] = True


@cache
def page_template_script_hash() -> str:
    """The CSP hash source of the one inline script in the NHS.UK page template (it sets `js-enabled`).

    Allowing that fixed script by its hash as well as by nonce means a page served from a browser's or
    proxy's cache, whose nonce is an old one, still runs it after revalidation sends a fresh policy.
    """
    template = files("nhsuk_frontend_jinja").joinpath("templates/nhsuk/template.jinja").read_text(encoding="utf-8")
    match = re.search(r"<script[^>]*>(document\.body\.className[^<]*)</script>", template)
    if match is None:
        raise RuntimeError("the NHS.UK page template's inline script has changed: update core.security")
    digest = hashlib.sha256(match.group(1).encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def content_security_policy(nonce: str | None, *, style_nonce: bool = False) -> str:
    """The page policy: our own origin only; inline script only with this response's nonce (or the
    design system's one fixed script, by hash); with no `nonce`, inline script by that hash alone. Styles
    come from our own origin, and also by the nonce for a page that asked for it (`allow_style_nonce`)."""
    nonce_source = f" 'nonce-{nonce}'" if nonce else ""
    directives = {
        "default-src": "'self'",
        "script-src": f"'self'{nonce_source} {page_template_script_hash()}",
        "style-src": f"'self'{nonce_source if style_nonce else ''}",
        "img-src": "'self'",
        "font-src": "'self'",
        "connect-src": "'self'",
        "media-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


@cache
def hash_only_policy() -> str:
    """The policy of a page drawn `without_nonce()` (the same for every response, so made once)."""
    return content_security_policy(None)


REFERRER_POLICY = "same-origin"
# Set on every response, whatever the view sent.
FIXED_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)


def set_security_headers(response: Response) -> Response:
    """Add the security headers to `response` (runs after every request)."""
    headers = response.headers
    # A response may bring a stricter policy of its own (a recording file: `sandbox; default-src 'none'`).
    if "Content-Security-Policy" not in headers:
        no_nonce = request.environ.get(NO_NONCE)
        headers["Content-Security-Policy"] = (
            hash_only_policy()
            if no_nonce
            else content_security_policy(csp_nonce(), style_nonce=bool(request.environ.get(STYLE_NONCE)))
        )
    for name, value in FIXED_HEADERS:
        headers[name] = value
    # same-origin, not no-referrer: browsers then send a Referer to our own origin only, and nothing to any
    # other. With no-referrer they send none at all (and a form POST's Origin becomes "null"), so every HTTPS
    # form would fail the strict referrer check of CSRF protection (WTF_CSRF_SSL_STRICT, SECURITY J4).
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)  # a page may ask for stricter (no-referrer)
    if request.is_secure:
        headers["Strict-Transport-Security"] = HSTS_VALUE
    headers.pop("Server", None)
    headers.pop("X-Powered-By", None)
    return response


def shared_page_headers(*, secure: bool) -> list[tuple[str, str]]:
    """The security headers of a page drawn `without_nonce()`, as `set_security_headers` gives them, for
    a response sent without Flask's request handling (portal.public's cached content pages)."""
    headers = [("Content-Security-Policy", hash_only_policy()), *FIXED_HEADERS, ("Referrer-Policy", REFERRER_POLICY)]
    if secure:
        headers.append(("Strict-Transport-Security", HSTS_VALUE))
    return headers


def refuse_nul_characters() -> None:
    """A NUL character has no place in an address, a query or a form field, and PostgreSQL cannot store one:
    refuse it before any view sees it (404 in the path, 400 in a query or form). Multipart bodies (recording
    uploads) are left to their view, which must raise its size limit before the body is read."""
    if "\x00" in request.path:
        abort(404)  # no address holds one (SECURITY H11: a path trick finds nothing)
    values = list(request.args.values())
    if request.mimetype == "application/x-www-form-urlencoded":
        values += list(request.form.values())
    if any("\x00" in value for value in values):
        abort(400, description="The request contains a character that is not allowed.")


def register_security(app: Flask) -> None:
    """Install the header hook and the NUL check, and expose `csp_nonce()` to templates."""
    app.before_request(refuse_nul_characters)
    app.after_request(set_security_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
