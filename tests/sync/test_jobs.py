"""The sync jobs: fan-out with per-organization job ids on real arq, and the schedule."""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker

from jobs import sync as sync_jobs
from jobs.queue import ArqQueue
from jobs.worker import functions, periodic_tasks
from services.config import ServiceSettings
from services.container import Services
from services.db.engine import Database
from services.redis_keys import QUEUE_NAME
from tests.conftest import TEST_REDIS_URL
from tests.sync.harness import Chain, FakeQueue, add_organization, insert


async def test_the_fan_out_enqueues_one_job_per_subscribed_organization(
    chain: Chain, database: Database, services: Services
):
    await add_organization(database, org_uid="a" * 64, registry_id="1" * 64)
    await add_organization(database, org_uid="b" * 64, registry_id="2" * 64)
    await add_organization(database, org_uid="c" * 64, registry_id="3" * 64, subscribed=False)
    await add_organization(database, org_uid="PENDING", registry_id=None)
    assert await sync_jobs.sync_registries({"services": services}) == 2
    queue = services.queue
    assert isinstance(queue, FakeQueue)
    assert sorted(job_id or "" for _f, _a, job_id in queue.jobs) == [
        "sync-organization:" + "a" * 64,
        "sync-organization:" + "b" * 64,
    ]
    # still queued: the same ids are refused, nothing is enqueued twice
    assert await sync_jobs.sync_registries({"services": services}) == 0


async def test_one_organization_is_never_queued_twice_and_frees_its_id_after_a_run(
    chain: Chain, database: Database, services: Services, redis_client: Any
):
    registry = chain.create_store([[insert("unit|a", {})]])
    chain.subscribe(registry)
    chain.cycle()
    org_uid = "d" * 64
    await add_organization(database, org_uid=org_uid, registry_id=registry)
    pool: ArqRedis = await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL))
    try:
        services.queue = ArqQueue(pool)
        ctx = {"services": services}
        assert await sync_jobs.sync_registries(ctx) == 1
        assert await sync_jobs.sync_registries(ctx) == 0  # queued: refused by arq
        sync_function = next(f for f in functions() if f.name == sync_jobs.SYNC_ORGANIZATION_JOB)
        assert sync_function.keep_result_s == 0
        worker = Worker(
            functions=[sync_function],
            queue_name=QUEUE_NAME,
            redis_pool=pool,
            burst=True,
            poll_delay=0,
            handle_signals=False,
            on_startup=_put_services(services),
        )
        await worker.main()
        assert worker.jobs_complete == 1
        await worker.close()
        # keep_result=0: the id is free again at once, the next tick enqueues it
        assert await sync_jobs.sync_registries(ctx) == 1
    finally:
        await pool.aclose()


def _put_services(services: Services) -> Any:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = services

    return startup


def test_every_sync_and_mirror_job_is_scheduled_with_its_interval_setting():
    settings = ServiceSettings(
        sync_registries_task_interval=1,
        organization_meta_sync_task_interval=2,
        validate_organization_table_task_interval=3,
        default_organizations_sync_task_interval=4,
        mirror_check_task_interval=5,
    )
    intervals = {task.function: task.interval(settings) for task in periodic_tasks()}
    assert intervals["sync_registries"] == 1
    assert intervals["sync_organization_meta"] == 2
    assert intervals["validate_organization_table"] == 3
    assert intervals["sync_default_organizations"] == 4
    assert intervals["mirror_check"] == 5
    assert ServiceSettings().sync_registries_task_interval == 5
    names = {function.name for function in functions()}
    assert {
        "sync_registries",
        "sync_organization",
        "sync_organization_meta",
        "validate_organization_table",
        "sync_default_organizations",
        "mirror_check",
    } <= names
