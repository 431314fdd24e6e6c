"""Shared fixtures: settings, databases (SQLite always, PostgreSQL when configured), Redis."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from cadt_gateway.settings import Settings
from services.db.engine import Database
from services.db.migrate import upgrade_to_head
from services.db.models import ALL_TABLES


def _claim_redis_database() -> str:
    """A Redis database of its own for this pytest process.

    Tests flush their database and share arq's queue name, so two test runs on one machine
    (two shells, CI next to a developer) must not share a database. Each run claims one of
    databases 1-11 with SET NX in database 0 and keeps it for an hour at most.
    """
    import redis

    explicit = os.environ.get("CADT_TEST_REDIS_URL")
    if explicit:
        return explicit
    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        for number in range(1, 12):
            if client.set(f"cadt-test-claim:{number}", os.getpid(), nx=True, ex=3600):
                atexit.register(client.delete, f"cadt-test-claim:{number}")
                return f"redis://127.0.0.1:6379/{number}"
    except redis.RedisError:
        pass
    return "redis://127.0.0.1:6379/15"


TEST_REDIS_URL = _claim_redis_database()
os.environ["CADT_TEST_REDIS_URL"] = TEST_REDIS_URL
TEST_DATABASE_URL = os.environ.get("CADT_TEST_DATABASE_URL")

DATABASES = ["sqlite"] + (["postgres"] if TEST_DATABASE_URL else [])


# ---------------------------------------------------------------------------- secrets in logs
#: Values that must never appear in a log record of the whole run (tests add theirs with
#: register_secret before using them; keep them distinctive so a match is never a coincidence).
_SECRETS: set[str] = set()


def register_secret(value: str) -> str:
    """Remember a secret a test uses; the session fails if any log record contains it."""
    if len(value) >= 8:
        _SECRETS.add(value)
    return value


class SecretLeakHandler(logging.Handler):
    """Collects every log record (INFO and up) that contains a registered secret."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.leaks: list[str] = []
        self.formatter_ = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        if not _SECRETS:
            return
        try:
            text = self.formatter_.format(record)
            text += " " + " ".join(str(value) for value in record.__dict__.values())
        except Exception:  # a record that cannot format is not a leak
            return
        for secret in _SECRETS:
            if secret in text:
                self.leaks.append(f"{record.name}: {record.getMessage()[:200]}")


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[SecretLeakHandler]:
    """Every record of the run is checked for the registered secrets; a leak fails the run."""
    handler = SecretLeakHandler()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert not handler.leaks, f"secrets in {len(handler.leaks)} log record(s): {handler.leaks[:5]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Real-Chia tests run only under `make test-chia` (tools/chia-sim/run-tests)."""
    if os.environ.get("CADT_CHIA_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="real Chia stack: run `make test-chia`")
    for item in items:
        if "chia" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for every test (migrating each time is slower)."""
    path = tmp_path_factory.mktemp("db-template") / "template.sqlite3"
    upgrade_to_head(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str | None:
    """The PostgreSQL test database, migrated once per session."""
    if not TEST_DATABASE_URL:
        return None
    upgrade_to_head(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


@pytest.fixture(params=DATABASES)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    postgres_migrated: str | None,
) -> Iterator[str]:
    """A migrated, empty database: SQLite, and PostgreSQL when CADT_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        path = tmp_path / "cadt.sqlite3"
        shutil.copy(sqlite_template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    assert postgres_migrated is not None
    _truncate_postgres(postgres_migrated)
    yield postgres_migrated


def _truncate_postgres(url: str) -> None:
    import asyncio

    async def truncate() -> None:
        database = Database(url)
        try:
            names = ", ".join(f'"{table.__tablename__}"' for table in ALL_TABLES)
            async with database.engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
        finally:
            await database.dispose()

    asyncio.run(truncate())


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A Database on the test database."""
    db = Database(database_url)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    """The real test Redis, emptied before the test."""
    client = aioredis.Redis.from_url(TEST_REDIS_URL)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Build Settings for a test without reading the environment or a .env file."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "_env_file": None}
        values.update(overrides)
        return Settings(**values)

    return build


def database_name(url: str) -> str:
    """Backend name of a URL, for test ids and messages."""
    return make_url(url).get_backend_name()


# ---------------------------------------------------------------------------- whole nodes


class GraphQLClient:
    """A gateway app in-process: HTTP through httpx's ASGITransport, lifespan started."""

    def __init__(self, app: Any, http: Any, settings: Settings) -> None:
        self.app = app
        self.http = http
        self.settings = settings

    @property
    def services(self) -> Any:
        """The node's Services (database, Redis, clients, lock, events)."""
        return self.app.state.node.services

    async def execute(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        headers: dict[str, str] | None = None,
        expect_errors: bool = False,
    ) -> dict[str, Any]:
        """POST a GraphQL operation; fails the test on top-level errors unless expected."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        if expect_errors:
            assert body.get("errors"), body
        else:
            assert response.status_code == 200, body
            assert not body.get("errors"), body["errors"]
        return body if expect_errors else body["data"]


@pytest.fixture
async def simulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """A fresh built-in Chia simulator (no seed, fast blocks, two keys) over real HTTPS."""
    from services.simulator import EmbeddedSimulator

    async with EmbeddedSimulator(
        data_dir=tmp_path_factory.mktemp("sim"), block_seconds=0.05, seed="none", keys=2
    ) as sim:
        yield sim


@pytest.fixture
def node_settings(make_settings: Any, database_url: str, simulator: Any) -> Any:
    """Settings of a test node on the test database, the test Redis and the simulator's key 0."""

    def build(key: int = 0, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "redis_url": TEST_REDIS_URL,
            "datalayer_url": simulator.datalayer_url(key),
            "wallet_url": simulator.wallet_url(key),
            "certificate_folder_path": simulator.ssl_folder(key),
            "poll_interval_seconds": 0.02,
            "governance_body_id": "",
            "rpc_retry_max_wait_seconds": 0,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
async def start_node(redis_client: Any, simulator: Any) -> AsyncIterator[Any]:
    """Start gateway apps (lifespan + in-process worker); all are stopped after the test.

    It depends on `simulator` so the nodes stop (closing their RPC connections) before the
    simulator does; otherwise the simulator waits out its graceful-shutdown timeout.
    """
    from asgi_lifespan import LifespanManager
    from httpx import ASGITransport, AsyncClient

    from cadt_gateway.app import create_app

    async with AsyncExitStack() as stack:

        async def start(settings: Settings, *, run_worker: bool = True) -> GraphQLClient:
            app = create_app(settings, run_worker=run_worker)
            manager = await stack.enter_async_context(
                LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
            )
            http = await stack.enter_async_context(
                AsyncClient(transport=ASGITransport(app=manager.app), base_url="http://test")
            )
            return GraphQLClient(app, http, settings)

        yield start


@pytest.fixture
async def node(start_node: Any, node_settings: Any) -> GraphQLClient:
    """One gateway node on simulator key 0 with an in-process worker."""
    client: GraphQLClient = await start_node(node_settings())
    return client
