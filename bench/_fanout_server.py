"""Servers of the subscription_fanout benchmark, each run in its own process.

`python -m bench._fanout_server gateway`: the real gateway app (create_app) under uvicorn as
`cadt-gateway serve` runs it (websockets-sansio, uvloop when installed), no in-process worker.

`python -m bench._fanout_server raw`: the baseline, a raw Starlette WebSocket endpoint. One Redis
pub/sub listener decodes each lock event once, builds the same graphql-transport-ws `next`
message the gateway sends, encodes it once, and hands it to one queue per connection; a task per
connection sends it. The minimal design of a broadcaster in the same stack.

Both print `port <n>` once they serve, then run until SIGTERM. Settings come from the
environment (CADT_REDIS_URL, CADT_DATA_DIR, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from services.events import OPERATION_CHANNEL, wire_channel


def _iso(ms: int) -> str:
    value = datetime.fromtimestamp(ms / 1000, UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _next_message(event: dict[str, Any]) -> str:
    """The `next` message the gateway sends for this lock event (same fields, same shape)."""
    holder = event["holder"]
    started_ms, at_ms = int(holder["started_ms"]), int(event["at_ms"])
    data = {
        "operationProgress": {
            "kind": event["kind"],
            "operation": "CREATE_HOME_ORGANIZATION",
            "label": holder["label"],
            "status": holder["status"],
            "startedAt": _iso(started_ms),
            "elapsedSeconds": max(0, round((at_ms - started_ms) / 1000)),
            "at": _iso(at_ms),
            "error": event.get("error") or None,
            "orgUid": holder.get("org_uid") or None,
        }
    }
    return json.dumps({"id": "1", "type": "next", "payload": {"data": data}}, separators=(",", ":"))


def raw_app(redis_url: str) -> Starlette:
    """The raw broadcaster."""
    queues: set[asyncio.Queue[str]] = set()

    async def listen() -> None:
        redis = Redis.from_url(redis_url)
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        # The channel as the lock publishes it (named per Redis database, services/events.py).
        await pubsub.subscribe(wire_channel(redis, OPERATION_CHANNEL))
        async for message in pubsub.listen():
            if message.get("type") != "message":
                continue
            text = _next_message(json.loads(message["data"]))
            for queue in queues:
                queue.put_nowait(text)

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="graphql-transport-ws")
        queue: asyncio.Queue[str] = asyncio.Queue()
        queues.add(queue)
        try:
            await websocket.send_text('{"type":"connection_ack"}')  # "registered"
            sender = asyncio.create_task(_send_all(websocket, queue))
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await websocket.receive_text()
            sender.cancel()
        finally:
            queues.discard(queue)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(listen())
        yield
        task.cancel()

    return Starlette(routes=[WebSocketRoute("/graphql", endpoint)], lifespan=lifespan)


async def _send_all(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
    with contextlib.suppress(Exception):
        while True:
            await websocket.send_text(await queue.get())


def gateway_app() -> Any:
    """The gateway as `cadt-gateway serve` builds it."""
    from cadt_gateway.app import create_app
    from cadt_gateway.settings import load_settings

    return create_app(load_settings(), run_worker=False)


def main(kind: str) -> None:
    """Serve `kind` on a free loopback port and print it."""
    app = gateway_app() if kind == "gateway" else raw_app(os.environ["CADT_REDIS_URL"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
        ws_ping_interval=None,  # no protocol pings during the measurement, on either side
        backlog=4096,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(f"port {sock.getsockname()[1]}", flush=True)
        await task

    # The loop uvicorn itself would pick (uvloop when installed), as for `cadt-gateway serve`.
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main(sys.argv[1])
