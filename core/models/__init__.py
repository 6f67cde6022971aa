"""SQLAlchemy models, one module per aggregate. Importing this package registers every table."""

from core.models.accounts import (
    AccountToken,
    Patient,
    RecoveryCode,
    RegisterEntry,
    StaffUser,
    WebSession,
)
from core.models.audit import AuditChainHead, AuditEvent
from core.models.content import NoticeVersion
from core.models.email import OutboundEmail

__all__ = [
    "AccountToken",
    "AuditChainHead",
    "AuditEvent",
    "NoticeVersion",
    "OutboundEmail",
    "Patient",
    "RecoveryCode",
    "RegisterEntry",
    "StaffUser",
    "WebSession",
]
