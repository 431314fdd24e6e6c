"""The registry sync engine: apply every pending DataLayer generation of an organization.

One run of `sync_organization` follows cadt-domain.md 3.15 with these differences:

- every pending confirmed generation is applied in the run (CADT: one per tick), in batched
  transactions of whole generations (`sync_batch_size` rows), with bulk inserts and upserts;
  the diffs of the next generations are fetched while a batch is written;
- a run is idempotent: it starts after the highest audit generation, re-checks it inside each
  transaction, and the audit table's UNIQUE (registry_id, generation, seq) refuses a duplicate,
  so a generation applied twice writes nothing twice;
- subscriber semantics recorded on real nodes (chia-two-node.md): roots are chosen only up to
  the LOCAL generation (sync_status.generation), never the chain's target; diffs are sorted;
  "subscribed but nothing downloaded yet" is a state, not an error;
- the mismatch backoff (services/backoff.py) is persisted in SyncState and shown in
  `Organization.sync.backoff`; the home organization is exempt;
- self-healing: a store behind its target for `sync_stuck_reset_seconds` while the wallet is
  synced is usually DataLayer's own 300 s mirror back-off after one missed download; its
  subscription is reset (remove_subscriptions + subscribe with the same URLs: no fee, no
  transaction) at most once per backoff step;
- lost local data of the home organization (cadt-domain 1.5) is logged CRITICAL and blocks
  writes (`home_writes_blocked`);
- every run updates `synced`/`sync_remaining` and publishes the organization's sync view on
  the SYNC_CHANNEL for `Subscription.syncProgress`.

The clock is a parameter so tests drive the backoff without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services import views
from services.backoff import (
    BackoffAction,
    BackoffEntry,
    BackoffPolicy,
    Observation,
    evaluate,
    log_decision,
)
from services.chia import (
    ZERO_HASH,
    ChiaBadResponse,
    ChiaRpcError,
    hex_to_text,
    is_store_not_in_local_db_error,
    is_unable_to_diff_error,
    text_to_hex,
)
from services.chia.models.base import ChiaModel
from services.chia.models.datalayer import (
    GetKvDiffRequest,
    KvDiffEntry,
    RootHistoryEntry,
    SyncStatus,
)
from services.container import Services
from services.db.models import Audit, Organization, RegistryRecord, SyncState, utcnow
from services.errors import PreconditionFailed
from services.events import SYNC_CHANNEL, publish
from services.fencing import delete_meta, read_meta, write_meta
from services.views import OrganizationSyncView, OrganizationView

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Diffs fetched ahead of the generation being applied (overlaps RPC with database writes).
PREFETCH_WINDOW = 16
#: During a long catch-up, progress is published at most this often (and at the end).
PUBLISH_INTERVAL_SECONDS = 0.25
#: Repeated warnings about one organization are written at most this often.
REPEAT_LOG_SECONDS = 300.0

AUTHOR_KEY = text_to_hex("author")
COMMENT_KEY = text_to_hex("comment")

CREATE_REGISTRY = "CREATE REGISTRY"
INSERT = "INSERT"
UPDATE = "UPDATE"
DELETE = "DELETE"
NO_CHANGE = "NO CHANGE"

_AUDIT = Audit.__table__  # type: ignore[attr-defined]
_RECORDS = RegistryRecord.__table__  # type: ignore[attr-defined]
_ORGS = Organization.__table__  # type: ignore[attr-defined]
_STATES = SyncState.__table__  # type: ignore[attr-defined]


class _ConcurrentWriter(Exception):
    """Another writer changed the organization's registry during this run."""


class SyncResult(StrEnum):
    """How one run of an organization's sync ended."""

    SYNCED = "synced"  # nothing was pending
    APPLIED = "applied"  # generations were applied (maybe not all: see sync_remaining)
    WAITING = "waiting"  # DataLayer has not downloaded / confirmed the next root yet
    BACKING_OFF = "backing_off"  # mismatch backoff: skipped
    REORG_RESET = "reorg_reset"  # the audit was ahead of the chain and was rolled back
    NO_REGISTRY = "no_registry"
    NO_ROOT_HISTORY = "no_root_history"
    NOT_SUBSCRIBED = "not_subscribed"
    UPSTREAM_ERROR = "upstream_error"


@dataclass
class SyncOutcome:
    """What one run did."""

    org_uid: str
    result: SyncResult
    applied_generations: int = 0
    audit_rows: int = 0
    last_generation: int | None = None
    sync_remaining: int = 0
    subscription_reset: bool = False
    detail: str = ""


# ---------------------------------------------------------------------------- planning


class PlannedChange(NamedTuple):
    """One audit row (and record change) derived from a kv diff (a tuple: built per change)."""

    type: str
    table: str
    record_key: str | None
    text: str | None


@dataclass(frozen=True)
class GenerationPlan:
    """Everything one generation writes."""

    changes: list[PlannedChange]
    author: str | None
    comment: str | None
    #: The diff touched the key: otherwise the value of the previous generation still holds.
    author_changed: bool = True
    comment_changed: bool = True


def _text(value_hex: str) -> str:
    """UTF-8 text of bare hex (bytes.fromhex validates; undecodable bytes become U+FFFD)."""
    return bytes.fromhex(value_hex).decode("utf-8", "replace")


def _bare(value: str) -> str:
    """Bare hex (get_kv_diff answers bare lowercase hex; a 0x prefix is tolerated)."""
    return value[2:] if value[:2] in ("0x", "0X") else value


def _meta_text(value_hex: str, field_name: str) -> str:
    text = _text(value_hex)
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    if isinstance(decoded, dict) and field_name in decoded:
        return str(decoded[field_name])
    return text


DiffItem = tuple[str, str, str]
"""One kv diff entry as (type, key hex, value hex)."""


def diff_items(diff: Sequence[KvDiffEntry]) -> list[DiffItem]:
    """Typed diff entries as the (type, key, value) tuples plan_generation takes."""
    return [(entry.type.value, entry.key, entry.value) for entry in diff]


def plan_generation(diff: Sequence[DiffItem]) -> GenerationPlan:
    """Turn a kv diff into audit rows: sorted by key, DELETE+INSERT of one key = UPDATE.

    The per-commit `author` and `comment` keys become the author and comment of every row of
    the generation (CADT reads them from the INSERTs); they are not records themselves. A
    commit that repeats the previous author leaves the key out of the diff: `author_changed`
    is then False and the caller carries the previous generation's value over.
    """
    inserts: dict[str, str] = {}
    deletes: dict[str, str] = {}
    for kind, key, value in diff:
        # Keys are compared (author/comment, DELETE+INSERT pairs): lowercase them; values are
        # only decoded, and bytes.fromhex takes either case.
        (inserts if kind == INSERT else deletes)[_bare(key).lower()] = _bare(value)
    author = _meta_text(inserts[AUTHOR_KEY], "author") if AUTHOR_KEY in inserts else None
    comment = _meta_text(inserts[COMMENT_KEY], "comment") if COMMENT_KEY in inserts else None
    changes: list[PlannedChange] = []
    keyed = []
    for key in inserts.keys() | deletes.keys():
        if key in (AUTHOR_KEY, COMMENT_KEY):
            continue
        keyed.append((_text(key), key))
    # Real DataLayer returns diffs in tree order, different between nodes: sort for stable seq.
    keyed.sort()
    for text_key, key in keyed:
        table, separator, record_key = text_key.partition("|")
        if key in inserts:
            kind = UPDATE if key in deletes else INSERT
            text = _text(inserts[key])
        else:
            # CADT stores null for a DELETE; the removed value says WHAT was deleted.
            kind, text = DELETE, _text(deletes[key])
        changes.append(
            PlannedChange(
                type=kind, table=table, record_key=record_key if separator else None, text=text
            )
        )
    return GenerationPlan(
        changes=changes,
        author=author,
        comment=comment,
        author_changed=AUTHOR_KEY in inserts or AUTHOR_KEY in deletes,
        comment_changed=COMMENT_KEY in inserts or COMMENT_KEY in deletes,
    )


class _RawKvDiff(ChiaModel):
    """get_kv_diff without per-entry validation: the hot path of a catch-up decodes itself."""

    diff: list[Any]


@dataclass
class _PlannedGeneration:
    """One generation's audit rows and record changes, built ahead of the writes."""

    generation: int
    root_hash: str
    rows: list[dict[str, Any]]
    records: list[tuple[str, str, str | None]]
    plan: GenerationPlan


# ---------------------------------------------------------------------------- log throttle


class _RepeatLog:
    """Writes a repeated warning about one organization at most every REPEAT_LOG_SECONDS."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], datetime] = {}

    def due(self, org_uid: str, kind: str, now: datetime) -> bool:
        key = (org_uid, kind)
        last = self._last.get(key)
        if last is not None and 0 <= (now - last).total_seconds() < REPEAT_LOG_SECONDS:
            return False
        self._last[key] = now
        return True

    def clear(self, org_uid: str) -> None:
        for key in [key for key in self._last if key[0] == org_uid]:
            del self._last[key]


_repeat = _RepeatLog()


def _warn(org_uid: str, kind: str, now: datetime, message: str, *args: Any) -> None:
    if _repeat.due(org_uid, kind, now):
        logger.warning(message, *args)
    else:
        logger.debug(message, *args)


# ---------------------------------------------------------------------------- public API


async def subscribed_org_uids(services: Services) -> list[str]:
    """orgUids of the subscribed organizations of this node's data-model version."""
    version = services.settings.data_model_version.value
    return [org.org_uid for org in await views.subscribed_organizations(services.db, version)]


async def home_writes_blocked(services: Services, *, refresh: bool = False) -> str | None:
    """Why writes to the home organization are refused (lost local data), or None.

    The flag is kept current by every sync run of the home organization; `refresh` checks
    DataLayer now instead.
    """
    version = services.settings.data_model_version.value
    if refresh:
        home = await views.home_organization(services.db, version)
        if home is not None:
            await _check_home_stores(services, home, None, utcnow())
    async with services.db.session() as session:
        return await views._writes_blocked(session, version)


async def assert_home_writable(services: Services) -> None:
    """Raise PreconditionFailed while DataLayer has lost the home organization's data.

    Checked against DataLayer now (a few get_sync_status calls): writes are rare, and one
    made in the seconds before the next sync run noticed the loss would be silently discarded.
    """
    reason = await home_writes_blocked(services, refresh=True)
    if reason:
        raise PreconditionFailed(reason)


async def current_sync_view(services: Services, org_uid: str) -> OrganizationSyncView | None:
    """The sync view of one organization of this node's data-model version."""
    version = services.settings.data_model_version.value
    orgs = await views.organizations_by_uid(services.db, [org_uid], version)
    org = orgs.get(org_uid)
    if org is None:
        return None
    return (await views.sync_views(services.db, [org]))[org_uid]


async def publish_sync(services: Services, org_uid: str) -> OrganizationSyncView | None:
    """Publish the current sync view of an organization on the SYNC_CHANNEL."""
    view = await current_sync_view(services, org_uid)
    if view is not None:
        await publish(services.redis, SYNC_CHANNEL, views.sync_view_to_json(view))
    return view


@dataclass(frozen=True)
class SyncStatusView:
    """Overall sync of the node: what Query.syncStatus shows."""

    synced: bool
    sync_remaining: int
    home_organization_synced: bool | None
    wallet_synced: bool
    home_writes_blocked: str | None
    organizations: list[OrganizationView]


async def sync_status(services: Services) -> SyncStatusView:
    """Every subscribed organization's sync summed up, plus the wallet and the home flags."""
    version = services.settings.data_model_version.value
    organizations = await views.subscribed_organizations(services.db, version)
    home = next((org for org in organizations if org.is_home), None)
    try:
        wallet_synced = bool((await services.wallet.get_sync_status()).synced)
    except ChiaRpcError:
        wallet_synced = False
    return SyncStatusView(
        synced=all(org.synced for org in organizations),
        sync_remaining=sum(org.sync_remaining for org in organizations),
        home_organization_synced=None if home is None else home.synced,
        wallet_synced=wallet_synced,
        home_writes_blocked=await home_writes_blocked(services),
        organizations=organizations,
    )


async def _snapshot(services: Services, org_uid: str | None) -> list[OrganizationSyncView]:
    if org_uid is not None:
        view = await current_sync_view(services, org_uid)
        return [] if view is None else [view]
    version = services.settings.data_model_version.value
    organizations = await views.subscribed_organizations(services.db, version)
    found = await views.sync_views(services.db, organizations)
    return [found[org.org_uid] for org in organizations]


async def sync_progress(
    services: Services, org_uid: str | None = None
) -> AsyncGenerator[OrganizationSyncView, None]:
    """The current sync of one organization (or of every subscribed one), then every change.

    The hub subscription is opened BEFORE the snapshot is read, so nothing published in between
    is lost; after a Redis reconnect (the hub's None marker) the snapshot is read again.
    """
    async with services.events.subscribe(SYNC_CHANNEL) as queue:
        for view in await _snapshot(services, org_uid):
            yield view
        while True:
            message = await queue.get()
            if message is None:
                for view in await _snapshot(services, org_uid):
                    yield view
                continue
            if org_uid is not None and message.get("orgUid") != org_uid:
                continue
            try:
                yield views.sync_view_from_json(message)
            except (KeyError, TypeError, ValueError):
                logger.debug("dropped a malformed sync event: %s", message)


async def sync_organization(
    services: Services, org_uid: str, *, clock: Clock = utcnow
) -> SyncOutcome:
    """One sync run of an organization: apply every pending generation DataLayer holds."""
    run = _SyncRun(services, org_uid, clock)
    try:
        return await run.execute()
    except Exception:
        # Progress is published even when the run fails half-way: what was applied is shown.
        with contextlib.suppress(Exception):
            await publish_sync(services, org_uid)
        raise


async def reset_organization_sync(services: Services, org_uid: str) -> None:
    """Forget everything synced of an organization (resync): audit, records and sync state."""
    async with services.db.transaction() as session:
        await session.execute(sa.delete(_AUDIT).where(_AUDIT.c.org_uid == org_uid))
        await session.execute(sa.delete(_RECORDS).where(_RECORDS.c.org_uid == org_uid))
        await session.execute(sa.delete(_STATES).where(_STATES.c.org_uid == org_uid))


# ---------------------------------------------------------------------------- one run


@dataclass
class _Batch:
    """Rows of consecutive whole generations, written in one transaction."""

    audit_rows: list[dict[str, Any]] = field(default_factory=list)
    records: dict[tuple[str, str], tuple[str | None, int]] = field(default_factory=dict)
    generations: int = 0
    last_generation: int = -1
    last_root_hash: str = ""
    #: author and comment of the newest generation planned so far (carried to the next).
    author: str | None = None
    comment: str | None = None


#: Sync state columns a run sets every time; a run that changes nothing else writes nothing.
_STATE_TIMESTAMPS = frozenset({"last_synced_at", "updated_at"})


class _SyncRun:
    """The state of one `sync_organization` call."""

    def __init__(self, services: Services, org_uid: str, clock: Clock) -> None:
        self.services = services
        self.settings = services.settings
        self.datalayer = services.datalayer
        self.db = services.db
        self.org_uid = org_uid
        self.clock = clock
        self.now = clock()
        self.state = SyncState(org_uid=org_uid)
        self.writes_blocked: str | None = None
        self._published_at = 0.0
        self._state_written = False
        #: The stored sync state as loaded (None: no row yet).
        self._loaded_state: dict[str, Any] | None = None

    async def _load(self) -> tuple[Organization | None, int | None]:
        """The organization row, its SyncState and the highest audit generation: one session."""
        version = self.settings.data_model_version.value
        async with self.db.session() as session:
            org = (
                await session.execute(
                    sa.select(Organization)
                    .where(col(Organization.org_uid) == self.org_uid)
                    .where(col(Organization.data_model_version) == version)
                )
            ).scalar_one_or_none()
            if org is None or not org.subscribed or not org.registry_id:
                return org, None
            state = await session.get(SyncState, self.org_uid)
            if state is not None:
                self.state = state
                self._loaded_state = self._state_snapshot()
            return org, await _max_generation(session, org.registry_id)

    async def execute(self) -> SyncOutcome:
        org, last = await self._load()
        if org is None or not org.subscribed or org.org_uid == views.PENDING_ORG_UID:
            return SyncOutcome(self.org_uid, SyncResult.NOT_SUBSCRIBED)
        name = org.name or org.org_uid
        registry_id = org.registry_id
        if not registry_id:
            _warn(self.org_uid, "registry", self.now, "%s has no registry store id", name)
            return SyncOutcome(self.org_uid, SyncResult.NO_REGISTRY)

        try:
            history = await self.datalayer.get_root_history(registry_id)
        except ChiaRpcError as error:
            _warn(self.org_uid, "history", self.now, "%s: get_root_history failed: %s", name, error)
            return SyncOutcome(self.org_uid, SyncResult.UPSTREAM_ERROR, detail=str(error))
        status, status_error = await self._sync_status(registry_id)
        if status_error is not None:
            _warn(
                self.org_uid,
                "status",
                self.now,
                "%s: get_sync_status failed: %s",
                name,
                status_error,
            )
            return SyncOutcome(self.org_uid, SyncResult.UPSTREAM_ERROR, detail=str(status_error))

        state = self.state
        state.registry_id = registry_id
        state.root_history_length = len(history)
        state.datalayer_generation = status.generation if status else None
        state.datalayer_target_generation = status.target_generation if status else None
        state.last_synced_at = self.now
        behind = status is None or status.generation < status.target_generation
        if not behind:
            state.behind_since = None
        elif state.behind_since is None:
            state.behind_since = self.now

        if not history:
            _warn(
                self.org_uid,
                "empty-history",
                self.now,
                "Could not find root history for %s (registry %s); sync for this organization "
                "will be paused until DataLayer has it",
                name,
                registry_id,
            )
            await self._finish(org, -1, last)
            return SyncOutcome(self.org_uid, SyncResult.NO_ROOT_HISTORY)

        hi = len(history) - 1
        if status is None and hi == 0 and history[0].root_hash == ZERO_HASH:
            # Only the empty launch root exists: DataLayer downloads nothing for it, so
            # "nothing downloaded" IS generation 0 of 0 (scenario 21 on a real subscriber).
            status = SyncStatus(
                generation=0, root_hash=ZERO_HASH, target_generation=0, target_root_hash=ZERO_HASH
            )
            state.datalayer_generation = state.datalayer_target_generation = 0
            state.behind_since = None
        observation = Observation(
            root_history_length=len(history),
            generation=status.generation if status else None,
            target_generation=status.target_generation if status else None,
        )
        # The newest root this node can read: never past the local generation.
        readable = hi if status is None else min(hi, status.generation)
        partial_only = False
        reset_done = False

        if org.is_home:
            _clear_backoff(state)
            self.writes_blocked = await _check_home_stores(
                self.services, _view_of(org), status, self.now
            )
            if status is None:
                readable = hi  # the owner holds every generation it wrote
            elif observation.generation_mismatch:
                logger.debug(
                    "%s (home) lags DataLayer: generation %s of %s, proceeding",
                    name,
                    status.generation,
                    hi,
                )
        else:
            previous = _entry_of(state)
            decision = evaluate(
                previous, observation, self.now, BackoffPolicy.from_settings(self.settings)
            )
            log_decision(name, decision, observation, previous, self.now)
            if decision.entry is None:
                _clear_backoff(state)
                if decision.action is BackoffAction.RECOVERED:
                    _repeat.clear(self.org_uid)
            else:
                _store_entry(state, decision.entry, observation.describe())
                reset_done = await self._maybe_reset(decision.entry, registry_id, name)
                # Every mismatched evaluation skips; a re-evaluation (window over) still
                # applies what DataLayer already downloaded.
                partial_only = True
                if decision.action is not BackoffAction.EXTENDED or status is None:
                    remaining = await self._finish(org, hi, last)
                    return SyncOutcome(
                        self.org_uid,
                        SyncResult.BACKING_OFF,
                        last_generation=last,
                        sync_remaining=remaining,
                        subscription_reset=reset_done,
                        detail=state.backoff_reason or "",
                    )

        if last is None:
            await self._create_registry(org, registry_id, history[0])
            last = 0

        # Reorg (3.15 step 10): DataLayer is synced, yet the audit is ahead of the chain.
        if (
            not org.is_home
            and status is not None
            and status.generation == status.target_generation
            and last > hi
        ):
            reset_to = max(0, status.generation - 2)
            logger.warning(
                "%s: audit generation %s is ahead of the chain (root history %s, DataLayer "
                "generation %s); resetting the audit to generation %s",
                name,
                last,
                len(history),
                status.generation,
                reset_to,
            )
            await self._reset_to_generation(org, registry_id, history, reset_to)
            remaining = await self._finish(org, hi, reset_to)
            return SyncOutcome(
                self.org_uid,
                SyncResult.REORG_RESET,
                last_generation=reset_to,
                sync_remaining=remaining,
            )

        outcome = SyncOutcome(
            self.org_uid,
            SyncResult.BACKING_OFF if partial_only else SyncResult.SYNCED,
            last_generation=last,
            sync_remaining=max(0, hi - last),
            subscription_reset=reset_done,
        )
        stop = readable
        first_unconfirmed = next(
            (index for index in range(last + 1, stop + 1) if not history[index].confirmed), None
        )
        if first_unconfirmed is not None:
            logger.info(
                "%s: waiting for root %s (generation %s) to confirm",
                name,
                history[first_unconfirmed].root_hash,
                first_unconfirmed,
            )
            stop = first_unconfirmed - 1
        if stop > last:
            applied_to, generations, rows, problem = await self._apply(
                org, registry_id, history, last, stop
            )
            last = applied_to
            outcome.applied_generations = generations
            outcome.audit_rows = rows
            outcome.last_generation = applied_to
            if problem is not None:
                outcome.detail = problem
            if generations and not partial_only:
                outcome.result = SyncResult.APPLIED
        if last < hi and outcome.result is SyncResult.SYNCED:
            if not partial_only and stop <= last:
                logger.debug(
                    "%s: DataLayer has not locally synced generation index %s yet", name, last + 1
                )
            outcome.result = SyncResult.WAITING
        outcome.sync_remaining = await self._finish(org, hi, last)
        return outcome

    # ------------------------------------------------------------------ DataLayer reads

    async def _sync_status(self, registry_id: str) -> tuple[SyncStatus | None, ChiaRpcError | None]:
        try:
            return await self.datalayer.get_sync_status(registry_id), None
        except ChiaRpcError as error:
            if is_store_not_in_local_db_error(error):
                # Subscribed, nothing downloaded yet (or not subscribed: reconcile fixes that).
                return None, None
            return None, error

    async def _plans(
        self,
        org_uid: str,
        registry_id: str,
        history: Sequence[RootHistoryEntry],
        start: int,
        stop: int,
    ) -> AsyncIterator[_PlannedGeneration]:
        """Planned generations start..stop in order, PREFETCH_WINDOW ahead.

        Fetching and planning run as tasks, so they overlap the database writes of the
        batches before them.
        """
        pending: deque[asyncio.Task[_PlannedGeneration]] = deque()
        next_generation = start

        async def fetch(generation: int) -> _PlannedGeneration:
            request = GetKvDiffRequest(
                id=registry_id,
                hash_1=history[generation - 1].root_hash,
                hash_2=history[generation].root_hash,
            )
            response = await self.datalayer.call("get_kv_diff", request, _RawKvDiff, write=False)
            try:
                items = [(e["type"], e["key"], e["value"]) for e in response.diff]
                plan = plan_generation(items)
            except (KeyError, TypeError, ValueError) as error:
                raise ChiaBadResponse(
                    f"unexpected get_kv_diff entry: {error}",
                    service="datalayer",
                    method="get_kv_diff",
                    status=200,
                    body="",
                ) from error
            return _plan_rows(org_uid, registry_id, generation, history[generation], plan)

        try:
            while pending or next_generation <= stop:
                while next_generation <= stop and len(pending) < PREFETCH_WINDOW:
                    pending.append(asyncio.create_task(fetch(next_generation)))
                    next_generation += 1
                yield await pending.popleft()
        finally:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(BaseException):
                    await task

    # ------------------------------------------------------------------ applying

    async def _apply(
        self,
        org: Organization,
        registry_id: str,
        history: Sequence[RootHistoryEntry],
        last: int,
        stop: int,
    ) -> tuple[int, int, int, str | None]:
        """Apply generations last+1..stop; (last applied, generations, audit rows, error)."""
        name = org.name or org.org_uid
        hi = len(history) - 1
        batch = _Batch()
        applied_to = last
        generations = rows = 0
        limit = self.settings.sync_batch_size
        error: str | None = None
        batch.author, batch.comment = await self._commit_meta(registry_id, last)
        try:
            async for planned in self._plans(org.org_uid, registry_id, history, last + 1, stop):
                _add_generation(batch, planned)
                if len(batch.audit_rows) >= limit:
                    if not await self._flush(org, registry_id, batch, applied_to, hi):
                        return applied_to, generations, rows, "another run applied it first"
                    applied_to = batch.last_generation
                    generations += batch.generations
                    rows += len(batch.audit_rows)
                    batch = _Batch(author=batch.author, comment=batch.comment)
        except ChiaRpcError as failure:
            next_generation = applied_to + batch.generations + 1
            if is_unable_to_diff_error(failure):
                error = f"diff of generation {next_generation} is not ready: {failure.message}"
            else:
                error = f"get_kv_diff of generation {next_generation} failed: {failure}"
            _warn(org.org_uid, "diff", self.now, "%s: %s", name, error)
        if batch.generations:
            if await self._flush(org, registry_id, batch, applied_to, hi):
                applied_to = batch.last_generation
                generations += batch.generations
                rows += len(batch.audit_rows)
            else:
                error = "another run applied it first"
        if generations:
            logger.info(
                "%s: applied %s generation(s) up to %s (%s audit rows)",
                name,
                generations,
                applied_to,
                rows,
            )
        return applied_to, generations, rows, error

    async def _commit_meta(
        self, registry_id: str, generation: int
    ) -> tuple[str | None, str | None]:
        """author and comment of an applied generation (the start of the carry-over)."""
        async with self.db.session() as session:
            row = (
                await session.execute(
                    sa.select(_AUDIT.c.author, _AUDIT.c.comment)
                    .where(_AUDIT.c.registry_id == registry_id)
                    .where(_AUDIT.c.generation == generation)
                    .limit(1)
                )
            ).first()
        return (None, None) if row is None else (row.author, row.comment)

    async def _flush(
        self, org: Organization, registry_id: str, batch: _Batch, expected_last: int, hi: int
    ) -> bool:
        """Write a batch in one transaction; False when another writer got there first.

        The organization row is updated first with a compare-and-set on registry_hash (the
        root of the last applied generation, as this run last saw it): a concurrent run, a
        resync (registry_hash '0') or an upgrade changes it, and this run stops before writing
        a single row. The audit's UNIQUE key is the second line of defence.
        """
        remaining = max(0, hi - batch.last_generation)
        try:
            async with self.db.transaction() as session:
                result = await session.execute(
                    sa.update(_ORGS)
                    .where(_ORGS.c.id == org.id)
                    .where(_ORGS.c.registry_hash.is_not_distinct_from(org.registry_hash))
                    .values(
                        registry_hash=batch.last_root_hash,
                        synced=remaining == 0,
                        sync_remaining=remaining,
                        updated_at=utcnow(),
                    )
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise _ConcurrentWriter()
                await session.execute(_INSERT_AUDIT, batch.audit_rows)
                upserts = [
                    {
                        "org_uid": org.org_uid,
                        "table": table,
                        "key": key,
                        "record": value,
                        "generation": generation,
                    }
                    for (table, key), (value, generation) in batch.records.items()
                    if value is not None
                ]
                deletes = [
                    {"o": org.org_uid, "t": table, "k": key}
                    for (table, key), (value, _generation) in batch.records.items()
                    if value is None
                ]
                if upserts:
                    await session.execute(_upsert_records(self.db.dialect), upserts)
                if deletes:
                    await session.execute(_DELETE_RECORD, deletes)
                if not self._state_written:
                    # The sync state goes with the first rows, so readers never see rows
                    # without it; it does not change during the rest of the run.
                    await session.execute(_upsert_state(self.db.dialect), [self._state_values()])
        except (IntegrityError, _ConcurrentWriter):
            logger.info(
                "%s: the registry moved on during this run (another run or a resync); stopping",
                org.org_uid,
            )
            return False
        self._state_written = True
        org.registry_hash = batch.last_root_hash
        org.sync_remaining = remaining
        org.synced = remaining == 0
        # Long catch-ups stream their progress (a few events a second at most).
        if time.monotonic() - self._published_at >= PUBLISH_INTERVAL_SECONDS:
            await self._publish(org, batch.last_generation)
        return True

    async def _create_registry(
        self, org: Organization, registry_id: str, first: RootHistoryEntry
    ) -> None:
        """No audit yet: the CREATE REGISTRY row at generation 0, and no stale records."""
        confirmed_at = datetime.fromtimestamp(first.timestamp, UTC) if first.timestamp else self.now
        try:
            async with self.db.transaction() as session:
                if await _max_generation(session, registry_id) is not None:
                    return
                await session.execute(sa.delete(_RECORDS).where(_RECORDS.c.org_uid == org.org_uid))
                await session.execute(
                    sa.insert(_AUDIT),
                    [
                        {
                            "org_uid": org.org_uid,
                            "registry_id": registry_id,
                            "generation": 0,
                            "seq": 0,
                            "root_hash": first.root_hash,
                            "type": CREATE_REGISTRY,
                            "table": None,
                            "change": None,
                            "author": None,
                            "comment": None,
                            "onchain_confirmed_at": confirmed_at,
                            "created_at": self.now,
                        }
                    ],
                )
                await session.execute(
                    sa.update(_ORGS)
                    .where(_ORGS.c.id == org.id)
                    .values(registry_hash=first.root_hash, updated_at=utcnow())
                )
            org.registry_hash = first.root_hash
        except IntegrityError:
            logger.info("%s: CREATE REGISTRY already written by another run", org.org_uid)

    async def _reset_to_generation(
        self,
        org: Organization,
        registry_id: str,
        history: Sequence[RootHistoryEntry],
        generation: int,
    ) -> None:
        """Roll the audit back to `generation` and rebuild the records as of that root."""
        root_hash = history[generation].root_hash
        values: dict[tuple[str, str], str] | None = {}
        if root_hash != ZERO_HASH:
            try:
                response = await self.datalayer.get_keys_values(registry_id, root_hash=root_hash)
                values = {}
                for item in response.keys_values:
                    table, separator, key = hex_to_text(item.key, errors="replace").partition("|")
                    if separator:
                        values[(table, key)] = hex_to_text(item.value, errors="replace")
            except ChiaRpcError as error:
                logger.warning(
                    "%s: could not read generation %s for the reorg reset (%s); replaying "
                    "from the start",
                    org.org_uid,
                    generation,
                    error,
                )
                values = None
        async with self.db.transaction() as session:
            if values is None:
                await session.execute(sa.delete(_AUDIT).where(_AUDIT.c.registry_id == registry_id))
                await session.execute(sa.delete(_RECORDS).where(_RECORDS.c.org_uid == org.org_uid))
                return
            await session.execute(
                sa.delete(_AUDIT)
                .where(_AUDIT.c.registry_id == registry_id)
                .where(_AUDIT.c.generation > generation)
            )
            existing = {
                (row.table, row.key): (row.record, row.generation)
                for row in (
                    await session.execute(
                        sa.select(
                            _RECORDS.c.table,
                            _RECORDS.c.key,
                            _RECORDS.c.record,
                            _RECORDS.c.generation,
                        ).where(_RECORDS.c.org_uid == org.org_uid)
                    )
                ).all()
            }
            deletes = [
                {"o": org.org_uid, "t": table, "k": key}
                for (table, key) in existing
                if (table, key) not in values
            ]
            upserts = [
                {
                    "org_uid": org.org_uid,
                    "table": table,
                    "key": key,
                    "record": value,
                    "generation": generation,
                }
                for (table, key), value in values.items()
                if existing.get((table, key), (None, generation + 1))[0] != value
                or existing[(table, key)][1] > generation
            ]
            if deletes:
                await session.execute(_DELETE_RECORD, deletes)
            if upserts:
                await session.execute(_upsert_records(self.db.dialect), upserts)
            await session.execute(
                sa.update(_ORGS)
                .where(_ORGS.c.id == org.id)
                .values(registry_hash=root_hash, updated_at=utcnow())
            )
        org.registry_hash = root_hash

    # ------------------------------------------------------------------ self-heal

    async def _maybe_reset(self, entry: BackoffEntry, registry_id: str, name: str) -> bool:
        """Reset a subscription stuck behind its target (DataLayer's mirror back-off)."""
        state = self.state
        if state.behind_since is None:
            return False
        stuck_for = (self.now - state.behind_since).total_seconds()
        if stuck_for < self.settings.sync_stuck_reset_seconds:
            return False
        if state.last_reset_at is not None and state.last_reset_at >= entry.step_started_at:
            return False  # at most once per backoff step
        try:
            if not (await self.services.wallet.get_sync_status()).synced:
                return False  # then the wallet, not a mirror back-off, is the likely cause
            mirrors = await self.datalayer.get_mirrors(registry_id)
        except ChiaRpcError as error:
            logger.debug("%s: cannot check for a subscription reset: %s", name, error)
            return False
        state.last_reset_at = self.now
        urls = sorted({url for mirror in mirrors for url in mirror.urls})
        if not urls:
            state.backoff_reason = f"{state.backoff_reason}; no mirror URL known to reset"
            return False
        try:
            await self.datalayer.remove_subscriptions(registry_id, urls)
            await self.datalayer.subscribe(registry_id, urls=urls)
        except ChiaRpcError as error:
            logger.warning("%s: subscription reset failed: %s", name, error)
            state.backoff_reason = f"{state.backoff_reason}; subscription reset failed: {error}"
            return False
        state.backoff_resets = (state.backoff_resets or 0) + 1
        state.backoff_reason = _reason_with_resets(
            state.backoff_reason or "", state.backoff_resets, self.now
        )
        logger.warning(
            "%s: registry store %s behind its target for %ds; reset its DataLayer subscription "
            "(remove_subscriptions + subscribe %s) to clear the mirror back-off",
            name,
            registry_id,
            stuck_for,
            ", ".join(urls),
        )
        return True

    # ------------------------------------------------------------------ state

    async def _finish(self, org: Organization, hi: int, last: int | None) -> int:
        """Persist SyncState, synced and sync_remaining in one transaction; publish; remaining."""
        remaining = max(0, hi + 1 if last is None else hi - last)
        synced = last is not None and remaining == 0
        if self._nothing_to_write(org, remaining=remaining, synced=synced):
            await self._publish(org, last)
            return remaining
        values: dict[str, Any] = {"synced": synced, "sync_remaining": remaining}
        if org.sync_remaining != remaining or org.synced != synced:
            values["updated_at"] = utcnow()
        async with self.db.transaction() as session:
            # Compare-and-set on registry_hash, as _flush: a resync (or an upgrade) that ran
            # while this run read DataLayer already reset the row and deleted the sync state;
            # writing this run's view back would undo it.
            result = await session.execute(
                sa.update(_ORGS)
                .where(_ORGS.c.id == org.id)
                .where(_ORGS.c.registry_hash.is_not_distinct_from(org.registry_hash))
                .values(**values)
            )
            moved_on = result.rowcount != 1  # type: ignore[attr-defined]
            if not moved_on:
                await session.execute(_upsert_state(self.db.dialect), [self._state_values()])
        if moved_on:
            logger.info(
                "%s: the registry moved on during this run (a resync or an upgrade); its sync "
                "state is left to the next run",
                org.org_uid,
            )
            return remaining
        org.sync_remaining, org.synced = remaining, synced
        await self._publish(org, last)
        return remaining

    def _state_snapshot(self) -> dict[str, Any]:
        return {column.name: getattr(self.state, column.name) for column in _STATES.columns}

    def _nothing_to_write(self, org: Organization, *, remaining: int, synced: bool) -> bool:
        """True when this run only confirmed what is stored: the same sync state but for its
        timestamps, the same synced / sync_remaining, and lastSyncedAt younger than
        `sync_state_touch_interval_seconds`. Every write bumps the response cache's data
        version, so an idle node writing each organization's lastSyncedAt every run would
        keep every dashboard answer from being cached. The run's view keeps the stored
        lastSyncedAt, so what subscribers see matches what queries read."""
        loaded = self._loaded_state
        if loaded is None or org.sync_remaining != remaining or org.synced != synced:
            return False
        current = self._state_snapshot()
        if any(current[name] != loaded[name] for name in current if name not in _STATE_TIMESTAMPS):
            return False
        touched: datetime | None = loaded["last_synced_at"]
        interval = self.settings.sync_state_touch_interval_seconds
        if touched is None or (self.now - touched).total_seconds() >= interval:
            return False
        self.state.last_synced_at = touched
        self.state.updated_at = loaded["updated_at"]
        return True

    def _state_values(self) -> dict[str, Any]:
        self.state.updated_at = utcnow()
        return {column.name: getattr(self.state, column.name) for column in _STATES.columns}

    async def _publish(self, org: Organization, last: int | None) -> None:
        """Publish the sync view from what this run holds (no extra queries)."""
        self._published_at = time.monotonic()
        state = self.state
        entry = _entry_of(state)
        view = OrganizationSyncView(
            org_uid=org.org_uid,
            synced=org.synced,
            sync_remaining=org.sync_remaining,
            last_processed_generation=last,
            root_history_length=state.root_history_length,
            datalayer_generation=state.datalayer_generation,
            datalayer_target_generation=state.datalayer_target_generation,
            backoff=None
            if entry is None
            else views.SyncBackoffView(
                since=entry.since,
                delay_seconds=round(entry.delay_seconds),
                next_retry_at=entry.next_retry_at,
                reason=state.backoff_reason or "",
            ),
            last_synced_at=state.last_synced_at,
            writes_blocked=self.writes_blocked if org.is_home else None,
        )
        try:
            await publish(self.services.redis, SYNC_CHANNEL, views.sync_view_to_json(view))
        except Exception as error:  # Redis away: the database still has the truth
            logger.debug("could not publish sync progress of %s: %s", org.org_uid, error)


# ---------------------------------------------------------------------------- helpers


def _view_of(org: Organization) -> OrganizationView:
    return OrganizationView.from_row(org)


def _plan_rows(
    org_uid: str,
    registry_id: str,
    generation: int,
    root: RootHistoryEntry,
    plan: GenerationPlan,
) -> _PlannedGeneration:
    """The audit rows and record changes of a planned generation (author/comment: see below)."""
    confirmed_at = datetime.fromtimestamp(root.timestamp, UTC) if root.timestamp else None
    root_hash, author, comment = root.root_hash, plan.author, plan.comment
    # Dict literals: this runs for every audit row of a catch-up.
    rows = [
        {
            "org_uid": org_uid,
            "registry_id": registry_id,
            "generation": generation,
            "seq": seq,
            "root_hash": root_hash,
            "type": c.type,
            "table": c.table,
            "change": c.text,
            "author": author,
            "comment": comment,
            "onchain_confirmed_at": confirmed_at,
        }
        for seq, c in enumerate(plan.changes)
    ] or [
        {
            "org_uid": org_uid,
            "registry_id": registry_id,
            "generation": generation,
            "seq": 0,
            "root_hash": root_hash,
            "type": NO_CHANGE,
            "table": None,
            "change": None,
            "author": author,
            "comment": comment,
            "onchain_confirmed_at": confirmed_at,
        }
    ]
    records = [
        (c.table, c.record_key, None if c.type == DELETE else c.text)
        for c in plan.changes
        if c.record_key is not None
    ]
    return _PlannedGeneration(generation, root.root_hash, rows, records, plan)


def _add_generation(batch: _Batch, planned: _PlannedGeneration) -> None:
    """Append a planned generation to the batch, carrying author/comment over when unchanged."""
    plan = planned.plan
    if plan.author_changed:
        batch.author = plan.author
    if plan.comment_changed:
        batch.comment = plan.comment
    if not (plan.author_changed and plan.comment_changed):
        for row in planned.rows:
            row["author"], row["comment"] = batch.author, batch.comment
    batch.audit_rows.extend(planned.rows)
    for table, key, value in planned.records:
        batch.records[(table, key)] = (value, planned.generation)
    batch.generations += 1
    batch.last_generation = planned.generation
    batch.last_root_hash = planned.root_hash


async def _max_generation(session: AsyncSession, registry_id: str) -> int | None:
    value = (
        await session.execute(
            sa.select(sa.func.max(_AUDIT.c.generation)).where(_AUDIT.c.registry_id == registry_id)
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


#: The bulk audit insert: created_at is the database's clock (one bind less per row).
_INSERT_AUDIT = sa.insert(_AUDIT).values(created_at=sa.func.current_timestamp())

_DELETE_RECORD = (
    sa.delete(_RECORDS)
    .where(_RECORDS.c.org_uid == sa.bindparam("o"))
    .where(_RECORDS.c.table == sa.bindparam("t"))
    .where(_RECORDS.c.key == sa.bindparam("k"))
)


def _upsert_records(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (org_uid, table, key) DO UPDATE, for executemany."""
    insert = postgresql.insert(_RECORDS) if dialect == "postgresql" else sqlite.insert(_RECORDS)
    return insert.on_conflict_do_update(
        index_elements=[_RECORDS.c.org_uid, _RECORDS.c.table, _RECORDS.c.key],
        set_={"record": insert.excluded.record, "generation": insert.excluded.generation},
    )


def _upsert_state(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (org_uid) DO UPDATE of a whole SyncState row."""
    insert = postgresql.insert(_STATES) if dialect == "postgresql" else sqlite.insert(_STATES)
    return insert.on_conflict_do_update(
        index_elements=[_STATES.c.org_uid],
        set_={
            column.name: insert.excluded[column.name]
            for column in _STATES.columns
            if column.name != "org_uid"
        },
    )


def _entry_of(state: SyncState) -> BackoffEntry | None:
    if state.backoff_since is None or state.backoff_next_retry_at is None:
        return None
    return BackoffEntry(
        since=state.backoff_since,
        delay_seconds=float(state.backoff_delay_seconds or 0),
        next_retry_at=state.backoff_next_retry_at,
        last_logged_at=state.backoff_last_logged_at or state.backoff_since,
    )


def _store_entry(state: SyncState, entry: BackoffEntry, reason: str) -> None:
    state.backoff_since = entry.since
    state.backoff_delay_seconds = entry.delay_seconds
    state.backoff_next_retry_at = entry.next_retry_at
    state.backoff_last_logged_at = entry.last_logged_at
    resets = state.backoff_resets or 0
    state.backoff_reason = (
        _reason_with_resets(reason, resets, state.last_reset_at) if resets else reason
    )


def _clear_backoff(state: SyncState) -> None:
    state.backoff_since = None
    state.backoff_delay_seconds = None
    state.backoff_next_retry_at = None
    state.backoff_last_logged_at = None
    state.backoff_reason = None
    state.backoff_resets = 0


def _reason_with_resets(reason: str, resets: int, at: datetime | None) -> str:
    base = reason.split("; ", 1)[0]
    when = "" if at is None else f", last at {at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    times = "once" if resets == 1 else f"{resets} times"
    return f"{base}; DataLayer subscription reset {times} to clear its mirror back-off{when}"


# ---------------------------------------------------------------------------- home lost data


def _lost_local_data(status: SyncStatus) -> bool:
    """cadt-domain 1.5: generation 0, zero root hash, target > 0 (owned stores)."""
    return status.generation == 0 and status.root_hash == ZERO_HASH and status.target_generation > 0


async def _check_home_stores(
    services: Services,
    home: OrganizationView,
    registry_status: SyncStatus | None,
    now: datetime,
) -> str | None:
    """Detect lost local data on any home store; set or clear the Meta flag accordingly."""
    lost: list[str] = []
    for store_id in home.store_ids:
        status = registry_status if store_id == home.registry_id else None
        if status is None:
            try:
                status = await services.datalayer.get_sync_status(store_id)
            except ChiaRpcError:
                continue
        if _lost_local_data(status):
            lost.append(store_id)
    version = services.settings.data_model_version.value
    key = views.lost_local_data_key(version)
    async with services.db.transaction() as session:
        raw = await read_meta(session, key)
        previous: dict[str, Any] = {}
        if raw:
            with contextlib.suppress(ValueError):
                previous = json.loads(raw)
        if not lost:
            if raw is not None:
                await delete_meta(session, key)
                logger.warning(
                    "DataLayer holds the home organization's data again; writes are allowed"
                )
            return None
        reason = (
            f"DataLayer has lost its local data of the home organization's store(s) "
            f"{', '.join(lost)} (generation 0 with a zero root, chain ahead); writes are "
            "refused until it is restored"
        )
        last_logged = previous.get("loggedAt")
        due = (
            last_logged is None
            or previous.get("stores") != lost
            or (now - datetime.fromisoformat(last_logged)).total_seconds()
            >= services.settings.sync_backoff_log_interval_seconds
        )
        if due:
            logger.critical(
                "CRITICAL: DataLayer store(s) %s of the home organization %s have lost their "
                "local data (generation 0, zero root hash, target ahead). DO NOT commit new "
                "data: DataLayer would silently discard it. Restore the DataLayer database.",
                ", ".join(lost),
                home.org_uid,
            )
        value = {
            "reason": reason,
            "stores": lost,
            "since": previous.get("since") or now.isoformat(),
            "loggedAt": now.isoformat() if due else last_logged,
        }
        await write_meta(session, key, json.dumps(value))
        return reason
