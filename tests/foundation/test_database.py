"""The database: migrations on SQLite and PostgreSQL, WAL mode, timestamps, one home per model."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from services.db.engine import Database
from services.db.migrate import migrate, upgrade_to_head
from services.db.models import ALL_TABLES, Meta, Organization


async def test_every_table_exists_after_migration(database: Database):
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert {table.__tablename__ for table in ALL_TABLES} <= names
    assert "alembic_version" in names


async def test_migrating_again_is_a_no_op(database: Database):
    await migrate(database.url)
    async with database.session() as session:
        version = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert version == "0001"


async def test_timestamps_come_back_timezone_aware(database: Database):
    moment = datetime(2026, 3, 17, 15, 44, tzinfo=timezone(timedelta(hours=2)))
    async with database.transaction() as session:
        session.add(Meta(key="k", value="v", updated_at=moment))
    async with database.session() as session:
        row = (await session.execute(select(Meta))).scalar_one()
    assert row.updated_at == moment
    assert row.updated_at.tzinfo is not None
    assert row.updated_at.utcoffset() == timedelta(0)
    assert row.updated_at == moment.astimezone(UTC)


async def test_one_home_organization_per_data_model(database: Database):
    async with database.transaction() as session:
        session.add(Organization(org_uid="a" * 64, is_home=True, data_model_version="v2"))
        session.add(Organization(org_uid="b" * 64, is_home=False, data_model_version="v2"))
        session.add(Organization(org_uid="a" * 64, is_home=True, data_model_version="v1"))
    with pytest.raises(IntegrityError):
        async with database.transaction() as session:
            session.add(Organization(org_uid="c" * 64, is_home=True, data_model_version="v2"))


async def test_sqlite_runs_in_wal_mode(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}"
    await migrate(url)
    database = Database(url)
    try:
        async with database.engine.connect() as connection:
            mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar()
            timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar()
        assert mode == "wal"
        assert timeout and timeout >= 5000
    finally:
        await database.dispose()


def test_concurrent_migrations_of_one_sqlite_file(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade_to_head(url)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
