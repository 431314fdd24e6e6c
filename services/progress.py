"""Live progress of org operations and of the home-organization creation, for queries and streams.

Reading:
- `creation_status(services)` is what `Query.creationStatus` shows: the persisted creation record
  of the node's data-model version (Meta `pendingOrgCreation:<version>`) merged with the live
  lock by `services.creation_state.summarize` (domain 2.5).
- `operation_events(services)` and `creation_status_changes(services)` are the two progress
  streams. Each subscribes to the process's EventHub BEFORE reading its snapshot, so nothing
  published in between is lost, yields the snapshot first, then every change. Pub/sub drops what
  a disconnected process misses; on the hub's `None` marker (Redis reconnected) both re-read and
  yield a fresh snapshot. A re-read that fails because Redis is away again does not end the
  stream: it is tried again on the next marker (or, for the creation status, after a pause).

Publishing:
- Lock changes (STARTED/PROGRESS/FINISHED/FAILED) are published by `services.oplock` itself.
- `publish_creation_status(services)` publishes the current creation status on CREATION_CHANNEL.
  **The creation job calls it after every save of its state** (and after clearing it); a publish
  identical to the previous one from this process is dropped. Subscribers always re-read the
  summary on an event, so the payload is informative and a dropped duplicate loses nothing.

Fan-out cost matters (thousands of subscribers per process, docs in bench/): the EventHub hands
the same decoded payload object to every local queue, so the decoding of an event and the
creation-status re-read are done once per event and process, not once per subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from redis.exceptions import RedisError

from services.container import Services
from services.creation_state import CreationRecord, CreationSummary, meta_key, summarize
from services.domain import LockSnapshot, OrgOperation, operation_of, utcnow
from services.events import CREATION_CHANNEL, OPERATION_CHANNEL, EventHub, Message, publish
from services.fencing import read_meta
from services.oplock import INITIAL_STATUS, Holder

logger = logging.getLogger(__name__)


class OperationEventKind(StrEnum):
    """What happened to the org-operation lock."""

    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    FINISHED = "FINISHED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class OperationEvent:
    """One change of the lock holder: what `operationProgress` streams."""

    kind: OperationEventKind
    label: str
    status: str
    started_at: datetime
    at: datetime
    error: str | None
    org_uid: str | None
    #: The holder's token; never shown to clients, it tells holders apart after a reconnect.
    token: str

    @property
    def operation(self) -> OrgOperation:
        """The operation of the holder."""
        return operation_of(self.label)

    @property
    def elapsed_seconds(self) -> int:
        """Whole seconds from the start of the operation to this event, never negative."""
        return max(0, round((self.at - self.started_at).total_seconds()))

    @classmethod
    def of_holder(cls, holder: Holder, kind: OperationEventKind, at: datetime) -> OperationEvent:
        """An event describing `holder` as it is at `at`."""
        return cls(
            kind=kind,
            label=holder.label,
            status=holder.status,
            started_at=holder.started_at,
            at=at,
            error=None,
            org_uid=holder.org_uid,
            token=holder.token,
        )


# ------------------------------------------------------------------------------- reading


async def operation_status(services: Services) -> LockSnapshot | None:
    """The live lock status (L12): None when no org operation holds the lock."""
    return await services.lock.status()


async def read_creation_record(services: Services) -> CreationRecord | None:
    """The persisted creation record of the node's data-model version, or None."""
    async with services.db.session() as session:
        raw = await read_meta(session, meta_key(services.settings.data_model_version.value))
    return None if raw is None else CreationRecord.from_json(raw)


async def creation_status(services: Services) -> CreationSummary:
    """The creation status: persisted record, stale detection and the live lock merged."""
    record = await read_creation_record(services)
    lock = await services.lock.status()
    return summarize(
        record,
        lock,
        timeout=timedelta(seconds=services.settings.creation_timeout_seconds),
        max_retries=services.settings.creation_max_retries,
    )


def creation_status_payload(summary: CreationSummary) -> dict[str, Any]:
    """The creation status as JSON (the camelCase shape of the GraphQL type)."""
    live = summary.live_status
    return {
        "inProgress": summary.in_progress,
        "state": summary.state.value if summary.state else None,
        "message": summary.message,
        "progress": summary.progress,
        "retryCount": summary.retry_count,
        "maxRetries": summary.max_retries,
        "startedAt": _iso(summary.started_at),
        "updatedAt": _iso(summary.updated_at),
        "stores": (
            {
                kind: {"id": s.id, "confirmed": s.confirmed, "dataWritten": s.data_written}
                for kind, s in summary.stores.items()
            }
            if summary.stores is not None
            else None
        ),
        "error": summary.error,
        "liveStatus": (
            {
                "operation": live.operation.value,
                "label": live.label,
                "status": live.status,
                "startedAt": _iso(live.started_at),
            }
            if live is not None
            else None
        ),
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


# ----------------------------------------------------------------------------- publishing

#: Last creation-status payload published per process (keyed by the node's hub).
_last_creation_publish: weakref.WeakKeyDictionary[EventHub, str] = weakref.WeakKeyDictionary()


async def publish_creation_status(services: Services) -> None:
    """Publish the current creation status on CREATION_CHANNEL (unless it equals the last one)."""
    payload = creation_status_payload(await creation_status(services))
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    if _last_creation_publish.get(services.events) == encoded:
        return
    _last_creation_publish[services.events] = encoded
    await publish(services.redis, CREATION_CHANNEL, payload)


# ------------------------------------------------------------------------------- streams

#: The last decoded lock event: the hub hands one payload object to every local subscriber.
_last_decoded: tuple[dict[str, Any], OperationEvent | None] | None = None


def decode_operation_event(payload: dict[str, Any]) -> OperationEvent | None:
    """The event carried by a lock message (None for a malformed one), decoded once per message."""
    global _last_decoded
    cached = _last_decoded
    if cached is not None and cached[0] is payload:
        return cached[1]
    event: OperationEvent | None
    try:
        holder = Holder.from_json(payload["holder"])
        kind = OperationEventKind(payload["kind"])
        at = datetime.fromtimestamp(int(payload["at_ms"]) / 1000, UTC)
    except (KeyError, TypeError, ValueError):
        event = None
    else:
        event = OperationEvent(
            kind=kind,
            label=holder.label,
            status=holder.status,
            started_at=holder.started_at,
            at=at,
            error=(str(payload.get("error") or "") or None)
            if kind is OperationEventKind.FAILED
            else None,
            org_uid=holder.org_uid,
            token=holder.token,
        )
    _last_decoded = (payload, event)
    return event


def _snapshot_kind(holder: Holder) -> OperationEventKind:
    return (
        OperationEventKind.STARTED
        if holder.status == INITIAL_STATUS
        else OperationEventKind.PROGRESS
    )


def _same_state(a: OperationEvent, b: OperationEvent) -> bool:
    return (a.token, a.status, a.org_uid) == (b.token, b.status, b.org_uid)


async def operation_events(services: Services) -> AsyncGenerator[OperationEvent, None]:
    """The current lock holder as an event (if any), then every STARTED/PROGRESS/FINISHED/FAILED."""
    async with services.events.subscribe(OPERATION_CHANNEL) as queue:
        last: OperationEvent | None = None
        holder = await services.lock.holder()
        if holder is not None:
            last = OperationEvent.of_holder(holder, _snapshot_kind(holder), utcnow())
            yield last
        while True:
            message = await queue.get()
            if message is None:
                try:
                    fresh_events = await _resync_operation(services, last)
                except RedisError as error:
                    # Redis went away again: the hub's next reconnect marker resyncs.
                    logger.info("operation progress: could not resync (%s)", error)
                    continue
                for fresh in fresh_events:
                    last = fresh
                    yield fresh
                continue
            event = decode_operation_event(message)
            if event is None:
                continue
            if (
                last is not None
                and event.kind is not OperationEventKind.FINISHED
                and event.kind is not OperationEventKind.FAILED
                and _same_state(event, last)
            ):
                continue  # the snapshot already showed this state (published while we read it)
            last = event
            yield event


async def _resync_operation(
    services: Services, last: OperationEvent | None
) -> list[OperationEvent]:
    """Events that bring a client up to date after the hub reconnected to Redis."""
    now = utcnow()
    holder = await services.lock.holder()
    events: list[OperationEvent] = []
    running = last is not None and last.kind not in (
        OperationEventKind.FINISHED,
        OperationEventKind.FAILED,
    )
    if last is not None and running and (holder is None or holder.token != last.token):
        # The end was published while we were away; whether it failed is not recorded in
        # the lock, so report it as finished and let the client read the outcome elsewhere.
        events.append(
            OperationEvent(
                kind=OperationEventKind.FINISHED,
                label=last.label,
                status=last.status,
                started_at=last.started_at,
                at=now,
                error=None,
                org_uid=last.org_uid,
                token=last.token,
            )
        )
    if holder is not None:
        events.append(OperationEvent.of_holder(holder, _snapshot_kind(holder), now))
    return events


#: A creation-status re-read that failed on Redis is tried again after this (or on reconnect).
REREAD_AFTER_FAILURE_SECONDS = 1.0

#: Creation-status re-reads in flight, per node and per triggering event (see module doc).
_shared_reads: dict[tuple[int, int], tuple[object, asyncio.Task[CreationSummary]]] = {}


async def _creation_status_after(services: Services, trigger: object) -> CreationSummary:
    """The creation status read after `trigger`, shared by every local subscriber it woke."""
    key = (id(services), id(trigger))
    entry = _shared_reads.get(key)
    if entry is None or entry[0] is not trigger:
        # Its own task: a subscriber that leaves mid-read does not cancel the others' read.
        task = asyncio.create_task(creation_status(services), name="cadt-creation-read")
        # The entry keeps `trigger` alive, so its id cannot be reused while the read runs.
        entry = (trigger, task)
        _shared_reads[key] = entry
        task.add_done_callback(_forget_read(key, entry))
    return await asyncio.shield(entry[1])


def _forget_read(
    key: tuple[int, int], entry: tuple[object, asyncio.Task[CreationSummary]]
) -> Callable[[asyncio.Task[CreationSummary]], None]:
    def done(task: asyncio.Task[CreationSummary]) -> None:
        if _shared_reads.get(key) is entry:
            del _shared_reads[key]
        if not task.cancelled():
            task.exception()  # retrieved here; every waiter re-raises it

    return done


def _seconds_until_stale(summary: CreationSummary, timeout: float) -> float | None:
    """When a running creation turns stale without any event (domain 2.5), if it can."""
    if summary.state is None or summary.state.terminal or summary.started_at is None:
        return None
    if summary.progress == -1:
        return None  # already stale
    deadline = summary.started_at + timedelta(seconds=timeout)
    return max(0.0, (deadline - utcnow()).total_seconds()) + 0.001


async def creation_status_changes(services: Services) -> AsyncGenerator[CreationSummary, None]:
    """The current creation status, then one value on every change; never twice the same."""
    wakeup = asyncio.Event()
    trigger: list[object] = [None]

    async def forward(queue: asyncio.Queue[Message]) -> None:
        while True:
            message = await queue.get()
            # Keep only the latest trigger: bursts coalesce into one re-read.
            trigger[0] = message if message is not None else object()
            wakeup.set()

    async with (
        services.events.subscribe(CREATION_CHANNEL) as creation_queue,
        services.events.subscribe(OPERATION_CHANNEL) as operation_queue,
    ):
        forwarders = [
            asyncio.create_task(forward(creation_queue), name="cadt-creation-forward"),
            asyncio.create_task(forward(operation_queue), name="cadt-operation-forward"),
        ]
        try:
            last = await creation_status(services)
            yield last
            timeout = services.settings.creation_timeout_seconds
            retry_in: float | None = None
            while True:
                wait = _seconds_until_stale(last, timeout)
                if retry_in is not None:
                    wait = retry_in if wait is None else min(wait, retry_in)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), wait)
                wakeup.clear()
                source = trigger[0] or object()
                trigger[0] = None
                try:
                    summary = await _creation_status_after(services, source)
                except RedisError as error:
                    # Redis went away mid-read: the subscription stays open and reads again
                    # on the hub's reconnect marker, or after a pause.
                    logger.info("creation status: could not re-read (%s); retrying", error)
                    retry_in = REREAD_AFTER_FAILURE_SECONDS
                    continue
                retry_in = None
                if summary != last:
                    last = summary
                    yield summary
        finally:
            for task in forwarders:
                task.cancel()
            for task in forwarders:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
