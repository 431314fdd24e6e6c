"""Mirrors through a whole node over HTTP: Query.mirrors, addMirror and removeMirror."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.simulator import create_owned_store
from services.simulator.seed import insert
from tests.conftest import GraphQLClient

OWNER_KEY = 1
URL = "https://files.example.org/dl"
RESULT = """
  __typename
  ... on MirrorPayload { message mirror { coinId storeId urls amount ours } }
  ... on Done { message }
  ... on Error { message code }
  ... on ValidationError { field }
  ... on UpstreamError { service }
"""
ADD = f"mutation ($s: ID!, $u: String!) {{ addMirror(storeId: $s, url: $u) {{ {RESULT} }} }}"
REMOVE = f"mutation ($s: ID!, $c: ID!) {{ removeMirror(storeId: $s, coinId: $c) {{ {RESULT} }} }}"
MIRRORS = (
    "query ($s: ID!, $r: Boolean!) "
    "{ mirrors(storeId: $s, refresh: $r) { coinId storeId urls amount ours } }"
)


async def start(
    start_node: Any, node_settings: Any, simulator: Any, **settings: Any
) -> GraphQLClient:
    simulator.state.key(0).dl_wallet = True  # the node has used DataLayer before
    client: GraphQLClient = await start_node(node_settings(**settings))
    return client


def remote_store(simulator: Any) -> str:
    """A store of key 1 the node subscribes to (Chia lists mirrors of tracked stores only)."""
    store = create_owned_store(
        simulator.state,
        OWNER_KEY,
        [[insert("unit|a", {"a": 1})]],
        mirror_urls=["http://127.0.0.1:8575"],
    )
    simulator.state.subscribe(simulator.state.key(0), store, [])
    return store


async def until_listed(node: GraphQLClient, store: str, predicate: Any) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        listed = (await node.execute(MIRRORS, {"s": store, "r": True}))["mirrors"]
        if predicate(listed):
            return listed
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.05)


async def test_add_list_and_remove_a_mirror(simulator: Any, start_node: Any, node_settings: Any):
    node = await start(start_node, node_settings, simulator)
    store = remote_store(simulator)

    # the table is empty at first: the query reads DataLayer once (the owner's mirror)
    first = (await node.execute(MIRRORS, {"s": store, "r": False}))["mirrors"]
    assert [(m["urls"], m["ours"]) for m in first] == [(["http://127.0.0.1:8575"], False)]
    assert first[0]["amount"] == "300"

    added = (await node.execute(ADD, {"s": "0x" + store.upper(), "u": URL + "/"}))["addMirror"]
    assert added["__typename"] == "MirrorPayload", added
    assert store in added["message"] and URL in added["message"]

    listed = await until_listed(node, store, lambda ms: any(m["ours"] for m in ms))
    ours = next(m for m in listed if m["ours"])
    assert ours["urls"] == [URL] and ours["storeId"] == store

    again = (await node.execute(ADD, {"s": store, "u": URL}))["addMirror"]
    assert again["__typename"] == "MirrorPayload"
    assert "already mirrored" in again["message"]
    assert again["mirror"]["coinId"] == ours["coinId"]

    missing = (await node.execute(REMOVE, {"s": store, "c": "ab" * 32}))["removeMirror"]
    assert (missing["__typename"], missing["code"]) == ("NotFound", "NOT_FOUND")
    theirs = next(m for m in listed if not m["ours"])
    refused = (await node.execute(REMOVE, {"s": store, "c": theirs["coinId"]}))["removeMirror"]
    assert refused["__typename"] == "PreconditionFailed"

    removed = (await node.execute(REMOVE, {"s": store, "c": ours["coinId"]}))["removeMirror"]
    assert removed["__typename"] == "MirrorPayload", removed
    assert removed["mirror"]["coinId"] == ours["coinId"]
    await until_listed(node, store, lambda ms: not any(m["ours"] for m in ms))


async def test_invalid_arguments_are_validation_errors(
    simulator: Any, start_node: Any, node_settings: Any
):
    node = await start(start_node, node_settings, simulator)
    store = remote_store(simulator)
    for url in ("ftp://files.example.org", "https://user:pw@files.example.org", "not a url"):
        result = (await node.execute(ADD, {"s": store, "u": url}))["addMirror"]
        assert (result["__typename"], result["field"]) == ("ValidationError", "url"), result
    result = (await node.execute(ADD, {"s": "xyz", "u": URL}))["addMirror"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "storeId")
    result = (await node.execute(REMOVE, {"s": store, "c": "nope"}))["removeMirror"]
    assert (result["__typename"], result["field"]) == ("ValidationError", "coinId")
    body = await node.execute(MIRRORS, {"s": "xyz", "r": False}, expect_errors=True)
    assert body["errors"][0]["extensions"] == {"code": "VALIDATION", "field": "storeId"}


async def test_a_read_only_node_refuses_mirror_mutations(
    simulator: Any, start_node: Any, node_settings: Any
):
    node = await start(start_node, node_settings, simulator, read_only=True)
    store = remote_store(simulator)
    for document, variables in (
        (ADD, {"s": store, "u": URL}),
        (REMOVE, {"s": store, "c": "ab" * 32}),
    ):
        result = next(iter((await node.execute(document, variables)).values()))
        assert (result["__typename"], result["code"]) == ("ReadOnly", "READ_ONLY")


async def test_no_funds_is_an_upstream_insufficient_funds_error(
    simulator: Any, start_node: Any, node_settings: Any
):
    node = await start(start_node, node_settings, simulator)
    store = remote_store(simulator)
    simulator.state.faults.spendable_coins[0] = 0
    result = (await node.execute(ADD, {"s": store, "u": URL}))["addMirror"]
    assert (result["__typename"], result["code"], result["service"]) == (
        "UpstreamError",
        "INSUFFICIENT_FUNDS",
        "WALLET",
    )


async def test_the_mirror_job_announces_subscribed_stores(
    simulator: Any, start_node: Any, node_settings: Any
):
    # the periodic job (auto mirror on, URL set) mirrors a subscribed organization's stores
    registry = create_owned_store(simulator.state, OWNER_KEY, [[insert("unit|a", {})]])
    dmv = create_owned_store(simulator.state, OWNER_KEY, [[insert("v2", registry)]])
    org = create_owned_store(
        simulator.state, OWNER_KEY, [[insert("name", "Mirrored"), insert("registryId", dmv)]]
    )
    node = await start(
        start_node,
        node_settings,
        simulator,
        datalayer_file_server_url=URL,
        mirror_check_task_interval=0.3,
    )
    imported = await node.execute(
        "mutation ($o: ID!) { importOrganization(orgUid: $o) { __typename } }", {"o": org}
    )
    assert imported["importOrganization"]["__typename"] in ("OrganizationPayload", "Done")
    for store in (org, dmv, registry):
        await until_listed(
            node, store, lambda ms: any(m["ours"] and m["urls"] == [URL] for m in ms)
        )
    # Organization.mirrors (DataLoader over the table) once the import has written the row
    query = "query ($o: ID!) { organization(orgUid: $o) { mirrors { storeId ours urls } } }"
    deadline = time.monotonic() + 20
    while True:
        found = (await node.execute(query, {"o": org}))["organization"]
        if found and {m["storeId"] for m in found["mirrors"] if m["ours"]} >= {org, dmv, registry}:
            break
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)
