"""Job leases: a job with a fixed id shows it is alive, so a killed worker's job runs again soon.

arq keeps a started job's in-progress key for the longest job timeout + 10 s; a worker killed
mid-job (SIGKILL, OOM, a lost machine) leaves that key behind, and with a fixed job id (one
sync per organization) nothing can enqueue the job again meanwhile: with the default job
timeout an organization's sync would stall for an hour. A running job therefore renews a lease
key (every `lock_heartbeat_seconds`, living `lock_heartbeat_timeout_seconds`, the silence after
which the org-operation lock also presumes its holder dead); the fan-out that finds the job id
taken checks the lease, and when a job has been in progress longer than that timeout without
one, deletes arq's in-progress key. The job is still in arq's queue, so the next poll of any
worker runs it again (arq counts the try). A worker that is alive but was silent that long
makes the job run twice at once, which the jobs this is used for tolerate (the sync engine's
compare-and-set and the audit's UNIQUE key).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.config import ServiceSettings
from services.renewal import renewing

logger = logging.getLogger(__name__)

LEASE_PREFIX = "cadt:job-lease:"

#: The arq ctx key holding the in-progress TTL of this worker's jobs (seconds).
IN_PROGRESS_SECONDS = "cadt_in_progress_seconds"

# KEYS: in-progress key, lease key. Delete the in-progress key only while there is no lease.
_REVIVE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('DEL', KEYS[1])
"""


def lease_key(job_id: str) -> str:
    """The lease key of a job id."""
    return LEASE_PREFIX + job_id


@asynccontextmanager
async def job_lease(
    redis: Redis, job_id: str | None, settings: ServiceSettings
) -> AsyncIterator[None]:
    """Renew the lease of `job_id` while the block runs (nothing when leases are off)."""
    timeout = settings.lock_heartbeat_timeout_seconds
    if not job_id or timeout <= 0:
        yield
        return
    key = lease_key(job_id)
    ttl_ms = max(1, int(timeout * 1000))

    async def write() -> bool:
        try:
            await redis.set(key, "1", px=ttl_ms)
        except RedisError:
            logger.warning("could not renew the lease of job %s; retrying", job_id)
        return True  # a lease is ours until the job ends

    await write()  # before the work starts: the job is never in progress without one for long
    try:
        async with renewing(
            write, interval=settings.lock_heartbeat_seconds, name=f"job-lease-{job_id}"
        ):
            yield
    finally:
        with contextlib.suppress(RedisError):
            await asyncio.shield(redis.delete(key))


async def revive_orphaned_job(
    redis: Redis, job_id: str, settings: ServiceSettings, *, in_progress_seconds: float | None
) -> bool:
    """Let arq run `job_id` again now if its worker died; True when it was handed out again.

    Orphaned means: in progress for longer than the lease timeout (its age is arq's TTL minus
    what is left of it) and no lease. Unknown TTL or leases off: never.
    """
    timeout = settings.lock_heartbeat_timeout_seconds
    if in_progress_seconds is None or timeout <= 0:
        return False
    in_progress = in_progress_key_prefix + job_id
    left_ms = int(await redis.pttl(in_progress))
    if left_ms <= 0:
        return False  # queued, finished, or not ours to judge
    age_ms = in_progress_seconds * 1000 - left_ms
    if age_ms < timeout * 1000:
        return False  # just started: its lease may not be written yet
    revived = int(await redis.register_script(_REVIVE)(keys=[in_progress, lease_key(job_id)]))
    if revived:
        logger.warning(
            "job %s: in progress for %.0f s without a live worker (no lease for %g s); "
            "handing it out again",
            job_id,
            age_ms / 1000,
            timeout,
        )
    return revived == 1
