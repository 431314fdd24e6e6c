"""Helpers for organization tests: remote organizations on the simulator, GraphQL documents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from services.simulator import create_owned_store
from services.simulator.seed import insert

T = TypeVar("T")

#: The simulator key that owns the remote organizations (the node under test is key 0).
OWNER_KEY = 1

ORGANIZATION_FIELDS = """
  orgUid name icon isHome subscribed dataModelVersion orgHash registryStoreId registryHash
  dataModelVersionStoreId fileStoreId metadata
"""

RESULT_FIELDS = f"""
  __typename
  ... on OrganizationPayload {{ message organization {{ {ORGANIZATION_FIELDS} }} }}
  ... on Done {{ message }}
  ... on Error {{ message code }}
  ... on ValidationError {{ field }}
  ... on UpstreamError {{ service }}
"""

IMPORT = f"""
mutation Import($orgUid: ID!, $isHome: Boolean) {{
  importOrganization(orgUid: $orgUid, isHome: $isHome) {{
    {RESULT_FIELDS}
    ... on Conflict {{ reason }}
  }}
}}
"""


def org_mutation(name: str) -> str:
    """A mutation document `name(orgUid:)` selecting every result member."""
    return f"""
mutation Op($orgUid: ID!) {{
  {name}(orgUid: $orgUid) {{ {RESULT_FIELDS} }}
}}
"""


SUBSCRIBE = org_mutation("subscribeOrganization")
UNSUBSCRIBE = org_mutation("unsubscribeOrganization")
RESYNC = org_mutation("resyncOrganization")
DELETE = org_mutation("deleteOrganization")

EDIT = f"""
mutation Edit($input: EditHomeOrganizationInput!) {{
  editHomeOrganization(input: $input) {{ {RESULT_FIELDS} }}
}}
"""

SET_METADATA = f"""
mutation Meta($entries: [MetadataEntryInput!]!) {{
  setOrganizationMetadata(entries: $entries) {{ {RESULT_FIELDS} }}
}}
"""

ORGANIZATION = f"""
query One($orgUid: ID!) {{ organization(orgUid: $orgUid) {{ {ORGANIZATION_FIELDS} }} }}
"""


@dataclass(frozen=True)
class RemoteOrg:
    """The four stores of an organization owned by another key."""

    org_uid: str
    data_model_version_store_id: str
    registry_store_id: str
    file_store_id: str
    name: str

    @property
    def store_ids(self) -> list[str]:
        """All four store ids."""
        return [
            self.org_uid,
            self.data_model_version_store_id,
            self.registry_store_id,
            self.file_store_id,
        ]


def make_remote_org(
    simulator: Any,
    name: str = "Remote Registry",
    *,
    owner_key: int = OWNER_KEY,
    version_key: str = "v2",
    metadata: dict[str, str] | None = None,
    registry_generations: int = 2,
) -> RemoteOrg:
    """Write a CADT organization's four confirmed stores, owned by `owner_key`."""
    state = simulator.state
    file_store = create_owned_store(state, owner_key, [])
    registry = create_owned_store(
        state,
        owner_key,
        [
            [insert(f"project|p{number}", {"projectName": f"P{number}"})]
            for number in range(registry_generations)
        ],
    )
    dmv = create_owned_store(state, owner_key, [[insert(version_key, registry)]])
    org_changes = [
        insert("registryId", dmv),
        insert("fileStoreId", file_store),
        insert("name", name),
        insert("icon", "https://example.test/icon.svg"),
    ]
    org_changes += [insert(f"meta_{key}", value) for key, value in (metadata or {}).items()]
    org_uid = create_owned_store(state, owner_key, [org_changes])
    return RemoteOrg(org_uid, dmv, registry, file_store, name)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float = 20.0,
    interval: float = 0.02,
) -> T:
    """Poll `probe` until `done(result)`; fail with the last result after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last: {result!r}")
        await asyncio.sleep(interval)


async def synced_locally(node: Any, store_ids: list[str]) -> None:
    """Subscribe the node's DataLayer to the stores and wait until it holds them all."""
    datalayer = node.services.datalayer
    for store_id in store_ids:
        await datalayer.subscribe(store_id)

    async def all_synced() -> bool:
        for store_id in store_ids:
            try:
                status = await datalayer.get_sync_status(store_id)
            except Exception:
                return False
            if status.generation < status.target_generation:
                return False
        return True

    await eventually(all_synced, bool)


@pytest.fixture
async def org_node(start_node: Any, node_settings: Any) -> Any:
    """A gateway node on simulator key 0 with short unsubscribe waits."""
    return await start_node(node_settings(unsubscribe_wait_seconds=0.01))
