"""SQLAlchemy models, one module per aggregate. Importing this package registers every table."""

from core.models.content import NoticeVersion

__all__ = ["NoticeVersion"]
