"""The WebSocket transport: API key, close codes, limits, keep-alive, origins, subprotocols."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.lock.conftest import API_KEY, DEADLINE, ws_session

PROGRESS = "subscription { operationProgress { kind status } }"


@pytest.fixture
async def keyed(serve_node, node_settings):
    """A live node that requires the API key."""
    return await serve_node(node_settings(api_key=API_KEY))


async def test_connection_init_with_the_api_key_is_acknowledged(keyed):
    async with ws_session(keyed.ws_url) as session:
        await session.init({"apiKey": API_KEY})
        await session.subscribe("1", "subscription { creationStatus { inProgress } }")
        assert (await session.next("1")) == {"creationStatus": {"inProgress": False}}


@pytest.mark.parametrize("payload", [{}, {"apiKey": "wrong"}, {"apiKey": 12}, {"api_key": API_KEY}])
async def test_connection_init_without_the_right_key_is_closed_4403(keyed, payload, caplog):
    async with ws_session(keyed.ws_url) as session:
        await session.send({"type": "connection_init", "payload": payload})
        assert await session.closed() == (4403, "Forbidden")
    assert API_KEY not in caplog.text and "wrong" not in caplog.text


async def test_subscribe_before_the_ack_is_closed_4401(keyed):
    async with ws_session(keyed.ws_url) as session:
        await session.subscribe("1", PROGRESS)
        assert await session.closed() == (4401, "Unauthorized")


async def test_no_connection_init_in_time_is_closed_4408(serve_node, node_settings):
    live = await serve_node(node_settings(ws_connection_init_timeout_seconds=0.1))
    async with ws_session(live.ws_url) as session:
        assert await session.closed() == (4408, "Connection initialisation timeout")


async def test_duplicate_operation_id_is_closed_4409(live):
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("same", PROGRESS)
        await session.subscribe("same", PROGRESS)
        assert await session.closed() == (4409, "Subscriber for same already exists")


async def test_second_connection_init_is_closed_4429(live):
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.send({"type": "connection_init", "payload": {}})
        assert await session.closed() == (4429, "Too many initialisation requests")


async def test_unknown_message_is_closed_4400(live):
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.send({"type": "start", "id": "1"})
        assert await session.closed() == (4400, "Unknown message type: start")


async def test_subscriptions_per_connection_are_limited(serve_node, node_settings):
    live = await serve_node(node_settings(ws_max_subscriptions_per_connection=2))
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("1", PROGRESS)
        await session.subscribe("2", PROGRESS)
        await session.subscribe("3", PROGRESS)
        refused = await session.receive()
        assert refused["type"] == "error" and refused["id"] == "3"
        assert refused["payload"][0]["message"] == "Subscription limit reached"
        # Stopping one frees a slot.
        await session.send({"id": "1", "type": "complete"})
        await session.subscribe("4", "subscription { creationStatus { inProgress } }")
        assert (await session.next("4")) == {"creationStatus": {"inProgress": False}}


async def test_server_sends_keep_alive_pings(serve_node, node_settings):
    live = await serve_node(node_settings(ws_keep_alive_seconds=0.02))
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("1", PROGRESS)
        token = await live.services.lock.try_acquire("V2 organization creation")
        kinds = []
        async with asyncio.timeout(DEADLINE):
            while kinds.count("ping") < 2:
                kinds.append(json.loads(await session.ws.recv())["type"])
        assert "next" in kinds or (await session.receive())["type"] == "next"
        await live.services.lock.release(token)


async def test_only_graphql_transport_ws_is_spoken(live):
    # The legacy graphql-ws subprotocol is not negotiated; the socket is closed with 4406.
    async with ws_session(live.ws_url, subprotocols=("graphql-ws",)) as session:
        assert session.ws.subprotocol is None
        assert await session.closed() == (4406, "Subprotocol not acceptable")


async def test_cross_origin_upgrades_need_the_allow_list(serve_node, node_settings):
    live = await serve_node(node_settings(allowed_origins="https://dashboard.example"))
    with pytest.raises(InvalidStatus) as refused:
        async with ws_session(live.ws_url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with ws_session(live.ws_url, origin="https://dashboard.example") as session:
        await session.init()
    # Non-browser clients (no Origin) and same-origin pages are always allowed.
    async with ws_session(live.ws_url) as session:
        await session.init()
    async with ws_session(live.ws_url, origin=f"http://127.0.0.1:{live.port}") as session:
        await session.init()


async def test_cross_origin_upgrades_are_refused_by_default(live):
    with pytest.raises(InvalidStatus):
        async with ws_session(live.ws_url, origin="https://dashboard.example"):
            pass
