"""sync_ingest_vs_bulk_insert: one sync run of 1,000 generations x 100 changes vs a raw bulk insert.

The registry store is built in an in-process simulator (`build_store_history`, owned by key 1,
downloaded by key 0) and read through the gateway's real DataLayer client over httpx's ASGI
transport (no sockets, no TLS): every diff is a real RPC round trip through the client, its
pydantic models and the simulator's handlers. One `sync_organization` call must apply all
generations; it is timed from start to the last commit.

The baseline is the cheapest honest way to put the same rows into the same database in the
same run: the audit rows and the final registry records that the sync wrote, inserted with
SQLAlchemy Core executemany in transactions of `sync_batch_size` rows, no RPC, no decoding.

Reported per database (SQLite file, and PostgreSQL when reachable: CADT_BENCH_DATABASE_URL,
default postgresql+asyncpg://postgres@127.0.0.1:5432/cadt_gateway_bench; each run works in
its own database `<name>_<pid>`, dropped at the end, so concurrent runs never share rows):
value = rows/s of the sync run, baseline = rows/s of the bulk insert of the same rows (audit rows
+ registry records); target ratio >= 0.5. Details carry both times, generations/s, records/s,
and the time CADT's one-generation-per-10-s-tick model would need for the same work.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

import services.sync as sync_engine
from bench.registry import Options, Result, benchmark
from services.chia import DataLayerClient, WalletClient
from services.config import ServiceSettings
from services.container import Services
from services.db.engine import Database
from services.db.migrate import upgrade_to_head
from services.db.models import Audit, Organization, RegistryRecord, SyncState
from services.events import EventHub
from services.oplock import OrgOperationLock
from services.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from services.simulator.seed import build_store_history

NAME = "sync_ingest_vs_bulk_insert"
REDIS_URL = os.environ.get("CADT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get(
    "CADT_BENCH_DATABASE_URL",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/cadt_gateway_bench",
)
#: Sync events go to a bench-only channel no gateway listens to.
BENCH_SYNC_CHANNEL = "cadt-bench:events:sync"
ORG_UID = "be" * 32
GENERATIONS, CHANGES = 1000, 100
QUICK_GENERATIONS = 100
#: CADT applied one generation per sync tick; the issue's model of it is one per 10 s.
CADT_SECONDS_PER_GENERATION = 10.0
#: The issue: sync throughput at least half of a raw bulk insert of the same rows.
TARGET_THROUGHPUT_RATIO = 0.5

_AUDIT = Audit.__table__  # type: ignore[attr-defined]
_RECORDS = RegistryRecord.__table__  # type: ignore[attr-defined]
_STATES = SyncState.__table__  # type: ignore[attr-defined]
_ORGS = Organization.__table__  # type: ignore[attr-defined]


class _Chain:
    """The simulated chain with the synthetic registry, downloaded by key 0."""

    def __init__(self, generations: int) -> None:
        self.state = SimulatorState(SimulatorConfig(keys=2, seed="none", shuffle_reads=True))
        self.registry = build_store_history(
            self.state, owner_key=1, generations=generations, changes_per_generation=CHANGES
        )
        self.state.subscribe(self.state.key(0), self.registry, [])
        self.state.run_manage_cycle(self.state.key(0))
        self.app = create_simulator_app(self.state)

    def services(self, database: Database, redis: Redis) -> Services:
        transport = httpx.ASGITransport(app=self.app)
        return Services(
            settings=ServiceSettings(governance_body_id=""),
            db=database,
            redis=redis,
            datalayer=DataLayerClient(
                "http://sim/key/0/datalayer", transport=transport, retry_max_wait=0
            ),
            wallet=WalletClient("http://sim/key/0/wallet", transport=transport, retry_max_wait=0),
            queue=_NoQueue(),
            lock=OrgOperationLock(redis, ttl_seconds=3600),
            events=EventHub(redis),
        )


class _NoQueue:
    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        return None


async def _reset(database: Database) -> None:
    async with database.transaction() as session:
        for table in (_AUDIT, _RECORDS, _STATES, _ORGS):
            await session.execute(sa.delete(table))
        session.add(
            Organization(
                org_uid=ORG_UID,
                name="Bench Org",
                registry_id=None,
                subscribed=True,
                data_model_version="v2",
            )
        )


async def _run_sync(services: Services, registry: str) -> tuple[float, int]:
    async with services.db.transaction() as session:
        await session.execute(
            sa.update(_ORGS).where(_ORGS.c.org_uid == ORG_UID).values(registry_id=registry)
        )
    started = time.perf_counter()
    outcome = await sync_engine.sync_organization(services, ORG_UID)
    elapsed = time.perf_counter() - started
    if outcome.sync_remaining:
        raise RuntimeError(f"the sync run left {outcome.sync_remaining} generations: {outcome}")
    return elapsed, outcome.applied_generations


async def _rows(database: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    audit, records = _AUDIT, _RECORDS
    async with database.session() as session:
        audit_rows = [
            dict(row)
            for row in (await session.execute(sa.select(audit).order_by(audit.c.id))).mappings()
        ]
        record_rows = [dict(row) for row in (await session.execute(sa.select(records))).mappings()]
    for row in audit_rows:
        row.pop("id")
    return audit_rows, record_rows


async def _bulk_insert(
    database: Database, audit_rows: list[dict[str, Any]], record_rows: list[dict[str, Any]]
) -> float:
    batch = ServiceSettings().sync_batch_size
    audit, records = _AUDIT, _RECORDS
    started = time.perf_counter()
    for start in range(0, max(len(audit_rows), len(record_rows)), batch):
        async with database.transaction() as session:
            if audit_rows[start : start + batch]:
                await session.execute(sa.insert(audit), audit_rows[start : start + batch])
            if record_rows[start : start + batch]:
                await session.execute(sa.insert(records), record_rows[start : start + batch])
    return time.perf_counter() - started


async def _measure(label: str, url: str, chain: _Chain, redis: Redis, rounds: int) -> Result:
    """Interleaved rounds of (sync, bulk insert); the median round by its paired ratio.

    Each round runs both sides back to back (alternating which goes first), so load from
    other processes on a shared machine hits a pair alike; the reported value and baseline are
    the two times of the round whose ratio is the median, never medians taken separately.
    CPU seconds of this process (both sides; on SQLite that includes the database work, on
    PostgreSQL the server's share is not counted) are kept in the details as well.
    """
    await asyncio.to_thread(upgrade_to_head, url)
    database = Database(url)
    services = chain.services(database, redis)
    pairs: list[tuple[float, float, float, float]] = []  # (sync s, bulk s, sync cpu, bulk cpu)
    try:
        await _reset(database)
        generations = 0
        # Warm-up: one full run (connections, statement caches, simulator snapshots).
        await _run_sync(services, chain.registry)
        audit_rows, record_rows = await _rows(database)
        for round_number in range(rounds):
            measured: dict[str, tuple[float, float]] = {}
            order = ("raw", "ours") if round_number % 2 else ("ours", "raw")
            for side in order:
                await _reset(database)
                cpu = time.process_time()
                if side == "ours":
                    elapsed, generations = await _run_sync(services, chain.registry)
                else:
                    elapsed = await _bulk_insert(database, audit_rows, record_rows)
                measured[side] = (elapsed, time.process_time() - cpu)
            (sync_s, sync_cpu), (bulk_s, bulk_cpu) = measured["ours"], measured["raw"]
            pairs.append((sync_s, bulk_s, sync_cpu, bulk_cpu))
    finally:
        await services.datalayer.aclose()
        await services.wallet.aclose()
        await database.dispose()
    by_ratio = sorted(pairs, key=lambda pair: pair[0] / pair[1])
    sync_seconds, bulk_seconds, _cpu, _bulk_cpu = by_ratio[len(by_ratio) // 2]
    cadt_seconds = generations * CADT_SECONDS_PER_GENERATION
    cpu_ratios = sorted(pair[2] / pair[3] for pair in pairs)
    rows = len(audit_rows) + len(record_rows)
    return Result(
        name=f"{NAME}.{label}",
        # Throughput of the same rows (audit rows + registry records): ratio = sync / bulk.
        value=round(rows / sync_seconds, 1),
        unit="rows/s",
        baseline=round(rows / bulk_seconds, 1),
        target=TARGET_THROUGHPUT_RATIO,
        higher_is_better=True,
        details={
            "sync_seconds": round(sync_seconds, 3),
            "bulk_insert_seconds": round(bulk_seconds, 3),
            "database": label,
            "generations": generations,
            "changes_per_generation": CHANGES,
            "audit_rows": len(audit_rows),
            "registry_records": len(record_rows),
            "generations_per_second": round(generations / sync_seconds, 1),
            "audit_rows_per_second": round(len(audit_rows) / sync_seconds),
            "registry_records_per_second": round(len(record_rows) / sync_seconds),
            "bulk_insert_rows_per_second": round(
                (len(audit_rows) + len(record_rows)) / bulk_seconds
            ),
            "time_ratio_vs_bulk_insert": round(sync_seconds / bulk_seconds, 3),
            "cadt_tick_model_seconds": cadt_seconds,
            "cadt_tick_model": f"{generations} generations x {CADT_SECONDS_PER_GENERATION:g} s",
            "speedup_vs_cadt_model": round(cadt_seconds / sync_seconds),
            "rounds": rounds,
            "paired_time_ratios": [round(a / b, 3) for a, b, _c, _d in pairs],
            "sync_seconds_all": [round(a, 3) for a, _b, _c, _d in pairs],
            "bulk_seconds_all": [round(b, 3) for _a, b, _c, _d in pairs],
            "median_process_cpu_ratio": round(cpu_ratios[len(cpu_ratios) // 2], 3),
            "transport": "gateway DataLayerClient -> httpx ASGITransport -> in-process simulator",
        },
    )


async def _postgres_admin(url: str) -> Any:
    """A connection to the server's `postgres` database, or None when it is not reachable."""
    import asyncpg

    admin = make_url(url).set(drivername="postgresql", database="postgres")
    try:
        return await asyncpg.connect(admin.render_as_string(hide_password=False), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None


async def _with_postgres(url: str) -> str | None:
    """A fresh database for this run (name + pid, so concurrent runs never share rows)."""
    connection = await _postgres_admin(url)
    if connection is None:
        return None
    name = f"{make_url(url).database}_{os.getpid()}"
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _drop_postgres(url: str) -> None:
    connection = await _postgres_admin(url)
    if connection is not None:
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}"')
        finally:
            await connection.close()


@benchmark(NAME)
async def sync_ingest(options: Options) -> list[Result]:
    """Sync seconds of one organization vs a raw bulk insert of its rows, per database."""
    rounds = options.rounds_or(5)
    generations = QUICK_GENERATIONS if options.quick else GENERATIONS
    sync_engine.SYNC_CHANNEL = BENCH_SYNC_CHANNEL  # type: ignore[attr-defined]
    chain = _Chain(generations)
    redis = Redis.from_url(REDIS_URL)
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="cadt-bench-") as directory:
            sqlite_url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.sqlite3'}"
            results.append(await _measure("sqlite", sqlite_url, chain, redis, rounds))
        postgres_url = await _with_postgres(POSTGRES_URL)
        if postgres_url is None:
            print(f"PostgreSQL not reachable at {POSTGRES_URL}: skipped")
        else:
            try:
                results.append(await _measure("postgresql", postgres_url, chain, redis, rounds))
            finally:
                await _drop_postgres(postgres_url)
    finally:
        await redis.aclose()
    if results:
        # The headline record under the benchmark's own name: the database with the lowest
        # throughput ratio (the target holds for both only if it holds for this one).
        worst = min(results, key=lambda result: result.ratio)
        headline = replace(
            worst,
            name=NAME,
            details={
                **worst.details,
                "headline": "the database with the lowest ratio of this run",
                "ratios_by_database": {
                    result.details["database"]: round(result.ratio, 3) for result in results
                },
            },
        )
        results.insert(0, headline)
    return results
