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
from core.models.requests import (
    Complaint,
    Recording,
    RecordingRequest,
    ReferenceCounter,
    Release,
    ReleaseItem,
    RequestEvent,
)

__all__ = [
    "AccountToken",
    "AuditChainHead",
    "AuditEvent",
    "Complaint",
    "NoticeVersion",
    "OutboundEmail",
    "Patient",
    "Recording",
    "RecordingRequest",
    "RecoveryCode",
    "ReferenceCounter",
    "RegisterEntry",
    "Release",
    "ReleaseItem",
    "RequestEvent",
    "StaffUser",
    "WebSession",
]
