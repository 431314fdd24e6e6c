"""Malformed GraphQL-over-HTTP requests get JSON errors with the right status, never plain text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

QUERY = "{ __typename }"


def _json_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body: dict[str, Any] = response.json()
    assert isinstance(body["errors"][0]["message"], str) and body["errors"][0]["message"]
    assert "Traceback" not in response.text
    return body


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "JSON"),
        (b"", "JSON"),
        (b"0", "JSON object"),
        (b'"{ __typename }"', "JSON object"),
        (b'{"query": 42}', "query"),
        (b'{"query": {"obj": "ect"}}', "query"),
        (b'{"query": "{ __typename }", "variables": "x"}', "variables"),
        (b'{"query": "{ __typename }", "variables": [1]}', "variables"),
        (b'{"query": "{ __typename }", "extensions": 5}', "extensions"),
        (b'{"query": "{ __typename }", "operationName": 5}', "operationName"),
        (b'{"query": "query A { __typename }", "operationName": "B"}', "B"),
        (b'{"variables": {}}', "query"),
        (b'[{"query": "{ __typename }"}]', "Batching"),
    ],
)
async def test_malformed_post_is_400_json(node: Any, content: bytes, fragment: str) -> None:
    response = await node.http.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    body = _json_error(response, 400)
    assert fragment in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_get_mutation_is_405_json(node: Any) -> None:
    response = await node.http.get(
        "/graphql", params={"query": "mutation { upgradeHomeOrganization { __typename } }"}
    )
    body = _json_error(response, 405)
    assert response.headers["allow"] == "POST"
    assert body["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


async def test_get_query_still_works(node: Any) -> None:
    response = await node.http.get("/graphql", params={"query": QUERY})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_are_405_json(node: Any, method: str) -> None:
    response = await node.http.request(method, "/graphql", json={"query": QUERY})
    _json_error(response, 405)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ],
)
async def test_non_json_post_is_415_json(node: Any, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await node.http.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers=headers
    )
    body = _json_error(response, 415)
    assert body["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_json_content_types_are_accepted(node: Any) -> None:
    for content_type in ("application/json", "application/json; charset=utf-8"):
        response = await node.http.post(
            "/graphql",
            content=b'{"query": "{ __typename }"}',
            headers={"content-type": content_type},
        )
        assert response.status_code == 200, response.text
    response = await node.http.post(
        "/graphql", json={"query": QUERY}, headers={"accept": "application/graphql-response+json"}
    )
    assert response.status_code == 200


async def test_body_over_the_cap_is_413_by_content_length(start_node: Any, node_settings: Any):
    node = await start_node(node_settings(max_body_bytes=2048))
    padding = "x" * 4096
    response = await node.http.post("/graphql", json={"query": QUERY, "variables": {"p": padding}})
    body = _json_error(response, 413)
    assert body["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    # Under the cap it is served.
    response = await node.http.post("/graphql", json={"query": QUERY})
    assert response.status_code == 200


async def test_streamed_body_over_the_cap_is_413(start_node: Any, node_settings: Any) -> None:
    node = await start_node(node_settings(max_body_bytes=2048))
    chunks_sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        yield b'{"query": "{ __typename }", "variables": {"p": "'
        for _ in range(1000):  # 1 MB if it were all read
            chunks_sent += 1
            yield b"x" * 1024
        yield b'"}}'

    response = await node.http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    _json_error(response, 413)
    assert chunks_sent < 10  # the body was not read to its end


async def test_production_hides_graphiql_and_introspection(prod_node: Any) -> None:
    page = await prod_node.http.get("/graphql", headers={"accept": "text/html"})
    _json_error(page, 404)
    body = await prod_node.execute("{ __schema { types { name } } }", expect_errors=True)
    assert "introspection" in body["errors"][0]["message"].lower()
    assert await prod_node.execute(QUERY) == {"__typename": "Query"}


async def test_development_serves_graphiql_and_introspection(node: Any) -> None:
    page = await node.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    data = await node.execute("{ __schema { queryType { name } } }")
    assert data["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_can_be_enabled_in_production(
    start_node: Any, node_settings: Any, api_key: str
) -> None:
    node = await start_node(node_settings(env="production", api_key=api_key, introspection=True))
    data = await node.execute("{ __schema { queryType { name } } }", headers={"x-api-key": api_key})
    assert data["__schema"]["queryType"]["name"] == "Query"
