"""Governance test helpers: GraphQL documents, polling, bodies owned by other keys, node builders.

Nodes that play a second role in one test (a governance node next to a subscriber) get their own
data dir, their own SQLite file and their own database on the test Redis server (claimed like
the run's own database, see tests/conftest.py), so their arq queues never mix.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from services.db.models import Meta
from services.fencing import write_meta
from services.simulator import EmbeddedSimulator, create_owned_store
from services.simulator.seed import insert, upsert
from tests.conftest import TEST_REDIS_URL

T = TypeVar("T")

#: The simulator key owning bodies and organizations built directly in the chain.
OWNER_KEY = 1

GOVERNANCE = """
query {
  governance {
    isGovernanceBody bodyId versionStoreId
    orgList { orgUid organization { orgUid name subscribed sync { synced } } }
    pickList glossary confirmed lastSyncedAt syncMessage
    creation { state message mainStoreId versionStoreId error startedAt updatedAt }
  }
}
"""

RESULT = """
  __typename
  ... on Done { message }
  ... on Error { message code }
  ... on ValidationError { field }
  ... on UpstreamError { service }
"""

CREATE = f"mutation {{ createGovernanceBody {{ {RESULT} }} }}"
SYNC = f"mutation {{ syncGovernance {{ {RESULT} }} }}"
SUBSCRIBE = f"""
mutation Subscribe($id: ID!) {{ subscribeGovernanceBody(governanceBodyId: $id) {{ {RESULT} }} }}
"""
SET_ORG_LIST = f"""
mutation OrgList($orgUids: [ID!]!) {{ setGovernanceOrgList(orgUids: $orgUids) {{ {RESULT} }} }}
"""
SET_PICK_LIST = f"""
mutation PickList($pickList: JSON!) {{ setGovernancePickList(pickList: $pickList) {{ {RESULT} }} }}
"""
SET_GLOSSARY = f"""
mutation Glossary($glossary: JSON!) {{ setGovernanceGlossary(glossary: $glossary) {{ {RESULT} }} }}
"""

PICK_LIST = {"registries": ["Verra", "Gold Standard"], "unitStatus": ["Held", "Retired"]}
GLOSSARY = {"Vintage year": "The year the reduction happened.", "Retirement": "Used for good."}


def compact(value: Any) -> str:
    """CADT's JSON.stringify form."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float = 30.0,
    interval: float = 0.05,
) -> T:
    """Poll `probe` until `done(result)`; fail with the last result after `timeout`."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last: {result!r}")
        await asyncio.sleep(interval)


async def governance_of(node: Any) -> dict[str, Any]:
    """Query.governance of a node."""
    data = await node.execute(GOVERNANCE)
    result: dict[str, Any] = data["governance"]
    return result


async def store_values(node: Any, store_id: str) -> dict[str, str]:
    """A store's decoded keys and values as the node's DataLayer holds them."""
    response = await node.services.datalayer.get_keys_values(store_id)
    return {
        bytes.fromhex(item.key.removeprefix("0x")).decode(): bytes.fromhex(
            item.value.removeprefix("0x")
        ).decode()
        for item in response.keys_values
    }


async def meta_value(node: Any, key: str) -> str | None:
    """A Meta value of a node's database."""
    async with node.services.db.session() as session:
        row = await session.get(Meta, key)
    return None if row is None else row.value


async def set_meta(node: Any, key: str, value: str) -> None:
    """Write a Meta row of a node's database."""
    async with node.services.db.transaction() as session:
        await write_meta(session, key, value)


def governance_values(
    org_uids: list[str], pick_list: dict[str, Any], glossary: dict[str, Any]
) -> list[dict[str, str]]:
    """A changelist writing orgList, pickList and glossary (CADT's JSON strings)."""
    return [
        insert("orgList", compact([{"orgUid": uid} for uid in org_uids])),
        insert("pickList", compact(pick_list)),
        insert("glossary", compact(glossary)),
    ]


def make_remote_body(
    simulator: EmbeddedSimulator,
    *,
    org_uids: list[str],
    pick_list: dict[str, Any] = PICK_LIST,
    glossary: dict[str, Any] = GLOSSARY,
    version_key: str = "v2",
    owner_key: int = OWNER_KEY,
) -> tuple[str, str]:
    """A versioned governance body owned by `owner_key`: (main store, version store)."""
    state = simulator.state
    version_store = create_owned_store(
        state, owner_key, [governance_values(org_uids, pick_list, glossary)]
    )
    main = create_owned_store(state, owner_key, [[insert(version_key, version_store)]])
    return main, version_store


def owner_write(
    simulator: EmbeddedSimulator, store_id: str, values: dict[str, Any], *, key: int = OWNER_KEY
) -> None:
    """The owner key upserts text values into its store (confirms at the next block)."""
    state = simulator.state
    changes = [
        upsert(name, value if isinstance(value, str) else compact(value))
        for name, value in values.items()
    ]
    state.batch_update(state.key(key), store_id, changes, 0)


def make_remote_org(simulator: EmbeddedSimulator, name: str, *, owner_key: int = OWNER_KEY) -> str:
    """A CADT organization's four confirmed stores owned by `owner_key`; returns its orgUid."""
    state = simulator.state
    file_store = create_owned_store(state, owner_key, [])
    registry = create_owned_store(
        state, owner_key, [[insert("project|p1", {"projectName": f"{name} project"})]]
    )
    dmv = create_owned_store(state, owner_key, [[insert("v2", registry)]])
    return create_owned_store(
        state,
        owner_key,
        [
            [
                insert("registryId", dmv),
                insert("fileStoreId", file_store),
                insert("name", name),
                insert("icon", "https://example.test/icon.svg"),
            ]
        ],
    )


@pytest.fixture
async def simulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedSimulator]:
    """A fresh simulator with three keys: a governance node, a subscriber, and org owners."""
    async with EmbeddedSimulator(
        data_dir=tmp_path_factory.mktemp("sim"), block_seconds=0.05, seed="none", keys=3
    ) as sim:
        yield sim


#: Databases a run may claim on the test Redis server (tests/conftest.py uses the same range).
CLAIMABLE_REDIS_DATABASES = range(1, 12)


@pytest.fixture
async def spare_redis_url() -> AsyncIterator[str]:
    """Another, empty database on the test Redis server, claimed for this test only."""
    base = TEST_REDIS_URL.rsplit("/", 1)[0]
    own = int(TEST_REDIS_URL.rsplit("/", 1)[1] or 0)
    registry = aioredis.Redis.from_url(f"{base}/0")
    claimed: str | None = None
    try:
        for number in CLAIMABLE_REDIS_DATABASES:
            key = f"cadt-test-claim:{number}"
            if number != own and await registry.set(key, os.getpid(), nx=True, ex=3600):
                claimed = key
                break
        if claimed is None:
            pytest.fail("no free database on the test Redis server for a second node")
        url = f"{base}/{claimed.rsplit(':', 1)[1]}"
        client = aioredis.Redis.from_url(url)
        await client.flushdb()
        try:
            yield url
        finally:
            await client.flushdb()
            await client.aclose()
    finally:
        if claimed is not None:
            await registry.delete(claimed)
        await registry.aclose()


@pytest.fixture
def own_node_settings(
    make_settings: Any, simulator: EmbeddedSimulator, tmp_path: Path, spare_redis_url: str
) -> Any:
    """Settings of a second node with its own data dir, SQLite file and Redis database.

    One such node per test: every node built here shares the test's spare Redis database.
    """

    def build(name: str, key: int, **overrides: Any) -> Any:
        folder = tmp_path / name
        values: dict[str, Any] = {
            "data_dir": folder,
            "database_url": f"sqlite+aiosqlite:///{folder / 'cadt.sqlite3'}",
            "redis_url": spare_redis_url,
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


#: Intervals of test nodes: every periodic job a few times per second.
FAST = {
    "governance_sync_task_interval": 0.3,
    "default_organizations_sync_task_interval": 0.3,
    "sync_registries_task_interval": 0.2,
}


@pytest.fixture
async def governance_node(start_node: Any, node_settings: Any) -> Any:
    """A governance node on key 0 (the test database and Redis)."""
    return await start_node(node_settings(0, is_governance_body=True, **FAST))


@pytest.fixture
async def subscriber_node(start_node: Any, node_settings: Any) -> Any:
    """A subscriber node on key 0 (the test database and Redis), no body configured."""
    return await start_node(node_settings(0, **FAST))
