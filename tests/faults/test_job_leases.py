"""Job leases (jobs/leases.py): a killed worker's fixed-id job is handed out again in seconds.

Without them a sync run whose worker was SIGKILLed keeps its job id taken until arq's
in-progress key expires (job timeout + 10 s: an hour by default). The subprocess test in
test_worker_killed.py kills a real worker; these check the rule itself on the test Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.constants import in_progress_key_prefix

from jobs.leases import job_lease, lease_key, revive_orphaned_job
from services.config import ServiceSettings
from tests.faults.conftest import eventually

SETTINGS = ServiceSettings(lock_heartbeat_seconds=0.05, lock_heartbeat_timeout_seconds=1)
IN_PROGRESS = 610.0  # arq's TTL of the in-progress key: job timeout 600 s + 10 s
JOB = "sync-organization:" + "a" * 64


async def _started(redis: Any, *, seconds_ago: float) -> None:
    """arq's in-progress key as a worker set it `seconds_ago`."""
    await redis.psetex(in_progress_key_prefix + JOB, int((IN_PROGRESS - seconds_ago) * 1000), b"1")


async def _revive(redis: Any, **kwargs: Any) -> bool:
    options: dict[str, Any] = {"in_progress_seconds": IN_PROGRESS, **kwargs}
    return await revive_orphaned_job(redis, JOB, SETTINGS, **options)


async def test_a_job_without_a_lease_long_after_it_started_is_handed_out_again(
    redis_client: Any,
) -> None:
    await _started(redis_client, seconds_ago=5)
    assert await _revive(redis_client) is True
    assert not await redis_client.exists(in_progress_key_prefix + JOB)  # arq may run it now


async def test_a_job_that_renews_its_lease_is_left_alone(redis_client: Any) -> None:
    await _started(redis_client, seconds_ago=5)
    async with job_lease(redis_client, JOB, SETTINGS):
        assert await redis_client.exists(lease_key(JOB))
        assert await _revive(redis_client) is False
    # the lease ends with the job
    assert not await redis_client.exists(lease_key(JOB))
    assert await redis_client.exists(in_progress_key_prefix + JOB)


async def test_a_lease_lapses_when_its_worker_stops_renewing_it(redis_client: Any) -> None:
    await _started(redis_client, seconds_ago=5)
    await redis_client.set(lease_key(JOB), "1", px=300)  # a dead worker's last renewal
    assert await _revive(redis_client) is False

    async def revived() -> bool:
        return await _revive(redis_client)

    await eventually(revived, within=10, what="the lapsed lease noticed")


async def test_a_job_that_just_started_or_is_not_running_is_never_revived(
    redis_client: Any,
) -> None:
    assert await _revive(redis_client) is False  # queued or gone: nothing in progress
    await _started(redis_client, seconds_ago=0.2)  # younger than the lease timeout
    assert await _revive(redis_client) is False
    assert await _revive(redis_client, in_progress_seconds=None) is False  # TTL unknown
    off = ServiceSettings(lock_heartbeat_timeout_seconds=0)  # TTL-only, like CADT
    await _started(redis_client, seconds_ago=5)
    assert await revive_orphaned_job(redis_client, JOB, off, in_progress_seconds=IN_PROGRESS) is (
        False
    )


async def test_a_cancelled_job_removes_its_lease(redis_client: Any) -> None:
    entered = asyncio.Event()

    async def job() -> None:
        async with job_lease(redis_client, JOB, SETTINGS):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await entered.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not await redis_client.exists(lease_key(JOB))
