"""Interval scheduler: enqueue each periodic job once per interval across every worker.

arq's own cron works in whole seconds and keeps a cron job's progress key for 60 s, so a fixed
job id cannot fire more often than about once a minute (python-arq/arq#459). Intervals here are
settings that tests shrink below a second, so each worker runs this loop instead: for every
task and time bucket, whoever wins a Redis SET NX claim enqueues the job.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from services.config import ServiceSettings
from services.container import JobQueue
from services.redis_keys import SCHEDULE_CLAIM_PREFIX

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    """A job function enqueued every `interval(settings)` seconds."""

    function: str
    interval: Callable[[ServiceSettings], float]
    run_at_start: bool = True


async def claim_and_enqueue(
    redis: Redis, queue: JobQueue, task: Periodic, interval: float, now: float
) -> bool:
    """Enqueue `task` for the bucket containing `now` unless another worker already did."""
    bucket = math.floor(now / interval)
    claim = f"{SCHEDULE_CLAIM_PREFIX}{task.function}:{bucket}"
    ttl_ms = max(1000, int(interval * 2000))
    if not await redis.set(claim, "1", nx=True, px=ttl_ms):
        return False
    await queue.enqueue(task.function, job_id=f"{task.function}:{bucket}")
    return True


async def run_scheduler(
    *,
    redis: Redis,
    queue: JobQueue,
    tasks: Sequence[Periodic],
    settings: ServiceSettings,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run forever (until cancelled), enqueueing each due task."""
    now = clock()
    due = {
        task.function: now if task.run_at_start else now + task.interval(settings) for task in tasks
    }
    while True:
        now = clock()
        for task in tasks:
            if due[task.function] > now:
                continue
            interval = task.interval(settings)
            try:
                await claim_and_enqueue(redis, queue, task, interval, now)
            except Exception:  # Redis hiccup: try again next tick, never kill the loop
                logger.warning("could not enqueue periodic job %s", task.function, exc_info=True)
            due[task.function] = (math.floor(now / interval) + 1) * interval
        await sleep(max(0.01, min(due.values()) - clock()))
