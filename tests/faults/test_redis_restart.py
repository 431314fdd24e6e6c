"""Redis restarted in the middle of an operation: the lock, the progress and the jobs recover.

The node (uvicorn on loopback, in-process worker) runs on a redis-server of this test with an
append-only file (appendfsync always); the server is SIGKILLed while a creation waits for Chia
and started again on the same port and data. What must hold afterwards:
- the lock is still held by the same token (persisted), and the creation completes, once;
- WebSocket subscribers stay connected through the outage (no error, no complete), are sent a
  fresh snapshot after the reconnect, and see the creation end;
- the worker still takes jobs (a ping enqueued after the restart runs).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis.asyncio as aioredis

from services.events import CREATION_CHANNEL, OPERATION_CHANNEL
from services.oplock import HOLDER_KEY, OrgOperationLock
from services.redis_keys import QUEUE_NAME
from tests.faults.conftest import (
    ArrivalFaults,
    PrivateRedis,
    ServedNode,
    eventually,
    home_rows,
)
from tests.home_organization.conftest import CREATE, record_of
from tests.lock.conftest import Session, ws_session

pytestmark = pytest.mark.slow

PROGRESS = "subscription { operationProgress { kind status } }"
CREATION = "subscription { creationStatus { inProgress state } }"


@asynccontextmanager
async def subscribed(live: ServedNode) -> AsyncIterator[dict[str, list[dict[str, Any]]]]:
    """operationProgress ("p") and creationStatus ("c") on one socket; every message recorded."""
    seen: dict[str, list[dict[str, Any]]] = {"p": [], "c": [], "other": []}
    async with ws_session(live.ws_url) as session:
        await session.init()
        await session.subscribe("p", PROGRESS)
        await session.subscribe("c", CREATION)
        assert (await session.next("c"))["creationStatus"]["inProgress"] is False
        collector = asyncio.create_task(_collect(session, seen))
        try:
            yield seen
        finally:
            collector.cancel()
            await asyncio.gather(collector, return_exceptions=True)
    assert seen["other"] == [], seen["other"]  # never an error or a complete


async def _collect(session: Session, seen: dict[str, list[dict[str, Any]]]) -> None:
    while True:
        message = json.loads(await session.ws.recv())
        if message.get("type") == "ping":
            await session.send({"type": "pong"})
        elif message.get("type") == "next" and not message["payload"].get("errors"):
            seen[message["id"]].append(message["payload"]["data"])
        else:
            seen["other"].append(message)


async def test_a_redis_restart_mid_creation_loses_neither_the_lock_nor_the_progress(
    private_redis: PrivateRedis,
    fault_settings: Any,
    serve_node: Any,
    simulator: Any,
    database: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    settings = fault_settings(redis_url=private_redis.url)
    live = await serve_node(settings)
    redis = aioredis.Redis.from_url(private_redis.url)
    faults = simulator.state.faults = ArrivalFaults(latency={"create_data_store": 1.0})
    try:
        async with subscribed(live) as seen:
            accepted = await live.execute(CREATE, {"input": {"name": "Through a Restart"}})
            assert accepted["createHomeOrganization"]["__typename"] == "OperationAccepted"

            async def four_in_flight() -> bool:
                return faults.arrived("create_data_store") == 4

            await eventually(four_in_flight, what="the store creations in flight")
            token = (await redis.get(HOLDER_KEY)).decode()
            events_before = len(seen["p"])

            # Redis dies while Chia creates the stores; it stays away until the job needed it
            await asyncio.to_thread(private_redis.kill)

            async def answered() -> bool:
                return len([s for s in simulator.state.stores.values() if s.owner == 0]) == 4

            await eventually(answered, what="Chia created the four stores")

            async def job_waits_for_redis() -> bool:
                return any("Redis unreachable" in r.getMessage() for r in caplog.records)

            await eventually(job_waits_for_redis, what="the job ran into the outage")
            await asyncio.to_thread(private_redis.start)
            await redis.aclose()
            redis = aioredis.Redis.from_url(private_redis.url)
            # the append-only file kept the lock: same holder, same token
            holder = await redis.get(HOLDER_KEY)
            assert holder is not None and token in holder.decode()

            async def created() -> bool:
                rows = await home_rows(database)
                return (
                    len(rows) == 1
                    and rows[0].org_uid != "PENDING"
                    and await record_of(live.services) is None
                    and not await redis.exists(HOLDER_KEY)
                )

            await eventually(created, what="the creation completed")

            async def told_the_end() -> bool:
                kinds = [e["operationProgress"]["kind"] for e in seen["p"][events_before:]]
                creation = [e["creationStatus"] for e in seen["c"]]
                return "FINISHED" in kinds and bool(creation) and not creation[-1]["inProgress"]

            await eventually(told_the_end, what="subscribers told the creation ended")
            kinds = [e["operationProgress"]["kind"] for e in seen["p"]]
            assert "FAILED" not in kinds  # the outage paused the creation, it did not fail it

        rows = await home_rows(database)
        assert rows[0].name == "Through a Restart"
        # no store created twice, and the job was not restarted from scratch
        assert len([s for s in simulator.state.stores.values() if s.owner == 0]) == 4
        # the worker still takes jobs
        job = await live.node.pool.enqueue_job("ping", _queue_name=QUEUE_NAME)
        assert job is not None
        assert str(await job.result(timeout=30, poll_delay=0.05)).startswith("pong")
    finally:
        await redis.aclose()


async def test_subscribers_outlive_a_read_that_fails_while_redis_is_away(
    private_redis: PrivateRedis, fault_settings: Any, serve_node: Any
) -> None:
    live = await serve_node(fault_settings(redis_url=private_redis.url), run_worker=False)
    async with subscribed(live) as seen:
        await asyncio.to_thread(private_redis.kill)
        # an event that arrived just before the outage: both streams re-read, and fail
        live.services.events._deliver(CREATION_CHANNEL, {"state": "STORES_CREATING"})
        live.services.events._deliver(OPERATION_CHANNEL, None)
        # a query that needs Redis meanwhile: a clear error, not a traceback
        response = await live.post("query { operationStatus { label } }")
        assert response.status_code == 200, response.text
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "REDIS_UNAVAILABLE", error
        assert error["message"].startswith("Redis is unavailable; try again shortly.")
        await asyncio.to_thread(private_redis.start)
        redis = aioredis.Redis.from_url(private_redis.url)
        try:
            # the streams are still open: the next operation reaches both
            lock = OrgOperationLock(redis, ttl_seconds=60)
            token = await lock.try_acquire("V2 organization creation")
            assert token is not None

            async def told() -> bool:
                started = any(e["operationProgress"]["kind"] == "STARTED" for e in seen["p"])
                running = any(e["creationStatus"]["inProgress"] for e in seen["c"])
                return started and running

            await eventually(told, what="both streams resumed", context=lambda: str(seen))
            await lock.release(token)
        finally:
            await redis.aclose()
