"""The one set of formatters (core.formatters), as functions and as the Jinja filters every page uses."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from bs4 import BeautifulSoup

from core.formatters import (
    STATUS_COLOURS,
    format_date,
    format_date_iso,
    format_date_range,
    format_datetime,
    format_duration,
    format_file_size,
    format_number,
    format_time,
    status_tag,
)
from core.models.requests import REQUEST_STATUSES, STATUS_LABELS

# ---------------------------------------------------------------------------------------------------------
# Dates and times: always in London, GMT or BST as the day has it
# ---------------------------------------------------------------------------------------------------------


def test_a_date_has_no_leading_zero_and_a_weekday_only_when_asked():
    assert format_date(date(2026, 3, 3)) == "3 March 2026"
    assert format_date(date(2026, 3, 3), weekday=True) == "Tuesday 3 March 2026"
    assert format_date(None) == ""


@pytest.mark.parametrize(
    ("utc", "london"),
    [
        # The clocks go forward at 01:00 UTC on 29 March 2026: 00:59 GMT, then 02:00 BST.
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "29 March 2026 at 12:59am"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "29 March 2026 at 2:00am"),
        # They go back at 01:00 UTC on 25 October 2026: 01:59 BST, then 01:00 GMT again.
        (datetime(2026, 10, 25, 0, 59, tzinfo=UTC), "25 October 2026 at 1:59am"),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "25 October 2026 at 1:00am"),
        # In summer a late evening in UTC is the next day in London.
        (datetime(2026, 6, 30, 23, 30, tzinfo=UTC), "1 July 2026 at 12:30am"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "31 December 2026 at 11:30pm"),
        (datetime(2026, 7, 2, 11, 5, tzinfo=UTC), "2 July 2026 at 12:05pm"),
    ],
)
def test_a_time_is_shown_in_london_across_the_clock_changes(utc, london):
    assert format_datetime(utc) == london


def naive(*parts: int) -> datetime:
    """A time without its zone (the database hands back aware UTC times: core.models.types.UTCDateTime)."""
    return datetime(*parts, tzinfo=UTC).replace(tzinfo=None)


def test_a_naive_time_is_refused_rather_than_guessed():
    for show in (format_datetime, format_date, format_date_iso, format_time):
        with pytest.raises(ValueError, match="naive time"):
            show(naive(2026, 7, 2, 13, 5))


def test_the_audit_log_time_has_seconds_and_the_zone():
    assert format_datetime(datetime(2026, 9, 7, 8, 10, tzinfo=UTC), precise=True) == "7 September 2026, 09:10:00 BST"
    assert format_datetime(datetime(2026, 1, 7, 8, 10, 5, tzinfo=UTC), precise=True) == "7 January 2026, 08:10:05 GMT"
    assert format_datetime(None) == ""


def test_a_range_of_days_names_one_day_once():
    assert format_date_range(date(2026, 3, 3), date(2026, 3, 3)) == "3 March 2026"
    assert format_date_range(date(2026, 3, 3), date(2026, 3, 5)) == "3 March 2026 to 5 March 2026"


# ---------------------------------------------------------------------------------------------------------
# Lengths, sizes and numbers
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "Unknown length"), (0, "0 s"), (14.4, "14 s"), (59.4, "59 s"), (59.5, "1 min 0 s"), (125, "2 min 5 s")],
)
def test_a_duration_is_minutes_and_seconds(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (999, "999 bytes"),
        (1000, "1 KB"),
        (1499, "1 KB"),
        (1500, "2 KB"),
        (216_784, "217 KB"),  # the recording staff saw as "212 KB" and the patient as "217 KB"
        (999_499, "999 KB"),
        (999_500, "1 MB"),  # never "1000 KB"
        (1_000_000, "1 MB"),
        (1_050_000, "1.1 MB"),
        (1_500_000, "1.5 MB"),
        (209_715_200, "209.7 MB"),  # the default upload limit, 200 MiB
        (999_949_999, "999.9 MB"),
        (999_950_000, "1 GB"),  # never "1000 MB"
        (2_500_000_000, "2.5 GB"),
    ],
)
def test_a_file_size_is_in_decimal_units_at_each_boundary(size, text):
    assert format_file_size(size) == text


def test_a_number_has_thousands_separators():
    assert [format_number(n) for n in (0, 999, 1000, 2000, 100_000, 1_234_567)] == [
        "0",
        "999",
        "1,000",
        "2,000",
        "100,000",
        "1,234,567",
    ]


# ---------------------------------------------------------------------------------------------------------
# Status tags
# ---------------------------------------------------------------------------------------------------------


def test_every_status_has_one_colour_the_design_system_knows():
    assert set(STATUS_COLOURS) == set(REQUEST_STATUSES)
    allowed = {"white", "grey", "green", "aqua-green", "blue", "purple", "pink", "red", "orange", "yellow"}
    assert set(STATUS_COLOURS.values()) <= allowed
    assert "red" not in STATUS_COLOURS.values()  # red is for what needs acting on now, like "Overdue"


def test_the_status_tag_is_what_the_nhs_tag_macro_draws(app):
    for status in REQUEST_STATUSES:
        ours = BeautifulSoup(str(status_tag(status)), "html.parser").strong
        theirs = BeautifulSoup(
            app.jinja_env.from_string(
                '{% from "nhsuk/components/tag/macro.jinja" import tag %}{{ tag(params) }}'
            ).render(params={"text": STATUS_LABELS[status], "colour": STATUS_COLOURS[status]}),
            "html.parser",
        ).strong
        assert ours["class"] == theirs["class"]
        assert ours.get_text(strip=True) == theirs.get_text(strip=True) == STATUS_LABELS[status]


# ---------------------------------------------------------------------------------------------------------
# Registered as filters
# ---------------------------------------------------------------------------------------------------------


def test_the_formatters_are_jinja_filters(app):
    template = app.jinja_env.from_string(
        "{{ day | date }}|{{ day | date(weekday=True) }}|{{ moment | datetime }}|{{ moment | date_iso }}|"
        "{{ 125 | duration }}|{{ 216784 | file_size }}|{{ 2000 | number }}|{{ day | date_range(day) }}|"
        "{{ 'released' | status_tag }}"
    )
    text = template.render(day=date(2026, 3, 3), moment=datetime(2026, 7, 2, 13, 5, tzinfo=UTC))
    assert text == (
        "3 March 2026|Tuesday 3 March 2026|2 July 2026 at 2:05pm|2026-07-02|2 min 5 s|217 KB|2,000|3 March 2026|"
        '<strong class="nhsuk-tag nhsuk-tag--green">Ready to download</strong>'
    )
