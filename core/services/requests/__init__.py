"""Requests for copies of call recordings: submission, the state machine, the legal clock, messages to the
patient, the staff queue and complaints. One module for each:

- `lifecycle`: the state machine (`TRANSITIONS`) and the steps every change is made of: `lock`, `move`,
  `add_timeline_entry`, `audit`, `audit_object`. core.services.recordings and releases use them too;
- `clock`: the legal clock (start, due date, overdue); `messages`: the emails to the patient;
- `intake`: online and offline submission; `identity`: identity confirmed, the clock starts;
- `actions`: staff work on a request; `decisions`: how it ends (no recordings, refused, completed, withdrawn);
- `complaints`, `queue` (the staff queue), `reading` (requests and timelines for the pages).

Every status change goes through `lifecycle.move`, which refuses a transition the state machine does not allow
(the service decides, not only the page), and writes the request's timeline entry and an audit event, in the
transaction of the change (each writing function is `@transactional`).

The names below are the package's public interface: callers import them from `core.services.requests`.
"""

from core.services.requests.actions import (
    add_note,
    answer_clarification,
    ask_for_clarification,
    assign,
    extend,
    start_work,
)
from core.services.requests.clock import is_overdue, long_date, original_due_on
from core.services.requests.complaints import (
    COMPLAINT_ACKNOWLEDGE_DAYS,
    acknowledge_complaint,
    complain,
    complaint_by_public_id,
    complaints_awaiting_acknowledgement,
    complaints_for,
    count_complaints_awaiting_acknowledgement,
    recently_acknowledged_complaints,
)
from core.services.requests.decisions import close, mark_no_recordings, refuse, withdraw
from core.services.requests.identity import confirm_requester_identity, start_clocks_for_verified_patient
from core.services.requests.intake import (
    CallDetails,
    OfflineRequest,
    log_offline_request,
    request_by_submission_key,
    submit_request,
)
from core.services.requests.lifecycle import (
    LONDON,
    OPEN_STATUSES,
    TRANSITIONS,
    RequestError,
    now_utc,
    practice_today,
)
from core.services.requests.messages import RIGHTS_TEXT
from core.services.requests.queue import QueueFilter, QueuePage, queue, queue_count, status_counts
from core.services.requests.reading import (
    active_staff,
    latest_question,
    patient_request,
    patient_requests,
    patients_with_nhs_number,
    request_by_reference,
    timeline,
)

__all__ = [
    "COMPLAINT_ACKNOWLEDGE_DAYS",
    "LONDON",
    "OPEN_STATUSES",
    "RIGHTS_TEXT",
    "TRANSITIONS",
    "CallDetails",
    "OfflineRequest",
    "QueueFilter",
    "QueuePage",
    "RequestError",
    "acknowledge_complaint",
    "active_staff",
    "add_note",
    "answer_clarification",
    "ask_for_clarification",
    "assign",
    "close",
    "complain",
    "complaint_by_public_id",
    "complaints_awaiting_acknowledgement",
    "complaints_for",
    "confirm_requester_identity",
    "count_complaints_awaiting_acknowledgement",
    "extend",
    "is_overdue",
    "latest_question",
    "log_offline_request",
    "long_date",
    "mark_no_recordings",
    "now_utc",
    "original_due_on",
    "patient_request",
    "patient_requests",
    "patients_with_nhs_number",
    "practice_today",
    "queue",
    "queue_count",
    "recently_acknowledged_complaints",
    "refuse",
    "request_by_reference",
    "request_by_submission_key",
    "start_clocks_for_verified_patient",
    "start_work",
    "status_counts",
    "submit_request",
    "timeline",
    "withdraw",
]
