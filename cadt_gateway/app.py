"""The Starlette application and its lifespan: everything long-lived is built here, once.

Start order: data dir, Redis (embedded or external), database + migrations, upstream
(built-in simulator or real Chia), RPC clients, arq pool, then the in-process worker. Stop order
is the reverse; the worker closes before the Redis pool (DESIGN.md pitfalls).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, cast

import orjson
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker
from graphql import GraphQLFormattedError
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.streaming import SSETransport
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.types.unset import UNSET, UnsetType

import schema as graphql_schema
from cadt_gateway.auth import API_KEY_HEADER, API_KEY_PARAM, ApiKeyMiddleware, api_key_matches
from cadt_gateway.embedded_redis import EmbeddedRedis
from cadt_gateway.errors import GatewaySchema
from cadt_gateway.http_guard import JsonHTTPErrors, RequestGuard
from cadt_gateway.limits import QueryLimits, install_list_input_caps, limit_extensions
from cadt_gateway.metrics import MetricsExtension, instrument_worker, metrics_endpoint
from cadt_gateway.persisted import (
    GraphQLFront,
    QueryLayer,
    open_query_layer,
    query_layer_of,
    resolve_subscribe,
)
from cadt_gateway.ratelimit import RateLimitMiddleware
from cadt_gateway.request_id import REQUEST_ID_HEADER, RequestContextMiddleware
from cadt_gateway.response_media_type import GraphQLResponseMediaType
from cadt_gateway.settings import Settings, SimulatorSeed
from jobs.queue import ArqQueue
from jobs.worker import GatewayWorker, worker_options
from resolvers.context import Context
from schema.fanout import LastMapped
from schema.root import Mutation
from services.chia import build_chia_clients
from services.config import CADT_DEFAULT_GOVERNANCE_BODY_ID
from services.container import Services
from services.db.engine import Database
from services.db.migrate import migrate
from services.events import EventHub
from services.health import check_readiness
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
    redis_settings: RedisSettings
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None
    details: dict[str, str] = field(default_factory=dict)
    #: Persisted operations, data version and response cache (cadt_gateway/persisted.py).
    query_layer: QueryLayer | None = None


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
            datalayer_url, wallet_url, ssl_folder = await _embedded_simulator(
                settings, stack, embedded
            )
        settings = _with_governance_default(settings)

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
            lock=OrgOperationLock(
                pool,
                ttl_seconds=settings.lock_ttl_seconds,
                heartbeat_timeout_seconds=settings.lock_heartbeat_timeout_seconds,
            ),
            events=events,
            poll_interval=settings.effective_poll_interval,
            embedded=embedded,
            version=package_version(),
        )
        node = Node(
            settings=settings,
            services=services,
            pool=pool,
            redis_settings=RedisSettings.from_dsn(redis_url),
            details=embedded,
        )
        # Before the worker: every process counts its database writes (the response cache).
        node.query_layer = await stack.enter_async_context(
            open_query_layer(settings, redis=pool, database=database)
        )

        if run_worker:
            node.worker = GatewayWorker(
                **instrument_worker(
                    worker_options(
                        settings=settings,
                        job_timeout=settings.job_timeout_seconds,
                        max_tries=settings.job_max_tries,
                        build_services=_existing(services),
                    )
                ),
                # Its own pool: Worker.close() closes the pool it runs on.
                redis_settings=RedisSettings.from_dsn(redis_url),
                handle_signals=False,
            )
            node.worker_task = asyncio.create_task(node.worker.async_run(), name="cadt-worker")
            stack.push_async_callback(_stop_worker, node)

        yield node


async def _embedded_simulator(
    settings: Settings, stack: AsyncExitStack, embedded: dict[str, str]
) -> tuple[str, str, Path]:
    """Join the simulator another process of this data dir runs, or start one in-process."""
    from services.simulator import EmbeddedSimulator
    from services.simulator.embedded import RUNTIME_FILE

    sim_dir = settings.data_dir / "simulator"
    running = _running_simulator(sim_dir / RUNTIME_FILE)
    if running is not None:
        embedded["datalayer"] = f"built-in simulator of pid {running['pid']}"
        embedded["wallet"] = embedded["datalayer"]
        return (
            running["datalayer_urls"][0],
            running["wallet_urls"][0],
            Path(running["ssl_folders"][0]),
        )
    simulator = await stack.enter_async_context(
        EmbeddedSimulator(
            data_dir=sim_dir,
            block_seconds=settings.simulator_block_seconds,
            seed=settings.simulator_seed.value,
            keys=settings.simulator_keys,
        )
    )
    embedded["datalayer"] = f"built-in simulator {simulator.datalayer_url(0)}"
    embedded["wallet"] = f"built-in simulator {simulator.wallet_url(0)}"
    return simulator.datalayer_url(0), simulator.wallet_url(0), simulator.ssl_folder(0)


def _running_simulator(runtime_file: Path) -> dict[str, Any] | None:
    """The runtime record of a simulator served by another live process, if any."""
    try:
        info: dict[str, Any] = json.loads(runtime_file.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return info


def _with_governance_default(settings: Settings) -> Settings:
    """Unset CADT_GOVERNANCE_BODY_ID: the demo body of the built-in simulator, else CADT's."""
    if settings.governance_body_id is not None:
        return settings
    body = CADT_DEFAULT_GOVERNANCE_BODY_ID
    if settings.uses_embedded_simulator and settings.simulator_seed is SimulatorSeed.DEMO:
        from services.simulator import DEMO_GOVERNANCE_BODY_ID

        body = DEMO_GOVERNANCE_BODY_ID
    return settings.model_copy(update={"governance_body_id": body})


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


class KeepAliveTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with server `ping` messages after the ack (strawberry has none)."""

    view: GatewayGraphQL

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pinger: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        interval = self.view.keep_alive_seconds
        if self.connection_acknowledged and interval > 0 and self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_every(interval), name="cadt-ws-ping")

    async def _ping_every(self, interval: float) -> None:
        # Idle proxies and NATs drop silent connections; a ping also detects dead peers.
        with contextlib.suppress(WebSocketDisconnected, RuntimeError, OSError):
            while True:
                await asyncio.sleep(interval)
                await self.send_message({"type": "ping"})

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Persisted operations hold for WebSocket operations too (cadt_gateway/persisted.py)."""
        request = self.context.request
        if self.connection_acknowledged and request is not None:
            payload = cast(dict[str, Any], message["payload"])
            refusal = await resolve_subscribe(query_layer_of(request.scope), payload)
            if refusal is not None:
                error = cast(GraphQLFormattedError, refusal.error)
                await self.send_message(
                    ErrorMessage(id=message["id"], type="error", payload=[error])
                )
                return
        await super().handle_subscribe(message)

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        await super().shutdown()


class GatewayGraphQL(JsonHTTPErrors, GraphQL[Context, None]):
    """Strawberry's ASGI app with our per-request context and the API key on WebSockets.

    JsonHTTPErrors (cadt_gateway/http_guard.py) answers malformed requests with JSON errors.
    """

    graphql_transport_ws_handler_class = KeepAliveTransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        *,
        api_key: SecretStr | None = None,
        keep_alive_seconds: float = 0,
        **options: Any,
    ) -> None:
        super().__init__(schema, **options)
        self.api_key = api_key
        self.keep_alive_seconds = keep_alive_seconds
        # SSE heartbeats follow the same setting (0: practically none).
        heartbeat = keep_alive_seconds or _NO_HEARTBEAT_SECONDS

        class HeartbeatSSETransport(SSETransport):
            def __init__(self) -> None:
                super().__init__(heartbeat_interval=heartbeat)

        self.stream_transport_classes_by_protocol = {
            **self.stream_transport_classes_by_protocol,
            GRAPHQL_SSE_PROTOCOL: HeartbeatSSETransport,
        }

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | None = None
    ) -> Context:
        return Context(services=request.state.services, request=request)

    def encode_json(self, data: object) -> str | bytes:
        """JSON; a subscription `next` reuses the encoding of a result shared by subscribers."""
        if type(data) is dict and data.get("type") == "next":
            payload = data.get("payload")
            if type(payload) is dict and len(payload) == 1 and "data" in payload:
                # One event's result is one dict for all its subscribers (schema/fanout.py):
                # encode it once, and only the operation id per subscriber.
                identifier = json.dumps(data["id"])
                encoded = _encode_data(payload["data"])
                return f'{{"id":{identifier},"type":"next","payload":{encoded}}}'
        return encode_json(data)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Accept the connection_init only with the API key (else strawberry closes 4403)."""
        given = (context.connection_params or {}).get(API_KEY_PARAM)
        if not api_key_matches(self.api_key, given):
            raise ConnectionRejectionError()
        accepted: UnsetType = UNSET  # an ack without payload
        return accepted


def encode_json(data: object) -> str:
    """Compact JSON: orjson (a page of 50 organizations: 31 us instead of json's 500 us),
    json for what orjson refuses (an integer above 64 bits)."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(data, separators=(",", ":"))


def _encode_payload_data(data: object) -> str:
    return json.dumps({"data": data}, separators=(",", ":"))


_encode_data = LastMapped(_encode_payload_data)

#: SSE heartbeat interval when keep-alive is off (strawberry's stream always has a heartbeat).
_NO_HEARTBEAT_SECONDS = 24 * 3600.0


class EventStreamOnly:
    """The SSE endpoint: only `Accept: text/event-stream` requests reach the GraphQL view."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = Headers(scope=scope).get("accept", "")
        if scope["type"] == "http" and "text/event-stream" not in accept:
            response = JSONResponse(
                {
                    "errors": [
                        {
                            "message": (
                                "POST a GraphQL subscription with Accept: text/event-stream "
                                "(graphql-sse, distinct connections mode)."
                            ),
                            "extensions": {"code": "NOT_ACCEPTABLE"},
                        }
                    ]
                },
                status_code=406,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, run_worker: bool = True) -> Starlette:
    """The ASGI app of a node; `run_worker=False` leaves the jobs to `cadt-gateway worker`."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_node(settings, run_worker=run_worker) as node:
            app.state.node = node
            # What start-up built (schema, modules, clients) lives as long as the process: keep
            # it out of the collector's full passes, which otherwise walk it during every
            # subscription fan-out (bench/subscription_fanout).
            gc.collect()
            gc.freeze()
            try:
                yield {"services": node.services, "node": node}
            finally:
                gc.unfreeze()  # collectable again: tests start many apps in one process

    # Factories, not instances: a fresh extension per request, the LRU caches are module-wide.
    # The limits run before validation (cadt_gateway/limits.py); errors: cadt_gateway/errors.py.
    install_list_input_caps(Mutation)
    schema = graphql_schema.build_schema(
        extensions=[MetricsExtension, *limit_extensions(QueryLimits.from_settings(settings))],
        schema_class=GatewaySchema,
    )
    schema.mask_unexpected_errors = settings.masks_errors  # type: ignore[attr-defined]
    transport_options: dict[str, Any] = {
        "api_key": settings.api_key,
        "keep_alive_seconds": settings.ws_keep_alive_seconds,
        "connection_init_wait_timeout": timedelta(
            seconds=settings.ws_connection_init_timeout_seconds
        ),
        "max_subscriptions_per_connection": settings.ws_max_subscriptions_per_connection,
        "allowed_origins": settings.allowed_origins,
    }
    # WebSockets speak graphql-transport-ws only (the legacy graphql-ws protocol is refused).
    graphql_app = GatewayGraphQL(
        schema,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        **transport_options,
    )
    # For clients that cannot open WebSockets: graphql-sse, distinct connections mode.
    stream_app = EventStreamOnly(
        GatewayGraphQL(
            schema,
            graphql_ide=None,
            allow_queries_via_get=False,
            subscription_protocols=(GRAPHQL_SSE_PROTOCOL,),
            **transport_options,
        )
    )

    # Persisted operations and the response cache, in front of the HTTP views.
    graphql_http = GraphQLFront(graphql_app, schema=schema._schema, settings=settings)
    stream_http = GraphQLFront(stream_app, schema=schema._schema, settings=settings, cache=False)

    async def index(_: Request) -> Response:
        return RedirectResponse("/graphql")

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        parts = await check_readiness(request.state.services)
        ready = all(part.state.value == "UP" for part in parts.values())
        body = {name: {"state": p.state.value, "detail": p.detail} for name, p in parts.items()}
        return JSONResponse({"ready": ready, **body}, status_code=200 if ready else 503)

    # Outermost first: request id and metrics, CORS, the graphql-response+json media type,
    # rate limit, API key, method/type/size.
    middleware = [
        Middleware(RequestContextMiddleware, known_paths=KNOWN_PATHS),
        Middleware(GraphQLResponseMediaType, paths=frozenset(GRAPHQL_HTTP_PATHS)),
        Middleware(
            RateLimitMiddleware,
            requests=settings.effective_rate_limit_requests,
            window_seconds=settings.rate_limit_window_seconds,
            api_key=settings.api_key,
            trusted_proxies=settings.trusted_proxies,
            paths=GRAPHQL_HTTP_PATHS,
        ),
        Middleware(ApiKeyMiddleware, api_key=settings.api_key, paths=GRAPHQL_HTTP_PATHS),
        Middleware(RequestGuard, paths=GRAPHQL_HTTP_PATHS, max_body_bytes=settings.max_body_bytes),
    ]
    if settings.allowed_origins:
        # Outside the refusals, so that preflights, 401s and 429s carry the CORS headers too.
        middleware.insert(
            1,
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.allowed_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["content-type", "accept", API_KEY_HEADER, REQUEST_ID_HEADER],
                expose_headers=[REQUEST_ID_HEADER, "retry-after"],
                max_age=600,
            ),
        )
    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql_http, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql_app),
        Route("/graphql/stream", stream_http, methods=["POST"]),
    ]
    if settings.metrics:
        routes.append(Route("/metrics", metrics_endpoint))
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
    )


#: HTTP paths that need the API key.
GRAPHQL_HTTP_PATHS = ("/graphql", "/graphql/stream")
#: Route labels of cadt_http_requests_total (anything else counts as `other`).
KNOWN_PATHS = ("/", "/healthz", "/readyz", "/metrics", *GRAPHQL_HTTP_PATHS)
