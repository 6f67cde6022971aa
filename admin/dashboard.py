"""The staff home page: the compliance dashboard."""

from __future__ import annotations

from admin import bp  # noqa: F401 (views are registered on the blueprint)
