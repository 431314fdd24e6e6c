"""Prometheus metrics (prometheus_client, the process-wide default registry).

Counted as things happen:
- `cadt_graphql_operations_total{type,name}` and `cadt_graphql_operation_duration_seconds`
  (a schema extension around each operation; a subscription's duration is its lifetime),
- `cadt_graphql_errors_total{type,name,code}` (errors.report_errors),
- `cadt_http_requests_total{path,method,status}` (request_id.RequestContextMiddleware),
- `cadt_jobs_total{function,outcome}`, `cadt_job_duration_seconds{function}`,
  `cadt_jobs_in_progress{function}` (every arq job function, wrapped by instrument_worker),
- `cadt_websocket_connections` (open WebSockets of this process).

Read at scrape time (GET /metrics), from this node's state:
- `cadt_event_subscribers` (local subscribers of progress events, EventHub.subscriber_count),
- `cadt_operation_lock_held_seconds` (how long the org-operation lock has been held; 0 when free),
- `cadt_sync_generations_behind{org_uid}`, `cadt_sync_seconds_since_last_sync{org_uid}` and
  `cadt_sync_backoff{org_uid}` (one query over the subscribed organizations' sync state),
- `cadt_worker_heartbeats` (workers with a live heartbeat in Redis).

The in-process worker counts into the same registry; a separate `cadt-gateway worker` serves its
own with `--metrics-port`. Operation names come from clients: only the first
MAX_OPERATION_NAMES distinct ones get their own label value, later ones count as `other`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from arq.worker import Function, Retry
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.requests import Request
from starlette.responses import Response
from strawberry.extensions import SchemaExtension

from cadt_gateway.logs import job_context
from services.db.models import Organization, SyncState
from services.redis_keys import WORKER_HEALTH_PREFIX

if TYPE_CHECKING:
    from strawberry.types import ExecutionContext

    from services.container import Services

logger = logging.getLogger(__name__)

#: Distinct operation names that get a label value of their own (bounded cardinality).
MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]{0,63}$")
_known_names: set[str] = set()

OPERATIONS = Counter("cadt_graphql_operations", "GraphQL operations executed.", ["type", "name"])
OPERATION_SECONDS = Histogram(
    "cadt_graphql_operation_duration_seconds",
    "Time from receiving a GraphQL operation to its result (subscriptions: their lifetime).",
    ["type", "name"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ERRORS = Counter(
    "cadt_graphql_errors", "GraphQL errors returned, by code.", ["type", "name", "code"]
)
HTTP_REQUESTS = Counter(
    "cadt_http_requests", "HTTP responses, by route and status.", ["path", "method", "status"]
)
JOBS = Counter("cadt_jobs", "Job runs by function and outcome.", ["function", "outcome"])
JOB_SECONDS = Histogram(
    "cadt_job_duration_seconds",
    "Job run time by function.",
    ["function"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
JOBS_IN_PROGRESS = Gauge("cadt_jobs_in_progress", "Jobs running now.", ["function"])
WEBSOCKETS = Gauge("cadt_websocket_connections", "Open WebSocket connections of this process.")
SUBSCRIBERS = Gauge("cadt_event_subscribers", "Local subscribers of progress events.")
LOCK_HELD = Gauge(
    "cadt_operation_lock_held_seconds", "Seconds the org-operation lock has been held (0: free)."
)
SYNC_BEHIND = Gauge(
    "cadt_sync_generations_behind",
    "DataLayer generations not yet applied, per subscribed organization.",
    ["org_uid"],
)
SYNC_AGE = Gauge(
    "cadt_sync_seconds_since_last_sync",
    "Seconds since the last completed sync run, per subscribed organization.",
    ["org_uid"],
)
SYNC_BACKOFF = Gauge("cadt_sync_backoff", "1 while an organization's sync backs off.", ["org_uid"])
WORKERS = Gauge("cadt_worker_heartbeats", "Workers with a live heartbeat in Redis.")


# ---------------------------------------------------------------------- GraphQL operations


def _bounded_name(name: str | None) -> str:
    if not name:
        return "anonymous"
    if not _NAME.match(name):
        return "other"
    if name not in _known_names:
        if len(_known_names) >= MAX_OPERATION_NAMES:
            return "other"
        _known_names.add(name)
    return name


def operation_labels(context: ExecutionContext | None) -> tuple[str, str]:
    """(type, name) labels of an operation; `unknown` before it is parsed."""
    if context is None:
        return "unknown", "anonymous"
    try:
        kind = context.operation_type.value if context.graphql_document is not None else "unknown"
    except Exception:  # no such operation in the document
        kind = "unknown"
    return kind, _bounded_name(context.operation_name)


def graphql_error(operation_type: str, operation_name: str, code: str) -> None:
    """Count one error returned to a client."""
    ERRORS.labels(operation_type, operation_name, code[:64]).inc()


class MetricsExtension(SchemaExtension):
    """Counts and times every operation (a fresh instance per operation)."""

    def on_operation(self) -> Iterator[None]:
        """Time the whole operation, then count it by type and name."""
        started = time.perf_counter()
        yield
        kind, name = operation_labels(self.execution_context)
        OPERATIONS.labels(kind, name).inc()
        OPERATION_SECONDS.labels(kind, name).observe(time.perf_counter() - started)


# ---------------------------------------------------------------------- jobs


def _instrumented(function: Function) -> Function:
    inner = function.coroutine
    name = function.name

    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        outcome = "failure"
        started = time.perf_counter()
        JOBS_IN_PROGRESS.labels(name).inc()
        with job_context(str(ctx.get("job_id") or ""), name):
            try:
                result = await inner(ctx, *args, **kwargs)
                outcome = "success"
                return result
            except Retry:
                outcome = "retry"
                raise
            except asyncio.CancelledError:
                outcome = "cancelled"
                raise
            finally:
                JOBS_IN_PROGRESS.labels(name).dec()
                JOBS.labels(name, outcome).inc()
                JOB_SECONDS.labels(name).observe(time.perf_counter() - started)

    run.__qualname__ = getattr(inner, "__qualname__", name)
    return dataclasses.replace(function, coroutine=run)


def instrument_worker(options: dict[str, Any]) -> dict[str, Any]:
    """arq Worker options whose job functions count runs and failures and log their job id."""
    functions = [_instrumented(function) for function in options.get("functions", [])]
    return {**options, "functions": functions}


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> None:
    """Serve this process's registry on http://host:port/metrics (a daemon thread)."""
    start_http_server(port, addr=host)
    logger.info("worker metrics on http://%s:%d/metrics", host, port)


# ---------------------------------------------------------------------- scrape time


async def _sync_gauges(services: Services) -> None:
    organizations = Organization.__table__  # type: ignore[attr-defined]
    states = SyncState.__table__  # type: ignore[attr-defined]
    query = (
        sa.select(
            organizations.c.org_uid,
            organizations.c.sync_remaining,
            states.c.datalayer_generation,
            states.c.datalayer_target_generation,
            states.c.last_synced_at,
            states.c.backoff_next_retry_at,
        )
        .select_from(organizations.outerjoin(states, states.c.org_uid == organizations.c.org_uid))
        .where(organizations.c.subscribed.is_(True))
    )
    async with services.db.session() as session:
        rows = (await session.execute(query)).mappings().all()
    now = datetime.now(UTC)
    SYNC_BEHIND.clear()
    SYNC_AGE.clear()
    SYNC_BACKOFF.clear()
    for row in rows:
        uid = row["org_uid"]
        behind = row["sync_remaining"] or 0
        if row["datalayer_target_generation"] is not None:
            behind = max(
                behind,
                row["datalayer_target_generation"] - (row["datalayer_generation"] or 0),
            )
        SYNC_BEHIND.labels(uid).set(max(0, behind))
        if row["last_synced_at"] is not None:
            SYNC_AGE.labels(uid).set((now - _aware(row["last_synced_at"])).total_seconds())
        SYNC_BACKOFF.labels(uid).set(1 if row["backoff_next_retry_at"] is not None else 0)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _lock_gauge(services: Services) -> None:
    holder = await services.lock.holder()
    held = 0.0
    if holder is not None:
        held = max(0.0, (datetime.now(UTC) - _aware(holder.started_at)).total_seconds())
    LOCK_HELD.set(held)


async def _worker_gauge(services: Services) -> None:
    count = 0
    async for _ in services.redis.scan_iter(match=WORKER_HEALTH_PREFIX + "*"):
        count += 1
    WORKERS.set(count)


async def refresh_node_gauges(services: Services) -> None:
    """Update the scrape-time gauges; a part that does not answer keeps its last value."""
    SUBSCRIBERS.set(services.events.subscriber_count)
    parts: list[Callable[[Services], Awaitable[None]]] = [
        _sync_gauges,
        _lock_gauge,
        _worker_gauge,
    ]
    results = await asyncio.gather(
        *(asyncio.wait_for(part(services), 3.0) for part in parts), return_exceptions=True
    )
    for part, result in zip(parts, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning(
                "metrics: %s failed: %s", part.__name__.strip("_"), type(result).__name__
            )


async def metrics_endpoint(request: Request) -> Response:
    """GET /metrics: the Prometheus text exposition of this process."""
    await refresh_node_gauges(request.state.services)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
