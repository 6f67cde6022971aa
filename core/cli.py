"""Command-line commands (`flask --app wsgi ...`). Each calls a service and reports in plain words."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from core.services.content import load_default_content

content_cli = AppGroup("content", help="Manage the published content pages.")


@content_cli.command("load-defaults")
def load_defaults_command() -> None:
    """Publish the default text of every content page that has none yet. Edited pages are never touched."""
    created = load_default_content(config=current_app.config)
    if created:
        for slug in created:
            click.echo(f"Published default content for {slug}.")
    else:
        click.echo("Every content page already has content; nothing changed.")


def register_cli(app: Flask) -> None:
    app.cli.add_command(content_cli)
