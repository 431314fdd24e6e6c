"""An in-process simulated chain wired to real Services, driven by hand (no timers, no sleeps).

`Chain` holds a SimulatorState whose RPC app is reached through httpx's ASGITransport, so the
gateway's real DataLayer and Wallet clients talk to it without sockets or TLS. Blocks and
DataLayer manage cycles happen only when a test asks; one `FakeClock` drives both the chain
(mirror back-off) and the sync engine (mismatch backoff).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from services.chia import DataLayerClient, WalletClient
from services.config import ServiceSettings
from services.container import Services
from services.db.engine import Database
from services.db.models import Audit, Organization, RegistryRecord
from services.events import EventHub
from services.oplock import OrgOperationLock
from services.simulator import SimulatorConfig, SimulatorState, create_simulator_app
from services.simulator.seed import create_owned_store, delete, insert, upsert

__all__ = [
    "Chain",
    "FakeClock",
    "FakeQueue",
    "chain",
    "clock",
    "delete",
    "insert",
    "make_services",
    "services",
    "upsert",
]

OWNER = 1
LOCAL = 0
MIRROR_URL = "http://127.0.0.1:8575"


class FakeClock:
    """A settable UTC clock for the sync engine and the simulated chain."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 17, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        """The same instant as epoch seconds (the simulator's clock)."""
        return self.now.timestamp()

    def advance(self, seconds: float) -> datetime:
        """Move forward; the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class FakeQueue:
    """Records enqueued jobs (services.container.JobQueue)."""

    jobs: list[tuple[str, tuple[object, ...], str | None]] = field(default_factory=list)

    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        if job_id is not None and any(job[2] == job_id for job in self.jobs):
            return None
        self.jobs.append((function, args, job_id))
        return job_id or f"job-{len(self.jobs)}"


class Chain:
    """The simulated chain plus the gateway Services of key 0 (the local node)."""

    def __init__(self, clock: FakeClock, *, keys: int = 2) -> None:
        self.clock = clock
        self.state = SimulatorState(
            SimulatorConfig(keys=keys, seed="none", block_seconds=1.0, manage_data_blocks=1),
            clock=clock.seconds,
        )
        self.app = create_simulator_app(self.state)

    # ------------------------------------------------------------------ gateway side
    def clients(self, key: int = LOCAL) -> tuple[DataLayerClient, WalletClient]:
        """Real RPC clients of `key`, over the in-process ASGI transport."""
        transport = httpx.ASGITransport(app=self.app)
        datalayer = DataLayerClient(
            f"http://sim/key/{key}/datalayer", transport=transport, retry_max_wait=0
        )
        wallet = WalletClient(f"http://sim/key/{key}/wallet", transport=transport, retry_max_wait=0)
        return datalayer, wallet

    def services(
        self, database: Database, redis: Redis, *, key: int = LOCAL, **settings: Any
    ) -> Services:
        """Services of a gateway node on `key` with these settings."""
        datalayer, wallet = self.clients(key)
        values: dict[str, Any] = {"governance_body_id": ""}
        values.update(settings)
        return Services(
            settings=ServiceSettings(**values),
            db=database,
            redis=redis,
            datalayer=datalayer,
            wallet=wallet,
            queue=FakeQueue(),
            lock=OrgOperationLock(redis, ttl_seconds=3600),
            events=EventHub(redis),
            poll_interval=0.01,
        )

    # ------------------------------------------------------------------ chain side
    def create_store(
        self,
        generations: Sequence[Sequence[dict[str, Any]]] = (),
        *,
        owner: int = OWNER,
        mirror_urls: Sequence[str] = (MIRROR_URL,),
    ) -> str:
        """A confirmed store owned by `owner` with these changelists as generations 1..N."""
        return create_owned_store(
            self.state,
            owner,
            [list(changes) for changes in generations],
            mirror_urls=mirror_urls,
            start_time=int(self.clock.seconds()) - 1000,
            spacing_seconds=1,
        )

    def write(self, store_id: str, changes: Sequence[dict[str, Any]]) -> int:
        """Confirm one more generation of a store at once; its generation index."""
        store = self.state.stores[store_id]
        self.state.height += 1
        store.data.commit(
            store.data.plan(list(changes)),
            timestamp=int(self.clock.seconds()),
            height=self.state.height,
        )
        self.state.dirty = True
        return store.data.latest

    def subscribe(self, store_id: str, key: int = LOCAL, urls: Sequence[str] = ()) -> None:
        """Subscribe `key` to a store (downloads at the next cycle)."""
        self.state.subscribe(self.state.key(key), store_id, list(urls))

    def cycle(self, key: int = LOCAL) -> None:
        """One DataLayer manage cycle of `key` (downloads what it can)."""
        self.state.run_manage_cycle(self.state.key(key))

    def local_generation(self, store_id: str, key: int = LOCAL) -> int | None:
        """What `key` holds of a store."""
        return self.state.local_generation(self.state.key(key), self.state.stores[store_id])


async def add_organization(
    database: Database,
    *,
    org_uid: str,
    registry_id: str | None,
    name: str = "Remote Org",
    is_home: bool = False,
    subscribed: bool = True,
    data_model_version_store_id: str | None = None,
    file_store_id: str | None = None,
) -> None:
    """Insert an organization row as an import would."""
    async with database.transaction() as session:
        session.add(
            Organization(
                org_uid=org_uid,
                name=name,
                registry_id=registry_id,
                is_home=is_home,
                subscribed=subscribed,
                data_model_version="v2",
                data_model_version_store_id=data_model_version_store_id,
                file_store_id=file_store_id,
            )
        )


async def audit_rows(database: Database, org_uid: str) -> list[Audit]:
    """Every audit row of an organization in (generation, seq) order."""
    async with database.session() as session:
        rows = await session.execute(
            sa.select(Audit)
            .where(Audit.org_uid == org_uid)  # type: ignore[arg-type]
            .order_by(Audit.generation, Audit.seq)  # type: ignore[arg-type]
        )
        return list(rows.scalars())


async def records(database: Database, org_uid: str) -> dict[str, Any]:
    """Registry records of an organization as {"table|key": record}."""
    async with database.session() as session:
        rows = await session.execute(
            sa.select(RegistryRecord).where(RegistryRecord.org_uid == org_uid)  # type: ignore[arg-type]
        )
        return {f"{row.table}|{row.key}": json.loads(row.record) for row in rows.scalars()}


async def organization(database: Database, org_uid: str) -> Organization:
    """The v2 organization row."""
    async with database.session() as session:
        row = (
            await session.execute(sa.select(Organization).where(Organization.org_uid == org_uid))  # type: ignore[arg-type]
        ).scalar_one()
        return row


def project(number: int, **extra: Any) -> dict[str, Any]:
    """A CADT-like project record."""
    return {"warehouseProjectId": f"p{number}", "projectName": f"Project {number}", **extra}


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> FakeClock:
    """The test's clock (chain and sync engine)."""
    return FakeClock()


@pytest.fixture
def chain(clock: FakeClock) -> Chain:
    """A fresh simulated chain with two keys (0 = this node, 1 = the remote owner)."""
    return Chain(clock)


@pytest.fixture
async def make_services(
    chain: Chain, database: Database, redis_client: Redis
) -> AsyncIterator[Callable[..., Services]]:
    """Build Services of key 0 (or another key) with setting overrides; closed after the test."""
    built: list[Services] = []

    def build(**settings: Any) -> Services:
        services = chain.services(database, redis_client, **settings)
        built.append(services)
        return services

    yield build
    for services in built:
        await services.events.stop()
        await services.datalayer.aclose()
        await services.wallet.aclose()


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    """Services of key 0 with default settings."""
    return make_services()
