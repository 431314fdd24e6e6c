"""Depth, token, alias, repetition and cost limits refuse an operation before it is validated
or run; list arguments of mutations are capped; connections cap `first` at 100."""

from __future__ import annotations

import time
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import parse, validate

import schema as graphql_schema
from cadt_gateway.limits import MAX_REPEATED_FIELDS, QueryLimits, limit_error, measure_operation
from services.views import MAX_PAGE_SIZE
from tests.lock.conftest import ws_session

ORG_PAGE = (
    "organizations(first: 100) { edges { node { orgUid name "
    "sync { synced backoff { reason } } mirrors { coinId urls } } } }"
)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts graphql-core validations run by strawberry (the refused ones must not be)."""
    calls: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counting)
    return calls


def _code(body: dict[str, Any]) -> str:
    assert body.get("data") is None, body
    return str(body["errors"][0]["extensions"]["code"])


async def test_hundred_deep_query_is_refused_before_validation(node: Any, validations: list[int]):
    deep = "{ health " + "{ database " * 98 + "{ state }" + " }" * 98 + " }"
    body = await node.execute(deep, expect_errors=True)
    assert _code(body) == "MAX_DEPTH_EXCEEDED"
    assert len(body["errors"]) == 1  # not the validation errors of the unknown fields
    assert validations == []


async def test_two_thousand_aliases_are_refused_by_the_token_limit(node: Any, validations):
    query = "{" + " ".join(f"a{i}: health {{ ok }}" for i in range(2000)) + "}"
    started = time.perf_counter()
    body = await node.execute(query, expect_errors=True)
    elapsed = time.perf_counter() - started
    assert "tokens" in body["errors"][0]["message"]
    assert validations == []
    print(f"2000 aliases refused by tokens in {elapsed * 1000:.1f} ms")


async def test_two_thousand_aliases_are_refused_before_validation(
    start_node: Any, node_settings: Any, validations: list[int]
) -> None:
    node = await start_node(node_settings(max_query_tokens=100_000))
    query = "{" + " ".join(f"a{i}: health {{ ok }}" for i in range(2000)) + "}"
    started = time.perf_counter()
    body = await node.execute(query, expect_errors=True)
    elapsed = time.perf_counter() - started
    assert _code(body) == "MAX_ALIASES_EXCEEDED"
    assert validations == []
    print(f"2000 aliases refused by the alias limit in {elapsed * 1000:.1f} ms")


async def test_repeated_field_is_refused_before_the_quadratic_validation(
    start_node: Any, node_settings: Any, validations: list[int]
) -> None:
    node = await start_node(node_settings(max_query_tokens=100_000))
    query = "{" + " ".join("health { ok }" for _ in range(400)) + "}"
    body = await node.execute(query, expect_errors=True)
    assert _code(body) == "MAX_REPEATED_FIELDS_EXCEEDED"
    assert validations == []
    # A few repeats, as fragments on union members produce, are fine.
    fine = "{" + " ".join("health { ok }" for _ in range(MAX_REPEATED_FIELDS)) + "}"
    assert (await node.execute(fine))["health"]["ok"] in (True, False)


async def test_cost_counts_pages_and_aliases(node: Any, validations: list[int]) -> None:
    one_page = await node.execute("{ " + ORG_PAGE + " }")
    assert one_page["organizations"]["edges"] == []
    ten_pages = "{ " + " ".join(f"p{i}: {ORG_PAGE}" for i in range(10)) + " }"
    body = await node.execute(ten_pages, expect_errors=True)
    assert _code(body) == "MAX_COST_EXCEEDED"
    assert body["errors"][0]["extensions"]["limit"] == 10000


async def test_cost_reads_first_from_variables(start_node: Any, node_settings: Any) -> None:
    node = await start_node(node_settings(max_query_cost=500))
    query = (
        "query($n: Int) { organizations(first: $n) "
        "{ edges { node { orgUid mirrors { coinId } } } } }"
    )
    small = await node.execute(query, {"n": 5})
    assert small["organizations"]["edges"] == []
    body = await node.execute(query, {"n": 100}, expect_errors=True)
    assert _code(body) == "MAX_COST_EXCEEDED"


async def test_limits_and_syntax_errors_reach_websocket_clients(
    serve_node: Any, node_settings: Any
) -> None:
    """Over graphql-transport-ws a refused operation is an `error` message; the socket lives."""
    live = await serve_node(node_settings())
    deep = "subscription { operationProgress " + "{ kind " * 30 + "}" * 30 + " }"
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("1", deep)
        message = await session.receive()
        assert message["type"] == "error", message
        assert message["payload"][0]["extensions"]["code"] == "MAX_DEPTH_EXCEEDED"
        await session.send({"type": "ping"})
        assert (await session.receive())["type"] == "pong"
        # A syntax error closes with 4400 (the protocol's rule), not an internal error.
        await session.subscribe("2", "subscription { operationProgress { kind ")
        code, reason = await session.closed()
        assert code == 4400 and reason is not None and "Syntax Error" in reason


def test_measures_follow_fragments_once() -> None:
    schema = graphql_schema.build_schema()._schema
    document = parse(
        "query { organizations { edges { node { ...F } } } a: health { ok } }"
        " fragment F on Organization { x: orgUid y: orgUid mirrors { ...G } }"
        " fragment G on Mirror { coinId }"
    )
    measures = measure_operation(schema, document)
    assert measures is not None
    assert measures.aliases == 3
    assert measures.depth == 5
    # organizations: 1 + default page 50 x (edge 1 + node 1 + mirrors 10 x 1) ; health 1
    assert measures.cost == 1 + 50 * (1 + 1 + 10) + 1


def test_cyclic_and_unknown_fragments_are_left_to_validation() -> None:
    schema = graphql_schema.build_schema()._schema
    document = parse(
        "{ health { ...A ...Missing } } fragment A on Health { ...B } fragment B on Health { ...A }"
    )
    measures = measure_operation(schema, document)
    assert measures is not None and measures.depth == 1


def test_alias_refusal_costs_far_less_than_validation() -> None:
    """The measurement behind the limits (printed, never asserted: timing is bench/'s
    business): both documents are refused by the cheap pass before validation runs."""
    schema = graphql_schema.build_schema()._schema
    limits = QueryLimits(
        max_depth=15, max_tokens=2000, max_aliases=30, max_cost=10000, introspection=True
    )
    document = parse("{" + " ".join(f"a{i}: health {{ ok }}" for i in range(2000)) + "}")
    started = time.perf_counter()
    measures = measure_operation(schema, document, depth_cap=15, alias_cap=30)
    refusal = time.perf_counter() - started
    assert measures is not None and limit_error(measures, limits) is not None
    repeated = parse("{" + " ".join("health { ok }" for _ in range(200)) + "}")
    started = time.perf_counter()
    measures = measure_operation(schema, repeated, depth_cap=15, alias_cap=30)
    repeat_refusal = time.perf_counter() - started
    assert measures is not None and limit_error(measures, limits) is not None
    started = time.perf_counter()
    validate(schema, repeated)
    validation = time.perf_counter() - started
    print(
        f"refusal of 2000 aliases {refusal * 1000:.2f} ms, of 200 repeated fields "
        f"{repeat_refusal * 1000:.2f} ms; validating the 200 repeated fields "
        f"{validation * 1000:.1f} ms"
    )


async def test_list_arguments_are_capped_with_a_validation_error(
    start_node: Any, node_settings: Any
) -> None:
    node = await start_node(node_settings(max_list_input=3))
    entries = [{"key": f"k{i}", "value": "v"} for i in range(4)]
    data = await node.execute(
        "mutation($e: [MetadataEntryInput!]!) { setOrganizationMetadata(entries: $e) {"
        " __typename ... on ValidationError { code field message } } }",
        {"e": entries},
    )
    result = data["setOrganizationMetadata"]
    assert result["__typename"] == "ValidationError"
    assert result["field"] == "entries"
    assert "at most 3" in result["message"]


async def test_connections_cap_first_at_the_page_size(node: Any) -> None:
    assert MAX_PAGE_SIZE == 100
    data = await node.execute("{ organizations(first: 1000) { edges { cursor } } }")
    assert data["organizations"]["edges"] == []
    body = await node.execute(
        "{ organizations(first: -1) { edges { cursor } } }", expect_errors=True
    )
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION"


async def test_governance_org_list_is_capped(start_node: Any, node_settings: Any) -> None:
    node = await start_node(node_settings(max_list_input=2))
    data = await node.execute(
        "mutation($uids: [ID!]!) { setGovernanceOrgList(orgUids: $uids) {"
        " __typename ... on ValidationError { field message } } }",
        {"uids": ["a" * 64, "b" * 64, "c" * 64]},
    )
    result = data["setGovernanceOrgList"]
    assert result == {
        "__typename": "ValidationError",
        "field": "orgUids",
        "message": "at most 2 items per list (got 3 in orgUids)",
    }
