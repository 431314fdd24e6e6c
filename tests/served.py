"""Serve an ASGI app with a real uvicorn on loopback for a test (random port)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import uvicorn


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the test runner owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(stack: AsyncExitStack, app: Any, *, deadline: float) -> int:
    """Start `app` on 127.0.0.1 (stopped when `stack` closes); its port once it listens."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_level="warning",
        ws="websockets-sansio",
        access_log=False,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())

    async def stop() -> None:
        server.should_exit = True
        await asyncio.wait_for(task, deadline)

    stack.push_async_callback(stop)
    async with asyncio.timeout(deadline):
        while not server.started:
            if task.done():
                task.result()  # start-up failed: raise its error
            await asyncio.sleep(0.01)
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port
