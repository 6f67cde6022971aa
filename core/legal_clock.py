"""The legal clock for subject access requests (UK GDPR Article 12(3); DESIGN §4). Pure date arithmetic.

- The clock starts on the *relevant day*: the later of the day the request arrived and the day proof of
  identity arrived (`relevant_day`).
- The reply is due on the corresponding calendar date one month later (`add_months`); when that month has no
  such date, on its last day. Days spent waiting for a clarification the practice asked for are added on in
  calendar days. If the date so reached is a Saturday, a Sunday or a bank holiday, the reply is due on the next
  working day (`due_date`).
- An extension makes it three months from the relevant day, by the same rules (`due_date(..., extended=True)`),
  and must be told to the patient no later than the original due date (`can_extend`).

Bank holidays are England and Wales's, from the maintained `holidays` library (subdivision "ENG"; its "WLS"
calendar is the same). The library includes the one-off bank holidays already proclaimed (for example the
State Funeral of Queen Elizabeth II on 19 September 2022 and the Coronation on 8 May 2023); one proclaimed
later reaches this clock only when the pinned version of the library is upgraded.
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta
from functools import lru_cache

import holidays

# England and Wales share their bank holidays; the library's "ENG" and "WLS" calendars are identical.
BANK_HOLIDAY_COUNTRY = "GB"
BANK_HOLIDAY_SUBDIVISION = "ENG"

ONE_MONTH = 1
EXTENDED_MONTHS = 3  # the usual month plus the extension of up to two further months

SATURDAY = 5  # date.weekday(): Monday is 0


@lru_cache(maxsize=128)
def _bank_holidays(year: int) -> frozenset[date]:
    """The bank holidays in England and Wales in `year`, read from the `holidays` library once per year.

    Frozen into a set of dates: the library's own object adds years to itself on lookups outside its range,
    which a cache shared by every request thread should not do.
    """
    return frozenset(holidays.country_holidays(BANK_HOLIDAY_COUNTRY, subdiv=BANK_HOLIDAY_SUBDIVISION, years=year))


def is_bank_holiday(day: date) -> bool:
    """True if `day` is a bank holiday in England and Wales (substitute days included)."""
    return day in _bank_holidays(day.year)


def is_working_day(day: date) -> bool:
    """True from Monday to Friday, except bank holidays in England and Wales."""
    return day.weekday() < SATURDAY and not is_bank_holiday(day)


def next_working_day(day: date) -> date:
    """`day` itself if it is a working day, otherwise the first working day after it."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def add_working_days(day: date, count: int) -> date:
    """The date `count` working days after `day`; `day` itself when `count` is 0, even if it is not a working day.

    So `working_days_between(day, add_working_days(day, count)) == count` for every count >= 0.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    while count:
        day += timedelta(days=1)
        if is_working_day(day):
            count -= 1
    return day


def working_days_between(start: date, end: date) -> int:
    """The number of working days in (start, end]: after `start`, up to and including `end`.

    Negative when `end` is before `start`: minus the working days in (end, start].
    """
    if end < start:
        return -working_days_between(end, start)
    return sum(1 for offset in range(1, (end - start).days + 1) if is_working_day(start + timedelta(days=offset)))


def add_months(day: date, months: int) -> date:
    """The corresponding date `months` later (earlier when negative); the month's last day if it is shorter.

    31 January plus one month is 28 February (29 in a leap year); 31 August plus one month is 30 September.
    Raises OverflowError beyond the years 1 to 9999 that `date` can hold.
    """
    month_index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(month_index, 12)
    if not date.min.year <= year <= date.max.year:
        raise OverflowError(f"{months} months from {day.isoformat()} is outside the years a date can hold")
    last_day = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last_day))


def relevant_day(received: date, identity_confirmed: date | None) -> date:
    """The day the clock starts: the later of the day the request arrived and the day proof of identity arrived.

    `identity_confirmed` is None when no separate proof was needed (or it came with the request).
    """
    if identity_confirmed is None:
        return received
    return max(received, identity_confirmed)


def due_date(relevant: date, *, paused_days: int = 0, extended: bool = False) -> date:
    """The last day on which the practice may reply to a request whose relevant day is `relevant`.

    One month after `relevant` (three when `extended`), clamped to the end of a shorter month; then
    `paused_days` calendar days later, for the days the clock stood still while the practice waited for a
    clarification it needed; then rolled forward to the next working day if that is a weekend or bank holiday.
    The pause is added before the roll, so a pause that ends on a Saturday moves the reply to the Monday.
    """
    if paused_days < 0:
        raise ValueError(f"paused_days must be 0 or more, not {paused_days}")
    months = EXTENDED_MONTHS if extended else ONE_MONTH
    return next_working_day(add_months(relevant, months) + timedelta(days=paused_days))


def can_extend(original_due: date, today: date) -> bool:
    """True if the practice may still extend the time limit on `today`: on or before the original due date.

    The extension has to be told to the patient, with the reasons, within the original month, so the due
    date itself is still in time and the day after it is too late.
    """
    return today <= original_due
