"""The Starlette application and its lifespan: everything long-lived is built here, once.

Start order: data dir, Redis (embedded or external), database + migrations, upstream
(built-in simulator or real Chia), RPC clients, arq pool, then the in-process worker. Stop order
is the reverse; the worker closes before the Redis pool (DESIGN.md pitfalls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache

import schema as graphql_schema
from cadt_gateway.embedded_redis import EmbeddedRedis
from cadt_gateway.settings import Settings
from jobs.queue import ArqQueue
from jobs.worker import worker_options
from resolvers.context import Context
from services.chia import build_chia_clients
from services.container import Services
from services.db.engine import Database
from services.db.migrate import migrate
from services.events import EventHub
from services.health import check_health
from services.oplock import OrgOperationLock

logger = logging.getLogger(__name__)


def package_version() -> str:
    """The installed cadt-gateway version."""
    try:
        return version("cadt-gateway")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0"


@dataclass
class Node:
    """Everything a running node owns; closed in reverse order by `AsyncExitStack`."""

    settings: Settings
    services: Services
    pool: ArqRedis
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None
    details: dict[str, str] = field(default_factory=dict)


@asynccontextmanager
async def open_node(settings: Settings, *, run_worker: bool) -> AsyncIterator[Node]:
    """Start every part of a node (embedded ones when not configured) and stop them at exit."""
    async with AsyncExitStack() as stack:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        embedded: dict[str, str] = {}

        redis_url = settings.redis_url
        if redis_url is None:
            embedded_redis = EmbeddedRedis(settings.data_dir)
            redis_url = await embedded_redis.astart()
            stack.push_async_callback(embedded_redis.astop)
            embedded["redis"] = f"embedded redis-server ({redis_url})"

        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        stack.push_async_callback(pool.aclose)

        database = Database(settings.resolved_database_url)
        stack.push_async_callback(database.dispose)
        await migrate(database.url)
        if database.dialect == "sqlite":
            embedded["database"] = f"SQLite {database.engine.url.database}"

        datalayer_url, wallet_url = settings.datalayer_url, settings.wallet_url
        ssl_folder = settings.ssl_folder
        if datalayer_url is None or wallet_url is None:
            from services.simulator import EmbeddedSimulator

            simulator = await stack.enter_async_context(
                EmbeddedSimulator(
                    data_dir=settings.data_dir / "simulator",
                    block_seconds=settings.simulator_block_seconds,
                    seed=settings.simulator_seed.value,
                    keys=settings.simulator_keys,
                )
            )
            datalayer_url, wallet_url = simulator.datalayer_url(0), simulator.wallet_url(0)
            ssl_folder = simulator.ssl_folder(0)
            embedded["datalayer"] = f"built-in simulator {datalayer_url}"
            embedded["wallet"] = f"built-in simulator {wallet_url}"

        datalayer, wallet = build_chia_clients(
            datalayer_url=datalayer_url,
            wallet_url=wallet_url,
            ssl_folder=ssl_folder,
            connect_timeout=settings.rpc_connect_timeout_seconds,
            datalayer_timeout=settings.datalayer_timeout_seconds,
            wallet_timeout=settings.wallet_timeout_seconds,
            retry_attempts=settings.rpc_retry_attempts,
            retry_max_wait=settings.rpc_retry_max_wait_seconds,
        )
        stack.push_async_callback(datalayer.aclose)
        stack.push_async_callback(wallet.aclose)

        events = EventHub(pool)
        stack.push_async_callback(events.stop)
        services = Services(
            settings=settings,
            db=database,
            redis=pool,
            datalayer=datalayer,
            wallet=wallet,
            queue=ArqQueue(pool),
            lock=OrgOperationLock(pool, ttl_seconds=settings.lock_ttl_seconds),
            events=events,
            poll_interval=settings.effective_poll_interval,
            embedded=embedded,
            version=package_version(),
        )
        node = Node(settings=settings, services=services, pool=pool, details=embedded)

        if run_worker:
            node.worker = Worker(
                **worker_options(
                    settings=settings,
                    job_timeout=settings.job_timeout_seconds,
                    max_tries=settings.job_max_tries,
                    build_services=_existing(services),
                ),
                redis_pool=pool,
                handle_signals=False,
            )
            node.worker_task = asyncio.create_task(node.worker.async_run(), name="cadt-worker")
            stack.push_async_callback(_stop_worker, node)

        yield node


def _existing(services: Services) -> Any:
    async def build() -> Services:
        return services

    return build


async def _stop_worker(node: Node) -> None:
    if node.worker is not None:
        await node.worker.close()
    if node.worker_task is not None:
        node.worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await node.worker_task


class GatewayGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app with our per-request context."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        return Context(services=request.state.services, request=request)


def create_app(settings: Settings, *, run_worker: bool = True) -> Starlette:
    """The ASGI app of a node; `run_worker=False` leaves the jobs to `cadt-gateway worker`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_node(settings, run_worker=run_worker) as node:
            app.state.node = node
            yield {"services": node.services, "node": node}

    graphql_app = GatewayGraphQL(
        graphql_schema.build_schema(
            extensions=[ParserCache(maxsize=1000), ValidationCache(maxsize=1000)]
        ),
        subscription_protocols=("graphql-transport-ws",),
    )

    async def index(_: Request) -> Response:
        return RedirectResponse("/graphql")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        health = await check_health(request.state.services)
        parts = {
            "database": health.database,
            "redis": health.redis,
            "worker": health.worker,
        }
        ready = all(part.state.value == "UP" for part in parts.values())
        body = {name: {"state": p.state.value, "detail": p.detail} for name, p in parts.items()}
        return JSONResponse({"ready": ready, **body}, status_code=200 if ready else 503)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/graphql", graphql_app, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql_app),
        ],
        lifespan=lifespan,
    )
