"""A standalone worker process (`cadt-gateway worker`) and arq's WorkerSettings entry point."""

from __future__ import annotations

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
