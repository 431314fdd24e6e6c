"""Governance jobs (thin: the work is in services/governance.py).

- `create_governance_body()`, job id `governance:create`: runs or resumes the recorded body
  creation (createGovernanceBody enqueues it; the periodic job re-enqueues an interrupted one).
- `push_governance_data()`, job id `governance:push`: pushes unconfirmed governance rows to the
  owned version store, then confirms them or restores the previous values.
- `sync_governance_body(follow_up=0)`: periodic (every `governance_sync_task_interval`), and
  `governance:sync-now` from subscribeGovernanceBody / syncGovernance. One attempt per run
  ([later #1600]); while nothing is cached yet and DataLayer is still downloading the body, it
  schedules a deferred follow-up (`governance:sync-follow-up:<n>`, delays doubling from four
  polls to sixteen times that, none once the delay reaches the interval), so a new node shows
  the body within seconds without any job waiting in a loop. When the orgList changed it
  enqueues the default-organization discovery (`sync_default_organizations`, jobs/sync.py).
All are idempotent: a repeated run finds the work done or resumes it.
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis

from services import governance
from services.container import Services
from services.redis_keys import QUEUE_NAME

#: Shortest delay of a bootstrap follow-up sync (seconds).
MIN_FOLLOW_UP_SECONDS = 0.1
#: Follow-up delays double this many times at most (4 polls x 16).
MAX_FOLLOW_UP_DOUBLINGS = 4
#: The default-organization discovery of jobs/sync.py (by name: it is another domain's job).
DISCOVERY_JOB = "sync_default_organizations"
DISCOVERY_JOB_ID = "governance:discover-organizations"


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx["services"]
    assert isinstance(services, Services)
    return services


async def create_governance_body(ctx: dict[str, Any]) -> str:
    """Run or resume the governance body creation."""
    return await governance.run_creation(_services(ctx))


async def push_governance_data(ctx: dict[str, Any]) -> str:
    """Push the unconfirmed governance values of the owned body."""
    return await governance.run_push(_services(ctx))


def follow_up_delay(services: Services, follow_up: int) -> float:
    """Delay before bootstrap follow-up number `follow_up`.

    Four polls, doubling per follow-up up to 16 times that, and never beyond the interval: a
    fresh node retries soon while DataLayer downloads, a stuck one settles into a calm cadence
    (like CADT's later bootstrap interval) until its first values arrive.
    """
    base = max(services.poll_interval * 4, MIN_FOLLOW_UP_SECONDS)
    interval = services.settings.governance_sync_task_interval
    return float(min(interval, base * 2 ** min(follow_up, MAX_FOLLOW_UP_DOUBLINGS)))


async def sync_governance_body(ctx: dict[str, Any], follow_up: int = 0) -> str:
    """One governance run; schedules a sooner retry while a new subscriber waits for DataLayer."""
    services = _services(ctx)
    outcome = await governance.run_governance_task(services)
    if governance.ORG_LIST in outcome.changed:
        # A new orgList: discover its organizations now rather than at the next interval.
        await services.queue.enqueue(DISCOVERY_JOB, job_id=DISCOVERY_JOB_ID)
    delay = follow_up_delay(services, follow_up)
    # Once the delay reaches the interval the periodic run is just as soon.
    if (
        outcome.result is governance.SyncResult.WAITING
        and not outcome.had_values
        and delay < services.settings.governance_sync_task_interval
    ):
        redis: ArqRedis = ctx["redis"]
        await redis.enqueue_job(
            governance.SYNC_JOB,
            follow_up + 1,
            _job_id=f"governance:sync-follow-up:{follow_up + 1}",
            _defer_by=delay,
            _queue_name=QUEUE_NAME,
        )
    return f"{outcome.result.value}: {outcome.message}"
