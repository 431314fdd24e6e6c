"""arq worker configuration: the job functions, the periodic schedule, timeouts, health check.

Jobs get the process's `Services` from `ctx["services"]`; the composition root supplies the
factory that builds them (cadt_gateway/worker.py), so this package imports only services.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from arq.worker import Function, Worker, func
from redis.exceptions import RedisError

from jobs import governance, home_organization, mirrors, organizations, sync, system
from jobs.leases import IN_PROGRESS_SECONDS
from jobs.queue import ArqQueue
from jobs.scheduler import Periodic, run_scheduler
from services.config import ServiceSettings
from services.container import Services
from services.governance import CREATE_JOB as GOVERNANCE_CREATE_JOB
from services.governance import PUSH_JOB as GOVERNANCE_PUSH_JOB
from services.governance import SYNC_JOB as GOVERNANCE_SYNC_JOB
from services.organizations import FINISH_IMPORT_JOB, RESUME_IMPORTS_JOB
from services.redis_keys import QUEUE_NAME, worker_health_key

logger = logging.getLogger(__name__)

_SEQ = itertools.count(1)

ServicesFactory = Callable[[], Awaitable[Services]]
ServicesCloser = Callable[[Services], Awaitable[None]]


#: Longest pause between polls while Redis is unreachable (the first retry comes at once).
REDIS_RETRY_MAX_SECONDS = 2.0


class GatewayWorker(Worker):
    """arq's Worker, riding out a Redis restart instead of stopping.

    arq's poll loop ends on the first Redis error, and with it the worker: an in-process worker
    then runs nothing until the node restarts, a `cadt-gateway worker` exits. Here a poll that
    fails on Redis is logged and tried again with a growing pause; jobs already running go on
    (their own Redis calls handle the outage). Relies on arq 0.28's `_poll_iteration` and
    `start_jobs` (the dependency is pinned to 0.28.*).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._redis_failures = 0

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as error:
            self._redis_failures += 1
            if self._redis_failures == 1:
                logger.warning("worker lost Redis (%s); polling again", error)
            pause = min(REDIS_RETRY_MAX_SECONDS, 0.05 * 2**self._redis_failures)
            await asyncio.sleep(pause)
            return
        if self._redis_failures:
            logger.warning("worker reached Redis again after %d failed polls", self._redis_failures)
            self._redis_failures = 0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        try:
            await super().start_jobs(job_ids)
        except (RedisError, OSError):
            # arq took a slot (semaphore and counter) for the job whose Redis round trip failed
            # and never gives it back: return it, or every outage shrinks the worker for good.
            self.job_counter -= 1
            self.sem.release()
            raise


def functions() -> list[Function]:
    """Every job function a worker can run."""
    return [
        func(system.ping, name="ping", keep_result=60),
        # keep_result=0: the per-organization job id must be reusable right after a run.
        func(
            organizations.finish_import_organization,
            name=FINISH_IMPORT_JOB,
            keep_result=0,
        ),
        func(organizations.resume_pending_imports, name=RESUME_IMPORTS_JOB, keep_result=0),
        func(home_organization.create_home_organization, name="create_home_organization"),
        func(home_organization.upgrade_home_organization, name="upgrade_home_organization"),
        func(home_organization.clean_up_failed_org, name="clean_up_failed_org", keep_result=60),
        # Sync and mirrors: keep_result=0 so each (per-organization) job id frees at once.
        func(sync.sync_registries, name=sync.SYNC_REGISTRIES_JOB, keep_result=0),
        func(sync.sync_organization, name=sync.SYNC_ORGANIZATION_JOB, keep_result=0),
        func(sync.sync_organization_meta, name=sync.ORGANIZATION_META_SYNC_JOB, keep_result=0),
        func(sync.validate_organization_table, name=sync.RECONCILE_JOB, keep_result=0),
        func(sync.sync_default_organizations, name=sync.DEFAULT_ORGANIZATIONS_JOB, keep_result=0),
        func(mirrors.mirror_check, name=mirrors.MIRROR_CHECK_JOB, keep_result=0),
        # Governance: fixed job ids (one creation, one push at a time); keep_result=0 frees them.
        func(governance.create_governance_body, name=GOVERNANCE_CREATE_JOB, keep_result=0),
        func(governance.push_governance_data, name=GOVERNANCE_PUSH_JOB, keep_result=0),
        func(governance.sync_governance_body, name=GOVERNANCE_SYNC_JOB, keep_result=0),
    ]


def periodic_tasks() -> list[Periodic]:
    """Every periodic job with its interval setting."""
    return [
        Periodic(
            RESUME_IMPORTS_JOB,
            lambda settings: settings.default_organizations_sync_task_interval,
        ),
        Periodic(
            "clean_up_failed_org",
            lambda settings: settings.clean_up_failed_org_task_interval,
        ),
        Periodic(sync.SYNC_REGISTRIES_JOB, lambda s: s.sync_registries_task_interval),
        Periodic(sync.ORGANIZATION_META_SYNC_JOB, lambda s: s.organization_meta_sync_task_interval),
        Periodic(sync.RECONCILE_JOB, lambda s: s.validate_organization_table_task_interval),
        Periodic(
            sync.DEFAULT_ORGANIZATIONS_JOB, lambda s: s.default_organizations_sync_task_interval
        ),
        Periodic(mirrors.MIRROR_CHECK_JOB, lambda s: s.mirror_check_task_interval),
        Periodic(GOVERNANCE_SYNC_JOB, lambda s: s.governance_sync_task_interval),
    ]


def worker_options(
    *,
    settings: ServiceSettings,
    job_timeout: float,
    max_tries: int,
    build_services: ServicesFactory,
    close_services: ServicesCloser | None = None,
) -> dict[str, Any]:
    """Keyword arguments for arq's Worker (or a WorkerSettings class)."""
    jobs = functions()
    # arq keeps a started job's in-progress key this long (jobs/leases.py needs it).
    in_progress_seconds = max(job.timeout_s or job_timeout for job in jobs) + 10

    async def on_startup(ctx: dict[str, Any]) -> None:
        services = await build_services()
        ctx["services"] = services
        ctx[IN_PROGRESS_SECONDS] = in_progress_seconds
        queue = ArqQueue(ctx["redis"])
        ctx["scheduler"] = asyncio.create_task(
            run_scheduler(
                redis=services.redis, queue=queue, tasks=periodic_tasks(), settings=settings
            ),
            name="cadt-scheduler",
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        scheduler: asyncio.Task[None] | None = ctx.pop("scheduler", None)
        if scheduler is not None:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
        services: Services | None = ctx.pop("services", None)
        if services is not None and close_services is not None:
            await close_services(services)

    return {
        "functions": jobs,
        "queue_name": QUEUE_NAME,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        "job_timeout": job_timeout,
        "max_tries": max_tries,
        "keep_result": 60,
        "health_check_interval": settings.worker_heartbeat_interval,
        "health_check_key": worker_health_key(f"{socket.gethostname()}:{os.getpid()}:{next(_SEQ)}"),
        "poll_delay": 0.1,
        "max_jobs": 20,
    }
