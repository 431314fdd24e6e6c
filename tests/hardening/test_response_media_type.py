"""application/graphql-response+json: a client that asks for it gets its status codes."""

from __future__ import annotations

from typing import Any

import pytest

from cadt_gateway.response_media_type import wants_graphql_response_json

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
ACCEPT = {"accept": f"{GRAPHQL_RESPONSE_JSON}, application/json;q=0.9"}


async def post(node: Any, body: dict[str, Any], headers: dict[str, str]) -> Any:
    return await node.http.post("/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    "body",
    [
        {"query": "{ __typename"},  # does not parse
        {"query": "{ noSuchField }"},  # does not validate
        {
            "query": "query Q($n: Int!) { organizations(first: $n) { totalCount } }",
            "variables": {"n": "many"},
        },  # variables do not coerce
    ],
)
async def test_request_errors_are_400_without_data(node: Any, body: dict[str, Any]) -> None:
    response = await post(node, body, ACCEPT)

    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    answer = response.json()
    assert "data" not in answer
    assert answer["errors"][0]["message"]

    # the same request from an application/json client keeps the legacy 200
    legacy = await post(node, body, {"accept": "application/json"})
    assert legacy.status_code == 200, legacy.text
    assert legacy.headers["content-type"].startswith("application/json")
    assert legacy.json()["errors"] == answer["errors"]


async def test_a_successful_answer_is_200_with_the_media_type(node: Any) -> None:
    response = await post(node, {"query": "{ organizations { totalCount } }"}, ACCEPT)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(GRAPHQL_RESPONSE_JSON)
    assert response.json() == {"data": {"organizations": {"totalCount": 0}}}
    assert int(response.headers["content-length"]) == len(response.content)


async def test_a_field_error_with_its_path_stays_200(node: Any) -> None:
    # a malformed orgUid argument is a field error of `organization` (it has a path)
    response = await post(node, {"query": '{ organization(orgUid: "nope") { name } }'}, ACCEPT)

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["errors"][0]["path"] == ["organization"]
    assert "data" in answer


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        (GRAPHQL_RESPONSE_JSON, True),
        (f"application/json, {GRAPHQL_RESPONSE_JSON};q=0.5", True),
        (f"{GRAPHQL_RESPONSE_JSON};q=0", False),
        ("application/json", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_which_clients_asked_for_it(accept: str, wanted: bool) -> None:
    scope = {"type": "http", "headers": [(b"accept", accept.encode())]}
    assert wants_graphql_response_json(scope) is wanted
