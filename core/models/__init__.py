"""SQLAlchemy models, one module per aggregate. Importing this package registers every table."""

from core.models.accounts import (
    AccountToken,
    Patient,
    RecoveryCode,
    RegisterEntry,
    RegistrationKey,
    StaffUser,
    WebSession,
)
from core.models.audit import AuditAnchor, AuditChainHead, AuditCheck, AuditEvent
from core.models.content import NoticeVersion
from core.models.email import OutboundEmail
from core.models.redaction import RecordingWaveform, RedactedCopy, RedactionRange
from core.models.requests import (
    Complaint,
    Recording,
    RecordingChunk,
    RecordingRequest,
    ReferenceCounter,
    Release,
    ReleaseItem,
    RequestEvent,
)
from core.models.settings import PracticeSettings
from core.models.worker import JobRun, WorkerHeartbeat

__all__ = [
    "AccountToken",
    "AuditAnchor",
    "AuditChainHead",
    "AuditCheck",
    "AuditEvent",
    "Complaint",
    "JobRun",
    "NoticeVersion",
    "OutboundEmail",
    "Patient",
    "PracticeSettings",
    "Recording",
    "RecordingChunk",
    "RecordingRequest",
    "RecordingWaveform",
    "RecoveryCode",
    "RedactedCopy",
    "RedactionRange",
    "ReferenceCounter",
    "RegisterEntry",
    "RegistrationKey",
    "Release",
    "ReleaseItem",
    "RequestEvent",
    "StaffUser",
    "WebSession",
    "WorkerHeartbeat",
]
