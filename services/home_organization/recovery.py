"""Start-up and periodic recovery of the home-organization creation (clean_up_failed_org, 3.2).

What a run does, for the node's data model:
- nothing to do (no record, no PENDING row): returns at once without touching the lock;
- otherwise it takes the lock as "V<n> organization recovery"; when the lock is held it skips
  this run (L13, it never waits);
- a leftover PENDING row without a record is deleted; a COMPLETE or FAILED record is cleared
  (with its PENDING row);
- an interrupted creation counts a retry (creation_max_retries, then FAILED "timed out after
  maximum retries") and is resumed by enqueueing the create job with the recovery token, so
  resumed and fresh creations run the same code with the same lock rules.

A creation whose worker was killed keeps the lock with the dead job's token until
lock_ttl_seconds (L7); the first recovery run (or arq's re-run of the job) after that takes over.
"""

from __future__ import annotations

import logging

from services.container import Services
from services.creation_state import CreationState
from services.db.models import utcnow
from services.fencing import Fence
from services.home_organization.common import (
    CREATE_JOB,
    clear_record,
    delete_pending_row,
    describe_failure,
    load_record,
    pending_row_exists,
    recovery_label,
    save_record,
)
from services.home_organization.create import TIMED_OUT_MESSAGE

logger = logging.getLogger(__name__)


async def recover_creation(services: Services) -> str:
    """The clean_up_failed_org job: tidy up or resume an interrupted creation; says what it did."""
    version = services.settings.data_model_version.value
    if await load_record(services, version) is None and not await pending_row_exists(
        services, version
    ):
        return "nothing to recover"
    token = await services.lock.try_acquire(recovery_label(version))
    if token is None:
        holder = await services.lock.status()
        label = holder.label if holder is not None else "another operation"
        logger.info("creation recovery skipped: the org-operation lock is held by %s", label)
        return f"skipped: the lock is held by {label}"
    fence = Fence(services.lock, token)
    handed_over = False
    error: str | None = None
    try:
        record = await load_record(services, version)  # again, now under the lock
        if record is None:
            await delete_pending_row(services, version, fence)
            return "removed a leftover PENDING row"
        if record.state.terminal:
            await clear_record(services, version, fence)
            await delete_pending_row(services, version, fence)
            return f"cleared a {record.state.value} creation record"
        record.retry_count += 1
        if record.retry_count >= services.settings.creation_max_retries:
            record.state = CreationState.FAILED
            record.error = TIMED_OUT_MESSAGE
            await save_record(services, record, fence)
            await delete_pending_row(services, version, fence)
            error = TIMED_OUT_MESSAGE
            return f"failed: {TIMED_OUT_MESSAGE}"
        # Restart the clock: the resumed run is not stale, so it does not count a second retry.
        record.started_at = utcnow()
        record.error = None
        await save_record(services, record, fence)
        job_id = f"{CREATE_JOB}:{token}"
        if not await services.queue.enqueue(
            CREATE_JOB, token, record.name, record.icon, job_id=job_id
        ):
            raise RuntimeError(f"job {job_id} is already queued")
        handed_over = True
        logger.warning(
            "resuming an interrupted %s creation (retry %d of %d) in job %s",
            version,
            record.retry_count,
            services.settings.creation_max_retries,
            job_id,
        )
        return f"resuming the creation in job {job_id}"
    except Exception as failure:
        error = describe_failure(failure)
        raise
    finally:
        if not handed_over:
            await services.lock.release(token, error=error)
