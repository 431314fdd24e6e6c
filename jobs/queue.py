"""The arq-backed job queue that services use to start background work."""

from __future__ import annotations

from arq.connections import ArqRedis

from services.redis_keys import QUEUE_NAME


class ArqQueue:
    """Implements services.container.JobQueue on an arq Redis pool."""

    def __init__(self, pool: ArqRedis) -> None:
        self.pool = pool

    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        """Enqueue a job; None when a job with that id is already queued or running."""
        job = await self.pool.enqueue_job(function, *args, _job_id=job_id, _queue_name=QUEUE_NAME)
        return None if job is None else str(job.job_id)
