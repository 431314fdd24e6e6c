"""Renew something in the background while a block of work runs (leases, heartbeats)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager


@asynccontextmanager
async def renewing(
    renew: Callable[[], Awaitable[bool]],
    *,
    interval: float,
    name: str,
    immediately: bool = False,
) -> AsyncIterator[None]:
    """Call `renew` every `interval` seconds (first at once with `immediately`) while the block
    runs; a renew that answers False ends the renewals (what it renewed is no longer ours).
    `renew` handles its own transient errors; the task is cancelled when the block ends."""

    async def loop() -> None:
        if immediately and not await renew():
            return
        while True:
            await asyncio.sleep(interval)
            if not await renew():
                return

    task = asyncio.create_task(loop(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
