"""The notice editor (admins only): the content pages, their versions, preview, drafts, publishing, diffs
and roll-back."""

from __future__ import annotations

from admin import bp  # noqa: F401 (views are registered on the blueprint)
