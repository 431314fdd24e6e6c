"""Acceptance: a governance node publishes, a subscriber node follows it, over GraphQL.

Node A (key 0) creates a governance body and publishes an org list, a pick list and a
glossary; node B (key 1) subscribes, syncs, and discovers and syncs the listed organizations
(owned by key 2); a later change A publishes reaches B. A has its own data dir, SQLite file and
Redis database; B runs on the test database (SQLite, and PostgreSQL when configured) and Redis.
"""

from __future__ import annotations

from typing import Any

from tests.governance.conftest import (
    CREATE,
    FAST,
    GLOSSARY,
    PICK_LIST,
    SET_GLOSSARY,
    SET_ORG_LIST,
    SET_PICK_LIST,
    SUBSCRIBE,
    eventually,
    governance_of,
    make_remote_org,
)

ORG_OWNER_KEY = 2


def listed_and_synced(governance: dict[str, Any], org_uids: list[str]) -> bool:
    """The orgList is `org_uids`, each imported and synced on this node."""
    entries = governance["orgList"]
    return [entry["orgUid"] for entry in entries] == org_uids and all(
        entry["organization"] is not None and entry["organization"]["sync"]["synced"]
        for entry in entries
    )


async def publish(node: Any, org_uids: list[str], pick_list: dict[str, Any]) -> None:
    """Publish an org list and a pick list, then wait until DataLayer confirmed both."""
    for document, variables, field in (
        (SET_ORG_LIST, {"orgUids": org_uids}, "setGovernanceOrgList"),
        (SET_PICK_LIST, {"pickList": pick_list}, "setGovernancePickList"),
    ):
        result = (await node.execute(document, variables))[field]
        assert result["__typename"] == "Done", result
    await eventually(
        lambda: governance_of(node),
        lambda g: (
            g["confirmed"]
            and g["pickList"] == pick_list
            and [e["orgUid"] for e in g["orgList"]] == org_uids
        ),
    )


async def test_a_subscriber_follows_a_governance_body(
    start_node: Any, node_settings: Any, own_node_settings: Any, simulator: Any
):
    node_a = await start_node(own_node_settings("node-a", 0, is_governance_body=True, **FAST))
    node_b = await start_node(node_settings(1, **FAST))
    orgs = [make_remote_org(simulator, name, owner_key=ORG_OWNER_KEY) for name in ("One", "Two")]

    # Node A: create the body, publish the three values.
    assert (await node_a.execute(CREATE))["createGovernanceBody"]["__typename"] == "Done"
    body = await eventually(lambda: governance_of(node_a), lambda g: g["isGovernanceBody"])
    await publish(node_a, orgs, PICK_LIST)
    glossary = (await node_a.execute(SET_GLOSSARY, {"glossary": GLOSSARY}))["setGovernanceGlossary"]
    assert glossary["__typename"] == "Done"
    await eventually(lambda: governance_of(node_a), lambda g: g["confirmed"] and g["glossary"])

    # Node B: subscribe; the body syncs, its organizations are discovered, imported and synced.
    subscribed = (await node_b.execute(SUBSCRIBE, {"id": body["bodyId"]}))[
        "subscribeGovernanceBody"
    ]
    assert subscribed["__typename"] == "Done", subscribed
    followed = await eventually(
        lambda: governance_of(node_b),
        lambda g: (
            g["pickList"] == PICK_LIST and g["glossary"] == GLOSSARY and listed_and_synced(g, orgs)
        ),
        within=60,
    )
    assert followed["isGovernanceBody"] is False
    assert followed["bodyId"] == body["bodyId"]
    assert followed["versionStoreId"] == body["versionStoreId"]
    assert followed["confirmed"] is True
    assert {entry["organization"]["name"] for entry in followed["orgList"]} == {"One", "Two"}
    assert all(entry["organization"]["subscribed"] for entry in followed["orgList"])

    # A later change on node A reaches node B, a newly listed organization included.
    orgs.append(make_remote_org(simulator, "Three", owner_key=ORG_OWNER_KEY))
    newer = {**PICK_LIST, "countries": ["Peru", "Fiji"]}
    await publish(node_a, orgs, newer)

    changed = await eventually(
        lambda: governance_of(node_b),
        lambda g: g["pickList"] == newer and listed_and_synced(g, orgs),
        within=60,
    )
    assert changed["orgList"][2]["organization"]["name"] == "Three"
