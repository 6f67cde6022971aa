"""The audit log viewer (admins only): filtered, paginated by keyset, exported as CSV, with the chain's
verification status, and the access report for the practice's quarterly access review."""

from __future__ import annotations

from admin import bp  # noqa: F401 (views are registered on the blueprint)
