"""The staff home page: the compliance dashboard (what needs attention, and the last 12 months as a chart, a
table and a CSV download), for every member of staff.

The figures come from core.services.dashboard. The chart is an SVG drawn in the template from the numbers
`chart()` works out here (coordinates in the SVG's own units): no script, no third-party chart library, and
every value in it goes through Jinja's escaping like any other text.
"""

from __future__ import annotations

import csv
import io

from flask import Response, g, render_template

from admin import bp
from core.services import dashboard as dashboard_service
from core.services import totp
from core.services.dashboard import MonthFigures
from core.services.worker import job_status

# The chart's box in SVG units. It scales to the width of its column: 288 CSS pixels on the narrowest phone
# (320 px), about 360 on most phones, at most 480 on a desktop (portal.css), so the month labels (12 units)
# show at about 11 to 18 pixels, and nothing is smaller than 10.
WIDTH, HEIGHT = 320, 260
LEFT, RIGHT, TOP, BOTTOM = 32, 32, 28, 48
PLOT_WIDTH, PLOT_HEIGHT = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
BAR_SHARE = 0.6  # of each month's slot
MOST_TICKS = 5
CSV_HEADER = (
    "Month",
    "Received",
    "Completed",
    "Completed on time",
    "% on time",
    "Median days to complete",
    "Extensions",
    "Refusals",
)


def _round(value: float) -> float:
    return round(value, 2)


def count_scale(largest: int) -> tuple[int, int]:
    """(top, step) of the count axis: the smallest step of 1, 2 or 5 times a power of ten that reaches
    `largest` in at most MOST_TICKS steps, and the first multiple of it at or above `largest`. An empty year
    still gets an axis (0 to 4)."""
    if largest <= 0:
        return 4, 1
    power = 1
    while True:
        for multiple in (1, 2, 5):
            step = multiple * power
            if step * MOST_TICKS >= largest:
                return step * -(-largest // step), step
        power *= 10


def _bar(month: MonthFigures, *, first: bool, centre: float, width: float, height: float, baseline: float) -> dict:
    """One month's bar of requests received, with its value above it and its month (and year) below."""
    return {
        "x": _round(centre - width / 2),
        "y": _round(baseline - height),
        "width": _round(width),
        "height": _round(height),
        "centre": _round(centre),
        "value": month.received,
        "value_y": _round(baseline - height - 3),
        "month": f"{month.month:%b}",
        "month_name": month.label,
        # The year under the first month and under each January.
        "year": f"{month.month:%Y}" if first or month.month.month == 1 else "",
    }


def chart(months: list[MonthFigures]) -> dict:
    """Everything the template needs to draw the chart: bars for requests received (left scale) and points
    joined by a line for % completed on time (right scale, 0 to 100), with the axes' ticks and labels. A
    month with nothing completed has no point, and the line breaks there rather than drawing through it."""
    top, step = count_scale(max((month.received for month in months), default=0))
    slot = PLOT_WIDTH / len(months)
    bar_width = slot * BAR_SHARE
    baseline = TOP + PLOT_HEIGHT
    bars, points, segments, current = [], [], [], []
    for index, month in enumerate(months):
        centre = LEFT + slot * (index + 0.5)
        height = PLOT_HEIGHT * month.received / top
        bars.append(_bar(month, first=index == 0, centre=centre, width=bar_width, height=height, baseline=baseline))
        percent = month.percent_on_time
        if percent is None:
            if current:
                segments.append(current)
            current = []
            continue
        point = {"x": _round(centre), "y": _round(baseline - PLOT_HEIGHT * percent / 100), "value": percent}
        points.append(point)
        current.append(point)
    if current:
        segments.append(current)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "baseline": baseline,
        "month_y": baseline + 14,
        "year_y": baseline + 27,
        "legend_y": HEIGHT - 6,
        "count_ticks": [
            {"y": _round(baseline - PLOT_HEIGHT * value / top), "label": f"{value:,}"}
            for value in range(0, top + 1, step)
        ],
        "percent_ticks": [
            {"y": _round(baseline - PLOT_HEIGHT * value / 100), "label": f"{value}%"} for value in range(0, 101, 25)
        ],
        "bars": bars,
        "points": points,
        # The SVG `points` attribute of each unbroken run of the line: "x,y x,y ...".
        "lines": [
            " ".join(f"{point['x']},{point['y']}" for point in segment) for segment in segments if len(segment) > 1
        ],
    }


def figure_cells(month: MonthFigures) -> list[str]:
    """One month's figures as the table and the CSV show them, in CSV_HEADER's order (after the month).
    A figure that cannot be worked out (nothing completed) is "" here; the page shows a dash."""
    return [
        str(month.received),
        str(month.completed),
        str(month.on_time),
        "" if month.percent_on_time is None else str(month.percent_on_time),
        "" if month.median_days is None else str(month.median_days),
        str(month.extensions),
        str(month.refusals),
    ]


@bp.get("/")
def dashboard():
    figures = dashboard_service.dashboard()
    return render_template(
        "admin/dashboard/index.html",
        today=figures.today,
        attention=figures.attention,
        months=figures.months,
        rows=[{"month": month, "cells": figure_cells(month)} for month in figures.months],
        chart=chart(figures.months),
        worker=job_status(),
        old_recovery_codes=totp.has_legacy_recovery_codes(g.staff_user),
    )


@bp.get("/dashboard.csv")
def dashboard_csv():
    """The 12-month figures as CSV: counts only, no patient data. The month is written as 2026-03."""
    months = dashboard_service.monthly_figures()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for month in months:
        writer.writerow([f"{month.month:%Y-%m}", *figure_cells(month)])
    filename = f"call-recording-requests-{months[0].month:%Y-%m}-to-{months[-1].month:%Y-%m}.csv"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
