"""Migrations are the schema: one head, a clean round trip, and exactly what the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from core.config import PROJECT_ROOT
from core.extensions import db
from core.factory import create_app

MIGRATIONS = PROJECT_ROOT / "migrations"


def script_directory() -> ScriptDirectory:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_there_is_a_single_head():
    assert len(script_directory().get_heads()) == 1


def test_migration_files_are_named_by_date():
    for path in (MIGRATIONS / "versions").glob("*.py"):
        year, month, day = path.name.split("_")[:3]
        assert len(year) == 4 and len(month) == 2 and len(day) == 2, path.name


def test_the_migrated_database_matches_the_models(app):
    """Run against the suite's database, which the session fixture built by running the migrations."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_migrations_downgrade_to_nothing_and_upgrade_again(tmp_path):
    other = create_app("test", {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'roundtrip.db'}"})
    with other.app_context():
        upgrade(directory=str(MIGRATIONS))
        assert "notice_version" in inspect(db.engine).get_table_names()
        downgrade(directory=str(MIGRATIONS), revision="base")
        assert inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade(directory=str(MIGRATIONS))
        assert "notice_version" in inspect(db.engine).get_table_names()
        db.engine.dispose()
