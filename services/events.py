"""Live events over Redis pub/sub, fanned out in-process to any number of local subscribers.

Every process keeps ONE Redis pub/sub connection (pattern `cadt:events:*`) and hands each
message to the bounded queues of its local subscribers, so an event published by any worker
reaches every replica's clients. Pub/sub drops what a disconnected process misses; subscribers
therefore always start from a snapshot (and get a `None` marker after a reconnect so they can
take a fresh one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "cadt:events:"
OPERATION_CHANNEL = CHANNEL_PREFIX + "operation"
CREATION_CHANNEL = CHANNEL_PREFIX + "creation"
SYNC_CHANNEL = CHANNEL_PREFIX + "sync"

#: Per-subscriber backlog; a slower client loses the oldest events, never blocks the others.
SUBSCRIBER_QUEUE_SIZE = 256
RECONNECT_DELAY_SECONDS = 0.5

#: What a subscriber receives: a decoded event, or None after the connection was re-established.
Message = dict[str, Any] | None


def wire_channel(redis: Redis, channel: str) -> str:
    """The Redis channel of a logical channel: pub/sub ignores the database number, so it is
    part of the name; deployments (and test runs) on other databases of one server stay apart."""
    database = redis.connection_pool.connection_kwargs.get("db", 0) or 0
    return f"db{database}:{channel}"


async def publish(redis: Redis, channel: str, payload: dict[str, Any]) -> None:
    """Publish one JSON event on a logical channel."""
    await redis.publish(
        wire_channel(redis, channel), json.dumps(payload, separators=(",", ":"), default=str)
    )


class EventHub:
    """One pub/sub connection per process; `subscribe(channel)` yields events for local clients."""

    def __init__(self, redis: Redis, *, reconnect_delay: float = RECONNECT_DELAY_SECONDS) -> None:
        self.redis = redis
        self.reconnect_delay = reconnect_delay
        self._queues: defaultdict[str, set[asyncio.Queue[Message]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        """Local subscribers over all channels."""
        return sum(len(queues) for queues in self._queues.values())

    async def start(self) -> None:
        """Start listening (idempotent); returns once the first subscription is confirmed."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cadt-event-hub")
        await self._ready.wait()

    async def stop(self) -> None:
        """Stop listening and release the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        first = True
        namespace = wire_channel(self.redis, "")
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(wire_channel(self.redis, CHANNEL_PREFIX) + "*")
                if not first:
                    self._broadcast_all(None)  # tell clients to re-read their snapshot
                first = False
                self._ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "pmessage":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                    channel = channel[len(namespace) :]
                    try:
                        payload = json.loads(message["data"])
                    except (TypeError, ValueError):
                        logger.warning("dropped a malformed event on %s", channel)
                        continue
                    self._deliver(channel, payload)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                logger.warning("event hub lost Redis (%s); reconnecting", type(error).__name__)
                self._ready.set()  # do not block subscribers while Redis is away
                await asyncio.sleep(self.reconnect_delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, channel: str, payload: Message) -> None:
        for queue in self._queues.get(channel, ()):
            _put_dropping_oldest(queue, payload)

    def _broadcast_all(self, payload: Message) -> None:
        for queues in self._queues.values():
            for queue in queues:
                _put_dropping_oldest(queue, payload)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[Message]]:
        """A queue receiving the channel's events while the context is open."""
        await self.start()
        queue: asyncio.Queue[Message] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self._queues[channel].add(queue)
        try:
            yield queue
        finally:
            self._queues[channel].discard(queue)


def _put_dropping_oldest(queue: asyncio.Queue[Message], payload: Message) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()
    queue.put_nowait(payload)
