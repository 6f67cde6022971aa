"""The legal clock for subject access requests: one month (three if extended) to the next working day.

Every date asserted here was checked against Python's `calendar` (weekdays) and the `holidays` library (bank
holidays) before it was written down; the weekday and holiday are noted beside it.
"""

from __future__ import annotations

from datetime import date, timedelta

import holidays
import pytest
from dateutil.relativedelta import relativedelta

from core.legal_clock import (
    _bank_holidays,
    add_months,
    add_working_days,
    can_extend,
    due_date,
    is_bank_holiday,
    is_working_day,
    next_working_day,
    relevant_day,
    working_days_between,
)

# --- The worked examples (DESIGN §4) -------------------------------------------------------------------------


def test_a_reply_due_on_a_saturday_is_due_on_the_monday():
    # 3 October 2026 is a Saturday.
    assert due_date(date(2026, 9, 3)) == date(2026, 10, 5)


def test_a_month_without_the_date_ends_on_its_last_day_then_rolls_past_the_weekend():
    # There is no 30 February; 28 February 2026 is a Saturday, so Monday 2 March.
    assert due_date(date(2026, 1, 30)) == date(2026, 3, 2)


def test_the_last_day_of_a_shorter_month_is_the_due_date_when_it_is_a_working_day():
    # There is no 31 April; 30 April 2026 is a Thursday.
    assert due_date(date(2026, 3, 31)) == date(2026, 4, 30)


def test_an_extended_reply_is_due_three_months_after_the_relevant_day():
    # 3 December 2026 is a Thursday.
    assert due_date(date(2026, 9, 3), extended=True) == date(2026, 12, 3)


# --- Month ends and leap years -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),  # not a leap year
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 8, 31), 1, date(2026, 9, 30)),
        (date(2026, 12, 31), 1, date(2027, 1, 31)),  # into the next year, and January has a 31st
        (date(2026, 12, 15), 1, date(2027, 1, 15)),
        (date(2026, 1, 29), 1, date(2026, 2, 28)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2027, 11, 30), 3, date(2028, 2, 29)),
        (date(2026, 9, 3), 0, date(2026, 9, 3)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 15), -1, date(2025, 12, 15)),
        (date(2026, 9, 3), 24, date(2028, 9, 3)),
    ],
)
def test_add_months_gives_the_corresponding_date_clamped_to_the_end_of_the_month(start, months, expected):
    assert add_months(start, months) == expected


def test_add_months_beyond_the_last_representable_year_raises_overflow_error():
    with pytest.raises(OverflowError):
        add_months(date(9999, 12, 1), 1)


def test_31_january_is_due_on_the_first_working_day_after_28_february():
    # 28 February 2026 is a Saturday.
    assert due_date(date(2026, 1, 31)) == date(2026, 3, 2)


def test_31_august_is_due_on_30_september():
    # 30 September 2026 is a Wednesday.
    assert due_date(date(2026, 8, 31)) == date(2026, 9, 30)


def test_31_december_is_due_on_31_january_or_the_next_working_day():
    # 31 January 2027 is a Sunday.
    assert due_date(date(2026, 12, 31)) == date(2027, 2, 1)


@pytest.mark.parametrize("received", [date(2028, 1, 29), date(2028, 1, 30), date(2028, 1, 31)])
def test_late_january_in_a_leap_year_is_due_on_29_february(received):
    # 29 February 2028 is a Tuesday: the 29th by correspondence, the 30th and 31st by the month-end clamp.
    assert due_date(received) == date(2028, 2, 29)


def test_31_january_before_a_non_leap_february_ending_on_a_sunday_is_due_on_1_march():
    # 28 February 2027 is a Sunday.
    assert due_date(date(2027, 1, 31)) == date(2027, 3, 1)


# --- Bank holidays -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "received",
    [
        date(2027, 11, 25),  # -> Saturday 25 December 2027, Christmas Day
        date(2027, 11, 26),  # -> Sunday 26 December, Boxing Day
        date(2027, 11, 27),  # -> Monday 27 December, substitute for Christmas Day
        date(2027, 11, 28),  # -> Tuesday 28 December, substitute for Boxing Day
        date(2027, 11, 29),  # -> Wednesday 29 December, a working day
    ],
)
def test_christmas_2027_on_a_weekend_rolls_past_both_substitute_days_to_wednesday_29_december(received):
    assert due_date(received) == date(2027, 12, 29)


@pytest.mark.parametrize(
    "received",
    [
        date(2026, 11, 25),  # -> Friday 25 December 2026, Christmas Day
        date(2026, 11, 26),  # -> Saturday 26 December, Boxing Day
        date(2026, 11, 27),  # -> Sunday 27 December
        date(2026, 11, 28),  # -> Monday 28 December, substitute for Boxing Day
    ],
)
def test_christmas_2026_with_boxing_day_on_saturday_rolls_to_tuesday_29_december(received):
    assert due_date(received) == date(2026, 12, 29)


def test_christmas_substitute_days_are_not_working_days():
    assert not is_working_day(date(2027, 12, 27))
    assert not is_working_day(date(2027, 12, 28))
    assert not is_working_day(date(2026, 12, 28))
    assert is_working_day(date(2026, 12, 29))


def test_good_friday_rolls_past_the_weekend_and_easter_monday_to_the_tuesday():
    # 3 April 2026 is Good Friday; Monday 6 April is Easter Monday.
    assert due_date(date(2026, 3, 3)) == date(2026, 4, 7)


def test_good_friday_2027_rolls_to_tuesday_30_march():
    # 26 March 2027 is Good Friday; Monday 29 March is Easter Monday.
    assert due_date(date(2027, 2, 26)) == date(2027, 3, 30)


def test_the_early_may_bank_holiday_rolls_to_the_tuesday():
    # Monday 4 May 2026 is the early May bank holiday.
    assert due_date(date(2026, 4, 4)) == date(2026, 5, 5)


def test_the_spring_bank_holiday_rolls_to_the_tuesday():
    # Monday 25 May 2026 is the spring bank holiday.
    assert due_date(date(2026, 4, 25)) == date(2026, 5, 26)


def test_the_summer_bank_holiday_rolls_to_the_tuesday():
    # Monday 31 August 2026 is the summer bank holiday.
    assert due_date(date(2026, 7, 31)) == date(2026, 9, 1)


def test_the_state_funeral_of_queen_elizabeth_ii_was_a_bank_holiday():
    # Monday 19 September 2022.
    assert is_bank_holiday(date(2022, 9, 19))
    assert due_date(date(2022, 8, 19)) == date(2022, 9, 20)


def test_the_coronation_of_charles_iii_was_a_bank_holiday():
    # Monday 8 May 2023, a week after the early May bank holiday (Monday 1 May).
    assert is_bank_holiday(date(2023, 5, 8))
    assert is_bank_holiday(date(2023, 5, 1))
    assert due_date(date(2023, 4, 8)) == date(2023, 5, 9)


def test_the_platinum_jubilee_moved_the_spring_bank_holiday_in_2022():
    # Thursday 2 June (spring bank holiday, moved from Monday 30 May) and Friday 3 June (Platinum Jubilee).
    assert not is_working_day(date(2022, 6, 2))
    assert not is_working_day(date(2022, 6, 3))
    assert is_working_day(date(2022, 5, 30))


def test_the_early_may_bank_holiday_moved_to_ve_day_in_2020():
    # Friday 8 May 2020 instead of Monday 4 May.
    assert not is_working_day(date(2020, 5, 8))
    assert is_working_day(date(2020, 5, 4))


def test_scottish_only_bank_holidays_are_working_days():
    # 2 January (Friday in 2026) and the first Monday of August are bank holidays in Scotland only.
    assert is_working_day(date(2026, 1, 2))
    assert is_working_day(date(2026, 8, 3))


def test_england_and_wales_share_one_bank_holiday_calendar_in_the_library():
    """The clock reads the "ENG" subdivision; the library's "WLS" calendar must be the same."""
    years = range(2000, 2041)
    england = holidays.country_holidays("GB", subdiv="ENG", years=years)
    wales = holidays.country_holidays("GB", subdiv="WLS", years=years)
    assert set(england) == set(wales)


def test_bank_holidays_are_read_from_the_library_once_per_year():
    _bank_holidays.cache_clear()
    is_working_day(date(2029, 1, 1))
    is_working_day(date(2029, 6, 1))
    is_working_day(date(2029, 12, 31))
    info = _bank_holidays.cache_info()
    assert (info.misses, info.hits) == (1, 2)


# --- Working days ----------------------------------------------------------------------------------------------


def test_weekdays_are_working_days_and_weekends_are_not():
    assert is_working_day(date(2026, 9, 3))  # Thursday
    assert is_working_day(date(2026, 9, 4))  # Friday
    assert not is_working_day(date(2026, 9, 5))  # Saturday
    assert not is_working_day(date(2026, 9, 6))  # Sunday
    assert is_working_day(date(2026, 9, 7))  # Monday


def test_next_working_day_is_the_day_itself_when_it_is_a_working_day():
    assert next_working_day(date(2026, 9, 3)) == date(2026, 9, 3)


def test_next_working_day_skips_a_weekend_and_a_run_of_bank_holidays():
    assert next_working_day(date(2026, 10, 3)) == date(2026, 10, 5)
    assert next_working_day(date(2027, 12, 25)) == date(2027, 12, 29)
    assert next_working_day(date(2026, 4, 3)) == date(2026, 4, 7)


def test_add_working_days_skips_weekends_and_bank_holidays():
    # Thursday 2 April 2026 + 1: Good Friday, the weekend and Easter Monday are skipped.
    assert add_working_days(date(2026, 4, 2), 1) == date(2026, 4, 7)
    # Thursday 3 September 2026 + 5: Friday, (weekend), Monday to Thursday.
    assert add_working_days(date(2026, 9, 3), 5) == date(2026, 9, 10)


def test_add_zero_working_days_is_the_day_itself_even_on_a_weekend():
    assert add_working_days(date(2026, 9, 5), 0) == date(2026, 9, 5)


def test_add_working_days_refuses_a_negative_count():
    with pytest.raises(ValueError, match="count"):
        add_working_days(date(2026, 9, 3), -1)


def test_working_days_between_counts_after_start_up_to_and_including_end():
    # Thursday 2 April 2026 to Tuesday 7 April: only the Tuesday is a working day.
    assert working_days_between(date(2026, 4, 2), date(2026, 4, 7)) == 1
    # Thursday 3 September to Thursday 10 September 2026: Fri, Mon, Tue, Wed, Thu.
    assert working_days_between(date(2026, 9, 3), date(2026, 9, 10)) == 5
    assert working_days_between(date(2026, 9, 3), date(2026, 9, 3)) == 0


def test_working_days_between_is_negative_when_the_end_is_before_the_start():
    assert working_days_between(date(2026, 4, 7), date(2026, 4, 2)) == -1
    assert working_days_between(date(2026, 9, 10), date(2026, 9, 3)) == -5


def test_2026_has_253_working_days():
    # 365 days - 104 weekend days - 8 bank holidays on weekdays (Boxing Day falls on a Saturday; its
    # substitute, Monday 28 December, is one of the 8).
    assert working_days_between(date(2025, 12, 31), date(2026, 12, 31)) == 253


def test_add_working_days_and_working_days_between_agree():
    for offset in range(0, 400, 7):
        start = date(2026, 1, 1) + timedelta(days=offset)
        for count in (0, 1, 2, 5, 20, 23):
            assert working_days_between(start, add_working_days(start, count)) == count, (start, count)


# --- Pauses for clarification ----------------------------------------------------------------------------------


def test_no_pause_is_the_same_as_the_default():
    assert due_date(date(2026, 9, 3), paused_days=0) == due_date(date(2026, 9, 3))


def test_a_pause_is_added_before_rolling_to_a_working_day():
    # 3 October 2026 + 1 day = Sunday 4 October -> Monday 5 October. (Adding after the roll would give the 6th.)
    assert due_date(date(2026, 9, 3), paused_days=1) == date(2026, 10, 5)


def test_a_pause_that_ends_on_a_weekend_rolls_to_the_monday():
    # 3 October 2026 + 7 days = Saturday 10 October -> Monday 12 October.
    assert due_date(date(2026, 9, 3), paused_days=7) == date(2026, 10, 12)


def test_a_pause_onto_a_weekend_before_a_bank_holiday_rolls_past_both():
    # 30 April 2026 + 2 days = Saturday 2 May; Monday 4 May is the early May bank holiday -> Tuesday 5 May.
    assert due_date(date(2026, 3, 31), paused_days=2) == date(2026, 5, 5)


def test_a_pause_is_added_after_the_month_end_clamp():
    # 29 January 2026 + 1 month = 28 February (clamped), + 3 days = Tuesday 3 March.
    assert due_date(date(2026, 1, 29), paused_days=3) == date(2026, 3, 3)


def test_a_pause_also_moves_an_extended_due_date():
    # 3 December 2026 + 10 days = Sunday 13 December -> Monday 14 December.
    assert due_date(date(2026, 9, 3), paused_days=10, extended=True) == date(2026, 12, 14)


def test_a_negative_pause_is_refused():
    with pytest.raises(ValueError, match="paused_days"):
        due_date(date(2026, 9, 3), paused_days=-1)


# --- Extensions ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relevant", "expected"),
    [
        (date(2026, 11, 30), date(2027, 3, 1)),  # no 30 February: Sunday 28 February 2027 -> Monday 1 March
        (date(2027, 11, 30), date(2028, 2, 29)),  # no 30 February: 29 February 2028 is a Tuesday
        (date(2028, 1, 31), date(2028, 5, 2)),  # no 31 April: Sunday 30 April 2028, Monday 1 May is a bank holiday
        (date(2026, 5, 31), date(2026, 9, 1)),  # Monday 31 August 2026 is the summer bank holiday
        (date(2026, 12, 31), date(2027, 3, 31)),  # a Wednesday
    ],
)
def test_extended_due_dates_follow_the_same_month_end_and_working_day_rules(relevant, expected):
    assert due_date(relevant, extended=True) == expected


def test_an_extension_is_allowed_up_to_and_including_the_original_due_date():
    original_due = date(2026, 10, 5)
    assert can_extend(original_due, today=date(2026, 9, 3))
    assert can_extend(original_due, today=date(2026, 10, 4))
    assert can_extend(original_due, today=date(2026, 10, 5))


def test_an_extension_is_refused_after_the_original_due_date():
    original_due = date(2026, 10, 5)
    assert not can_extend(original_due, today=date(2026, 10, 6))
    assert not can_extend(original_due, today=date(2027, 1, 1))


# --- The relevant day --------------------------------------------------------------------------------------------


def test_the_relevant_day_is_the_day_received_when_identity_needed_no_separate_proof():
    assert relevant_day(date(2026, 9, 3), None) == date(2026, 9, 3)


def test_the_relevant_day_is_the_later_of_receipt_and_proof_of_identity():
    assert relevant_day(date(2026, 9, 3), date(2026, 9, 10)) == date(2026, 9, 10)
    assert relevant_day(date(2026, 9, 3), date(2026, 9, 1)) == date(2026, 9, 3)
    assert relevant_day(date(2026, 9, 3), date(2026, 9, 3)) == date(2026, 9, 3)


def test_late_proof_of_identity_moves_the_due_date():
    # Proof on Thursday 10 September 2026 -> Saturday 10 October -> Monday 12 October.
    assert due_date(relevant_day(date(2026, 9, 3), date(2026, 9, 10))) == date(2026, 10, 12)


# --- Every day of 2026 to 2030 -------------------------------------------------------------------------------------

# Built independently of core.legal_clock: weekdays from `date`, holidays straight from the library, months from
# dateutil's relativedelta (which also clamps to the end of a shorter month).
ORACLE_HOLIDAYS = set(holidays.country_holidays("GB", subdiv="ENG", years=range(2026, 2032)))
EVERY_DAY = [date(2026, 1, 1) + timedelta(days=n) for n in range((date(2030, 12, 31) - date(2026, 1, 1)).days + 1)]
# The longest roll: Good Friday to Tuesday, or a Friday or Saturday Christmas Day to the next Tuesday or Wednesday.
LONGEST_ROLL_DAYS = 4


def oracle_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in ORACLE_HOLIDAYS


@pytest.mark.parametrize(("extended", "months"), [(False, 1), (True, 3)])
def test_every_due_date_from_2026_to_2030_is_the_first_working_day_on_or_after_the_clamped_date(extended, months):
    longest = 0
    for relevant in EVERY_DAY:
        due = due_date(relevant, extended=extended)
        clamped = relevant + relativedelta(months=months)
        assert oracle_working_day(due), (relevant, due)
        assert due >= clamped, (relevant, due)
        assert all(not oracle_working_day(clamped + timedelta(days=n)) for n in range((due - clamped).days))
        roll = (due - clamped).days
        # More than a weekend's roll only happens when a bank holiday is in the way.
        if roll > 2:
            assert any(clamped + timedelta(days=n) in ORACLE_HOLIDAYS for n in range(roll)), (relevant, due)
        longest = max(longest, roll)
    assert longest == LONGEST_ROLL_DAYS


def test_a_later_relevant_day_never_gives_an_earlier_due_date():
    for extended in (False, True):
        dues = [due_date(day, extended=extended) for day in EVERY_DAY]
        assert dues == sorted(dues)


def test_a_longer_pause_never_gives_an_earlier_due_date():
    for relevant in EVERY_DAY[::11]:
        dues = [due_date(relevant, paused_days=paused) for paused in range(30)]
        assert dues == sorted(dues)
        assert all(due >= add_months(relevant, 1) + timedelta(days=paused) for paused, due in enumerate(dues))
