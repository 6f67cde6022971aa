"""Practice settings (admins only): the practice's details and its policies for releases and retention."""

from __future__ import annotations

from admin import bp  # noqa: F401 (views are registered on the blueprint)
