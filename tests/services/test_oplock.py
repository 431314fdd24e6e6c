"""Rules L1-L14 of the org-operation lock (cadt-domain.md section 5) against a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from services.events import OPERATION_CHANNEL, wire_channel
from services.oplock import HOLDER_KEY, OrgOperationLock, fence_of

TTL = 3600.0
T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def lock(redis_client, clock) -> OrgOperationLock:
    return OrgOperationLock(redis_client, ttl_seconds=TTL, clock=clock)


async def test_l1_acquire_on_a_free_lock(lock):
    token = await lock.try_acquire("V2 organization creation")
    assert token and token.startswith("orglock-")
    status = await lock.status()
    assert status is not None
    assert status.label == "V2 organization creation"
    assert status.status == "Starting..."
    assert status.started_at.timestamp() == T0
    assert status.elapsed_seconds(status.started_at) == 0


@pytest.mark.parametrize("second", ["V2 organization creation", "V1 to V2 upgrade", "anything"])
async def test_l2_acquire_while_held_returns_none_and_changes_nothing(lock, clock, second):
    await lock.try_acquire("V1 organization creation")
    await lock.update_status((await lock.holder()).token, "Waiting for store")
    before = await lock.holder()
    clock.now += 100
    assert await lock.try_acquire(second) is None
    assert await lock.holder() == before


async def test_l3_tokens_are_distinct_and_increasing_even_after_release(lock):
    tokens = []
    for _ in range(3):
        token = await lock.try_acquire("V2 organization creation")
        tokens.append(token)
        assert await lock.release(token)
    assert len(set(tokens)) == 3
    assert [fence_of(t) for t in tokens] == sorted(fence_of(t) for t in tokens)


async def test_l4_release_with_the_right_token(lock):
    token = await lock.try_acquire("V2 organization creation")
    assert await lock.release(token) is True
    assert await lock.status() is None
    assert await lock.try_acquire("V2 organization creation")


async def test_l5_l8_stale_release_after_takeover_changes_nothing(lock, clock):
    a = await lock.try_acquire("V2 organization creation")
    clock.now += TTL + 0.001
    b = await lock.try_acquire("V1 to V2 upgrade")
    assert b and b != a
    assert await lock.release(a) is False
    assert (await lock.holder()).token == b
    assert await lock.release(b) is True


async def test_l6_stale_status_updates_are_ignored(lock, clock):
    assert await lock.update_status("orglock-999", "on a free lock") is False
    a = await lock.try_acquire("V2 organization creation")
    clock.now += TTL + 1
    b = await lock.try_acquire("V2 organization creation")
    assert await lock.update_status(a, "should be ignored") is False
    assert (await lock.status()).status == "Starting..."
    assert await lock.update_status(b, "new status") is True
    assert await lock.update_status(b, "newer status") is True
    assert (await lock.status()).status == "newer status"


async def test_l7_threshold_edge_and_takeover_warning(lock, clock, caplog):
    await lock.try_acquire("V2 organization creation")
    clock.now = T0 + TTL - 0.001
    assert await lock.try_acquire("V2 organization creation") is None
    clock.now = T0 + TTL + 0.001
    with caplog.at_level(logging.WARNING, logger="services.oplock"):
        token = await lock.try_acquire("V1 to V2 upgrade")
    assert token
    status = await lock.status()
    assert status.status == "Starting..."
    assert status.label == "V1 to V2 upgrade"
    assert status.elapsed_seconds(status.started_at) == 0
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "stale holder 'V2 organization creation'" in warning
    assert "3600 s" in warning


async def test_l7_no_timer_status_stays_until_someone_acquires(lock, clock):
    await lock.try_acquire("V2 organization creation")
    clock.now += TTL * 3
    assert (await lock.status()).label == "V2 organization creation"


async def test_l8_double_release_and_force_release(lock):
    token = await lock.try_acquire("V2 organization creation")
    assert await lock.release(token) is True
    assert await lock.release(token) is False
    assert await lock.release(None) is False
    assert await lock.force_release() is True
    assert await lock.status() is None


async def test_l12_elapsed_seconds_rounds(lock):
    await lock.try_acquire("V2 organization creation")
    status = await lock.status()
    later = status.started_at.replace(microsecond=600_000)
    assert status.elapsed_seconds(later) == 1


async def test_two_concurrent_acquirers_get_exactly_one_token(redis_client, clock):
    locks = [OrgOperationLock(redis_client, ttl_seconds=TTL, clock=clock) for _ in range(20)]
    tokens = await asyncio.gather(*(lk.try_acquire("V2 organization creation") for lk in locks))
    assert len([t for t in tokens if t]) == 1


async def test_a_cancelled_release_leaves_no_key(lock, redis_client):
    token = await lock.try_acquire("V2 organization creation")
    task = asyncio.create_task(lock.release(token))
    await asyncio.sleep(0)  # let it send the script, then cancel mid-flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if not await redis_client.exists(HOLDER_KEY):
            break
        await asyncio.sleep(0.01)
    assert not await redis_client.exists(HOLDER_KEY)


async def test_every_change_is_published_and_identical_statuses_are_dropped(lock, redis_client):
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(wire_channel(redis_client, OPERATION_CHANNEL))
    token = await lock.try_acquire("V2 organization creation")
    await lock.update_status(token, "Creating stores on blockchain")
    await lock.update_status(token, "Creating stores on blockchain")
    await lock.update_status(token, "Creating stores on blockchain", org_uid="ab" * 32)
    await lock.release(token, error="boom")
    kinds = []
    for _ in range(50):
        if len(kinds) == 4:
            break
        message = await pubsub.get_message(timeout=0.1)
        if message is None:
            continue
        event = json.loads(message["data"])
        kinds.append((event["kind"], event["holder"]["status"], event["holder"]["org_uid"]))
    await pubsub.aclose()
    assert kinds == [
        ("STARTED", "Starting...", ""),
        ("PROGRESS", "Creating stores on blockchain", ""),
        ("PROGRESS", "Creating stores on blockchain", "ab" * 32),
        ("FAILED", "Creating stores on blockchain", "ab" * 32),
    ]


async def test_a_silent_holder_is_taken_over_before_the_ttl(redis_client, clock, caplog):
    lock = OrgOperationLock(
        redis_client, ttl_seconds=TTL, heartbeat_timeout_seconds=60, clock=clock
    )
    token = await lock.try_acquire("V2 organization creation")
    clock.now += 59
    assert await lock.try_acquire("V2 organization recovery") is None
    assert await lock.heartbeat(token)
    clock.now += 59  # 118 s after the start, 59 s after the last heartbeat: still alive
    assert await lock.try_acquire("V2 organization recovery") is None
    clock.now += 2  # 61 s of silence: a killed worker
    with caplog.at_level(logging.WARNING, logger="services.oplock"):
        recovery = await lock.try_acquire("V2 organization recovery")
    assert recovery
    assert "no heartbeat for 61 s" in caplog.text
    assert await lock.heartbeat(token) is False


async def test_keep_alive_renews_the_heartbeat_until_the_block_ends(redis_client):
    lock = OrgOperationLock(redis_client, ttl_seconds=TTL, heartbeat_timeout_seconds=60)
    token = await lock.try_acquire("V2 organization creation")
    first = (await lock.holder()).beat_ms
    async with lock.keep_alive(token, interval=0.01):
        for _ in range(200):
            if (await lock.holder()).beat_ms > first:
                break
            await asyncio.sleep(0.01)
    assert (await lock.holder()).beat_ms > first


async def test_without_a_heartbeat_timeout_only_the_ttl_takes_over(lock, clock):
    await lock.try_acquire("V2 organization creation")
    clock.now += TTL - 1
    assert await lock.try_acquire("V2 organization recovery") is None
