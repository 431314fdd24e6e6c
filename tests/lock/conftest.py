"""Real servers for the lock and progress tests: uvicorn on loopback, WebSocket and SSE clients."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from cadt_gateway.app import create_app
from cadt_gateway.settings import Settings
from services.creation_state import CreationRecord, meta_key
from services.fencing import write_meta
from tests.served import serve

#: Upper bound for anything a test waits for; never a sleep, only a deadline.
DEADLINE = 10.0
API_KEY = "test-key-5f1c"
WS_PROTOCOL = "graphql-transport-ws"


@dataclass
class LiveNode:
    """A gateway app served by a real uvicorn on 127.0.0.1 (random port)."""

    app: Any
    port: int
    http: httpx.AsyncClient
    settings: Settings

    @property
    def services(self) -> Any:
        """The node's Services."""
        return self.app.state.node.services

    @property
    def ws_url(self) -> str:
        """The graphql-transport-ws endpoint."""
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def query(self, query: str, *, api_key: str | None = None) -> dict[str, Any]:
        """POST a query; fails on top-level errors."""
        headers = {"x-api-key": api_key} if api_key else {}
        response = await self.http.post("/graphql", json={"query": query}, headers=headers)
        body: dict[str, Any] = response.json()
        assert response.status_code == 200, body
        assert not body.get("errors"), body
        return body["data"]


@pytest.fixture
async def node(start_node: Any, node_settings: Any) -> Any:
    """One in-process node (HTTP via ASGI) without the in-process worker: no job runs here."""
    return await start_node(node_settings(), run_worker=False)


@pytest.fixture
async def serve_node(redis_client: Any) -> AsyncIterator[Any]:
    """Start gateway apps under uvicorn on loopback; all stop after the test."""
    async with AsyncExitStack() as stack:

        async def start(settings: Settings) -> LiveNode:
            app = create_app(settings, run_worker=False)
            port = await serve(stack, app, deadline=DEADLINE * 3)
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE)
            )
            return LiveNode(app=app, port=port, http=http, settings=settings)

        yield start


@pytest.fixture
async def live(serve_node: Any, node_settings: Any) -> LiveNode:
    """One live node without an API key."""
    node: LiveNode = await serve_node(node_settings())
    return node


class Session:
    """A graphql-transport-ws client session over one WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pings = 0

    async def send(self, message: dict[str, Any]) -> None:
        """Send one protocol message."""
        await self.ws.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message that is not a server ping (pings are answered and counted)."""
        async with asyncio.timeout(DEADLINE):
            while True:
                message: dict[str, Any] = json.loads(await self.ws.recv())
                if message["type"] == "ping":
                    self.pings += 1
                    await self.send({"type": "pong"})
                    continue
                return message

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        """connection_init, expecting the ack."""
        await self.send({"type": "connection_init", "payload": payload or {}})
        ack = await self.receive()
        assert ack["type"] == "connection_ack", ack
        return ack

    async def subscribe(self, op_id: str, query: str) -> None:
        """Start an operation."""
        await self.send({"id": op_id, "type": "subscribe", "payload": {"query": query}})

    async def next(self, op_id: str) -> dict[str, Any]:
        """The data of the next `next` message of `op_id`."""
        message = await self.receive()
        assert message.get("id") == op_id and message["type"] == "next", message
        assert not message["payload"].get("errors"), message
        data: dict[str, Any] = message["payload"]["data"]
        return data

    async def closed(self) -> tuple[int | None, str | None]:
        """Wait for the server to close; (code, reason)."""
        async with asyncio.timeout(DEADLINE):
            with contextlib.suppress(Exception):
                while True:
                    await self.ws.recv()
        await self.ws.wait_closed()
        close = self.ws.protocol.close_rcvd
        return (close.code, close.reason) if close else (None, None)


@asynccontextmanager
async def ws_session(
    url: str, *, subprotocols: tuple[str, ...] = (WS_PROTOCOL,), **kwargs: Any
) -> AsyncIterator[Session]:
    """An open WebSocket (not yet initialised)."""
    async with connect(
        url,
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        open_timeout=DEADLINE,
        close_timeout=1,
        **kwargs,
    ) as ws:
        yield Session(ws)


async def save_creation(services: Any, record: CreationRecord) -> None:
    """Persist a creation record as the creation job does."""
    async with services.db.transaction() as session:
        await write_meta(
            session, meta_key(services.settings.data_model_version.value), record.to_json()
        )


async def wait_for(condition: Any) -> Any:
    """Poll a condition (sync or async) until truthy, failing at the deadline."""
    async with asyncio.timeout(DEADLINE):
        while True:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.01)
