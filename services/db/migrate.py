"""Run Alembic migrations to head; safe when several processes start at once."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from services.db.engine import is_sqlite

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: Any constant works; it only has to be the same in every process of a deployment.
POSTGRES_ADVISORY_LOCK_ID = 3_131_0


def alembic_config(url: str) -> Config:
    """An Alembic config for this database, without an alembic.ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    database = make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_suffix(".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_to_head(url: str) -> None:
    """Apply every pending migration (blocking; call from a thread in async code)."""
    if is_sqlite(url):
        with _sqlite_file_lock(url):
            command.upgrade(alembic_config(url), "head")
        return
    asyncio.run(_postgres_locked_upgrade(url))


async def _postgres_locked_upgrade(url: str) -> None:
    import asyncpg

    # asyncpg wants the libpq form of the URL.
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", POSTGRES_ADVISORY_LOCK_ID)
        try:
            await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", POSTGRES_ADVISORY_LOCK_ID)
    finally:
        await connection.close()


async def migrate(url: str) -> None:
    """Apply every pending migration from async code."""
    await asyncio.to_thread(upgrade_to_head, url)
