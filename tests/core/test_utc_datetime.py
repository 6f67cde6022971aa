"""The UTCDateTime column type, on the suite's database (SQLite, or PostgreSQL with TEST_DATABASE_URL): aware
datetimes in, aware UTC datetimes out, the same instant whatever zone it was given in, naive datetimes refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import StatementError

from core.extensions import db
from core.models import JobRun, WorkerHeartbeat
from core.models.types import UTCDateTime, render_item

LONDON = ZoneInfo("Europe/London")
NOON_UTC = datetime(2026, 7, 10, 12, 0, 0, 123456, tzinfo=UTC)
NAIVE_NOON = datetime(2026, 7, 10, 12, 0)  # noqa: DTZ001 - the value the type must refuse


def store_run(due_at: datetime, finished_at: datetime | None = None) -> int:
    run = JobRun(job="test", due_at=due_at, worker="w1", finished_at=finished_at)
    db.session.add(run)
    db.session.commit()
    return run.id


def read_run(run_id: int) -> JobRun:
    db.session.expire_all()
    return db.session.get(JobRun, run_id)


def is_utc(moment: datetime) -> bool:
    return moment.tzinfo is UTC


def test_an_aware_utc_value_comes_back_aware_in_utc():
    run = read_run(store_run(NOON_UTC))
    assert run.due_at == NOON_UTC
    assert is_utc(run.due_at)
    assert is_utc(run.started_at)  # the column default (utc_now) takes the same path


def test_a_value_in_another_zone_is_stored_as_the_same_instant_and_read_back_in_utc():
    summer_in_london = datetime(2026, 7, 10, 13, 0, 0, 123456, tzinfo=LONDON)  # BST: 12:00 UTC
    run = read_run(
        store_run(
            summer_in_london, finished_at=datetime(2026, 7, 10, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        )
    )
    assert run.due_at == NOON_UTC
    assert is_utc(run.due_at) and run.due_at.hour == 12
    assert run.finished_at == datetime(2026, 7, 10, 12, 0, tzinfo=UTC)
    assert is_utc(run.finished_at)


def test_the_database_holds_the_utc_wall_clock():
    """What is stored is UTC: a raw query that bypasses the type sees 12:00, not London's 13:00."""
    store_run(datetime(2026, 7, 10, 13, 0, tzinfo=LONDON))
    raw = db.session.execute(text("SELECT due_at FROM job_run")).scalar_one()
    if isinstance(raw, str):  # SQLite keeps the text it was given
        raw = datetime.fromisoformat(raw)
    assert raw.replace(tzinfo=raw.tzinfo or UTC) == datetime(2026, 7, 10, 12, 0, tzinfo=UTC)


def test_a_naive_value_is_refused():
    db.session.add(JobRun(job="test", due_at=NAIVE_NOON, worker="w1"))
    with pytest.raises(StatementError, match="naive datetime"):
        db.session.flush()
    db.session.rollback()
    assert db.session.execute(select(func.count()).select_from(JobRun)).scalar_one() == 0


def test_a_naive_value_is_refused_in_a_query_too():
    with pytest.raises(StatementError, match="naive datetime"):
        db.session.execute(select(JobRun).where(JobRun.due_at < NAIVE_NOON)).all()
    db.session.rollback()


def test_a_value_that_is_not_a_datetime_is_refused():
    with pytest.raises(StatementError, match="takes a datetime"):
        db.session.execute(insert(JobRun).values(job="test", due_at="2026-07-10 12:00", worker="w1"))
    db.session.rollback()


def test_none_passes_through():
    run = read_run(store_run(NOON_UTC, finished_at=None))
    assert run.finished_at is None
    assert UTCDateTime().process_bind_param(None, db.engine.dialect) is None
    assert UTCDateTime().process_result_value(None, db.engine.dialect) is None


def test_comparisons_use_the_instant_whatever_the_zone_of_the_value():
    store_run(NOON_UTC)
    same_instant_in_london = NOON_UTC.astimezone(LONDON)
    found = db.session.execute(select(JobRun.id).where(JobRun.due_at == same_instant_in_london)).all()
    assert len(found) == 1
    later_in_london = datetime(2026, 7, 10, 12, 30, tzinfo=LONDON)  # 11:30 UTC: before the run
    assert db.session.execute(select(JobRun.id).where(JobRun.due_at > later_in_london)).all() == found


def test_core_queries_and_aggregates_return_aware_values():
    store_run(NOON_UTC)
    store_run(NOON_UTC + timedelta(hours=1))
    column = db.session.execute(select(JobRun.due_at).order_by(JobRun.due_at)).scalars().all()
    assert column == [NOON_UTC, NOON_UTC + timedelta(hours=1)]
    assert all(is_utc(moment) for moment in column)
    earliest, latest = db.session.execute(select(func.min(JobRun.due_at), func.max(JobRun.due_at))).one()
    assert (earliest, latest) == (NOON_UTC, NOON_UTC + timedelta(hours=1))
    assert is_utc(earliest) and is_utc(latest)


def test_a_bulk_update_goes_through_the_type():
    db.session.add(WorkerHeartbeat(worker="w1"))
    db.session.commit()
    db.session.execute(
        WorkerHeartbeat.__table__.update().values(stopped_at=datetime(2026, 1, 10, 12, 0, tzinfo=LONDON))
    )
    db.session.commit()
    db.session.expire_all()
    stopped = db.session.get(WorkerHeartbeat, "w1").stopped_at
    assert stopped == datetime(2026, 1, 10, 12, 0, tzinfo=UTC)  # GMT in January: the same wall clock
    assert is_utc(stopped)


def test_a_scalar_subquery_keeps_the_type():
    store_run(NOON_UTC)
    latest = select(func.max(JobRun.due_at)).scalar_subquery().label("latest")
    found = db.session.execute(select(latest)).scalar_one()
    assert found == NOON_UTC
    assert is_utc(found)


def test_autogenerated_migrations_write_the_column_as_it_is_in_the_database():
    upgrade = ops.UpgradeOps(ops=[ops.CreateTableOp.from_table(JobRun.__table__)])
    code = render_python_code(upgrade, render_item=render_item)
    assert "sa.Column('due_at', sa.DateTime(timezone=True), nullable=False)" in code
    assert "UTCDateTime" not in code
