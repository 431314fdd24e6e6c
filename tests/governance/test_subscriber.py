"""A subscriber node over GraphQL: subscribe, sync versioned and legacy bodies, wait, refuse."""

from __future__ import annotations

from typing import Any

from services.simulator import StuckRule, create_owned_store
from services.simulator.seed import insert
from tests.governance.conftest import (
    FAST,
    GLOSSARY,
    PICK_LIST,
    SUBSCRIBE,
    SYNC,
    compact,
    eventually,
    governance_of,
    governance_values,
    make_remote_body,
    meta_value,
    owner_write,
    set_meta,
)


async def test_subscribe_syncs_a_versioned_body(subscriber_node: Any, simulator: Any):
    org_uids = ["ab" * 32, "cd" * 32]
    main, version_store = make_remote_body(simulator, org_uids=org_uids)

    result = (await subscriber_node.execute(SUBSCRIBE, {"id": "0x" + main.upper()}))[
        "subscribeGovernanceBody"
    ]

    assert result["__typename"] == "Done", result
    assert main in result["message"]
    assert await meta_value(subscriber_node, "governanceBodyId") == main
    synced = await eventually(
        lambda: governance_of(subscriber_node), lambda g: g["pickList"] == PICK_LIST
    )
    assert synced["isGovernanceBody"] is False
    assert synced["bodyId"] == main
    assert synced["versionStoreId"] == version_store
    assert [entry["orgUid"] for entry in synced["orgList"]] == org_uids
    assert all(entry["organization"] is None for entry in synced["orgList"])  # not imported
    assert synced["glossary"] == GLOSSARY
    assert synced["confirmed"] is True
    assert synced["lastSyncedAt"]
    assert synced["syncMessage"].startswith(f"synced governance body {main}")
    subscribed = set(await subscriber_node.services.datalayer.subscriptions())
    assert {main, version_store} <= subscribed


async def test_a_legacy_body_holds_its_values_in_the_main_store(
    start_node: Any, node_settings: Any, simulator: Any
):
    main = create_owned_store(
        simulator.state, 1, [governance_values(["ab" * 32], PICK_LIST, GLOSSARY)]
    )
    node = await start_node(node_settings(0, governance_body_id=main, **FAST))

    synced = await eventually(lambda: governance_of(node), lambda g: g["glossary"] == GLOSSARY)

    assert synced["bodyId"] == main
    assert synced["versionStoreId"] is None
    assert [entry["orgUid"] for entry in synced["orgList"]] == ["ab" * 32]
    assert synced["pickList"] == PICK_LIST


async def test_a_body_without_this_nodes_version_only_warns(
    start_node: Any, node_settings: Any, simulator: Any
):
    main, _ = make_remote_body(simulator, org_uids=[], version_key="v1")
    node = await start_node(node_settings(0, governance_body_id=main, **FAST))

    waiting = await eventually(
        lambda: governance_of(node), lambda g: "version store" in (g["syncMessage"] or "")
    )

    assert "has no v2 version store (it has v1)" in waiting["syncMessage"]
    assert waiting["pickList"] == {} and waiting["orgList"] == []


async def test_changes_arrive_and_cached_values_stay_while_datalayer_is_behind(
    start_node: Any, node_settings: Any, simulator: Any
):
    main, version_store = make_remote_body(simulator, org_uids=["ab" * 32])
    node = await start_node(node_settings(0, governance_body_id=main, **FAST))
    await eventually(lambda: governance_of(node), lambda g: g["pickList"] == PICK_LIST)
    # Key 0 stays at the current generation: the next owner write is on chain, not local.
    generation = simulator.state.stores[version_store].data.latest
    stuck = StuckRule(store_id=version_store, generation=generation, key=0)
    simulator.state.faults.stuck.append(stuck)
    newer = {**PICK_LIST, "countries": ["Fiji"]}

    owner_write(simulator, version_store, {"pickList": newer})

    waiting = await eventually(
        lambda: governance_of(node), lambda g: "waiting for DataLayer" in (g["syncMessage"] or "")
    )
    assert waiting["pickList"] == PICK_LIST  # the cached value is kept
    assert waiting["confirmed"] is True
    simulator.state.faults.stuck.remove(stuck)
    await eventually(lambda: governance_of(node), lambda g: g["pickList"] == newer)


async def test_sync_governance_enqueues_a_run(start_node: Any, node_settings: Any, simulator: Any):
    main, version_store = make_remote_body(simulator, org_uids=[])
    # A long interval: only the start-up run and the triggered one happen in this test.
    node = await start_node(
        node_settings(0, governance_body_id=main, governance_sync_task_interval=3600)
    )
    await eventually(lambda: governance_of(node), lambda g: g["pickList"] == PICK_LIST)
    owner_write(simulator, version_store, {"glossary": {"Term": "Meaning"}})
    await downloaded(node, simulator, version_store)

    result = (await node.execute(SYNC))["syncGovernance"]

    assert result == {"__typename": "Done", "message": "Syncing V2 Governance Body"}
    await eventually(lambda: governance_of(node), lambda g: g["glossary"] == {"Term": "Meaning"})


async def downloaded(node: Any, simulator: Any, store_id: str) -> None:
    """Wait until the node's DataLayer holds the owner's pending write of `store_id`."""

    async def generation() -> int:
        status = await node.services.datalayer.get_sync_status(store_id)
        return int(status.generation)

    store = simulator.state.stores[store_id]
    target = store.data.latest + (1 if store.pending is not None else 0)
    await eventually(generation, lambda g: g >= target)


# ------------------------------------------------------------------------------ refusals


async def test_subscribe_validates_the_id(subscriber_node: Any):
    malformed = (await subscriber_node.execute(SUBSCRIBE, {"id": "not-a-store"}))[
        "subscribeGovernanceBody"
    ]
    unknown = (await subscriber_node.execute(SUBSCRIBE, {"id": "ef" * 32}))[
        "subscribeGovernanceBody"
    ]

    for result in (malformed, unknown):
        assert result["__typename"] == "ValidationError", result
        assert result["field"] == "governanceBodyId"
    assert "does not exist" in unknown["message"] or "exists" in unknown["message"]
    assert await meta_value(subscriber_node, "governanceBodyId") is None


async def test_subscribe_refuses_another_body(start_node: Any, node_settings: Any, simulator: Any):
    configured, _ = make_remote_body(simulator, org_uids=[])
    other, _ = make_remote_body(simulator, org_uids=[])
    node = await start_node(node_settings(0, governance_body_id=configured, **FAST))

    refused = (await node.execute(SUBSCRIBE, {"id": other}))["subscribeGovernanceBody"]
    same = (await node.execute(SUBSCRIBE, {"id": configured}))["subscribeGovernanceBody"]

    assert refused["__typename"] == "PreconditionFailed"
    assert refused["message"].startswith("You are already listening to another governance body")
    assert same["__typename"] == "Done"


async def test_subscribe_refuses_a_second_recorded_body(subscriber_node: Any, simulator: Any):
    first, _ = make_remote_body(simulator, org_uids=[])
    second, _ = make_remote_body(simulator, org_uids=[])
    await subscriber_node.execute(SUBSCRIBE, {"id": first})

    result = (await subscriber_node.execute(SUBSCRIBE, {"id": second}))["subscribeGovernanceBody"]

    assert result["__typename"] == "PreconditionFailed"
    assert first in result["message"]


async def test_a_governance_node_does_not_subscribe(subscriber_node: Any, simulator: Any):
    main, _ = make_remote_body(simulator, org_uids=[])
    await set_meta(subscriber_node, "governanceBodyId", "ab" * 32)
    await set_meta(subscriber_node, "mainGoveranceBodyId", "cd" * 32)

    result = (await subscriber_node.execute(SUBSCRIBE, {"id": main}))["subscribeGovernanceBody"]

    assert result["__typename"] == "PreconditionFailed"
    assert "owns governance body" in result["message"]


async def test_sync_without_a_body(subscriber_node: Any):
    result = (await subscriber_node.execute(SYNC))["syncGovernance"]

    assert result["__typename"] == "PreconditionFailed"
    assert "no governance body to sync" in result["message"]


async def test_subscribe_on_a_read_only_node(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(0, read_only=True))

    result = (await node.execute(SUBSCRIBE, {"id": "ab" * 32}))["subscribeGovernanceBody"]

    assert result["__typename"] == "ReadOnly"


async def test_subscribe_with_an_unsynced_wallet(subscriber_node: Any, simulator: Any):
    main, _ = make_remote_body(simulator, org_uids=[])
    simulator.state.faults.wallet_unsynced.append(0)

    result = (await subscriber_node.execute(SUBSCRIBE, {"id": main}))["subscribeGovernanceBody"]

    assert result["__typename"] == "UpstreamError"
    assert result["code"] == "WALLET_NOT_SYNCED"


async def test_an_invalid_value_on_datalayer_keeps_the_cached_one(
    start_node: Any, node_settings: Any, simulator: Any
):
    version_store = create_owned_store(
        simulator.state,
        1,
        [[insert("pickList", compact(PICK_LIST)), insert("glossary", "{not json")]],
    )
    main = create_owned_store(simulator.state, 1, [[insert("v2", version_store)]])
    node = await start_node(node_settings(0, governance_body_id=main, **FAST))

    synced = await eventually(lambda: governance_of(node), lambda g: g["pickList"] == PICK_LIST)

    assert synced["glossary"] == {}
    assert synced["orgList"] == []
