"""The practice register: the NHS number, postcode and name helpers, the CSV import and matching patients."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

import nhs_number
import pytest
from sqlalchemy import func, select

from core.extensions import db
from core.models import RegisterEntry
from core.models.accounts import format_nhs_number
from core.models.audit import AuditEvent
from core.services import register
from core.services.register import (
    ImportReport,
    RegisterImportError,
    find_register_match,
    import_register,
    normalise_family_name,
    normalise_postcode,
    parse_nhs_number,
)

HEADER = "nhs_number,date_of_birth,given_name,family_name,postcode,phone,email"
ALICE = "9434765919,1980-02-29,Alice,O'Brien,se28 8be,020 7946 0000,Alice@Example.org"
BOB = "401 023 2137,01/12/1975,Bob,Smith-Jones,M1 1AE,,"
CAROL = "987-654-3210,2001-07-04,,Zoë,EC1A1BB,,"


def csv_lines(*rows: str, header: str = HEADER) -> list[str]:
    return [f"{line}\n" for line in (header, *rows)]


def synthetic_numbers(count: int) -> list[str]:
    """Valid NHS numbers from the range kept for testing (999...), built with the library's check digit."""
    numbers = []
    body = 999_000_000
    while len(numbers) < count:
        check = nhs_number.calculate_checksum(str(body))
        if check is not None and check < 10:
            numbers.append(f"{body}{check}")
        body += 1
    return numbers


def entries() -> dict[str, RegisterEntry]:
    return {entry.nhs_number: entry for entry in db.session.execute(select(RegisterEntry)).scalars()}


def entry_count() -> int:
    return db.session.execute(select(func.count(RegisterEntry.id))).scalar_one()


def import_events() -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.action == "register_imported").order_by(AuditEvent.seq)
    return list(db.session.execute(query).scalars())


def import_errors(lines) -> list[tuple[int, str]]:
    with pytest.raises(RegisterImportError) as caught:
        import_register(lines, source_name="register.csv")
    return caught.value.errors


def future_date() -> date:
    # Two days ahead is in the future whatever the time zone.
    return datetime.now(UTC).date() + timedelta(days=2)


# --- NHS numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9434765919", "9434765919"),
        ("943 476 5919", "9434765919"),
        ("943-476-5919", "9434765919"),
        ("  943 476 5919 ", "9434765919"),
        ("4010232137", "4010232137"),
        ("9876543210", "9876543210"),
    ],
)
def test_a_valid_nhs_number_is_returned_as_ten_digits(raw, expected):
    assert parse_nhs_number(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "9434765918",  # wrong check digit
        "123",
        "abcdefghij",
        "943476591A",
        "94347659190",  # eleven digits
        "",
        "\u0669\u0664\u0663\u0664\u0667\u0666\u0665\u0669\u0661\u0669",  # Arabic-Indic digits of 9434765919
    ],
)
def test_an_invalid_nhs_number_is_refused(raw):
    assert parse_nhs_number(raw) is None


def test_an_nhs_number_is_shown_in_groups_of_three_three_and_four():
    assert format_nhs_number("9434765919") == "943 476 5919"


# --- Postcodes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SE28 8BE", "SE28 8BE"),
        ("se28 8be", "SE28 8BE"),
        ("SE288BE", "SE28 8BE"),
        ("  SE28 \t 8BE ", "SE28 8BE"),
        ("M1 1AE", "M1 1AE"),  # A9
        ("B33 8TH", "B33 8TH"),  # A99
        ("W1A 0AX", "W1A 0AX"),  # A9A
        ("CR2 6XH", "CR2 6XH"),  # AA9
        ("DN55 1PT", "DN55 1PT"),  # AA99
        ("ec1a1bb", "EC1A 1BB"),  # AA9A
        ("gir 0aa", "GIR 0AA"),
    ],
)
def test_a_uk_postcode_is_put_in_its_usual_form(raw, expected):
    assert normalise_postcode(raw) == expected


@pytest.mark.parametrize("raw", ["", "SE28", "SE28 8B", "SE28 88E", "12345", "SE28-8BE", "ABC1 1AA", "SE28 8BE X"])
def test_something_that_is_not_a_postcode_is_refused(raw):
    assert normalise_postcode(raw) is None


# --- Family names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("O'Brien", "OBrien"),
        ("O'Brien", "o\u2019brien"),
        ("Smith-Jones", "smith jones"),
        ("Zoë", "Zoe"),
        ("St. John", "stjohn"),
        ("MACDONALD", "MacDonald"),
    ],
)
def test_family_names_written_differently_normalise_to_the_same_value(first, second):
    assert normalise_family_name(first) == normalise_family_name(second)


def test_a_normalised_family_name_keeps_only_the_letters_in_lower_case():
    assert normalise_family_name(" O\u2019Brien-Zoë. ") == "obrienzoe"


def test_different_family_names_stay_different():
    assert normalise_family_name("Smith") != normalise_family_name("Smyth")


# --- Importing --------------------------------------------------------------------------------------------


def test_importing_a_register_adds_every_patient_in_its_usual_form():
    report = import_register(csv_lines(ALICE, BOB, CAROL), source_name="register.csv")

    assert report == ImportReport(created=3, updated=0, unchanged=0)
    stored = entries()
    assert set(stored) == {"9434765919", "4010232137", "9876543210"}
    alice, bob, carol = stored["9434765919"], stored["4010232137"], stored["9876543210"]
    assert (alice.date_of_birth, alice.given_name, alice.family_name) == (date(1980, 2, 29), "Alice", "O'Brien")
    assert (alice.postcode, alice.phone, alice.email) == ("SE28 8BE", "020 7946 0000", "alice@example.org")
    assert bob.date_of_birth == date(1975, 12, 1)  # DD/MM/YYYY, as practice systems export it
    assert (bob.postcode, bob.phone, bob.email) == ("M1 1AE", None, None)
    assert (carol.given_name, carol.family_name, carol.postcode) == (None, "Zoë", "EC1A 1BB")


def test_the_columns_may_come_in_any_order_and_letter_case_and_the_optional_ones_may_be_left_out():
    report = import_register(
        csv_lines("SE28 8BE,O'Brien,9434765919,1980-02-29", header="Postcode, FAMILY_NAME ,nhs_number,Date_Of_Birth"),
        source_name="register.csv",
    )
    assert report.created == 1
    assert entries()["9434765919"].family_name == "O'Brien"


def test_reimporting_updates_changed_entries_and_counts_the_unchanged_ones():
    import_register(csv_lines(ALICE, BOB), source_name="register.csv")
    before = entries()
    alice_updated, bob_updated = before["9434765919"].updated_at, before["4010232137"].updated_at
    alice_imported = before["9434765919"].imported_at

    moved = ALICE.replace("se28 8be", "SE9 1AA")
    report = import_register(csv_lines(moved, BOB, CAROL), source_name="register.csv")

    assert report == ImportReport(created=1, updated=1, unchanged=1)
    after = entries()
    assert after["9434765919"].postcode == "SE9 1AA"
    assert after["9434765919"].updated_at > alice_updated
    assert after["9434765919"].imported_at == alice_imported
    assert after["4010232137"].updated_at == bob_updated
    assert len(after) == 3


def test_importing_the_same_file_twice_changes_nothing():
    import_register(csv_lines(ALICE, BOB), source_name="register.csv")
    report = import_register(csv_lines(ALICE, BOB), source_name="register.csv")
    assert report == ImportReport(created=0, updated=0, unchanged=2)


def test_entries_missing_from_a_later_file_are_kept():
    import_register(csv_lines(ALICE, BOB), source_name="register.csv")
    import_register(csv_lines(BOB), source_name="register.csv")
    assert set(entries()) == {"9434765919", "4010232137"}


def test_bad_lines_are_all_reported_with_their_line_numbers_and_nothing_is_imported():
    lines = csv_lines(
        ALICE,
        "9434765918,1980-01-01,Dan,Brown,SE28 8BE,,",
        CAROL,
        "1234567890,31/02/1990,Eve,,NOT A POSTCODE,,",
        BOB,
    )
    errors = import_errors(lines)

    assert errors == [
        (3, "the NHS number is not valid"),
        (5, "the NHS number is not valid"),
        (5, "the date of birth is not a real date"),
        (5, "the family name is missing"),
        (5, "the postcode is not a valid UK postcode"),
    ]
    assert entry_count() == 0
    assert import_events() == []


def test_a_bad_last_line_means_nothing_is_imported():
    errors = import_errors(csv_lines(ALICE, BOB, CAROL.replace("EC1A1BB", "EC1A")))
    assert errors == [(4, "the postcode is not a valid UK postcode")]
    assert entry_count() == 0


def test_a_failed_reimport_leaves_the_register_as_it_was():
    import_register(csv_lines(ALICE), source_name="register.csv")
    import_errors(csv_lines(ALICE.replace("Alice,", "Alicia,"), "123,1980-01-01,,Brown,SE28 8BE,,"))
    assert entries()["9434765919"].given_name == "Alice"
    assert entry_count() == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "the date of birth is missing"),
        ("1980/02/29", "the date of birth must be written YYYY-MM-DD or DD/MM/YYYY"),
        ("29 Feb 1980", "the date of birth must be written YYYY-MM-DD or DD/MM/YYYY"),
        ("1981-02-29", "the date of birth is not a real date"),
        ("31/04/1990", "the date of birth is not a real date"),
    ],
)
def test_a_date_of_birth_that_is_not_a_date_is_refused(value, message):
    assert import_errors(csv_lines(ALICE.replace("1980-02-29", value))) == [(2, message)]


def test_a_date_of_birth_in_the_future_is_refused():
    row = ALICE.replace("1980-02-29", future_date().isoformat())
    assert import_errors(csv_lines(row)) == [(2, "the date of birth is in the future")]


def test_the_same_nhs_number_twice_names_both_lines_without_showing_the_number():
    # The same number written another way is still the same patient.
    again = BOB.replace("401 023 2137", "943-476-5919")
    errors = import_errors(csv_lines(ALICE, BOB, again))
    assert errors == [(4, "the NHS number is the same as on line 2")]
    assert "9434765919" not in str(errors) and "943" not in str(errors)
    assert entry_count() == 0


def test_a_repeated_nhs_number_is_reported_even_when_the_repeat_has_other_problems():
    again = ALICE.replace("se28 8be", "nowhere")
    assert import_errors(csv_lines(ALICE, again)) == [
        (3, "the postcode is not a valid UK postcode"),
        (3, "the NHS number is the same as on line 2"),
    ]


def test_a_byte_order_mark_and_windows_line_endings_are_accepted():
    text = "\ufeff" + "\r\n".join([HEADER, ALICE, BOB]) + "\r\n"
    report = import_register(io.StringIO(text, newline=""), source_name="register.csv")
    assert report.created == 2
    assert entries()["4010232137"].email is None


def test_blank_lines_are_skipped_but_still_counted_for_line_numbers():
    lines = [f"{HEADER}\n", "\n", f"{ALICE}\n", ",,,,,,\n", "123,1980-01-01,,Brown,SE28 8BE,,\n", "\n"]
    assert import_errors(lines) == [(5, "the NHS number is not valid")]


def test_a_value_with_a_line_break_is_reported_at_the_line_it_starts_on():
    lines = [f"{HEADER}\n", '9434765919,1980-02-29,"Alice\n', "Mary\",O'Brien,SE28 8BE,,\n", "123,,,,,,\n"]
    errors = import_errors(lines)
    assert errors[0] == (4, "the NHS number is not valid")


def test_a_line_with_the_wrong_number_of_values_is_refused():
    errors = import_errors(csv_lines(ALICE, "4010232137,1975-12-01,Bob,Smith,M1 1AE"))
    assert errors == [(3, "the line has 5 values but the header names 7 columns")]


def test_unknown_columns_are_refused():
    errors = import_errors(csv_lines(ALICE + ",x", header=HEADER + ",nhs_no"))
    assert len(errors) == 1
    line, message = errors[0]
    assert line == 1
    assert message.startswith("the header has unknown columns: nhs_no.")


def test_missing_required_columns_are_named():
    errors = import_errors(csv_lines("9434765919,Alice", header="nhs_number,given_name"))
    assert errors == [(1, "the header is missing the columns: date_of_birth, family_name, postcode")]


def test_a_column_named_twice_is_refused():
    errors = import_errors(csv_lines(ALICE + ",Smith", header=HEADER + ",Family_Name"))
    assert errors == [(1, "the header names these columns more than once: family_name")]


def test_a_file_without_a_header_is_refused():
    errors = import_errors([f"{ALICE}\n", f"{BOB}\n"])
    assert len(errors) == 1
    assert errors[0][0] == 1
    assert errors[0][1].startswith("the first line must be the header")
    assert entry_count() == 0


@pytest.mark.parametrize("lines", [[], ["\n", "\r\n"], io.StringIO(""), io.StringIO("\ufeff")])
def test_an_empty_file_is_refused(lines):
    errors = import_errors(lines)
    assert errors == [(1, "the file is empty; its first line must be the header naming the columns")]


def test_a_file_with_only_a_header_is_refused():
    assert import_errors(csv_lines()) == [(1, "the file has a header but no patients")]


@pytest.mark.parametrize("as_file", [False, True])
def test_a_line_over_2000_characters_is_refused(as_file):
    long_line = "9434765919,1980-02-29,Alice," + "x" * 2000 + ",SE28 8BE,,"
    lines = csv_lines(BOB, long_line, CAROL)
    errors = import_errors(io.StringIO("".join(lines)) if as_file else lines)
    assert errors == [(3, "the line is longer than 2,000 characters; is this the right file?")]


def test_a_line_of_exactly_2000_characters_is_read():
    start = "9434765919,1980-02-29,Alice,"
    end = ",SE28 8BE,,"
    line = start + "x" * (2000 - len(start) - len(end)) + end
    assert len(line) == 2000
    # Read, so the problem found is the name's length rather than the line's.
    errors = import_errors(io.StringIO(f"{HEADER}\r\n{line}\r\n", newline=""))
    assert errors == [(2, "the family name is longer than 100 characters")]


def test_a_file_with_too_many_patients_is_refused(monkeypatch):
    assert register.MAX_ROWS == 200_000
    monkeypatch.setattr(register, "MAX_ROWS", 3)
    rows = [f"{number},1980-01-01,,Brown,SE28 8BE,," for number in synthetic_numbers(4)]
    assert import_errors(csv_lines(*rows)) == [(5, "the file has more than 3 patients; split it into smaller files")]
    monkeypatch.setattr(register, "MAX_ROWS", 4)
    assert import_register(csv_lines(*rows), source_name="register.csv").created == 4


def test_an_import_is_audited_once_with_counts_and_file_name_but_no_nhs_numbers():
    import_register(csv_lines(ALICE, BOB), source_name="/home/practice-manager/exports/register.csv")
    import_register(csv_lines(ALICE.replace("Alice,", "Alicia,"), BOB, CAROL), source_name=r"C:\exports\march.csv")

    first, second = import_events()
    assert (first.actor_type, first.object_type, first.outcome) == ("system", "practice_register", "success")
    assert json.loads(first.details) == {"source_file": "register.csv", "created": 2, "updated": 0, "unchanged": 0}
    assert json.loads(second.details) == {"source_file": "march.csv", "created": 1, "updated": 1, "unchanged": 1}
    everything = " ".join(f"{event.object_id} {event.details}" for event in db.session.scalars(select(AuditEvent)))
    for number in ("9434765919", "4010232137", "9876543210"):
        assert number not in everything
        assert format_nhs_number(number) not in everything


# --- Matching ---------------------------------------------------------------------------------------------


@pytest.fixture
def alice_on_register() -> None:
    import_register(csv_lines(ALICE, BOB), source_name="register.csv")


@pytest.mark.usefixtures("alice_on_register")
def test_a_patient_whose_four_details_match_is_found_however_they_are_written():
    entry = find_register_match(
        nhs_number="943 476 5919", date_of_birth=date(1980, 2, 29), family_name="o\u2019brien", postcode="SE288BE"
    )
    assert entry is not None
    assert entry.nhs_number == "9434765919"


@pytest.mark.usefixtures("alice_on_register")
@pytest.mark.parametrize(
    "wrong",
    [
        {"nhs_number": "4010232137"},  # on the register, but someone else
        {"nhs_number": "9876543210"},  # valid, but not on the register
        {"nhs_number": "9434765918"},  # not a valid number
        {"date_of_birth": date(1980, 3, 1)},
        {"family_name": "Bryan"},
        {"family_name": ""},
        {"postcode": "SE28 8BF"},
        {"postcode": "not a postcode"},
    ],
)
def test_a_patient_with_any_detail_wrong_is_not_found(wrong):
    details = {"nhs_number": "9434765919", "date_of_birth": date(1980, 2, 29), "family_name": "O'Brien"}
    details["postcode"] = "SE28 8BE"
    assert find_register_match(**(details | wrong)) is None


# --- The command ------------------------------------------------------------------------------------------


def test_the_import_command_reports_what_it_added_updated_and_left_alone(app, tmp_path):
    path = tmp_path / "register.csv"
    path.write_text("\n".join([HEADER, ALICE, BOB]) + "\n", encoding="utf-8")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["register", "import", str(path)]).exit_code == 0

    path.write_bytes(("\ufeff" + "\r\n".join([HEADER, ALICE.replace("Alice,", "Alicia,"), BOB, CAROL])).encode())
    result = runner.invoke(args=["register", "import", str(path)])

    assert result.exit_code == 0
    assert result.stdout == "Imported register.csv: 1 added, 1 updated, 1 unchanged.\n"
    assert entries()["9434765919"].given_name == "Alicia"


def test_the_import_command_lists_every_problem_and_imports_nothing(app, tmp_path):
    path = tmp_path / "register.csv"
    path.write_text("\n".join([HEADER, ALICE, "123,1980-01-01,,Brown,SE28 8BE,,", BOB, "9434765919,,,,,,"]) + "\n")
    result = app.test_cli_runner().invoke(args=["register", "import", str(path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "line 3: the NHS number is not valid",
        "line 5: the date of birth is missing",
        "line 5: the family name is missing",
        "line 5: the postcode is missing",
        "line 5: the NHS number is the same as on line 2",
        "Nothing was imported.",
    ]
    assert entry_count() == 0


def test_the_import_command_refuses_a_file_that_is_not_utf8(app, tmp_path):
    path = tmp_path / "register.csv"
    path.write_bytes("\r\n".join([HEADER, ALICE.replace("O'Brien", "Grégoire")]).encode("cp1252"))
    result = app.test_cli_runner().invoke(args=["register", "import", str(path)])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        'register.csv is not UTF-8 text. Save it from your spreadsheet as "CSV UTF-8" and try again.',
        "Nothing was imported.",
    ]
    assert entry_count() == 0


def test_the_import_command_says_when_the_file_does_not_exist(app, tmp_path):
    result = app.test_cli_runner().invoke(args=["register", "import", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
