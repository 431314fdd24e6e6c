"""A standalone worker process (`cadt-gateway worker`) and arq's WorkerSettings entry point.

`cadt-gateway worker` is the supported way to run a worker. arq's own command works too with an
external Redis: `CADT_REDIS_URL=redis://... arq cadt_gateway.worker.WorkerSettings`; the class is
built on first access from the CADT_* settings (module __getattr__), so importing this module
never reads the environment. Periodic jobs are enqueued by the Redis-claimed interval
scheduler that every worker runs (jobs/scheduler.py), not by arq's cron_jobs: arq's cron
resolves whole seconds only and our intervals go below one second in tests. One difference:
arq's command runs arq's plain Worker, which stops when Redis goes away; `cadt-gateway worker`
(GatewayWorker) rides a Redis restart out.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from arq.connections import RedisSettings

from cadt_gateway.app import open_node
from cadt_gateway.metrics import instrument_worker
from cadt_gateway.settings import Settings
from jobs.worker import GatewayWorker, worker_options
from services.container import Services


async def run_worker(settings: Settings) -> None:
    """Open the node's parts (no GraphQL) and run one arq worker until a signal stops it."""
    async with open_node(settings, run_worker=False) as node:

        async def existing() -> Services:
            return node.services

        worker = GatewayWorker(
            **instrument_worker(
                worker_options(
                    settings=settings,
                    job_timeout=settings.job_timeout_seconds,
                    max_tries=settings.job_max_tries,
                    build_services=existing,
                )
            ),
            redis_settings=node.redis_settings,
            handle_signals=True,
        )
        try:
            await worker.async_run()
        finally:
            await worker.close()


def worker_settings_class(settings: Settings | None = None) -> type:
    """arq's WorkerSettings for these settings (the node's parts opened in on_startup)."""
    from cadt_gateway.settings import SettingsError, load_settings

    settings = settings or load_settings()
    if settings.redis_url is None:
        raise SettingsError(
            "CADT_REDIS_URL: arq's WorkerSettings needs an external Redis (the embedded one "
            "belongs to `cadt-gateway serve`); or run `cadt-gateway worker`"
        )
    stacks: list[AsyncExitStack] = []

    async def build_services() -> Services:
        stack = AsyncExitStack()
        node = await stack.enter_async_context(open_node(settings, run_worker=False))
        stacks.append(stack)
        return node.services

    async def close_services(_services: Services) -> None:
        while stacks:
            await stacks.pop().aclose()

    options: dict[str, Any] = instrument_worker(
        worker_options(
            settings=settings,
            job_timeout=settings.job_timeout_seconds,
            max_tries=settings.job_max_tries,
            build_services=build_services,
            close_services=close_services,
        )
    )
    options["redis_settings"] = RedisSettings.from_dsn(settings.redis_url)
    return type("WorkerSettings", (), options)


def __getattr__(name: str) -> Any:
    if name == "WorkerSettings":
        return worker_settings_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
