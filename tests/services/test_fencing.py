"""Writes under the lock carry its fence; a stale holder's write is refused (SQLite and PG)."""

from __future__ import annotations

import json

import pytest

from services.fencing import Fence, StaleLockHolder, read_meta, write_meta
from services.oplock import OrgOperationLock

TTL = 60.0


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_stale_holder_cannot_write(database, redis_client):
    clock = Clock()
    lock = OrgOperationLock(redis_client, ttl_seconds=TTL, clock=clock)
    a = Fence(lock, await lock.try_acquire("V2 organization creation"))
    async with database.transaction() as session:
        await write_meta(session, "pendingOrgCreation", '{"state": "INITIALIZING"}', fence=a)

    clock.now += TTL + 1  # A pauses past the TTL; B takes over
    b = Fence(lock, await lock.try_acquire("V2 organization recovery"))

    with pytest.raises(StaleLockHolder):
        async with database.transaction() as session:
            await write_meta(session, "pendingOrgCreation", '{"state": "FAILED"}', fence=a)
    async with database.session() as session:
        assert await read_meta(session, "pendingOrgCreation") == '{"state": "INITIALIZING"}'

    async with database.transaction() as session:
        await write_meta(session, "pendingOrgCreation", '{"state": "STORES_CREATING"}', fence=b)
    async with database.session() as session:
        assert await read_meta(session, "pendingOrgCreation") == '{"state": "STORES_CREATING"}'


async def test_row_fence_refuses_an_older_token_even_if_redis_agrees(database, redis_client):
    clock = Clock()
    lock = OrgOperationLock(redis_client, ttl_seconds=TTL, clock=clock)
    old = await lock.try_acquire("V2 organization creation")
    await lock.release(old)
    new = Fence(lock, await lock.try_acquire("V2 organization creation"))
    async with database.transaction() as session:
        await write_meta(session, "k", "new", fence=new)
    await lock.release(new.token)
    # the old token somehow holds again in Redis (e.g. a restored snapshot): the row still refuses
    holder = {"token": old, "label": "x", "status": "s", "started_ms": 0, "org_uid": ""}
    await redis_client.set("cadt:oplock:holder", json.dumps(holder))
    with pytest.raises(StaleLockHolder):
        async with database.transaction() as session:
            await write_meta(session, "k", "old", fence=Fence(lock, old))
