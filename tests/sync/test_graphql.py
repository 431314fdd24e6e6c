"""Sync through a whole node over HTTP: import, the worker's sync jobs, the queries and stream.

The node runs its in-process worker against the embedded simulator (real HTTPS, blocks every
0.05 s); the sync fan-out runs every 0.2 s. Organizations are owned by simulator key 1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeVar

from resolvers.context import Context
from schema import build_schema
from services.simulator import StuckRule, create_owned_store
from services.simulator.seed import delete, insert, upsert
from tests.conftest import GraphQLClient

T = TypeVar("T")
OWNER_KEY = 1
DEADLINE_SECONDS = 20.0

IMPORT = """
mutation Import($orgUid: ID!) {
  importOrganization(orgUid: $orgUid) { __typename ... on Error { message code } }
}
"""

SYNC = """
query Sync($orgUid: ID!) {
  organization(orgUid: $orgUid) {
    orgUid registryHash
    sync {
      orgUid synced syncRemaining lastProcessedGeneration rootHistoryLength
      datalayerGeneration datalayerTargetGeneration lastSyncedAt writesBlocked
      backoff { since delaySeconds nextRetryAt reason }
    }
  }
}
"""

SYNC_STATUS = """
{ syncStatus { synced syncRemaining homeOrganizationSynced walletSynced homeWritesBlocked
               organizations { orgUid sync { synced lastProcessedGeneration } } } }
"""

AUDIT = """
query Audit($orgUid: ID!, $first: Int, $after: String) {
  auditLog(orgUid: $orgUid, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { orgUid registryId generation rootHash type table change author
                          comment onchainConfirmedAt } }
  }
}
"""

RECORDS = """
query Records($orgUid: ID!, $table: String, $first: Int, $after: String) {
  registryRecords(orgUid: $orgUid, table: $table, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { orgUid table key record generation } }
  }
}
"""


def commit(*changes: dict[str, str], comment: str) -> list[dict[str, str]]:
    return [
        *changes,
        upsert("author", {"author": "tester"}),
        upsert("comment", {"comment": comment}),
    ]


def remote_org(sim: Any, name: str, generations: list[list[dict[str, str]]]) -> tuple[str, str]:
    """An organization with its four stores owned by key 1; (orgUid, registry id)."""
    state = sim.state
    registry = create_owned_store(state, OWNER_KEY, generations)
    dmv = create_owned_store(state, OWNER_KEY, [[insert("v2", registry)]])
    files = create_owned_store(state, OWNER_KEY, [])
    org = create_owned_store(
        state,
        OWNER_KEY,
        [[insert("name", name), insert("registryId", dmv), insert("fileStoreId", files)]],
    )
    return org, registry


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `check` until it returns something truthy (deadline: DEADLINE_SECONDS)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


async def start(start_node: Any, node_settings: Any, **settings: Any) -> GraphQLClient:
    values = {"sync_registries_task_interval": 0.2}
    values.update(settings)
    client: GraphQLClient = await start_node(node_settings(**values))
    return client


async def import_org(node: GraphQLClient, org_uid: str) -> None:
    result = (await node.execute(IMPORT, {"orgUid": org_uid}))["importOrganization"]
    assert result["__typename"] in ("OrganizationPayload", "Done"), result


async def sync_of(node: GraphQLClient, org_uid: str) -> dict[str, Any] | None:
    org = (await node.execute(SYNC, {"orgUid": org_uid}))["organization"]
    return None if org is None else org["sync"]


async def test_an_imported_organization_is_synced_and_queryable(
    simulator: Any, start_node: Any, node_settings: Any
):
    # given a remote organization with three commits
    org_uid, registry = remote_org(
        simulator,
        "Remote Registry",
        [
            commit(
                insert("project|p1", {"id": "p1"}),
                insert("project|p2", {"id": "p2"}),
                comment="one",
            ),
            commit(
                upsert("project|p1", {"id": "p1", "rev": 2}),
                insert("unit|u1", {"id": "u1"}),
                comment="two",
            ),
            commit(delete("project|p2"), comment="three"),
        ],
    )
    node = await start(start_node, node_settings)

    # when it is imported, the worker's sync jobs apply every generation
    await import_org(node, org_uid)

    async def synced() -> dict[str, Any] | None:
        sync = await sync_of(node, org_uid)
        return sync if sync and sync["synced"] and sync["lastProcessedGeneration"] == 3 else None

    sync = await eventually(synced, "the organization to sync")
    assert sync["syncRemaining"] == 0
    assert sync["rootHistoryLength"] == 4
    assert (sync["datalayerGeneration"], sync["datalayerTargetGeneration"]) == (3, 3)
    assert sync["backoff"] is None and sync["writesBlocked"] is None
    assert sync["lastSyncedAt"].endswith("Z")

    status = (await node.execute(SYNC_STATUS))["syncStatus"]
    assert status["synced"] is True and status["syncRemaining"] == 0
    assert status["walletSynced"] is True
    assert status["homeOrganizationSynced"] is None and status["homeWritesBlocked"] is None
    assert [o["orgUid"] for o in status["organizations"]] == [org_uid]

    # the audit log, newest first, in pages of 2 with opaque cursors
    entries: list[dict[str, Any]] = []
    after = None
    while True:
        page = (await node.execute(AUDIT, {"orgUid": org_uid, "first": 2, "after": after}))[
            "auditLog"
        ]
        assert page["totalCount"] == 6
        entries += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert [(e["generation"], e["type"], e["table"]) for e in entries] == [
        (3, "DELETE", "project"),
        (2, "UPDATE", "project"),
        (2, "INSERT", "unit"),
        (1, "INSERT", "project"),
        (1, "INSERT", "project"),
        (0, "CREATE REGISTRY", None),
    ]
    assert entries[1]["change"] == {"id": "p1", "rev": 2}
    assert entries[1]["comment"] == "two" and entries[1]["author"] == "tester"
    assert {e["registryId"] for e in entries} == {registry}

    # the registry records, one table, one per page
    records = (await node.execute(RECORDS, {"orgUid": org_uid, "table": "project", "first": 1}))[
        "registryRecords"
    ]
    assert records["totalCount"] == 1
    assert records["edges"][0]["node"] == {
        "orgUid": org_uid,
        "table": "project",
        "key": "p1",
        "record": {"id": "p1", "rev": 2},
        "generation": 2,
    }
    assert records["pageInfo"] == {"hasNextPage": False, "endCursor": records["edges"][0]["cursor"]}
    everything = (await node.execute(RECORDS, {"orgUid": org_uid, "first": 500}))["registryRecords"]
    assert [(e["node"]["table"], e["node"]["key"]) for e in everything["edges"]] == [
        ("project", "p1"),
        ("unit", "u1"),
    ]

    # a later commit of the owner is picked up by the next runs
    simulator.state.stores[registry].data.commit(
        simulator.state.stores[registry].data.plan(
            commit(insert("unit|u2", {"id": "u2"}), comment="four")
        ),
        timestamp=int(time.time()),
        height=simulator.state.height,
    )

    async def four() -> bool:
        sync = await sync_of(node, org_uid)
        return bool(sync and sync["lastProcessedGeneration"] == 4 and sync["synced"])

    await eventually(four, "generation 4")


async def test_bad_arguments_are_validation_errors(
    simulator: Any, start_node: Any, node_settings: Any
):
    node = await start(start_node, node_settings)
    body = await node.execute(AUDIT, {"orgUid": "nope"}, expect_errors=True)
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"
    body = await node.execute(AUDIT, {"orgUid": "a" * 64, "after": "garbage"}, expect_errors=True)
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "after"}
    body = await node.execute(RECORDS, {"orgUid": "a" * 64, "first": -1}, expect_errors=True)
    assert body["errors"][0]["extensions"]["field"] == "first"
    empty = (await node.execute(RECORDS, {"orgUid": "a" * 64}))["registryRecords"]
    assert empty == {
        "totalCount": 0,
        "pageInfo": {"hasNextPage": False, "endCursor": None},
        "edges": [],
    }


async def test_stuck_sync_shows_a_backoff_until_released(
    simulator: Any, start_node: Any, node_settings: Any
):
    # given a remote registry whose download this node's DataLayer cannot finish (stuck at 1)
    org_uid, registry = remote_org(
        simulator,
        "Stuck Registry",
        [commit(insert(f"unit|u{g}", {"g": g}), comment=str(g)) for g in range(1, 4)],
    )
    simulator.state.faults.stuck.append(StuckRule(store_id=registry, generation=1, key=0))
    node = await start(start_node, node_settings, sync_stuck_reset_seconds=3600)
    await import_org(node, org_uid)

    # then the backoff is visible in GraphQL with its reason
    async def backing_off() -> dict[str, Any] | None:
        sync = await sync_of(node, org_uid)
        return sync if sync and sync["backoff"] else None

    sync = await eventually(backing_off, "the backoff")
    assert sync["backoff"]["reason"] == "generation 1 of 3 downloaded (root history 4)"
    assert sync["backoff"]["delaySeconds"] == 30
    assert sync["synced"] is False and sync["syncRemaining"] >= 2, sync
    status = (await node.execute(SYNC_STATUS))["syncStatus"]
    assert status["synced"] is False

    # when the fault is released, the next run catches up and clears it
    simulator.state.faults.stuck.clear()

    async def caught_up() -> dict[str, Any] | None:
        sync = await sync_of(node, org_uid)
        return sync if sync and sync["synced"] and sync["backoff"] is None else None

    sync = await eventually(caught_up, "the catch-up")
    assert sync["lastProcessedGeneration"] == 3
    assert (await node.execute(SYNC_STATUS))["syncStatus"]["synced"] is True


async def test_sync_progress_subscription_snapshot_then_changes(
    simulator: Any, start_node: Any, node_settings: Any
):
    org_uid, registry = remote_org(
        simulator, "Streamed", [commit(insert("unit|a", {"a": 1}), comment="a")]
    )
    node = await start(start_node, node_settings)
    await import_org(node, org_uid)
    await eventually(lambda: sync_of(node, org_uid), "the organization row")

    schema = build_schema()
    document = (
        "subscription ($orgUid: ID) { syncProgress(orgUid: $orgUid) "
        "{ orgUid synced lastProcessedGeneration backoff { reason } } }"
    )
    context = Context(services=node.services)
    stream = await schema.subscribe(
        document, variable_values={"orgUid": org_uid}, context_value=context
    )
    async with aclosing(stream) as results:  # type: ignore[type-var]
        first = await asyncio.wait_for(anext(results), DEADLINE_SECONDS)  # type: ignore[arg-type]
        assert not first.errors, first.errors
        assert first.data["syncProgress"]["orgUid"] == org_uid

        store = simulator.state.stores[registry]
        store.data.commit(
            store.data.plan(commit(insert("unit|b", {"b": 2}), comment="b")),
            timestamp=int(time.time()),
            height=simulator.state.height,
        )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            assert time.monotonic() < deadline, "no progress event with generation 2"
            result = await asyncio.wait_for(anext(results), DEADLINE_SECONDS)  # type: ignore[arg-type]
            assert not result.errors, result.errors
            value = result.data["syncProgress"]
            assert value["orgUid"] == org_uid
            if value["lastProcessedGeneration"] == 2 and value["synced"]:
                break
