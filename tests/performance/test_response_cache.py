"""The response cache: hits skip the database, writes are visible to the next read, opt-in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from graphql import parse
from prometheus_client import REGISTRY
from sqlalchemy import event

from cadt_gateway.persisted import _cache_key, operation_id
from cadt_gateway.response_cache import CACHEABLE_FIELDS, only_cacheable_fields
from schema import build_schema
from services.db.models import Organization, SyncState
from tests.performance.conftest import DASHBOARD, seed

HIT = "x-cadt-cache"


@contextmanager
def counting_queries(node: Any) -> Iterator[list[str]]:
    """Every SQL statement the node's engine runs inside the block."""
    statements: list[str] = []
    engine = node.services.db.engine.sync_engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def post(node: Any, query: str, variables: dict[str, Any] | None = None) -> Any:
    """POST a query; the raw response."""
    body = {"query": query, "variables": variables or {}}
    response = await node.http.post("/graphql", json=body)
    assert response.status_code == 200, response.text
    return response


def names(response: Any) -> list[str]:
    """Organization names of a dashboard answer."""
    edges = response.json()["data"]["organizations"]["edges"]
    return [edge["node"]["name"] for edge in edges]


async def test_a_repeated_query_is_answered_from_the_cache_without_the_database(cache_node: Any):
    await seed(cache_node, 5)
    first = await post(cache_node, DASHBOARD, {"first": 5})
    hits = REGISTRY.get_sample_value("cadt_response_cache_lookups_total", {"result": "hit"})

    with counting_queries(cache_node) as statements:
        second = await post(cache_node, DASHBOARD, {"first": 5})

    assert HIT not in first.headers
    assert second.headers[HIT] == "hit"
    assert second.content == first.content
    assert statements == []
    after = REGISTRY.get_sample_value("cadt_response_cache_lookups_total", {"result": "hit"})
    assert after == (hits or 0) + 1


async def test_variables_and_operations_are_separate_entries(cache_node: Any):
    await seed(cache_node, 5)
    await post(cache_node, DASHBOARD, {"first": 2})

    other_variables = await post(cache_node, DASHBOARD, {"first": 3})
    again = await post(cache_node, DASHBOARD, {"first": 2})

    assert HIT not in other_variables.headers
    assert len(names(other_variables)) == 3
    assert again.headers[HIT] == "hit" and len(names(again)) == 2


async def test_a_write_in_this_process_is_visible_to_the_next_read(cache_node: Any):
    uids = await seed(cache_node, 3)
    await post(cache_node, DASHBOARD, {"first": 3})
    assert (await post(cache_node, DASHBOARD, {"first": 3})).headers[HIT] == "hit"

    async with cache_node.services.db.transaction() as session:
        await session.execute(
            sa.update(Organization).where(Organization.org_uid == uids[1]).values(name="Renamed")
        )
    after = await post(cache_node, DASHBOARD, {"first": 3})

    assert HIT not in after.headers
    assert names(after) == ["Registry 000", "Renamed", "Registry 002"]


async def test_a_mutation_is_visible_to_the_next_read(cache_node: Any):
    uids = await seed(cache_node, 3)
    await post(cache_node, DASHBOARD, {"first": 3})
    assert (await post(cache_node, DASHBOARD, {"first": 3})).headers[HIT] == "hit"

    deleted = await cache_node.execute(
        "mutation($orgUid: ID!) { deleteOrganization(orgUid: $orgUid) { __typename } }",
        {"orgUid": uids[2]},
    )
    after = await post(cache_node, DASHBOARD, {"first": 3})

    assert deleted["deleteOrganization"]["__typename"] in ("Done", "OrganizationPayload")
    assert names(after) == ["Registry 000", "Registry 001"]


async def test_a_write_on_another_replica_reaches_this_one(start_node: Any, node_settings: Any):
    reader = await start_node(node_settings(), run_worker=False)
    writer = await start_node(node_settings(), run_worker=False)
    uids = await seed(writer, 2)
    counter = reader.app.state.node.query_layer.data_version
    writer_version = writer.app.state.node.query_layer.data_version
    # the seed's version reaches the reader first: arriving after the next answer was cached,
    # it would (rightly) drop it, and the hit below would be a miss
    await writer_version.flush()
    assert writer_version.highest is not None
    await counter.wait_until(writer_version.highest)
    await post(reader, DASHBOARD, {"first": 2})
    assert (await post(reader, DASHBOARD, {"first": 2})).headers[HIT] == "hit"

    async with writer.services.db.transaction() as session:
        await session.execute(
            sa.update(SyncState).where(SyncState.org_uid == uids[0]).values(datalayer_generation=9)
        )
        await session.execute(
            sa.update(Organization).where(Organization.org_uid == uids[0]).values(name="Moved")
        )
    await writer_version.flush()  # what the writer's HTTP layer does before answering
    published = writer_version.highest
    assert published is not None
    await counter.wait_until(published)  # the published version arrived (no wall-clock wait)
    after = await post(reader, DASHBOARD, {"first": 2})

    assert HIT not in after.headers
    assert names(after) == ["Moved", "Registry 001"]


@pytest.mark.parametrize(
    "query",
    [
        "{ health { ok } }",
        "{ organizations(first: 2) { edges { node { name balance } } } }",
        "{ organizations(first: 2) { edges { node { name xchAddress } } } }",
        "{ creationStatus { inProgress } }",
        "{ operationStatus { label } }",
    ],
    ids=["health", "balance", "xchAddress", "creationStatus", "operationStatus"],
)
async def test_per_request_fields_are_never_cached(cache_node: Any, query: str):
    await seed(cache_node, 2)
    await cache_node.http.post("/graphql", json={"query": query})

    again = await cache_node.http.post("/graphql", json={"query": query})

    assert HIT not in again.headers


async def test_answers_with_errors_are_not_cached(cache_node: Any):
    query = 'query { organization(orgUid: "nope") { name } }'
    await cache_node.http.post("/graphql", json={"query": query})

    again = await cache_node.http.post("/graphql", json={"query": query})

    assert again.json()["errors"][0]["extensions"]["code"] == "VALIDATION"
    assert HIT not in again.headers


def _front(node: Any) -> Any:
    """The GraphQLFront serving POST /graphql."""
    from starlette.routing import Route

    from cadt_gateway.persisted import GraphQLFront

    (route,) = [r for r in node.app.routes if isinstance(r, Route) and r.path == "/graphql"]
    assert isinstance(route.app, GraphQLFront)
    return route.app


async def test_concurrent_misses_of_one_query_are_computed_once(cache_node: Any):
    await seed(cache_node, 5)
    front = _front(cache_node)
    view, computed, release = front.app, [], asyncio.Event()

    async def slow_view(scope: Any, receive: Any, send: Any) -> None:
        computed.append(scope["path"])
        await release.wait()  # held until every follower has arrived
        await view(scope, receive, send)

    front.app = slow_view
    requests = [
        asyncio.create_task(
            cache_node.http.post("/graphql", json={"query": DASHBOARD, "variables": {"first": 5}})
        )
        for _ in range(5)
    ]
    deadline = asyncio.get_running_loop().time() + 10
    while len(front._in_flight) != 1 or len(computed) != 1:
        assert asyncio.get_running_loop().time() < deadline, (computed, front._in_flight)
        await asyncio.sleep(0.01)
    for _ in range(20):  # let the four followers reach the in-flight computation
        await asyncio.sleep(0)
    release.set()
    responses = await asyncio.gather(*requests)

    assert len(computed) == 1
    assert {response.status_code for response in responses} == {200}
    assert len({response.content for response in responses}) == 1
    assert sorted(r.headers.get(HIT, "") for r in responses) == ["", *["coalesced"] * 4]
    assert front._in_flight == {}


async def test_a_miss_after_a_write_is_not_served_the_older_computation(cache_node: Any):
    await seed(cache_node, 2)
    front = _front(cache_node)
    view, release = front.app, asyncio.Event()
    calls = 0

    async def first_call_held(scope: Any, receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await release.wait()
        await view(scope, receive, send)

    front.app = first_call_held
    body = {"query": DASHBOARD, "variables": {"first": 5}}
    first = asyncio.create_task(cache_node.http.post("/graphql", json=body))
    deadline = asyncio.get_running_loop().time() + 10
    while calls != 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    async with cache_node.services.db.transaction() as session:  # a write: the version moves
        session.add(Organization(org_uid="f" * 64, name="Written Meanwhile", subscribed=True))
    second = await cache_node.http.post("/graphql", json=body)  # not coalesced: computed
    release.set()
    await first

    assert calls == 2
    assert HIT not in second.headers
    assert len(names(second)) == 3


@pytest.mark.parametrize("extensions", ["string", 1, ["list"], True])
async def test_a_malformed_extensions_is_refused_even_when_the_query_is_cached(
    cache_node: Any, extensions: Any
):
    await post(cache_node, DASHBOARD, {"first": 5})  # the query's answer is now cached

    body = {"query": DASHBOARD, "variables": {"first": 5}, "extensions": extensions}
    response = await cache_node.http.post("/graphql", json=body)

    assert response.status_code == 400, response.text
    assert HIT not in response.headers
    assert response.json()["errors"][0]["message"]


async def test_the_cache_can_be_switched_off(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(response_cache=False), run_worker=False)
    await seed(node, 2)
    await post(node, DASHBOARD, {"first": 2})

    again = await post(node, DASHBOARD, {"first": 2})

    assert HIT not in again.headers


def test_the_allow_list_names_fields_of_the_schema_and_no_per_request_one():
    schema = build_schema()._schema
    coordinates = {
        f"{name}.{field}"
        for name, type_ in schema.type_map.items()
        for field in getattr(type_, "fields", {})
    }

    assert sorted(CACHEABLE_FIELDS - coordinates) == []
    for per_request in (
        "Query.health",
        "Query.creationStatus",
        "Query.operationStatus",
        "Query.syncStatus",
        "Query.mirrors",
        "Query.governance",
        "Organization.balance",
        "Organization.xchAddress",
    ):
        assert per_request not in CACHEABLE_FIELDS


def test_only_queries_of_cacheable_fields_qualify():
    schema = build_schema()._schema

    def decide(document: str, name: str | None = None) -> bool:
        return only_cacheable_fields(schema, parse(document), name)

    assert decide(DASHBOARD)
    assert decide("query A { organizations { totalCount } } mutation B { __typename }", "A")
    assert decide("fragment F on Organization { name } query { homeOrganization { ...F } }")
    assert not decide("fragment F on Organization { balance } query { homeOrganization { ...F } }")
    assert not decide("mutation { __typename }")
    assert not decide("{ organizations { edges { node { name } } } health { ok } }")
    assert not decide("{ organizations @defer { totalCount } }")


def test_cache_keys_separate_api_keys_operations_and_variables():
    operation = operation_id(DASHBOARD)
    base = _cache_key(None, operation, "Dashboard", {"first": 2})

    assert base == _cache_key(None, operation, "Dashboard", json.loads('{"first": 2}'))
    assert base != _cache_key("key-a", operation, "Dashboard", {"first": 2})
    assert _cache_key("key-a", operation, None, None) != _cache_key("key-b", operation, None, None)
    assert base != _cache_key(None, operation, "Dashboard", {"first": 3})
    assert base != _cache_key(None, operation_id("{ x }"), "Dashboard", {"first": 2})
