"""The API key on HTTP, CORS, and the graphql-sse stream at /graphql/stream."""

from __future__ import annotations

import json
import logging

import pytest

from tests.lock.conftest import API_KEY, wait_for

QUERY = {"query": "{ operationStatus { label } }"}


@pytest.fixture
async def keyed(start_node, node_settings):
    """An in-process node requiring the API key."""
    return await start_node(node_settings(api_key=API_KEY), run_worker=False)


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"x-api-key": ""}])
async def test_missing_or_wrong_key_is_401_json(keyed, headers, caplog):
    caplog.set_level(logging.DEBUG)
    response = await keyed.http.post("/graphql", json=QUERY, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    assert "x-api-key" in body["errors"][0]["message"]
    assert API_KEY not in response.text and API_KEY not in caplog.text
    # GET queries and the SSE stream are guarded the same way.
    get = await keyed.http.get("/graphql", params=QUERY, headers=headers)
    assert get.status_code == 401
    stream = await keyed.http.post(
        "/graphql/stream", json=QUERY, headers={**headers, "accept": "text/event-stream"}
    )
    assert stream.status_code == 401


async def test_right_key_is_served(keyed):
    response = await keyed.http.post("/graphql", json=QUERY, headers={"x-api-key": API_KEY})
    assert response.status_code == 200
    assert response.json() == {"data": {"operationStatus": None}}


async def test_probes_and_the_ide_page_stay_open(keyed):
    assert (await keyed.http.get("/healthz")).status_code == 200
    assert (await keyed.http.get("/readyz")).status_code in (200, 503)
    page = await keyed.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()


async def test_no_key_configured_means_open(node):
    response = await node.http.post("/graphql", json=QUERY)
    assert response.status_code == 200


async def test_cors_allows_only_listed_origins(start_node, node_settings):
    node = await start_node(
        node_settings(api_key=API_KEY, allowed_origins="https://dashboard.example"),
        run_worker=False,
    )
    preflight = await node.http.options(
        "/graphql",
        headers={
            "origin": "https://dashboard.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-api-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dashboard.example"
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    refused = await node.http.post(
        "/graphql", json=QUERY, headers={"origin": "https://dashboard.example"}
    )
    assert refused.status_code == 401  # CORS headers on a 401 let the page read why
    assert refused.headers["access-control-allow-origin"] == "https://dashboard.example"
    other = await node.http.options(
        "/graphql",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def _events(text: str) -> list[tuple[str, dict | None]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) if ": " in line else (line[:-1], "") for line in lines)
        data = fields.get("data") or None
        events.append((fields["event"], json.loads(data) if data else None))
    return events


async def test_sse_query_is_one_next_and_a_complete(keyed):
    response = await keyed.http.post(
        "/graphql/stream",
        json=QUERY,
        headers={"x-api-key": API_KEY, "accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert _events(response.text) == [
        ("next", {"data": {"operationStatus": None}}),
        ("complete", None),
    ]


async def test_sse_needs_the_event_stream_accept_header(keyed):
    response = await keyed.http.post("/graphql/stream", json=QUERY, headers={"x-api-key": API_KEY})
    assert response.status_code == 406
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


async def test_sse_subscription_streams_the_snapshot_then_changes(serve_node, node_settings):
    live = await serve_node(node_settings(api_key=API_KEY))
    lock = live.services.lock
    token = await lock.try_acquire("V2 organization creation")
    body = {"query": "subscription { operationProgress { kind status } }"}
    headers = {"x-api-key": API_KEY, "accept": "text/event-stream"}
    async with live.http.stream("POST", "/graphql/stream", json=body, headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = []
        buffer = ""
        async for chunk in stream.aiter_text():
            buffer += chunk
            events = _events(buffer)
            if len(events) == 1 and buffer.endswith("\r\n\r\n"):
                await lock.update_status(token, "Creating stores on blockchain")
            if len(events) >= 2:
                break
    assert events[:2] == [
        ("next", {"data": {"operationProgress": {"kind": "STARTED", "status": "Starting..."}}}),
        (
            "next",
            {
                "data": {
                    "operationProgress": {
                        "kind": "PROGRESS",
                        "status": "Creating stores on blockchain",
                    }
                }
            },
        ),
    ]
    await lock.release(token)
    # The client went away: the server dropped its hub subscription.
    await wait_for(lambda: live.services.events.subscriber_count == 0)
