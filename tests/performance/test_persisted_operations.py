"""Persisted operations: APQ registration and lookup, the allow-list, the off mode, WebSockets."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from cadt_gateway import cli_operations, persisted
from cadt_gateway.persisted import operation_id, read_operations
from cadt_gateway.settings import SettingsError, load_settings
from tests.performance.conftest import DASHBOARD, seed, ws_session

HEALTH = "query Health { health { ok } }"
NAMES = "query Names { organizations(first: 5) { edges { node { name } } } }"


def apq(document: str, *, with_document: bool = False, **extra: Any) -> dict[str, Any]:
    """An APQ request body (the id, and the document when registering)."""
    body: dict[str, Any] = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": operation_id(document)}},
        **extra,
    }
    if with_document:
        body["query"] = document
    return body


def codes(response: Any) -> list[str]:
    """The error codes of a GraphQL answer."""
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


async def test_apq_misses_then_registers_then_runs_by_id(cache_node: Any):
    await seed(cache_node, 3)
    http = cache_node.http

    miss = await http.post("/graphql", json=apq(NAMES))
    registered = await http.post("/graphql", json=apq(NAMES, with_document=True))
    by_id = await http.post("/graphql", json=apq(NAMES))

    assert miss.status_code == 200
    assert codes(miss) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert miss.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert registered.status_code == 200 and "errors" not in registered.json()
    assert by_id.status_code == 200
    assert by_id.json() == registered.json()
    assert [e["node"]["name"] for e in by_id.json()["data"]["organizations"]["edges"]] == [
        "Registry 000",
        "Registry 001",
        "Registry 002",
    ]


async def test_an_operation_registered_on_one_replica_runs_by_id_on_another(
    start_node: Any, node_settings: Any
):
    first = await start_node(node_settings(), run_worker=False)
    second = await start_node(node_settings(), run_worker=False)

    await first.http.post("/graphql", json=apq(HEALTH, with_document=True))
    answer = await second.http.post("/graphql", json=apq(HEALTH))

    assert answer.status_code == 200
    assert answer.json()["data"]["health"]["ok"] in (True, False)


async def test_apq_over_get_with_variables(cache_node: Any):
    await seed(cache_node, 2)
    body = apq(DASHBOARD, with_document=True, variables={"first": 1})
    await cache_node.http.post("/graphql", json=body)

    response = await cache_node.http.get(
        "/graphql",
        params={
            "extensions": json.dumps(body["extensions"]),
            "variables": json.dumps({"first": 1}),
            "operationName": "Dashboard",
        },
    )

    assert response.status_code == 200, response.text
    edges = response.json()["data"]["organizations"]["edges"]
    assert [edge["node"]["name"] for edge in edges] == ["Registry 000"]


@pytest.mark.parametrize(
    ("extensions", "query"),
    [
        ({"persistedQuery": {"version": 2, "sha256Hash": "ab" * 32}}, None),
        ({"persistedQuery": {"version": 1, "sha256Hash": "not-hex"}}, None),
        ({"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}}, HEALTH),
    ],
    ids=["version", "malformed-hash", "hash-of-another-document"],
)
async def test_a_malformed_persisted_query_is_a_400_with_a_json_error(
    cache_node: Any, extensions: dict[str, Any], query: str | None
):
    body: dict[str, Any] = {"extensions": extensions}
    if query is not None:
        body["query"] = query

    response = await cache_node.http.post("/graphql", json=body)

    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]


async def test_off_mode_answers_not_supported_and_runs_documents(
    start_node: Any, node_settings: Any
):
    node = await start_node(node_settings(persisted_operations="off"), run_worker=False)

    refused = await node.http.post("/graphql", json=apq(HEALTH, with_document=True))
    plain = await node.execute(HEALTH)

    assert refused.status_code == 200
    assert codes(refused) == ["PERSISTED_QUERY_NOT_SUPPORTED"]
    assert "ok" in plain["health"]


def _manifest(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "operations.json"
    operations = [
        {"id": operation_id(document), "name": "op", "type": "query", "body": document}
        for document in documents
    ]
    manifest = {"format": "apollo-persisted-query-manifest", "version": 1}
    path.write_text(json.dumps({**manifest, "operations": operations}))
    return path


async def test_allowlist_runs_only_registered_operations(
    start_node: Any, node_settings: Any, tmp_path: Path
):
    settings = node_settings(
        persisted_operations="allowlist",
        persisted_operations_file=_manifest(tmp_path, HEALTH),
    )
    node = await start_node(settings, run_worker=False)
    await seed(node, 1)
    http = node.http

    by_id = await http.post("/graphql", json=apq(HEALTH))
    by_document = await http.post("/graphql", json={"query": HEALTH})
    other_document = await http.post("/graphql", json={"query": NAMES})
    other_id = await http.post("/graphql", json=apq(NAMES))
    client_registration = await http.post("/graphql", json=apq(NAMES, with_document=True))
    batch = await http.post("/graphql", json=[{"query": HEALTH}])

    assert "ok" in by_id.json()["data"]["health"]
    assert "ok" in by_document.json()["data"]["health"]
    assert codes(other_document) == ["OPERATION_NOT_IN_ALLOWLIST"]
    assert codes(other_id) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    assert codes(client_registration) == ["OPERATION_NOT_IN_ALLOWLIST"]
    assert batch.status_code == 400
    # A client cannot register through APQ in allowlist mode.
    assert codes(await http.post("/graphql", json=apq(NAMES))) == ["PERSISTED_QUERY_NOT_IN_LIST"]


async def test_the_admin_command_registers_for_running_gateways(
    start_node: Any,
    node_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    settings = node_settings(persisted_operations="allowlist")
    node = await start_node(settings, run_worker=False)
    await seed(node, 2)
    refused = await node.http.post("/graphql", json={"query": NAMES})
    document = tmp_path / "names.graphql"
    document.write_text(NAMES)
    monkeypatch.setenv("CADT_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("CADT_DATA_DIR", str(tmp_path / "cli"))

    # The command runs its own event loop (as from a shell): run it outside this test's loop.
    status = await asyncio.to_thread(
        cli_operations.cmd_register, argparse.Namespace(files=[document])
    )
    listed = await asyncio.to_thread(cli_operations.cmd_list, None)
    allowed = await node.http.post("/graphql", json=apq(NAMES))

    assert codes(refused) == ["OPERATION_NOT_IN_ALLOWLIST"]
    assert (status, listed) == (0, 0)
    assert operation_id(NAMES) in capsys.readouterr().out
    assert len(allowed.json()["data"]["organizations"]["edges"]) == 2


def test_operation_files_are_manifests_maps_or_documents(tmp_path: Path):
    manifest = _manifest(tmp_path, HEALTH, NAMES)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({operation_id(HEALTH): HEALTH}))
    single = tmp_path / "one.graphql"
    single.write_text(NAMES)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"ab" * 32: HEALTH}))

    assert read_operations(manifest) == {operation_id(HEALTH): HEALTH, operation_id(NAMES): NAMES}
    assert read_operations(mapping) == {operation_id(HEALTH): HEALTH}
    assert read_operations(single) == {operation_id(NAMES): NAMES}
    with pytest.raises(ValueError, match="not the sha256"):
        read_operations(wrong)


async def test_a_bad_operations_file_stops_the_start_with_its_name(
    start_node: Any, node_settings: Any, tmp_path: Path
):
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")

    with pytest.raises(ValueError, match="CADT_PERSISTED_OPERATIONS_FILE"):
        await start_node(node_settings(persisted_operations_file=broken), run_worker=False)


async def test_websocket_operations_follow_the_same_rules(
    serve_node: Any, node_settings: Any, tmp_path: Path
):
    settings = node_settings(
        persisted_operations="allowlist",
        persisted_operations_file=_manifest(tmp_path, HEALTH),
    )
    live = await serve_node(settings)

    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.send({"id": "1", "type": "subscribe", "payload": apq(HEALTH)})
        by_id = await session.next("1")
        assert (await session.receive())["type"] == "complete"
        await session.send({"id": "2", "type": "subscribe", "payload": {"query": NAMES}})
        refused = await session.receive()

    assert "ok" in by_id["health"]
    assert refused["id"] == "2" and refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "OPERATION_NOT_IN_ALLOWLIST"


def test_a_missing_operations_file_is_a_one_line_settings_error(tmp_path: Path):
    with pytest.raises(SettingsError, match="CADT_PERSISTED_OPERATIONS_FILE: no such file"):
        load_settings(_env_file=None, persisted_operations_file=tmp_path / "missing.json")


async def test_an_id_while_redis_is_down_is_redis_unavailable(cache_node: Any):
    layer = cache_node.app.state.node.query_layer
    layer.registry = persisted.OperationRegistry(Redis.from_url("redis://127.0.0.1:1/0"))

    answer = await cache_node.http.post("/graphql", json=apq(NAMES))

    assert answer.status_code == 200
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "REDIS_UNAVAILABLE"
    assert error["extensions"]["errorId"]
    assert "Connect" not in error["message"]
