"""Health of the node and its parts."""

from __future__ import annotations

from enum import Enum

import strawberry

import resolvers.health
from resolvers.context import Info
from services.health import NodeHealth, PartHealth


@strawberry.enum(description="State of one part of the node.")
class ServiceState(Enum):
    UP = "UP"
    DOWN = "DOWN"
    DEGRADED = "DEGRADED"


@strawberry.type(description="One part's state.")
class ServiceHealth:
    state: ServiceState = strawberry.field(description="UP, DOWN or DEGRADED.")
    detail: str | None = strawberry.field(description="Short human detail.")

    @classmethod
    def from_domain(cls, part: PartHealth) -> ServiceHealth:
        """Build from a probe result."""
        return cls(state=ServiceState(part.state.value), detail=part.detail)


@strawberry.type(description="Health of the node: every part probed.")
class Health:
    ok: bool = strawberry.field(description="True when every part is UP.")
    state: ServiceState = strawberry.field(
        description=(
            "The node as a whole: UP when every part is UP; DOWN when the database or Redis "
            "is down; DEGRADED when DataLayer, the wallet or the worker is down or not synced "
            "(queries are served from the database, writes upstream are refused)."
        )
    )
    version: str = strawberry.field(description="cadt-gateway version.")
    read_only: bool = strawberry.field(description="The node refuses mutations.")
    database: ServiceHealth = strawberry.field(description="The database (SELECT 1).")
    redis: ServiceHealth = strawberry.field(description="Redis (PING).")
    datalayer: ServiceHealth = strawberry.field(description="DataLayer RPC (get_routes).")
    wallet: ServiceHealth = strawberry.field(description="Wallet RPC (get_sync_status).")
    worker: ServiceHealth = strawberry.field(description="A worker's heartbeat in Redis.")

    @classmethod
    def from_domain(cls, health: NodeHealth) -> Health:
        """Build from the probe results."""
        return cls(
            ok=health.ok,
            state=ServiceState(health.state.value),
            version=health.version,
            read_only=health.read_only,
            database=ServiceHealth.from_domain(health.database),
            redis=ServiceHealth.from_domain(health.redis),
            datalayer=ServiceHealth.from_domain(health.datalayer),
            wallet=ServiceHealth.from_domain(health.wallet),
            worker=ServiceHealth.from_domain(health.worker),
        )


@strawberry.type
class HealthQuery:
    @strawberry.field(description="Probe every part of the node.")
    async def health(self, info: Info) -> Health:
        return Health.from_domain(await resolvers.health.health(info))
