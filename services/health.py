"""Probe every part of a node: database, Redis, DataLayer, wallet and the worker heartbeat."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from enum import StrEnum

from services.container import Services
from services.redis_keys import WORKER_HEALTH_PREFIX

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3.0


class PartState(StrEnum):
    """State of one part of the node."""

    UP = "UP"
    DOWN = "DOWN"
    DEGRADED = "DEGRADED"


@dataclass(frozen=True)
class PartHealth:
    """One part's state and a short human detail."""

    state: PartState
    detail: str | None = None


@dataclass(frozen=True)
class NodeHealth:
    """The health of every part; `ok` only when all are UP."""

    version: str
    read_only: bool
    database: PartHealth
    redis: PartHealth
    datalayer: PartHealth
    wallet: PartHealth
    worker: PartHealth

    @property
    def ok(self) -> bool:
        """True when every part is UP."""
        parts = (self.database, self.redis, self.datalayer, self.wallet, self.worker)
        return all(part.state is PartState.UP for part in parts)

    @property
    def state(self) -> PartState:
        """The node as a whole: UP when every part is UP; DOWN when the database or Redis is
        not UP (nothing can be served); DEGRADED otherwise (DataLayer, the wallet or the
        worker is down or not synced: queries are served from the database, writes upstream
        are refused, jobs back off)."""
        if self.ok:
            return PartState.UP
        if self.database.state is not PartState.UP or self.redis.state is not PartState.UP:
            return PartState.DOWN
        return PartState.DEGRADED


async def _probe(name: str, check: Awaitable[PartHealth]) -> PartHealth:
    try:
        return await asyncio.wait_for(check, PROBE_TIMEOUT_SECONDS)
    except TimeoutError:
        return PartHealth(
            PartState.DOWN, f"{name} did not answer within {PROBE_TIMEOUT_SECONDS:g} s"
        )
    except Exception as error:  # a failing probe is a DOWN part, never a failed query
        logger.debug("health probe %s failed", name, exc_info=True)
        return PartHealth(PartState.DOWN, f"{name} unavailable: {type(error).__name__}")


async def _database(services: Services) -> PartHealth:
    await services.db.ping()
    return PartHealth(PartState.UP, services.db.dialect)


async def _redis(services: Services) -> PartHealth:
    await services.redis.ping()
    return PartHealth(PartState.UP, services.embedded.get("redis"))


async def _datalayer(services: Services) -> PartHealth:
    await services.datalayer.get_routes()
    return PartHealth(PartState.UP, services.embedded.get("datalayer"))


async def _wallet(services: Services) -> PartHealth:
    status = await services.wallet.get_sync_status()
    if not status.synced:
        return PartHealth(PartState.DEGRADED, "wallet is not synced; writes are refused")
    return PartHealth(PartState.UP, services.embedded.get("wallet"))


async def _worker(services: Services) -> PartHealth:
    workers = [key async for key in services.redis.scan_iter(match=WORKER_HEALTH_PREFIX + "*")]
    if not workers:
        return PartHealth(PartState.DOWN, "no worker heartbeat; start `cadt-gateway worker`")
    return PartHealth(PartState.UP, f"{len(workers)} worker(s) alive")


async def check_health(services: Services) -> NodeHealth:
    """Probe all parts concurrently, each with a short timeout."""
    database, redis, datalayer, wallet, worker = await asyncio.gather(
        _probe("database", _database(services)),
        _probe("redis", _redis(services)),
        _probe("datalayer", _datalayer(services)),
        _probe("wallet", _wallet(services)),
        _probe("worker", _worker(services)),
    )
    return NodeHealth(
        version=services.version,
        read_only=services.settings.read_only,
        database=database,
        redis=redis,
        datalayer=datalayer,
        wallet=wallet,
        worker=worker,
    )


async def check_readiness(services: Services) -> dict[str, PartHealth]:
    """What /readyz needs: the database, Redis and a worker heartbeat (never the Chia RPC).

    A node whose Chia services are down still serves reads from its database, so it stays
    ready; `Query.health` reports the upstream separately.
    """
    database, redis, worker = await asyncio.gather(
        _probe("database", _database(services)),
        _probe("redis", _redis(services)),
        _probe("worker", _worker(services)),
    )
    return {"database": database, "redis": redis, "worker": worker}
