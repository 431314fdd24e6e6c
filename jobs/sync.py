"""Sync jobs: the registry sync fan-out and per-organization runs, and the org maintenance jobs.

- `sync_registries` (periodic, `sync_registries_task_interval`, 5 s): enqueues one
  `sync_organization` job per subscribed organization with job id `sync-organization:<orgUid>`.
  arq refuses a job id that is queued or running, so one organization is never synced twice at
  once while many sync in parallel across workers; `keep_result=0` frees the id at the end.
- `sync_organization(org_uid)`: one run of services.sync.sync_organization.
- `sync_organization_meta` (periodic, `organization_meta_sync_task_interval`), 3.10.
- `validate_organization_table` (periodic, `validate_organization_table_task_interval`), 3.11.
- `sync_default_organizations` (periodic, `default_organizations_sync_task_interval`), 3.12.
Each is its own job, so a slow one never delays another.
"""

from __future__ import annotations

from typing import Any

from jobs.leases import IN_PROGRESS_SECONDS, job_lease, revive_orphaned_job
from services import org_sync, sync
from services.container import Services

SYNC_REGISTRIES_JOB = "sync_registries"
SYNC_ORGANIZATION_JOB = "sync_organization"
ORGANIZATION_META_SYNC_JOB = "sync_organization_meta"
RECONCILE_JOB = "validate_organization_table"
DEFAULT_ORGANIZATIONS_JOB = "sync_default_organizations"


def sync_job_id(org_uid: str) -> str:
    """The arq job id of an organization's sync run (one at a time per organization)."""
    return f"sync-organization:{org_uid}"


async def sync_registries(ctx: dict[str, Any]) -> int:
    """Enqueue a sync run per subscribed organization; how many were newly enqueued.

    An organization whose run is still queued or running is skipped, unless that run's worker
    died (no lease): then arq is let to run it again (counted as enqueued).
    """
    services: Services = ctx["services"]
    in_progress_seconds: float | None = ctx.get(IN_PROGRESS_SECONDS)
    enqueued = 0
    for org_uid in await sync.subscribed_org_uids(services):
        job_id = sync_job_id(org_uid)
        queued = await services.queue.enqueue(SYNC_ORGANIZATION_JOB, org_uid, job_id=job_id)
        if queued or await revive_orphaned_job(
            services.redis, job_id, services.settings, in_progress_seconds=in_progress_seconds
        ):
            enqueued += 1
    return enqueued


async def sync_organization(ctx: dict[str, Any], org_uid: str) -> str:
    """Apply every pending generation of one organization; the run's result."""
    services: Services = ctx["services"]
    job_id = ctx.get("job_id") or sync_job_id(org_uid)
    async with job_lease(services.redis, job_id, services.settings):
        outcome = await sync.sync_organization(services, org_uid)
    return f"{outcome.result.value}: {outcome.applied_generations} generation(s)"


async def sync_organization_meta(ctx: dict[str, Any]) -> str:
    """Refresh organization rows from their org stores (3.10)."""
    services: Services = ctx["services"]
    return (await org_sync.sync_organization_meta(services)).summary()


async def validate_organization_table(ctx: dict[str, Any]) -> str:
    """Reconcile organization rows with DataLayer (3.11)."""
    services: Services = ctx["services"]
    return (await org_sync.reconcile_organizations(services)).summary()


async def sync_default_organizations(ctx: dict[str, Any]) -> str:
    """Import the governance orgList's organizations (3.12)."""
    services: Services = ctx["services"]
    return (await org_sync.sync_default_organizations(services)).summary()
