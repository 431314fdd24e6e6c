"""Fixtures of the performance features: nodes with persisted operations and the cache on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.db.models import Mirror, Organization, SyncState
from tests.lock.conftest import serve_node, ws_session

__all__ = ["DASHBOARD", "seed", "serve_node", "uid", "ws_session"]

DASHBOARD = (
    "query Dashboard($first: Int) { organizations(first: $first) { edges { node { "
    "orgUid name isHome subscribed "
    "sync { synced syncRemaining backoff { delaySeconds } } "
    "mirrors { storeId urls } } } } }"
)


def uid(number: int) -> str:
    """A store id for test organization `number`."""
    return f"{number:064x}"


async def seed(node: Any, count: int) -> list[str]:
    """`count` organizations with sync state and one mirror each."""
    uids = [uid(number + 1) for number in range(count)]
    async with node.services.db.transaction() as session:
        for number, org_uid in enumerate(uids):
            session.add(
                Organization(
                    org_uid=org_uid,
                    name=f"Registry {number:03d}",
                    registry_id=uid(1000 + number),
                    subscribed=True,
                    is_home=number == 0,
                    metadata_json=json.dumps({"meta_rank": str(number)}),
                )
            )
            session.add(SyncState(org_uid=org_uid, datalayer_generation=number))
            session.add(
                Mirror(
                    coin_id=uid(5000 + number),
                    store_id=org_uid,
                    urls_json=json.dumps(["http://mirror.test"]),
                    amount=300,
                )
            )
    return uids


@pytest.fixture
async def cache_node(start_node: Any, node_settings: Any) -> Any:
    """A node (no worker: only the test writes) with APQ and the response cache."""
    return await start_node(node_settings(), run_worker=False)
