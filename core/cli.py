"""Command-line commands (`flask --app wsgi ...`). Each calls a service and reports in plain words."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core.services.audit import verify_chain
from core.services.content import load_default_content
from core.services.email import deliver_pending

content_cli = AppGroup("content", help="Manage the published content pages.")
audit_cli = AppGroup("audit", help="Check the audit trail.")
outbox_cli = AppGroup("outbox", help="Deliver queued email.")


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
    """Recompute the audit trail's HMAC chain; print OK, or the first broken event and exit with status 1."""
    result = verify_chain()
    if result.ok:
        click.echo(f"OK: {result.checked} audit events checked; the chain is intact.")
        return
    click.echo(
        f"BROKEN at audit event {result.broken_seq}: {result.reason}. {result.checked} events before it are intact."
    )
    raise SystemExit(1)


@outbox_cli.command("deliver")
def deliver_command() -> None:
    """Send every queued email that is due. Run it every minute; failures are retried with growing delays."""
    report = deliver_pending()
    click.echo(f"Sent {report.sent}; {report.retrying} to retry later; {report.given_up} given up.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(content_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(outbox_cli)
