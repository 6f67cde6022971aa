"""Readiness: can the application reach its database?"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from core.extensions import db
from core.log import logger


def database_is_reachable() -> bool:
    """Run `SELECT 1`; log (never raise) when the database cannot be reached."""
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("health check: database unreachable", extra={"error_type": type(exc).__name__})
        return False
