"""A governance node over GraphQL: create a body, publish values, confirm, restore, errors."""

from __future__ import annotations

import asyncio
from typing import Any

from services import governance
from services.db.models import Governance
from services.simulator import FailRule
from tests.governance.conftest import (
    CREATE,
    FAST,
    GLOSSARY,
    PICK_LIST,
    SET_GLOSSARY,
    SET_ORG_LIST,
    SET_PICK_LIST,
    SYNC,
    compact,
    eventually,
    governance_of,
    meta_value,
    store_values,
)

CREATING = "Setting up new V2 Governance Body on this node, this can take a few mins"


async def create_body(node: Any) -> dict[str, Any]:
    """createGovernanceBody, then wait for the creation to complete; Query.governance."""
    result = (await node.execute(CREATE))["createGovernanceBody"]
    assert result == {"__typename": "Done", "message": CREATING}
    return await eventually(
        lambda: governance_of(node),
        lambda g: g["creation"] is not None and g["creation"]["state"] in ("COMPLETE", "FAILED"),
    )


async def test_create_body_writes_the_version_map_and_meta_keys(governance_node: Any):
    before = await governance_of(governance_node)
    assert before["isGovernanceBody"] is False
    assert before["bodyId"] is None
    assert before["orgList"] == [] and before["pickList"] == {} and before["glossary"] == {}
    assert before["confirmed"] is True

    after = await create_body(governance_node)

    creation = after["creation"]
    assert creation["state"] == "COMPLETE", creation
    assert creation["message"] == "Governance body created"
    main, version_store = after["bodyId"], after["versionStoreId"]
    assert after["isGovernanceBody"] is True
    assert (main, version_store) == (creation["mainStoreId"], creation["versionStoreId"])
    assert main != version_store
    assert await store_values(governance_node, main) == {"v2": version_store}
    # CADT's Meta keys, the misspelled one included: the mirror job finds the stores by them.
    assert await meta_value(governance_node, "governanceBodyId") == version_store
    assert await meta_value(governance_node, "mainGoveranceBodyId") == main
    owned = set(await governance_node.services.datalayer.get_owned_stores())
    assert {main, version_store} <= owned


async def test_a_second_creation_is_refused(governance_node: Any):
    await create_body(governance_node)

    result = (await governance_node.execute(CREATE))["createGovernanceBody"]

    assert result["__typename"] == "PreconditionFailed"
    assert "already owns governance body" in result["message"]


async def test_concurrent_creations_start_exactly_one(governance_node: Any):
    results = await asyncio.gather(governance_node.execute(CREATE), governance_node.execute(CREATE))

    kinds = sorted(r["createGovernanceBody"]["__typename"] for r in results)
    assert kinds == ["Done", "PreconditionFailed"]
    done = await eventually(
        lambda: governance_of(governance_node),
        lambda g: g["creation"] is not None and g["creation"]["state"] == "COMPLETE",
    )
    assert len(set(await governance_node.services.datalayer.get_owned_stores())) == 2
    assert done["isGovernanceBody"] is True


async def test_publish_writes_unconfirmed_then_confirms(governance_node: Any, simulator: Any):
    body = await create_body(governance_node)
    version_store = body["versionStoreId"]
    org_uids = ["ab" * 32, "0X" + "CD" * 32]
    # Slow pushes so the unconfirmed state is visible to the query that follows the mutation.
    simulator.state.faults.latency["batch_update"] = 0.5

    results = [
        (await governance_node.execute(SET_ORG_LIST, {"orgUids": org_uids}))[
            "setGovernanceOrgList"
        ],
        (await governance_node.execute(SET_PICK_LIST, {"pickList": PICK_LIST}))[
            "setGovernancePickList"
        ],
        (await governance_node.execute(SET_GLOSSARY, {"glossary": GLOSSARY}))[
            "setGovernanceGlossary"
        ],
    ]

    assert [r["message"] for r in results] == [
        "Committed this new organization list to the datalayer",
        "Committed this pick list to the datalayer",
        "Committed glossary to the datalayer",
    ]
    pending = await governance_of(governance_node)
    assert pending["confirmed"] is False
    assert [entry["orgUid"] for entry in pending["orgList"]] == ["ab" * 32, "cd" * 32]
    assert pending["pickList"] == PICK_LIST
    simulator.state.faults.latency.clear()

    confirmed = await eventually(lambda: governance_of(governance_node), lambda g: g["confirmed"])
    assert confirmed["lastSyncedAt"]
    assert confirmed["glossary"] == GLOSSARY
    assert await store_values(governance_node, version_store) == {
        "orgList": compact([{"orgUid": "ab" * 32}, {"orgUid": "cd" * 32}]),
        "pickList": compact(PICK_LIST),
        "glossary": compact(GLOSSARY),
    }
    for key in governance.GOVERNANCE_KEYS:
        assert await meta_value(governance_node, governance.previous_value_key(key)) is None


async def test_republishing_replaces_the_value(governance_node: Any):
    body = await create_body(governance_node)
    await governance_node.execute(SET_PICK_LIST, {"pickList": PICK_LIST})
    await eventually(lambda: governance_of(governance_node), lambda g: g["confirmed"])
    newer = {**PICK_LIST, "countries": ["Peru"]}

    await governance_node.execute(SET_PICK_LIST, {"pickList": compact(newer)})  # string form

    await eventually(
        lambda: governance_of(governance_node),
        lambda g: g["confirmed"] and g["pickList"] == newer,
    )
    stored = await store_values(governance_node, body["versionStoreId"])
    assert stored == {"pickList": compact(newer)}


async def test_a_failed_push_restores_the_previous_value(governance_node: Any, simulator: Any):
    body = await create_body(governance_node)
    await governance_node.execute(SET_PICK_LIST, {"pickList": PICK_LIST})
    await eventually(lambda: governance_of(governance_node), lambda g: g["confirmed"])
    version_store = body["versionStoreId"]
    simulator.state.faults.fail_next.append(
        FailRule(
            method="batch_update",
            key=0,
            error=f"Singleton with launcher ID {version_store} is not owned by DL Wallet",
        )
    )

    result = await governance_node.execute(SET_PICK_LIST, {"pickList": {"registries": ["X"]}})
    assert result["setGovernancePickList"]["__typename"] == "Done"

    restored = await eventually(
        lambda: governance_of(governance_node),
        lambda g: g["confirmed"] and g["pickList"] == PICK_LIST,
    )
    assert restored["pickList"] == PICK_LIST
    assert await store_values(governance_node, version_store) == {"pickList": compact(PICK_LIST)}
    for key in governance.GOVERNANCE_KEYS:
        assert await meta_value(governance_node, governance.previous_value_key(key)) is None


async def test_a_failed_first_push_removes_the_value(governance_node: Any, simulator: Any):
    body = await create_body(governance_node)
    simulator.state.faults.fail_next.append(
        FailRule(
            method="batch_update",
            key=0,
            error=f"Singleton with launcher ID {body['versionStoreId']} is not owned by DL Wallet",
        )
    )

    await governance_node.execute(SET_GLOSSARY, {"glossary": GLOSSARY})

    restored = await eventually(
        lambda: governance_of(governance_node), lambda g: g["confirmed"] and not g["glossary"]
    )
    assert restored["glossary"] == {}


async def test_sync_on_a_governance_node_re_pushes(governance_node: Any):
    await create_body(governance_node)

    result = (await governance_node.execute(SYNC))["syncGovernance"]

    assert result["__typename"] == "Done"
    assert "owns governance body" in result["message"]


# ------------------------------------------------------------------------------ refusals


async def test_not_a_governance_node(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(0, **FAST))

    create = (await node.execute(CREATE))["createGovernanceBody"]
    publish = (await node.execute(SET_PICK_LIST, {"pickList": PICK_LIST}))["setGovernancePickList"]

    for result in (create, publish):
        assert result["__typename"] == "PreconditionFailed"
        assert result["code"] == "PRECONDITION_FAILED"
        assert result["message"] == (
            "You are not an governance body and can not use this functionality"
        )


async def test_a_configured_body_id_refuses_creation(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(0, is_governance_body=True, governance_body_id="ab" * 32))

    result = (await node.execute(CREATE))["createGovernanceBody"]

    assert result["__typename"] == "PreconditionFailed"
    assert result["message"].startswith("You are already listening to another governance body")


async def test_publishing_without_a_body(governance_node: Any):
    result = (await governance_node.execute(SET_ORG_LIST, {"orgUids": ["ab" * 32]}))[
        "setGovernanceOrgList"
    ]

    assert result["__typename"] == "PreconditionFailed"
    assert result["message"] == "There is no V2 Governance Body that you own that can be edited"


async def test_read_only_node(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(0, is_governance_body=True, read_only=True))

    for document, name in ((CREATE, "createGovernanceBody"), (SYNC, "syncGovernance")):
        result = (await node.execute(document))[name]
        assert result["__typename"] == "ReadOnly"
        assert result["code"] == "READ_ONLY"


async def test_wallet_not_synced(governance_node: Any, simulator: Any):
    simulator.state.faults.wallet_unsynced.append(0)

    result = (await governance_node.execute(CREATE))["createGovernanceBody"]

    assert result["__typename"] == "UpstreamError"
    assert result["code"] == "WALLET_NOT_SYNCED"
    assert result["service"] == "WALLET"
    assert (await governance_of(governance_node))["creation"] is None


async def test_adding_v2_to_a_v1_body(start_node: Any, node_settings: Any, own_node_settings: Any):
    v1_node = await start_node(node_settings(0, is_governance_body=True, data_model_version="v1"))
    v1 = (await v1_node.execute(CREATE))["createGovernanceBody"]
    assert (
        v1["message"] == "Setting up new V1 Governance Body on this node, this can take a few mins"
    )
    v1_body = await eventually(
        lambda: governance_of(v1_node),
        lambda g: g["creation"] is not None and g["creation"]["state"] == "COMPLETE",
    )
    main, v1_store = v1_body["bodyId"], v1_body["versionStoreId"]
    # The same node (database and key) restarted as V2: a second process on its database.
    v2_node = await start_node(
        own_node_settings(
            "v2",
            0,
            is_governance_body=True,
            database_url=v1_node.settings.database_url,
        )
    )

    result = (await v2_node.execute(CREATE))["createGovernanceBody"]
    assert result == {"__typename": "Done", "message": CREATING}
    v2_body = await eventually(
        lambda: governance_of(v2_node),
        lambda g: (
            g["creation"] is not None
            and g["creation"]["state"] == "COMPLETE"
            and g["versionStoreId"] != v1_store
        ),
    )

    assert v2_body["bodyId"] == main
    v2_store = v2_body["versionStoreId"]
    assert await store_values(v2_node, main) == {"v1": v1_store, "v2": v2_store}
    assert await meta_value(v2_node, "governanceBodyId") == v2_store
    assert await meta_value(v2_node, "mainGoveranceBodyId") == main
    again = (await v2_node.execute(CREATE))["createGovernanceBody"]
    assert again["__typename"] == "PreconditionFailed"


async def test_a_failed_creation_is_retried_with_the_stores_it_created(
    governance_node: Any, simulator: Any
):
    # One of the two parallel creations fails for good; the other store is created.
    simulator.state.faults.fail_next.append(
        FailRule(method="create_data_store", key=0, error="Some permanent error")
    )

    failed = await create_body(governance_node)

    creation = failed["creation"]
    assert creation["state"] == "FAILED"
    assert "Failed to create governance stores" in creation["error"]
    assert "Some permanent error" in creation["error"]
    assert creation["message"].startswith("Governance body creation failed: ")
    assert failed["isGovernanceBody"] is False
    survivor = creation["mainStoreId"] or creation["versionStoreId"]
    assert survivor is not None

    retried = await create_body(governance_node)

    assert retried["creation"]["state"] == "COMPLETE"
    assert survivor in (retried["bodyId"], retried["versionStoreId"])
    owned = await governance_node.services.datalayer.get_owned_stores()
    assert len(owned) == 2  # nothing was created twice


async def test_a_restore_without_a_record_uses_what_the_store_holds(
    start_node: Any, node_settings: Any
):
    # No periodic run during the test: it would re-push the unconfirmed edit.
    governance_node = await start_node(
        node_settings(0, is_governance_body=True, governance_sync_task_interval=3600)
    )
    body = await create_body(governance_node)
    await governance_node.execute(SET_PICK_LIST, {"pickList": PICK_LIST})
    await eventually(lambda: governance_of(governance_node), lambda g: g["confirmed"])
    services = governance_node.services
    edited = compact({"registries": ["Edited"]})
    async with services.db.transaction() as session:
        row = await session.get(Governance, "pickList")
        assert row is not None
        row.value, row.confirmed = edited, False

    # A failed push of an edit whose "previous value" record is gone.
    await governance._settle(
        services, body["versionStoreId"], {"pickList": edited}, confirmed=False
    )

    restored = await governance_of(governance_node)
    assert restored["pickList"] == PICK_LIST
    assert restored["confirmed"] is True
