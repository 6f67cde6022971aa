"""Download links: `/downloads/<token>` from the patient's email, the page listing the released
recordings, playing them in the browser and downloading them."""

from __future__ import annotations

from core.auth import follow_emailed_link
from portal import bp

LINK_PURPOSE = "download"


@bp.get("/downloads/<token>")
def download_link(token: str):
    """The emailed link: keep the token in the session and continue at an address without it. A GET changes
    nothing about the link (mail scanners follow links)."""
    return follow_emailed_link(LINK_PURPOSE, token, "portal.download_page")


@bp.get("/downloads/")
def download_page():
    raise NotImplementedError  # written next: the recordings on the link
