"""How the portal writes dates, times, lengths, sizes, numbers and statuses: one function per format,
registered once as Jinja filters (`core.jinja`), so views and services pass raw values and every page and
email says the same thing the same way.

- A date is "3 March 2026"; with `weekday=True` it is "Tuesday 3 March 2026".
- A time is always in the practice's time zone (Europe/London, GMT or BST as the day has it), in the NHS
  style: "3 March 2026 at 2:05pm". Stored times come back from the database aware, in UTC
  (`core.models.types.UTCDateTime`); a naive time is refused, as its zone is unknown. The audit log needs
  the second and the zone: `precise=True` gives "3 March 2026, 14:05:07 GMT".
- A length is "14 s" or "2 min 5 s".
- A file size is in decimal units, as GOV.UK writes them: 1 KB is 1,000 bytes and 1 MB 1,000,000 bytes, for
  staff and patients alike ("217 KB" for 216,784 bytes).
- A number has thousands separators: "2,000".
- A request's status is a tag in the one colour STATUS_COLOURS gives it.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from core.models.requests import STATUS_LABELS

LONDON = ZoneInfo("Europe/London")

# One colour per status, for staff and patients: waiting on the patient (yellow, orange), with the practice
# (blue, aqua-green, purple), released (green), or closed (grey). Red is kept for what needs acting on now
# ("Overdue" on the staff pages), so a refusal, which is a closed request, is grey like the other endings.
STATUS_COLOURS = {
    "awaiting_identity": "yellow",
    "submitted": "blue",
    "clarification_requested": "orange",
    "in_progress": "aqua-green",
    "ready_for_approval": "purple",
    "released": "green",
    "completed": "grey",
    "no_recordings_found": "grey",
    "refused": "grey",
    "withdrawn": "grey",
}

_KB = 1000
_MB = 1000 * 1000
_GB = 1000 * 1000 * 1000


def in_london(moment: datetime) -> datetime:
    """A time in the practice's time zone. A naive time is refused: its zone is unknown."""
    if moment.tzinfo is None:
        raise ValueError(f"A naive time ({moment.isoformat()}) cannot be shown in London: give it a timezone.")
    return moment.astimezone(LONDON)


def format_date(day: date | datetime | None, *, weekday: bool = False) -> str:
    """ "3 March 2026" ("Tuesday 3 March 2026" with `weekday`); a time is first moved to London. None is ""."""
    if day is None:
        return ""
    if isinstance(day, datetime):
        day = in_london(day).date()
    text = f"{day.day} {day:%B %Y}"
    return f"{day:%A} {text}" if weekday else text


def format_date_iso(day: date | datetime) -> str:
    """The same day for machines (a `<time datetime>`): "2026-03-03", in London."""
    if isinstance(day, datetime):
        day = in_london(day).date()
    return day.isoformat()


def format_date_range(first: date, last: date) -> str:
    """ "3 March 2026", or "3 March 2026 to 5 March 2026" when the days differ."""
    if first == last:
        return format_date(first)
    return f"{format_date(first)} to {format_date(last)}"


def format_time(moment: datetime) -> str:
    """The time of day in London, NHS style: "9:05am", "12:30pm"."""
    local = in_london(moment)
    return f"{local.hour % 12 or 12}:{local:%M}{'am' if local.hour < 12 else 'pm'}"


def format_datetime(moment: datetime | None, *, precise: bool = False) -> str:
    """ "3 March 2026 at 2:05pm" in London; `precise` (the audit log) "3 March 2026, 14:05:07 GMT"."""
    if moment is None:
        return ""
    local = in_london(moment)
    if precise:
        return f"{format_date(local.date())}, {local:%H:%M:%S %Z}"
    return f"{format_date(local.date())} at {format_time(local)}"


def format_duration(seconds: float | None) -> str:
    """ "14 s", "2 min 5 s"; an unknown length is "Unknown length"."""
    if seconds is None:
        return "Unknown length"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _one_decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def format_file_size(size: int) -> str:
    """Decimal units: "999 bytes", "1 KB" to "999 KB" (whole kilobytes), then "1 MB", "1.5 MB" ... "999.9 MB",
    then GB. Each is rounded to what it shows, so 999,999 bytes is "1 MB", never "1000 KB"."""
    if size < _KB:
        return "1 byte" if size == 1 else f"{max(size, 0):,} bytes"
    if round(size / _KB) < 1000:
        return f"{round(size / _KB)} KB"
    if round(size / _MB, 1) < 1000:
        return f"{_one_decimal(size / _MB)} MB"
    return f"{_one_decimal(size / _GB)} GB"


def format_number(value: int) -> str:
    """ "2,000": thousands separated by commas, as in the limits forms state."""
    return f"{value:,}"


def status_colour(status: str) -> str:
    return STATUS_COLOURS.get(status, "grey")


def status_tag(status: str) -> Markup:
    """The NHS.UK tag for a request's status: `<strong class="nhsuk-tag nhsuk-tag--blue">Submitted</strong>`.
    The label is one of STATUS_LABELS (constants), escaped all the same."""
    label = STATUS_LABELS.get(status, status)
    return Markup('<strong class="nhsuk-tag nhsuk-tag--{}">{}</strong>').format(status_colour(status), escape(label))


FILTERS = {
    "date": format_date,
    "date_iso": format_date_iso,
    "date_range": format_date_range,
    "datetime": format_datetime,
    "time": format_time,
    "duration": format_duration,
    "file_size": format_file_size,
    "number": format_number,
    "status_tag": status_tag,
    "status_colour": status_colour,
}
