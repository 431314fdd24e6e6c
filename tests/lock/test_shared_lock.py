"""L14 on Redis: one lock across processes, with compare-and-set/-delete and TTL takeover."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.oplock import OrgOperationLock
from tests.conftest import TEST_REDIS_URL


async def test_the_lock_is_shared_by_every_process_on_the_redis(redis_client):
    # Two "processes": separate connections and lock objects, as a gateway and a worker have.
    other_connection = aioredis.Redis.from_url(TEST_REDIS_URL)
    try:
        gateway = OrgOperationLock(redis_client, ttl_seconds=3600)
        worker = OrgOperationLock(other_connection, ttl_seconds=3600)

        token = await gateway.try_acquire("V2 organization creation")
        assert await worker.try_acquire("V1 to V2 upgrade") is None  # V1 and V2 share it

        # The job in the worker process updates and releases with the token it was handed (L10).
        assert await worker.update_status(token, "Creating stores on blockchain")
        status = await gateway.status()
        assert (status.label, status.status) == (
            "V2 organization creation",
            "Creating stores on blockchain",
        )
        assert await worker.release(token)
        assert await gateway.status() is None

        # A restarted process (a new lock object) does not reset a held lock: unlike CADT's
        # in-memory lock (L14), durability is Redis's; staleness is the TTL takeover (L7).
        held = await worker.try_acquire("V2 organization recovery")
        restarted = OrgOperationLock(redis_client, ttl_seconds=3600)
        assert await restarted.try_acquire("V2 organization creation") is None
        assert (await restarted.holder()).token == held
    finally:
        await other_connection.aclose()
