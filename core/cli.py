"""Command-line commands (`flask --app wsgi ...`). Each calls a service and reports in plain words."""

from __future__ import annotations

import calendar
import os
import re
import signal
import threading
from datetime import date
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core.csv_cells import csv_rows
from core.formatters import format_datetime
from core.legal_clock import due_date
from core.log import logger
from core.services import redaction
from core.services.accounts import AccountError, create_first_admin
from core.services.audit import AuditError, record_anchor, record_chain_check, record_event, verify_chain
from core.services.content import load_default_content
from core.services.db import transactional
from core.services.email import deliver_pending
from core.services.recordings import check_stored_files, encrypt_plain_files, rewrap_data_keys
from core.services.register import RegisterImportError, import_register
from core.services.registration_keys import RegistrationKeyError, issue_keys_for_numbers
from core.services.releases import purge_release_copies
from core.services.reminders import send_reminders
from core.services.requests import long_date
from core.services.totp import rotate_encrypted_secrets
from core.services.worker import JOBS_BY_NAME, job_status, purge_sessions, run_due_jobs, run_worker, worker_name

content_cli = AppGroup("content", help="Manage the published content pages.")
audit_cli = AppGroup("audit", help="Check the audit trail.")
outbox_cli = AppGroup("outbox", help="Deliver queued email.")
practice_register_cli = AppGroup("register", help="Manage the practice register used to verify patients.")
staff_cli = AppGroup("staff", help="Manage staff accounts.")
accounts_cli = AppGroup("accounts", help="Look after account data: keys and old sessions.")
requests_cli = AppGroup("requests", help="Subject access requests: deadlines.")
reminders_cli = AppGroup("reminders", help="Remind staff of deadlines.")
jobs_cli = AppGroup("jobs", help="The worker's scheduled jobs.")
recordings_cli = AppGroup("recordings", help="The stored recordings.")
redaction_cli = AppGroup("redaction", help="Redacted copies and waveforms (the worker makes them).")


@staff_cli.command("create-admin")
@click.option("--email", required=True, help="The admin's work email address.")
@click.option("--name", required=True, help="The admin's full name.")
def create_admin_command(email: str, name: str) -> None:
    """Create an admin with no password and print a one-time invitation link (valid for 72 hours).

    The link leads to: choose a password, set up an authenticator app, then the admin area. There are no
    default accounts and no default passwords.
    """
    try:
        link = create_first_admin(email, name)
    except AccountError as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(1) from exc
    click.echo(f"Created an admin account for {email.strip().lower()}.")
    click.echo("Give them this one-time link to set a password and an authenticator app (it expires in 72 hours):")
    click.echo(link)


@accounts_cli.command("rotate-totp-key")
@transactional
def rotate_totp_key_command() -> None:
    """Re-encrypt every authenticator secret with the first key in TOTP_ENCRYPTION_KEYS.

    To rotate: put a new key first (keeping the old one after it), restart, run this, then remove the old key.
    """
    count = rotate_encrypted_secrets()
    record_event(action="totp_key_rotated", details={"secrets": count})
    click.echo(f"Re-encrypted {count} authenticator secrets with the first configured key.")


@accounts_cli.command("purge-sessions")
def purge_sessions_command() -> None:
    """Delete sessions that have timed out (the worker does this every hour; a timed-out session is refused
    anyway)."""
    removed = purge_sessions(current_app.config)
    click.echo(f"Removed {removed} expired sessions.")


@content_cli.command("load-defaults")
def load_defaults_command() -> None:
    """Publish the default text of every content page that has none yet. Edited pages are never touched."""
    created = load_default_content(config=current_app.config)
    if created:
        for slug in created:
            click.echo(f"Published default content for {slug}.")
    else:
        click.echo("Every content page already has content; nothing changed.")


@audit_cli.command("verify")
def verify_command() -> None:
    """Recompute the audit trail's HMAC chain; print OK, or the first broken event and exit with status 1.

    The result is stored (checked by "system") for the admin audit page, and the check itself is audited.
    Run it daily.
    """
    result = verify_chain()
    if result.ok:
        click.echo(f"OK: {result.checked} audit events checked; the chain is intact.")
    else:
        click.echo(
            f"BROKEN at audit event {result.broken_seq}: {result.reason}. {result.checked} events before it are intact."
        )
    try:
        record_chain_check(result)
        record_anchor(result)
    except AuditError as exc:
        click.echo(f"The result could not be stored: {exc}", err=True)
        raise SystemExit(1) from exc
    if not result.ok:
        raise SystemExit(1)


@outbox_cli.command("deliver")
def deliver_command() -> None:
    """Send every queued email that is due. Run it every minute; failures are retried with growing delays."""
    report = deliver_pending()
    click.echo(f"Sent {report.sent}; {report.retrying} to retry later; {report.given_up} given up.")


# Listing more than this many problems helps nobody: the first few show what is wrong with the export.
MAX_REPORTED_REGISTER_ERRORS = 100


@practice_register_cli.command("import")
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_register_command(csv_file: Path) -> None:
    """Add or update the register entries in FILE.csv (UTF-8; header row; columns in docs/accounts-and-security.md).

    The whole file is checked first: if any line is wrong, every problem is listed and nothing is imported.
    """
    try:
        with csv_file.open(encoding="utf-8", newline="") as lines:
            report = import_register(lines, source_name=csv_file.name)
    except UnicodeDecodeError:
        click.echo(
            f'{csv_file.name} is not UTF-8 text. Save it from your spreadsheet as "CSV UTF-8" and try again.',
            err=True,
        )
        click.echo("Nothing was imported.", err=True)
        raise SystemExit(1) from None
    except RegisterImportError as error:
        for line, message in error.errors[:MAX_REPORTED_REGISTER_ERRORS]:
            click.echo(f"line {line}: {message}", err=True)
        if len(error.errors) > MAX_REPORTED_REGISTER_ERRORS:
            click.echo(f"... and {len(error.errors) - MAX_REPORTED_REGISTER_ERRORS:,} more problems.", err=True)
        click.echo("Nothing was imported.", err=True)
        raise SystemExit(1) from None
    click.echo(
        f"Imported {csv_file.name}: {report.created} added, {report.updated} updated, {report.unchanged} unchanged."
    )


KEY_LETTER_COLUMNS = ("nhs_number", "given_name", "family_name", "postcode", "registration_key", "expires")


@practice_register_cli.command("issue-keys")
@click.argument("numbers_file", metavar="NUMBERS.txt", type=click.File("r", encoding="utf-8-sig"))
@click.option(
    "--output",
    "output",
    metavar="LETTERS.csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the keys to this new file (readable by you only) instead of the screen. It must not exist yet.",
)
def issue_keys_command(numbers_file, output: Path | None) -> None:
    """Issue a one-time registration key for each NHS number in NUMBERS.txt (one a line), for letters.

    Every number must be on the practice register; if any is not valid, not on the register or repeated, every
    problem is listed and no key is issued. Each new key cancels the patient's older unused ones, works once,
    and expires after the practice setting's number of days. The keys are printed once, as CSV with the
    patient's name and postcode for a mail merge (NUMBERS.txt may be `-` to read standard input); the portal
    keeps only a keyed hash of each. Post each letter to the address on the patient's GP record.
    """
    # The output file is made first (owner-only, never over an existing one), so keys are never issued
    # that could not be written down.
    try:
        handle = (
            os.fdopen(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8", newline="")
            if output
            else None
        )
    except FileExistsError:
        click.echo(f"{output} already exists. Choose a new file name: keys are never written over.", err=True)
        raise SystemExit(1) from None
    try:
        issued = issue_keys_for_numbers(list(numbers_file))
    except (UnicodeDecodeError, RegistrationKeyError) as error:
        if handle is not None:
            handle.close()
            output.unlink()
        problems = error.problems if isinstance(error, RegistrationKeyError) else ["The file is not UTF-8 text."]
        for problem in problems[:MAX_REPORTED_REGISTER_ERRORS]:
            click.echo(problem, err=True)
        if len(problems) > MAX_REPORTED_REGISTER_ERRORS:
            click.echo(f"... and {len(problems) - MAX_REPORTED_REGISTER_ERRORS:,} more problems.", err=True)
        click.echo("No keys were issued.", err=True)
        raise SystemExit(1) from None
    rows = [KEY_LETTER_COLUMNS] + [
        (
            key.entry.nhs_number,
            key.entry.given_name or "",
            key.entry.family_name,
            key.entry.postcode,
            key.key,
            format_datetime(key.expires_at),  # as a letter says it: "3 January 2027 at 10:00am"
        )
        for key in issued
    ]
    if handle is None:
        click.echo(csv_rows(rows), nl=False)
    else:
        with handle:
            handle.write(csv_rows(rows))
    click.echo(f"Issued {len(issued)} registration keys.", err=True)


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(ctx: click.Context, param: click.Parameter, value: str) -> date:
    """Read YYYY-MM-DD strictly, saying which part is wrong: staff type these dates from letters."""
    if not ISO_DATE.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a date written as YYYY-MM-DD, for example 2026-09-03.", ctx, param)
    year, month, day = (int(part) for part in value.split("-"))
    if year < 1:
        raise click.BadParameter(f"{value} is not a real date: there is no year 0.", ctx, param)
    if not 1 <= month <= 12:
        raise click.BadParameter(f"{value} is not a real date: there is no month {month}.", ctx, param)
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise click.BadParameter(
            f"{value} is not a real date: {calendar.month_name[month]} {year} has no day {day}.", ctx, param
        )
    return date(year, month, day)


@requests_cli.command("due-date")
@click.argument("received", metavar="RECEIVED", callback=_iso_date)
@click.option("--extended", is_flag=True, help="The date if the time limit is extended to three months.")
def due_date_command(received: date, extended: bool) -> None:
    """Print the date by which a subject access request received on RECEIVED (YYYY-MM-DD) must be answered.

    RECEIVED is the day the clock starts: the later of the day the request arrived and the day proof of
    identity arrived. The date assumes the clock was never paused while waiting for a clarification.

    Any date is accepted, past or years ahead; far-off dates count only the bank holidays already announced.
    """
    try:
        due = due_date(received, extended=extended)
    except OverflowError as exc:
        raise click.BadParameter(
            f"{received.isoformat()} is too far in the future to count from.", param_hint="'RECEIVED'"
        ) from exc
    click.echo(f"Received: {long_date(received)}")
    if extended:
        click.echo(f"Reply due by (extended): {long_date(due)}")
        click.echo(f"Tell the patient about the extension by: {long_date(due_date(received))}")
    else:
        click.echo(f"Reply due by: {long_date(due)}")


@reminders_cli.command("send")
def send_reminders_command() -> None:
    """Email staff a digest of overdue requests, requests due within 7 working days and complaints waiting for
    an acknowledgement. Run it every working morning; nothing is sent when there is nothing to report."""
    digest, sent = send_reminders()
    click.echo(
        f"{len(digest.overdue)} overdue, {len(digest.due_soon)} due within 7 working days, "
        f"{len(digest.complaints)} complaints to acknowledge: {sent} reminder emails queued."
    )


@click.command("worker")
@click.option("--once", is_flag=True, help="Go round once (send what is due, run due jobs), then stop.")
def worker_command(once: bool) -> None:
    """Deliver the outbox continuously and run the scheduled jobs at their times (UK time): deadline
    reminders, purge, the audit chain check and session clean-up. Several workers on several hosts are safe:
    each job runs once per due time. Stops cleanly on SIGTERM or Ctrl+C, finishing the message it is sending."""
    stop = threading.Event()

    def request_stop(signum, _frame) -> None:
        logger.info("worker: %s received, stopping after the current step", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    run_worker(should_stop=stop.is_set, wait=stop.wait, once=once)


@jobs_cli.command("status")
def jobs_status_command() -> None:
    """Say when each scheduled job last ran, how it went, when it is next due, and whether any is late."""
    status = job_status()
    seen = status.worker_last_seen
    click.echo(f"Worker: {'last seen ' + seen.isoformat(timespec='seconds') if seen else 'NOT RUNNING'}")
    for job in status.jobs:
        last = job.last_run_at.isoformat(timespec="seconds") if job.last_run_at else "never"
        flag = " LATE" if job.late else (" FAILED" if job.failed else "")
        click.echo(
            f"{job.name}: {job.schedule}; last run {last} ({job.last_status or '-'}: {job.last_summary or '-'})"
            f"; next {job.next_due.isoformat(timespec='minutes')}{flag}"
        )
    if status.problems:
        raise SystemExit(1)


@jobs_cli.command("run")
@click.argument("name", type=click.Choice(sorted(JOBS_BY_NAME)))
def jobs_run_command(name: str) -> None:
    """Run NAME's latest due run now, if no worker has run it yet (as the worker would)."""
    done = run_due_jobs(worker=worker_name(), only=name)
    if not done:
        click.echo(f"{name}: its latest due run has already been run (or is running); nothing to do.")
        return
    for job, status in done:
        click.echo(f"{job}: {status}")
    if any(status != "ok" for _, status in done):
        raise SystemExit(1)


@recordings_cli.command("verify")
def recordings_verify_command() -> None:
    """Check that every recording not yet purged has its file, with the SHA-256 recorded at upload (after a
    restore, say). Prints OK, or each problem and exits with status 1."""
    report = check_stored_files()
    for problem in report.problems:
        click.echo(problem, err=True)
    if report.problems:
        click.echo(f"{len(report.problems)} of {report.checked} recordings have a problem.")
        raise SystemExit(1)
    click.echo(f"OK: {report.checked} recordings checked; every file is present and unchanged.")


@recordings_cli.command("rewrap")
def recordings_rewrap_command() -> None:
    """Wrap every recording's data key under the first RECORDING_KEYS key. Once it reports no problems, the
    other keys can be removed from RECORDING_KEYS. Audited; safe to run again."""
    report = rewrap_data_keys()
    for problem in report.problems:
        click.echo(problem, err=True)
    click.echo(
        f"Re-wrapped {report.rewrapped} recording keys under key {report.key_id!r}; "
        f"{report.already_current} were already under it."
    )
    if report.problems:
        click.echo(f"{len(report.problems)} recordings could not be re-wrapped: keep their keys configured.")
        raise SystemExit(1)


@recordings_cli.command("encrypt-files")
def recordings_encrypt_files_command() -> None:
    """Move recordings kept as plain files in RECORDINGS_DIR (from before encryption at rest) into the store
    RECORDING_STORE names, encrypted, and delete the plain files. Audited; running it again moves only what
    is left."""
    report = encrypt_plain_files()
    for problem in report.problems:
        click.echo(problem, err=True)
    if report.encrypted or report.problems:
        click.echo(f"Encrypted {report.encrypted} recordings into the {current_app.config['RECORDING_STORE']} store.")
    else:
        click.echo("No recordings are stored as plain files: nothing to encrypt.")
    if report.problems:
        raise SystemExit(1)


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted, and delete nothing.")
def purge_command(dry_run: bool) -> None:
    """Delete release copies of recordings the purge delay (a practice setting; PURGE_AFTER_DAYS unless an
    admin changed it) after their link expired or their request closed. The audit keeps each file's name,
    size and SHA-256. Run it daily."""
    report = purge_release_copies(dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(f"{verb} {report.purged} recording files ({report.bytes_freed:,} bytes).")


@redaction_cli.command("run-once")
def redaction_run_once_command() -> None:
    """Make every redacted copy asked for and draw every missing waveform now, as the worker would, then stop."""
    worker = worker_name()
    rounds = 0
    while redaction.run_pending(worker):
        rounds += 1
    click.echo(f"Done: {rounds} pieces of work (copies made or refused, waveforms drawn).")


def register_cli(app: Flask) -> None:
    app.cli.add_command(content_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(outbox_cli)
    app.cli.add_command(practice_register_cli)
    app.cli.add_command(staff_cli)
    app.cli.add_command(accounts_cli)
    app.cli.add_command(requests_cli)
    app.cli.add_command(reminders_cli)
    app.cli.add_command(purge_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(recordings_cli)
    app.cli.add_command(redaction_cli)
