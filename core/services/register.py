"""The practice register: importing it from a CSV file and matching patients against it.

A patient who signs up is verified automatically when their NHS number, date of birth, family name and
postcode all match one entry on the register (`find_register_match`). The register is loaded with
`flask register import FILE.csv`, which calls `import_register`.

The CSV format
--------------
* UTF-8 text (a byte-order mark, as Excel writes, is fine), any line endings, comma-separated, with
  double quotes around values that contain commas.
* The first line is a header naming the columns, in any order and any letter case. Required:
  `nhs_number`, `date_of_birth`, `family_name`, `postcode`. Optional: `given_name`, `phone`, `email`.
  Any other column is an error, so that a misspelt column is not silently ignored.
* One patient per line. Blank lines are skipped.
  - `nhs_number`: 10 digits, spaces or dashes allowed ("943 476 5919"), checked with Modulus 11.
  - `date_of_birth`: `YYYY-MM-DD` or `DD/MM/YYYY` (as practice systems export it); not in the future.
  - `family_name`: required, up to 100 characters. `given_name`: optional, up to 100 characters.
  - `postcode`: a UK postcode in any letter case and spacing ("se288be"); stored as "SE28 8BE".
  - `phone`: optional, up to 20 digits, spaces and `+()-`. `email`: optional, stored lower-cased.
* An NHS number may appear only once in a file. At most 200,000 patients, and 2,000 characters a line.

The whole file is checked before anything is written. If any line is wrong, every problem is reported with
its line number (the header is line 1) and nothing is imported. Otherwise each line is added, or updates
the entry with the same NHS number. Entries not in the file are kept: importing never removes anyone.
"""

from __future__ import annotations

import csv
import ntpath
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

import nhs_number as nhs_number_lib
from sqlalchemy import select

from core.extensions import db
from core.models import RegisterEntry
from core.models.content import utc_now
from core.services.audit import record_event
from core.services.db import transactional

REQUIRED_COLUMNS = ("nhs_number", "date_of_birth", "family_name", "postcode")
OPTIONAL_COLUMNS = ("given_name", "phone", "email")
ALLOWED_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
MAX_ROWS = 200_000
MAX_LINE_LENGTH = 2_000
MAX_NAME_LENGTH = 100
MAX_PHONE_LENGTH = 20
MAX_EMAIL_LENGTH = 320
# "Today" for a date of birth is the practice's today, not the server's UTC date.
PRACTICE_TIMEZONE = ZoneInfo("Europe/London")
# How many entries to look up per query when upserting (well under every database's parameter limit).
LOOKUP_BATCH_SIZE = 500

# The standard UK formats (A9, A99, A9A, AA9, AA99, AA9A + 9AA) and the Girobank oddity GIR 0AA.
# Pragmatic: it checks the shape, not that Royal Mail has allocated the postcode.
_POSTCODE = re.compile(r"(?:[A-Z]{1,2}[0-9][A-Z0-9]?|GIR)([0-9][A-Z]{2})")
_NHS_NUMBER_SEPARATORS = re.compile(r"[\s-]+")
_TEN_DIGITS = re.compile(r"[0-9]{10}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_UK_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_PHONE = re.compile(r"\+?[0-9 ()\-]*[0-9][0-9 ()\-]*")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Characters that people and systems write differently in the same surname.
_NAME_PUNCTUATION = str.maketrans("", "", " -\u2010'\u2019\u2018.")


@dataclass(frozen=True)
class ImportReport:
    """How many register entries an import added, changed and left as they were."""

    created: int
    updated: int
    unchanged: int


class RegisterImportError(ValueError):
    """The file cannot be imported. `errors` holds (line number, message) pairs; the header is line 1."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"line {line}: {message}" for line, message in errors))


# --- Helpers shared with patient registration ------------------------------------------------------------


def parse_nhs_number(raw: str) -> str | None:
    """The 10 digits of `raw` if it is a valid NHS number (spaces and dashes allowed), else None."""
    if not isinstance(raw, str):
        return None
    digits = _NHS_NUMBER_SEPARATORS.sub("", raw)
    # The library also takes ints and non-ASCII digits; we want exactly ten ASCII digits.
    if not _TEN_DIGITS.fullmatch(digits) or not nhs_number_lib.is_valid(digits):
        return None
    return digits


def normalise_postcode(raw: str) -> str | None:
    """`raw` as a canonical UK postcode ("SE28 8BE") if it has a postcode's shape, else None.

    Letter case and spacing do not matter: "se28 8be", "SE288BE" and " SE28  8BE " are all accepted.
    """
    if not isinstance(raw, str):
        return None
    compact = "".join(raw.split()).upper()
    if not _POSTCODE.fullmatch(compact):
        return None
    return f"{compact[:-3]} {compact[-3:]}"


def normalise_family_name(raw: str) -> str:
    """A family name reduced for matching: no accents, no letter case, no spaces, hyphens, apostrophes or dots.

    So "O'Brien", "OBrien" and "o\u2019brien" (a typographic apostrophe) match, as do "Smith-Jones" and
    "smith jones", and "Zoë" and "Zoe".
    """
    decomposed = unicodedata.normalize("NFKD", raw)
    unaccented = "".join(char for char in decomposed if not unicodedata.combining(char))
    folded = unaccented.casefold()
    return "".join(folded.split()).translate(_NAME_PUNCTUATION)


def find_register_match(
    *, nhs_number: str, date_of_birth: date, family_name: str, postcode: str
) -> RegisterEntry | None:
    """The register entry with this NHS number, if its date of birth, family name and postcode also match.

    Names and postcodes are compared normalised (`normalise_family_name`, `normalise_postcode`), so
    spelling differences in case, spacing, accents and punctuation do not stop a match; anything else does.
    """
    digits = parse_nhs_number(nhs_number)
    wanted_postcode = normalise_postcode(postcode)
    wanted_name = normalise_family_name(family_name)
    if digits is None or wanted_postcode is None or not wanted_name:
        return None
    entry = db.session.execute(select(RegisterEntry).where(RegisterEntry.nhs_number == digits)).scalar_one_or_none()
    if entry is None:
        return None
    if (
        entry.date_of_birth == date_of_birth
        and normalise_family_name(entry.family_name) == wanted_name
        and normalise_postcode(entry.postcode) == wanted_postcode
    ):
        return entry
    return None


# --- Import ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    nhs_number: str
    date_of_birth: date
    given_name: str | None
    family_name: str
    postcode: str
    phone: str | None
    email: str | None


class _LineTooLongError(Exception):
    """A line too long to be a patient's details: reading stops there."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _physical_lines(source: Iterable[str] | TextIO) -> Iterator[str]:
    """The lines of `source`, without a leading BOM, refusing over-long lines.

    A file is read with a bounded `readline`, so a huge file with no line breaks is never held in memory.
    """
    if hasattr(source, "readline"):
        reader = source

        def lines() -> Iterator[str]:
            # 2 extra characters leave room for "\r\n"; anything longer shows up as an over-long line.
            while line := reader.readline(MAX_LINE_LENGTH + 2):
                yield line

        raw_lines: Iterable[str] = lines()
    else:
        raw_lines = source
    for number, line in enumerate(raw_lines, start=1):
        if number == 1:
            line = line.removeprefix("\ufeff")
        if len(line.rstrip("\r\n")) > MAX_LINE_LENGTH:
            raise _LineTooLongError(
                number, f"the line is longer than {MAX_LINE_LENGTH:,} characters; is this the right file?"
            )
        yield line


def _parse_date_of_birth(raw: str, today: date) -> tuple[date | None, str | None]:
    if not raw:
        return None, "the date of birth is missing"
    if match := _ISO_DATE.fullmatch(raw):
        year, month, day = match.groups()
    elif match := _UK_DATE.fullmatch(raw):
        day, month, year = match.groups()
    else:
        return None, "the date of birth must be written YYYY-MM-DD or DD/MM/YYYY"
    try:
        value = date(int(year), int(month), int(day))
    except ValueError:
        return None, "the date of birth is not a real date"
    if value > today:
        return None, "the date of birth is in the future"
    return value, None


def _check_header(cells: list[str]) -> tuple[list[str], list[str]]:
    """The column names (lower-cased) and the problems with them."""
    columns = [cell.strip().lower() for cell in cells]
    problems = []
    if columns and parse_nhs_number(columns[0]) is not None:
        return columns, [
            "the first line must be the header naming the columns (" + ",".join(REQUIRED_COLUMNS) + "), "
            "but it looks like a patient's details"
        ]
    if any(not column for column in columns):
        problems.append("the header has a column with no name")
    unknown = [column for column in columns if column and column not in ALLOWED_COLUMNS]
    if unknown:
        problems.append(
            "the header has unknown columns: "
            + ", ".join(unknown)
            + ". The columns allowed are "
            + ", ".join(ALLOWED_COLUMNS)
        )
    repeated = sorted({column for column in columns if column and columns.count(column) > 1})
    if repeated:
        problems.append("the header names these columns more than once: " + ", ".join(repeated))
    missing = [column for column in REQUIRED_COLUMNS if column not in columns]
    if missing:
        problems.append("the header is missing the columns: " + ", ".join(missing))
    return columns, problems


def _check_row(line: int, values: dict[str, str], today: date) -> tuple[_Row | None, list[str]]:
    """One patient's line as a row to store, or the problems with it."""
    problems: list[str] = []

    raw_number = values["nhs_number"]
    digits = parse_nhs_number(raw_number)
    if not raw_number:
        problems.append("the NHS number is missing")
    elif digits is None:
        problems.append("the NHS number is not valid")

    date_of_birth, problem = _parse_date_of_birth(values["date_of_birth"], today)
    if problem:
        problems.append(problem)

    family_name = " ".join(values["family_name"].split())
    if not family_name:
        problems.append("the family name is missing")
    elif len(family_name) > MAX_NAME_LENGTH:
        problems.append(f"the family name is longer than {MAX_NAME_LENGTH} characters")
    elif not normalise_family_name(family_name):
        problems.append("the family name has no letters")

    given_name = " ".join(values.get("given_name", "").split()) or None
    if given_name and len(given_name) > MAX_NAME_LENGTH:
        problems.append(f"the given name is longer than {MAX_NAME_LENGTH} characters")

    postcode = normalise_postcode(values["postcode"])
    if not values["postcode"]:
        problems.append("the postcode is missing")
    elif postcode is None:
        problems.append("the postcode is not a valid UK postcode")

    phone = values.get("phone") or None
    if phone and (len(phone) > MAX_PHONE_LENGTH or not _PHONE.fullmatch(phone)):
        problems.append(f"the phone number must be up to {MAX_PHONE_LENGTH} digits, spaces and + ( ) -")

    email = (values.get("email") or "").lower() or None
    if email and (len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email)):
        problems.append("the email address is not valid")

    if problems or digits is None or date_of_birth is None or postcode is None:
        return None, problems
    return _Row(line, digits, date_of_birth, given_name, family_name, postcode, phone, email), []


def _read_rows(source: Iterable[str] | TextIO) -> list[_Row]:
    """Every patient in the file, or RegisterImportError listing every problem found."""
    errors: list[tuple[int, str]] = []
    rows: list[_Row] = []
    first_line_of: dict[str, int] = {}
    today = datetime.now(PRACTICE_TIMEZONE).date()
    columns: list[str] | None = None
    patients = 0
    reader = csv.reader(_physical_lines(source), strict=True)
    last_line = 0
    try:
        for cells in reader:
            # A record can span lines (a quoted value with a line break): report the line it starts on.
            line, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # blank lines, and the ",,,," that spreadsheets leave
            if columns is None:
                columns, problems = _check_header(cells)
                errors.extend((line, problem) for problem in problems)
                if problems:
                    break  # without a usable header, every other line would be wrong too
                continue
            patients += 1
            if patients > MAX_ROWS:
                errors.append((line, f"the file has more than {MAX_ROWS:,} patients; split it into smaller files"))
                break
            if len(cells) != len(columns):
                errors.append((line, f"the line has {len(cells)} values but the header names {len(columns)} columns"))
                continue
            values = {column: cell.strip() for column, cell in zip(columns, cells, strict=True)}
            row, problems = _check_row(line, values, today)
            errors.extend((line, problem) for problem in problems)
            digits = parse_nhs_number(values["nhs_number"])
            if digits in first_line_of:
                errors.append((line, f"the NHS number is the same as on line {first_line_of[digits]}"))
            elif digits is not None:
                first_line_of[digits] = line
                if row is not None:
                    rows.append(row)
    except _LineTooLongError as stop:
        errors.append((stop.line, stop.message))
    except csv.Error as error:
        errors.append((reader.line_num or 1, f"the file could not be read as CSV ({error})"))

    if columns is None and not errors:
        errors.append((1, "the file is empty; its first line must be the header naming the columns"))
    elif columns is not None and not rows and not errors:
        errors.append((last_line, "the file has a header but no patients"))
    if errors:
        raise RegisterImportError(errors)
    return rows


def _existing_entries(numbers: list[str]) -> dict[str, RegisterEntry]:
    found: dict[str, RegisterEntry] = {}
    for start in range(0, len(numbers), LOOKUP_BATCH_SIZE):
        batch = numbers[start : start + LOOKUP_BATCH_SIZE]
        query = select(RegisterEntry).where(RegisterEntry.nhs_number.in_(batch))
        found.update((entry.nhs_number, entry) for entry in db.session.execute(query).scalars())
    return found


@transactional
def import_register(lines: Iterable[str] | TextIO, *, source_name: str) -> ImportReport:
    """Add or update the register entries in a CSV file (the format is in this module's docstring).

    The whole file is checked first; if anything is wrong, RegisterImportError lists every problem and nothing
    is written. Otherwise entries are matched by NHS number: new ones are added, changed ones updated (with
    `updated_at`), and the import is audited as one event that records the counts and the file's name, in
    the same transaction. Entries missing from the file are left alone.
    """
    rows = _read_rows(lines)
    existing = _existing_entries([row.nhs_number for row in rows])
    now = utc_now()
    created = updated = unchanged = 0
    for row in rows:
        fields = {
            "date_of_birth": row.date_of_birth,
            "given_name": row.given_name,
            "family_name": row.family_name,
            "postcode": row.postcode,
            "phone": row.phone,
            "email": row.email,
        }
        entry = existing.get(row.nhs_number)
        if entry is None:
            db.session.add(RegisterEntry(nhs_number=row.nhs_number, imported_at=now, updated_at=now, **fields))
            created += 1
        elif any(getattr(entry, name) != value for name, value in fields.items()):
            for name, value in fields.items():
                setattr(entry, name, value)
            entry.updated_at = now
            updated += 1
        else:
            unchanged += 1
    db.session.flush()
    record_event(
        action="register_imported",
        actor_type="system",
        object_type="practice_register",
        details={
            # Only the file's own name: a full path can name the person who exported it.
            "source_file": ntpath.basename(source_name)[:200],
            "created": created,
            "updated": updated,
            "unchanged": unchanged,
        },
    )
    return ImportReport(created=created, updated=updated, unchanged=unchanged)
