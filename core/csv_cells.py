"""Cells for CSV files that people open in a spreadsheet, safe from CSV (formula) injection.

OWASP's CSV Injection guidance (owasp.org/www-community/attacks/CSV_Injection): a cell must not begin with a
character that makes a spreadsheet read it as a formula: `=`, `+`, `-`, `@`, tab (0x09), carriage return (0x0D)
or line feed (0x0A); ASVS 5.0 1.2.10 adds the NUL character. Checking only the start of the value is not enough:
a field separator (`,`, or `;` where a spreadsheet's locale uses it) or a quote inside a value could start a new
cell whose first character is one of those. So, as OWASP advises, every cell is wrapped in double quotes (with
its own double quotes doubled), and a cell starting with any of those characters, or with `;` (a separator in
many locales, which opens a new cell there), gets a single quote in front, which spreadsheets show as text.
The full-width forms of `=`, `+`, `-` and `@`, which some spreadsheets read as the ASCII ones, are treated the
same way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

FORMULA_STARTS = (
    "=",
    "+",
    "-",
    "@",
    "\t",
    "\r",
    "\n",
    "\0",
    ";",
    "\uff1d",  # full-width =
    "\uff0b",  # full-width +
    "\uff0d",  # full-width -
    "\uff20",  # full-width @
)


def csv_safe(value) -> str:
    """A cell a spreadsheet will show as text: one starting with a character in FORMULA_STARTS gets a single
    quote first, so `=HYPERLINK(...)` in a user agent or a name is never run as a formula."""
    cell = "" if value is None else str(value)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def csv_rows(rows: Iterable[Iterable], *, lineterminator: str = "\r\n") -> str:
    """The rows as CSV text: every cell made safe by `csv_safe` and wrapped in double quotes (RFC 4180 and
    OWASP), so no separator or quote inside a value can start a new cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator=lineterminator)
    for row in rows:
        writer.writerow([csv_safe(value) for value in row])
    return buffer.getvalue()
