"""Helpers for home-organization tests: GraphQL documents, fast settings, waiting for outcomes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from arq.constants import result_key_prefix
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient

from cadt_gateway.app import create_app
from services.creation_state import CreationRecord, meta_key
from services.db.models import Organization
from services.events import CREATION_CHANNEL, OPERATION_CHANNEL
from services.fencing import read_meta
from tests.conftest import GraphQLClient

T = TypeVar("T")

#: Every wait and retry shrunk: tests never sleep for CADT's wall-clock constants.
FAST: dict[str, Any] = {
    "transient_retry_wait_seconds": 0,
    "coin_shortage_budget_seconds": 0.5,
    "spendable_coins_timeout_seconds": 5,
    "transactions_confirm_timeout_seconds": 5,
    "creation_timeout_seconds": 1800,
    "store_confirmation_max_polls": 250,
    "push_max_attempts": 250,
    "pending_root_grace_seconds": 0,
    "subscribe_timeout_seconds": 5,
    "clean_up_failed_org_task_interval": 3600,
}

ERROR_FIELDS = """
  ... on Error { message code }
  ... on ValidationError { field }
  ... on UpstreamError { service }
  ... on Conflict {
    reason lockStatus: operationStatus { operation label status startedAt elapsedSeconds }
  }
"""

ACCEPTED_FIELDS = """
  ... on OperationAccepted {
    message jobId operationStatus { operation label status startedAt elapsedSeconds }
  }
"""

CREATE = f"""
mutation Create($input: CreateHomeOrganizationInput!) {{
  createHomeOrganization(input: $input) {{ __typename {ACCEPTED_FIELDS} {ERROR_FIELDS} }}
}}
"""

UPGRADE = f"""
mutation {{
  upgradeHomeOrganization {{
    __typename {ACCEPTED_FIELDS} {ERROR_FIELDS.replace("... on ValidationError { field }", "")}
  }}
}}
"""

ORGANIZATION_FIELDS = """
  orgUid name icon isHome subscribed dataModelVersion orgHash registryStoreId registryHash
  dataModelVersionStoreId fileStoreId
"""

RECLAIM = f"""
mutation Reclaim($orgUid: ID!) {{
  reclaimHomeOrganization(orgUid: $orgUid) {{
    __typename
    ... on OrganizationPayload {{ message organization {{ {ORGANIZATION_FIELDS} }} }}
    {ERROR_FIELDS}
  }}
}}
"""

CREATION_STATUS = """
query {
  creationStatus {
    inProgress state message progress retryCount maxRetries error
    stores {
      orgUid { id confirmed dataWritten }
      registry { id confirmed dataWritten }
      dataModelVersion { id confirmed dataWritten }
      fileStore { id confirmed dataWritten }
    }
    liveStatus { operation label status }
  }
}
"""

OPERATION_STATUS = "query { operationStatus { operation label status } }"

HOME_ORGANIZATION = f"query {{ homeOrganization {{ {ORGANIZATION_FIELDS} }} }}"


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 30.0, interval: float = 0.02
) -> T:
    """Poll `check` until it returns something truthy; fail the test after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s (last value {value!r})")
        await asyncio.sleep(interval)


async def lock_free(services: Any) -> bool:
    """True when no org operation holds the lock."""
    return await services.lock.status() is None


async def wait_lock_free(services: Any, *, within: float = 30.0) -> None:
    """Wait until the org-operation lock is free."""
    await eventually(lambda: lock_free(services), within=within)


async def record_of(services: Any, version: str = "v2") -> CreationRecord | None:
    """The persisted creation record, if any."""
    async with services.db.session() as session:
        raw = await read_meta(session, meta_key(version))
    return None if raw is None else CreationRecord.from_json(raw)


async def organization_rows(services: Any) -> list[Organization]:
    """Every organization row (all data models)."""
    async with services.db.session() as session:
        return list((await session.execute(sa.select(Organization))).scalars())


def owned_store_count(simulator: Any, key: int = 0) -> int:
    """Stores the simulator's key owns (created, confirmed or not)."""
    return sum(1 for store in simulator.state.stores.values() if store.owner == key)


@asynccontextmanager
async def recorded_events(services: Any) -> AsyncIterator[dict[str, list[dict[str, Any]]]]:
    """Record lock and creation-status events published while the context is open."""
    events: dict[str, list[dict[str, Any]]] = {"operation": [], "creation": []}

    async def pump(channel: str, name: str) -> None:
        async with services.events.subscribe(channel) as queue:
            ready[name].set()
            while True:
                message = await queue.get()
                if message is not None:
                    events[name].append(json.loads(json.dumps(message)))

    ready = {"operation": asyncio.Event(), "creation": asyncio.Event()}
    tasks = [
        asyncio.create_task(pump(OPERATION_CHANNEL, "operation")),
        asyncio.create_task(pump(CREATION_CHANNEL, "creation")),
    ]
    await asyncio.gather(*(event.wait() for event in ready.values()))
    try:
        yield events
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture
def fast_settings(node_settings: Any) -> Callable[..., Any]:
    """node_settings with every wait shrunk (overridable per test)."""

    def build(key: int = 0, **overrides: Any) -> Any:
        return node_settings(key, **{**FAST, **overrides})

    return build


async def recovery_ran(services: Any) -> bool:
    """The worker's start-up run of clean_up_failed_org has finished (its arq result exists)."""
    return bool(await services.redis.keys(f"{result_key_prefix}clean_up_failed_org:*"))


@pytest.fixture
def start_home_node(start_node: Any, fast_settings: Any) -> Callable[..., Awaitable[Any]]:
    """Start a node with fast settings once its start-up recovery ran.

    Tests that plant a creation record or a PENDING row do so after that run, so the recovery
    (which would resume or tidy them) never races the test.
    """

    async def start(key: int = 0, **overrides: Any) -> Any:
        node = await start_node(fast_settings(key, **overrides))
        await eventually(lambda: recovery_ran(node.services), within=30)
        return node

    return start


@pytest.fixture
async def home_node(start_home_node: Any) -> Any:
    """A V2 node on simulator key 0 with fast settings."""
    return await start_home_node()


async def create(node: Any, name: str = "Home Org", icon: str | None = None) -> dict[str, Any]:
    """Run createHomeOrganization and return its result."""
    data = await node.execute(CREATE, {"input": {"name": name, "icon": icon}})
    result: dict[str, Any] = data["createHomeOrganization"]
    return result


async def create_and_wait(node: Any, name: str = "Home Org", **kwargs: Any) -> dict[str, Any]:
    """Create the home organization and wait for the job to finish (the lock is free)."""
    result = await create(node, name, **kwargs)
    assert result["__typename"] == "OperationAccepted", result
    await wait_lock_free(node.services)
    return result


@asynccontextmanager
async def running_node(settings: Any) -> AsyncIterator[GraphQLClient]:
    """A node whose life ends with the block (stopping it cancels its worker's jobs)."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
        AsyncClient(transport=ASGITransport(app=manager.app), base_url="http://test") as http,
    ):
        yield GraphQLClient(app, http, settings)
