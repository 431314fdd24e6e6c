"""Governance bodies (cadt-domain 1.3, 2.6, 3.13): create, publish, subscribe, sync, read.

Two node roles share this module:

- **governance node** (`CADT_IS_GOVERNANCE_BODY=true`, `CADT_GOVERNANCE_BODY_ID=""`):
  `start_creation` validates and enqueues `create_governance_body`, which creates the main and
  version stores (or only a version store when the body already has another version: "add V2
  to a V1 body"), writes the version map `{v2: <version store>}` into the main store and, once
  DataLayer confirms it, records Meta `governanceBodyId` (= version store) and
  `mainGoveranceBodyId` (= main store; CADT's spelling, kept for database compatibility).
  `set_governance_value` writes a local row unconfirmed and enqueues `push_governance_data`,
  which pushes every unconfirmed row to the version store, confirms the rows once DataLayer
  holds them, and restores the values from before the edit when the push fails.
- **subscriber node**: the body is `CADT_GOVERNANCE_BODY_ID`, or the id recorded in Meta
  `governanceBodyId` by `subscribe_governance_body`. `sync_governance` is one attempt
  ([later #1600]): subscribe to the main (and version) store first, return at once while
  DataLayer has not synced them (the cached rows stay), else copy orgList/pickList/glossary
  into the local governance table, confirmed. Legacy bodies (no `^v?[0-9]+$` key in the main
  store) hold the values in the main store itself.

The periodic job runs `run_governance_task`, which also resumes an interrupted creation and
re-enqueues pushes of rows left unconfirmed. Row values are CADT's JSON strings exactly:
orgList `[{"orgUid": ...}]` (read by the default-organization discovery), pickList
`{field: [values]}`, glossary `{term: definition}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.chia import ChiaRpcError, InvalidStoreId, normalize_store_id
from services.chia.models import CreateDataStoreResponse
from services.config import ServiceSettings
from services.container import Services
from services.db.models import Governance, Meta, utcnow
from services.errors import DomainError, InvalidInput, PreconditionFailed
from services.fencing import write_meta
from services.guards import assert_wallet_synced, assert_writable, store_id_argument
from services.mirrors import run_mirror_check
from services.organizations.records import in_transaction
from services.organizations.stores import (
    StoreNotOnChain,
    Subscriptions,
    read_store,
    store_id_or_none,
    store_sync,
)
from services.upstream import (
    StoreRejected,
    create_store_with_retry,
    read_store_data,
    wait_for_spendable_coins,
    wait_for_store_confirmation,
    write_store_data,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ---------------------------------------------------------------------------- names

#: Meta: on a governance node the VERSION store; on a subscriber the subscribed MAIN store.
GOVERNANCE_BODY_ID = "governanceBodyId"
#: Meta: the main store of the body this node owns (CADT's misspelling, kept on purpose).
MAIN_GOVERNANCE_BODY_ID = "mainGoveranceBodyId"
#: Meta: progress of a body creation (JSON), so a restarted job resumes, never re-creates.
CREATION = "governanceCreation"
#: Meta prefix: `<prefix><key>` holds {value, confirmed} of a row before its unconfirmed edits,
#: what a failed push restores (one row per key, so edits of different keys never collide).
PREVIOUS_VALUE_PREFIX = "governancePrevious:"
#: Meta: the version store a subscriber read its values from (empty for a legacy body).
SUBSCRIBED_VERSION_STORE_ID = "governanceVersionStoreId"
#: Meta: ISO time the local values last matched DataLayer.
LAST_SYNCED_AT = "governanceLastSyncedAt"
#: Meta: what the last sync run did, for Query.governance.syncMessage.
SYNC_MESSAGE = "governanceSyncMessage"

ORG_LIST = "orgList"
PICK_LIST = "pickList"
GLOSSARY = "glossary"
GOVERNANCE_KEYS = (ORG_LIST, PICK_LIST, GLOSSARY)

#: arq function names and the job ids that keep each from running twice at once.
CREATE_JOB = "create_governance_body"
PUSH_JOB = "push_governance_data"
SYNC_JOB = "sync_governance_body"
CREATE_JOB_ID = "governance:create"
PUSH_JOB_ID = "governance:push"
SYNC_NOW_JOB_ID = "governance:sync-now"

#: Rounds one push job makes when new edits arrive while it pushes.
MAX_PUSH_ROUNDS = 5

#: cadt-domain 1.3: a main store with such a key holds a version map; without any, it is legacy.
VERSION_KEY = re.compile(r"^v?[0-9]+$")

NOT_GOVERNANCE_BODY = "You are not an governance body and can not use this functionality"
ALREADY_LISTENING = (
    "You are already listening to another governance body. Please clear GOVERNANCE_BODY_ID "
    "(CADT_GOVERNANCE_BODY_ID) from your configuration and restart the node"
)

_GOVERNANCE = Governance.__table__  # type: ignore[attr-defined]
_META = Meta.__table__  # type: ignore[attr-defined]


def _label(settings: ServiceSettings) -> str:
    return settings.data_model_version.value.upper()


def _dumps(value: Any) -> str:
    """Compact JSON like CADT's JSON.stringify (non-ASCII kept as is)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def max_value_bytes(settings: ServiceSettings) -> int:
    """The size cap of one governance value (governance_max_value_bytes)."""
    return settings.governance_max_value_bytes


def _normalized_or_none(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalize_store_id(value)
    except InvalidStoreId:
        logger.error("ignoring governance body id %r: not a store id", value)
        return None


# ---------------------------------------------------------------------------- validation


def _json_argument(value: object, *, field_name: str, shape: str) -> object:
    """A JSON value, or a string holding one (clients often send the stored string form)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidInput(
                f"{field_name} must be {shape} (or a string holding one)", field=field_name
            ) from None
    return value


def _capped(text: str, *, field_name: str, settings: ServiceSettings) -> str:
    limit = max_value_bytes(settings)
    size = len(text.encode("utf-8"))
    if size > limit:
        raise InvalidInput(
            f"{field_name} is {size} bytes as JSON; the limit is {limit} bytes "
            "(CADT_GOVERNANCE_MAX_VALUE_BYTES)",
            field=field_name,
        )
    return text


def org_list_value(org_uids: Iterable[str], settings: ServiceSettings) -> str:
    """The orgList JSON `[{"orgUid": ...}]` of validated, distinct store ids."""
    seen: set[str] = set()
    entries: list[dict[str, str]] = []
    for raw in org_uids:
        org_uid = store_id_argument(raw, field="orgUids")
        if org_uid in seen:
            raise InvalidInput(f"orgUids lists {org_uid} more than once", field="orgUids")
        seen.add(org_uid)
        entries.append({"orgUid": org_uid})
    return _capped(_dumps(entries), field_name="orgUids", settings=settings)


def pick_list_value(value: object, settings: ServiceSettings) -> str:
    """The pickList JSON: an object of field name -> array of strings."""
    shape = "a JSON object mapping a field name to an array of strings"
    data = _json_argument(value, field_name="pickList", shape=shape)
    if not isinstance(data, dict):
        raise InvalidInput(f"pickList must be {shape}", field="pickList")
    for name, options in data.items():
        if not name.strip():
            raise InvalidInput("pickList field names must not be empty", field="pickList")
        if not isinstance(options, list) or not all(isinstance(item, str) for item in options):
            raise InvalidInput(f"pickList.{name} must be an array of strings", field="pickList")
    return _capped(_dumps(data), field_name="pickList", settings=settings)


def glossary_value(value: object, settings: ServiceSettings) -> str:
    """The glossary JSON: an object term -> definition, or an array of {term, definition}."""
    shape = (
        "a JSON object mapping a term to its definition (or an array of {term, definition} objects)"
    )
    data = _json_argument(value, field_name="glossary", shape=shape)
    if isinstance(data, dict):
        for term, definition in data.items():
            if not term.strip():
                raise InvalidInput("glossary terms must not be empty", field="glossary")
            if not isinstance(definition, str):
                raise InvalidInput(f"glossary[{term!r}] must be a string", field="glossary")
    elif isinstance(data, list):
        for index, entry in enumerate(data):
            if not (
                isinstance(entry, dict)
                and isinstance(entry.get("term"), str)
                and entry["term"].strip()
                and isinstance(entry.get("definition"), str)
            ):
                raise InvalidInput(
                    f"glossary[{index}] must be an object with a non-empty string term and a "
                    "string definition",
                    field="glossary",
                )
    else:
        raise InvalidInput(f"glossary must be {shape}", field="glossary")
    return _capped(_dumps(data), field_name="glossary", settings=settings)


# ---------------------------------------------------------------------------- meta helpers


async def _meta_values(session: AsyncSession, keys: Iterable[str]) -> dict[str, str]:
    rows = await session.execute(
        sa.select(_META.c.key, _META.c.value).where(_META.c.key.in_(list(keys)))
    )
    return {str(key): str(value) for key, value in rows.all()}


async def _delete_meta_key(session: AsyncSession, key: str) -> None:
    await session.execute(sa.delete(_META).where(_META.c.key == key))


async def _transaction(services: Services, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    # Unique-key races (two writers inserting the same Meta or governance row) are retried.
    return await in_transaction(services.db, work, retry_integrity=True)


def previous_value_key(key: str) -> str:
    """The Meta key recording a governance row's value before its unconfirmed edits."""
    return f"{PREVIOUS_VALUE_PREFIX}{key}"


def _insert_meta_if_absent(dialect: str, key: str, value: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_META).values(key=key, value=value, updated_at=utcnow())
    return statement.on_conflict_do_nothing(index_elements=[_META.c.key])


def _upsert_rows(dialect: str, rows: list[dict[str, Any]], *, only_changes: bool) -> Any:
    """INSERT .. ON CONFLICT (key) DO UPDATE for governance rows (atomic on both databases)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_GOVERNANCE).values(rows)
    excluded = statement.excluded
    where = None
    if only_changes:
        # Unchanged rows keep their updated_at: it then tells when a value last changed.
        where = sa.or_(
            _GOVERNANCE.c.value != excluded.value,
            _GOVERNANCE.c.confirmed != excluded.confirmed,
        )
    return statement.on_conflict_do_update(
        index_elements=[_GOVERNANCE.c.key],
        set_={
            "value": excluded.value,
            "confirmed": excluded.confirmed,
            "updated_at": excluded.updated_at,
        },
        where=where,
    )


# ---------------------------------------------------------------------------- creation record


class CreationState(StrEnum):
    """Steps of a governance body creation (persisted in Meta governanceCreation)."""

    CREATING_STORES = "CREATING_STORES"
    CONFIRMING_STORES = "CONFIRMING_STORES"
    WRITING_VERSION_MAP = "WRITING_VERSION_MAP"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


_CREATION_MESSAGES = {
    CreationState.CREATING_STORES: "Creating the governance stores on the blockchain",
    CreationState.CONFIRMING_STORES: "Waiting for the governance stores to confirm",
    CreationState.WRITING_VERSION_MAP: "Writing the version map into the main governance store",
    CreationState.COMPLETE: "Governance body created",
}


@dataclass
class CreationRecord:
    """What a creation has done so far; store ids are saved the moment Chia returns them."""

    version: str
    state: CreationState
    main_store_id: str | None = None
    version_store_id: str | None = None
    #: The main store existed before (adding a version to a body): it is neither created nor
    #: confirmed again.
    add_to_existing: bool = False
    tx_ids: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    started_at: str = field(default_factory=lambda: utcnow().isoformat())
    updated_at: str = field(default_factory=lambda: utcnow().isoformat())

    @property
    def in_progress(self) -> bool:
        """Not finished and not failed."""
        return self.state not in (CreationState.COMPLETE, CreationState.FAILED)

    @property
    def message(self) -> str:
        """The state in words."""
        if self.state is CreationState.FAILED:
            return f"Governance body creation failed: {self.error or 'unknown error'}"
        return _CREATION_MESSAGES[self.state]

    def to_json(self) -> str:
        """The Meta value."""
        data = asdict(self)
        data["state"] = self.state.value
        return _dumps(data)

    @classmethod
    def from_json(cls, text: str | None) -> CreationRecord | None:
        """Parse a Meta value; None when absent or unreadable."""
        if not text:
            return None
        try:
            data = json.loads(text)
            data["state"] = CreationState(data["state"])
            return cls(**data)
        except (ValueError, KeyError, TypeError):
            logger.error("ignoring an unreadable %s record: %r", CREATION, text[:200])
            return None


class GovernanceCreationFailed(DomainError):
    """A step of the creation failed; the record is marked FAILED with this message."""


async def _load_creation(services: Services) -> tuple[CreationRecord | None, str | None]:
    async with services.db.session() as session:
        raw = (await _meta_values(session, [CREATION])).get(CREATION)
    return CreationRecord.from_json(raw), raw


async def _save_creation(services: Services, record: CreationRecord) -> None:
    record.updated_at = utcnow().isoformat()
    text = record.to_json()

    async def save(session: AsyncSession) -> None:
        await write_meta(session, CREATION, text)

    await _transaction(services, save)


async def _claim_creation(services: Services, record: CreationRecord, previous: str | None) -> None:
    """Store `record` only if the Meta row still holds `previous` (compare-and-set).

    Two concurrent createGovernanceBody calls both pass the checks; exactly one claims.
    """
    text = record.to_json()

    async def claim(session: AsyncSession) -> bool:
        if previous is None:
            exists = await session.scalar(
                sa.select(sa.func.count()).select_from(_META).where(_META.c.key == CREATION)
            )
            if exists:
                return False
            await session.execute(
                sa.insert(_META).values(key=CREATION, value=text, updated_at=utcnow())
            )
            return True
        result = await session.execute(
            sa.update(_META)
            .where(_META.c.key == CREATION)
            .where(_META.c.value == previous)
            .values(value=text, updated_at=utcnow())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    if not await _transaction(services, claim):
        raise PreconditionFailed("A governance body is already being set up on this node")


# ---------------------------------------------------------------------------- read model


@dataclass(frozen=True)
class GovernanceOrgEntry:
    """One entry of the orgList (orgUid normalised when it is a store id)."""

    org_uid: str


@dataclass(frozen=True)
class CreationView:
    """A creation's progress for Query.governance.creation."""

    state: CreationState
    message: str
    main_store_id: str | None
    version_store_id: str | None
    error: str | None
    started_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class GovernanceView:
    """Everything Query.governance shows."""

    is_governance_body: bool
    body_id: str | None
    version_store_id: str | None
    org_list: list[GovernanceOrgEntry]
    pick_list: Any
    glossary: Any
    confirmed: bool
    last_synced_at: datetime | None
    sync_message: str | None
    creation: CreationView | None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _json_object(text: str | None) -> Any:
    """A stored JSON value; {} when missing or unreadable (CADT answers {} for a missing one)."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, (dict, list)) else {}


def parse_org_list(text: str | None) -> list[GovernanceOrgEntry]:
    """The orgList entries with an orgUid, in order, without duplicates."""
    value = _json_object(text)
    entries: list[GovernanceOrgEntry] = []
    seen: set[str] = set()
    if not isinstance(value, list):
        return entries
    for item in value:
        raw = item.get("orgUid") if isinstance(item, dict) else None
        if not isinstance(raw, str) or not raw.strip():
            continue
        org_uid = _normalized_or_none(raw) if _looks_like_store_id(raw) else raw.strip()
        if org_uid is None or org_uid in seen:
            continue
        seen.add(org_uid)
        entries.append(GovernanceOrgEntry(org_uid=org_uid))
    return entries


def _looks_like_store_id(value: str) -> bool:
    try:
        normalize_store_id(value)
    except InvalidStoreId:
        return False
    return True


def subscribed_body_id(settings: ServiceSettings, meta: Mapping[str, str]) -> str | None:
    """The main store a subscriber follows: the setting, else subscribeGovernanceBody's Meta."""
    if meta.get(MAIN_GOVERNANCE_BODY_ID):
        return None  # this node owns its body; it publishes, it does not follow one
    configured = _normalized_or_none(settings.governance_body_id)
    if configured is not None:
        return configured
    return _normalized_or_none(meta.get(GOVERNANCE_BODY_ID))


async def governance_body_ids(services: Services) -> tuple[str | None, str | None]:
    """(main store, version store) of the body this node owns or follows, None when unknown.

    For the mirror job: a governance node mirrors both of its stores, a subscriber the body's
    main store and the version store it last read.
    """
    async with services.db.session() as session:
        meta = await _meta_values(
            session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID, SUBSCRIBED_VERSION_STORE_ID]
        )
    main = meta.get(MAIN_GOVERNANCE_BODY_ID)
    if main:
        return main, meta.get(GOVERNANCE_BODY_ID) or None
    return (
        subscribed_body_id(services.settings, meta),
        meta.get(SUBSCRIBED_VERSION_STORE_ID) or None,
    )


async def get_governance(services: Services) -> GovernanceView:
    """The governance values and identity of this node (one consistent read)."""
    meta_keys = [
        GOVERNANCE_BODY_ID,
        MAIN_GOVERNANCE_BODY_ID,
        SUBSCRIBED_VERSION_STORE_ID,
        LAST_SYNCED_AT,
        SYNC_MESSAGE,
        CREATION,
    ]
    # One statement, so the Meta records and the rows come from the same snapshot: separate
    # SELECTs may straddle a sync's commit (SQLite outside a transaction, READ COMMITTED).
    statement = sa.union_all(
        sa.select(
            sa.literal("meta").label("kind"),
            _META.c.key,
            _META.c.value,
            sa.literal(True).label("confirmed"),
        ).where(_META.c.key.in_(meta_keys)),
        sa.select(
            sa.literal("row").label("kind"),
            _GOVERNANCE.c.key,
            _GOVERNANCE.c.value,
            _GOVERNANCE.c.confirmed,
        ),
    )
    async with services.db.session() as session:
        result = (await session.execute(statement)).all()
    meta = {str(key): str(value) for kind, key, value, _ in result if kind == "meta"}
    rows = [(key, value, confirmed) for kind, key, value, confirmed in result if kind == "row"]
    values = {str(key): str(value) for key, value, _ in rows}
    main = meta.get(MAIN_GOVERNANCE_BODY_ID) or None
    body_id: str | None
    version_store_id: str | None
    if main:
        body_id, version_store_id = main, meta.get(GOVERNANCE_BODY_ID) or None
    else:
        body_id = subscribed_body_id(services.settings, meta)
        version_store_id = meta.get(SUBSCRIBED_VERSION_STORE_ID) or None
    record = CreationRecord.from_json(meta.get(CREATION))
    creation = None
    if record is not None:
        creation = CreationView(
            state=record.state,
            message=record.message,
            main_store_id=record.main_store_id,
            version_store_id=record.version_store_id,
            error=record.error,
            started_at=_parse_time(record.started_at),
            updated_at=_parse_time(record.updated_at),
        )
    return GovernanceView(
        is_governance_body=main is not None,
        body_id=body_id,
        version_store_id=version_store_id,
        org_list=parse_org_list(values.get(ORG_LIST)),
        pick_list=_json_object(values.get(PICK_LIST)),
        glossary=_json_object(values.get(GLOSSARY)),
        confirmed=all(bool(confirmed) for _, _, confirmed in rows),
        last_synced_at=_parse_time(meta.get(LAST_SYNCED_AT)),
        sync_message=meta.get(SYNC_MESSAGE) or None,
        creation=creation,
    )


async def org_list_uids(services: Services) -> list[str]:
    """orgUids of the local orgList row (what the default-organization discovery imports)."""
    async with services.db.session() as session:
        text = await session.scalar(
            sa.select(_GOVERNANCE.c.value).where(_GOVERNANCE.c.key == ORG_LIST)
        )
    return [entry.org_uid for entry in parse_org_list(None if text is None else str(text))]


# ---------------------------------------------------------------------------- creation


async def start_creation(services: Services) -> str:
    """createGovernanceBody: validate, claim the creation record, enqueue the job."""
    settings = services.settings
    assert_writable(services)
    if not settings.is_governance_body:
        raise PreconditionFailed(NOT_GOVERNANCE_BODY)
    if settings.governance_body_id:
        raise PreconditionFailed(ALREADY_LISTENING)
    async with services.db.session() as session:
        meta = await _meta_values(session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID])
    main = meta.get(MAIN_GOVERNANCE_BODY_ID)
    if meta.get(GOVERNANCE_BODY_ID) and not main:
        # Recorded by subscribeGovernanceBody: this node follows someone else's body.
        raise PreconditionFailed(f"{ALREADY_LISTENING} (subscribed to {meta[GOVERNANCE_BODY_ID]})")
    record, raw = await _load_creation(services)
    if record is not None and record.in_progress:
        # A lost job would leave the record waiting forever: enqueueing again is harmless
        # (same job id) and resumes it.
        await services.queue.enqueue(CREATE_JOB, job_id=CREATE_JOB_ID)
        raise PreconditionFailed(
            f"A governance body is already being set up on this node ({record.message}); "
            "follow it in Query.governance.creation"
        )
    await assert_wallet_synced(services)
    version = settings.data_model_version.value
    if main:
        version_map = await _version_map(services, main)
        if version in version_map:
            raise PreconditionFailed(
                f"This node already owns governance body {main}; its {version} version store "
                f"is {version_map[version]}"
            )
        new = CreationRecord(
            version=version,
            state=CreationState.CREATING_STORES,
            main_store_id=main,
            add_to_existing=True,
        )
        if (
            record is not None
            and record.state is CreationState.FAILED
            and record.add_to_existing
            and record.main_store_id == main
            and record.version == version
        ):
            # Retry of a failed addition: reuse the version store it already paid for.
            new.version_store_id = record.version_store_id
            new.tx_ids = dict(record.tx_ids)
    else:
        new = CreationRecord(version=version, state=CreationState.CREATING_STORES)
        if (
            record is not None
            and record.state is CreationState.FAILED
            and not record.add_to_existing
        ):
            # Retry of a failed creation: reuse the stores it already paid for.
            new.main_store_id = record.main_store_id
            if record.version == version:
                new.version_store_id = record.version_store_id
            new.tx_ids = dict(record.tx_ids)
    await _claim_creation(services, new, raw)
    await services.queue.enqueue(CREATE_JOB, job_id=CREATE_JOB_ID)
    return (
        f"Setting up new {_label(settings)} Governance Body on this node, this can take a few mins"
    )


async def _version_map(services: Services, main: str) -> dict[str, str]:
    """The version keys of a main governance store (UpstreamFailure when unreadable)."""
    data = await read_store(services, main)
    return {key: value for key, value in data.items() if VERSION_KEY.match(key)}


async def run_creation(services: Services) -> str:
    """The create_governance_body job: resume the recorded creation to COMPLETE or FAILED."""
    record, _ = await _load_creation(services)
    if record is None or not record.in_progress:
        return "no governance body creation to run"
    try:
        await _Creation(services, record).run()
    except asyncio.CancelledError:
        raise  # the worker stops; arq runs the job again and it resumes from the record
    except Exception as error:
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        logger.error("governance body creation failed: %s", message, exc_info=True)
        record.state = CreationState.FAILED
        record.error = str(message)
        await _save_creation(services, record)
        return record.message
    return (
        f"governance body {record.main_store_id} created ({record.version} version store "
        f"{record.version_store_id})"
    )


class _Creation:
    """One run of the creation state machine over a persisted record."""

    def __init__(self, services: Services, record: CreationRecord) -> None:
        self.services = services
        self.record = record
        self._save_lock = asyncio.Lock()

    async def save(self) -> None:
        async with self._save_lock:
            await _save_creation(self.services, self.record)

    def _missing(self) -> list[str]:
        kinds = [] if self.record.add_to_existing else ["main"]
        kinds.append("version")
        return [kind for kind in kinds if self._store(kind) is None]

    def _store(self, kind: str) -> str | None:
        return self.record.main_store_id if kind == "main" else self.record.version_store_id

    def _set_store(self, kind: str, store_id: str | None) -> None:
        if kind == "main":
            self.record.main_store_id = store_id
        else:
            self.record.version_store_id = store_id

    async def run(self) -> None:
        record = self.record
        if record.state is CreationState.CREATING_STORES:
            missing = self._missing()
            if missing:
                await wait_for_spendable_coins(self.services, required=len(missing))
                await self._create(missing)
            record.state = CreationState.CONFIRMING_STORES
            await self.save()
        if record.state is CreationState.CONFIRMING_STORES:
            await self._confirm()
            record.state = CreationState.WRITING_VERSION_MAP
            await self.save()
        if record.state is CreationState.WRITING_VERSION_MAP:
            await self._write_version_map()

    async def _create(self, kinds: list[str]) -> None:
        async def create(kind: str) -> None:
            async def saved(response: CreateDataStoreResponse) -> None:
                async with self._save_lock:
                    self._set_store(kind, response.id)
                    self.record.tx_ids[kind] = list(response.tx_ids)
                    await _save_creation(self.services, self.record)

            await create_store_with_retry(
                self.services, on_created=saved, label=f"governance {kind} store"
            )

        results = await asyncio.gather(*(create(kind) for kind in kinds), return_exceptions=True)
        failures = []
        for kind, result in zip(kinds, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failures.append(f"{kind} ({getattr(result, 'message', None) or result})")
        if failures:
            raise GovernanceCreationFailed(
                f"Failed to create governance stores: {', '.join(failures)}"
            )

    async def _confirm(self) -> None:
        kinds = [] if self.record.add_to_existing else ["main"]
        kinds.append("version")

        async def confirm(kind: str) -> None:
            store_id = self._store(kind)
            assert store_id is not None
            await wait_for_store_confirmation(
                self.services, store_id, tx_ids=self.record.tx_ids.get(kind, ())
            )

        results = await asyncio.gather(*(confirm(kind) for kind in kinds), return_exceptions=True)
        failures = []
        for kind, result in zip(kinds, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, StoreRejected):
                # Never confirms: forget it so a retried creation launches a new one.
                self._set_store(kind, None)
                self.record.tx_ids.pop(kind, None)
            if isinstance(result, BaseException):
                failures.append(f"{kind} ({getattr(result, 'message', None) or result})")
        if failures:
            raise GovernanceCreationFailed(
                f"Governance stores did not confirm: {', '.join(failures)}"
            )

    async def _write_version_map(self) -> None:
        record = self.record
        main, version_store = record.main_store_id, record.version_store_id
        assert main is not None and version_store is not None
        # Idempotent: reads the main store and pushes only what differs (an existing v1 stays).
        await write_store_data(self.services, main, {record.version: version_store})
        record.state = CreationState.COMPLETE
        record.updated_at = utcnow().isoformat()
        text = record.to_json()

        async def finish(session: AsyncSession) -> None:
            await write_meta(session, GOVERNANCE_BODY_ID, version_store)
            await write_meta(session, MAIN_GOVERNANCE_BODY_ID, main)
            await write_meta(session, CREATION, text)

        await _transaction(self.services, finish)
        logger.info(
            "governance body %s created with %s version store %s",
            main,
            record.version,
            version_store,
        )
        await _run_mirror_check(self.services)


async def _run_mirror_check(services: Services) -> None:
    """Announce mirrors of the new stores now (the periodic mirror job would, later)."""
    try:
        await run_mirror_check(services)
    except Exception:
        logger.warning("mirror check after the governance body creation failed", exc_info=True)


# ---------------------------------------------------------------------------- publishing


async def _owned_version_store(services: Services) -> str:
    """The version store of the body this node owns, or PreconditionFailed."""
    async with services.db.session() as session:
        meta = await _meta_values(session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID])
    version_store = meta.get(GOVERNANCE_BODY_ID)
    if meta.get(MAIN_GOVERNANCE_BODY_ID) and version_store:
        return version_store
    if not services.settings.is_governance_body:
        raise PreconditionFailed(NOT_GOVERNANCE_BODY)
    raise PreconditionFailed(
        f"There is no {_label(services.settings)} Governance Body that you own that can be edited"
    )


_PUBLISHED_MESSAGES = {
    ORG_LIST: "Committed this new organization list to the datalayer",
    PICK_LIST: "Committed this pick list to the datalayer",
    GLOSSARY: "Committed glossary to the datalayer",
}


async def set_governance_value(
    services: Services, key: str, build: Callable[[ServiceSettings], str]
) -> str:
    """setGovernanceOrgList/PickList/Glossary: validate, write the row unconfirmed, push later.

    `build` validates the argument and returns the JSON text (InvalidInput otherwise).
    """
    assert key in GOVERNANCE_KEYS
    assert_writable(services)
    await _owned_version_store(services)
    value = build(services.settings)
    await assert_wallet_synced(services)

    async def write(session: AsyncSession) -> None:
        row = (
            await session.execute(
                sa.select(_GOVERNANCE.c.value, _GOVERNANCE.c.confirmed).where(
                    _GOVERNANCE.c.key == key
                )
            )
        ).first()
        previous = (
            {"value": None, "confirmed": True}
            if row is None
            else {"value": str(row.value), "confirmed": bool(row.confirmed)}
        )
        # Only the first edit of a series records it: that is the value a failure restores.
        await session.execute(
            _insert_meta_if_absent(services.db.dialect, previous_value_key(key), _dumps(previous))
        )
        await session.execute(
            _upsert_rows(
                services.db.dialect,
                [{"key": key, "value": value, "confirmed": False, "updated_at": utcnow()}],
                only_changes=False,
            )
        )

    await _transaction(services, write)
    await services.queue.enqueue(PUSH_JOB, job_id=PUSH_JOB_ID)
    return _PUBLISHED_MESSAGES[key]


async def _unconfirmed_rows(services: Services) -> dict[str, str]:
    async with services.db.session() as session:
        rows = await session.execute(
            sa.select(_GOVERNANCE.c.key, _GOVERNANCE.c.value).where(
                _GOVERNANCE.c.confirmed.is_(False)
            )
        )
        return {str(key): str(value) for key, value in rows.all()}


async def run_push(services: Services) -> str:
    """The push_governance_data job: push unconfirmed rows, then confirm or restore them."""
    try:
        version_store = await _owned_version_store(services)
    except PreconditionFailed as error:
        return error.message
    for _ in range(MAX_PUSH_ROUNDS):
        wanted = await _unconfirmed_rows(services)
        if not wanted:
            return "governance values confirmed"
        try:
            await write_store_data(services, version_store, wanted)
        except asyncio.CancelledError:
            raise  # arq runs the job again; the rows are still unconfirmed
        except (DomainError, ChiaRpcError) as error:
            message = getattr(error, "message", None) or str(error)
            logger.error(
                "pushing governance values %s to %s failed; restoring them: %s",
                ", ".join(sorted(wanted)),
                version_store,
                message,
            )
            await _settle(services, version_store, wanted, confirmed=False)
            return f"push failed, previous values restored: {message}"
        await _settle(services, version_store, wanted, confirmed=True)
    return "governance values pushed; newer edits wait for the next run"


async def _settle(
    services: Services, version_store: str, pushed: Mapping[str, str], *, confirmed: bool
) -> None:
    """Confirm (or restore) the rows that still hold the pushed values; later edits stay.

    A restore uses the value recorded before the edits; without one (a lost record) it uses
    what the version store holds, and when that cannot be read the row stays unconfirmed for
    the next run.
    """
    stored: dict[str, str] | None = None
    if not confirmed:
        try:
            stored = await read_store_data(services, version_store)
        except ChiaRpcError as error:
            logger.info("could not read %s to restore governance values: %s", version_store, error)

    async def settle(session: AsyncSession) -> None:
        records = await _meta_values(session, [previous_value_key(key) for key in pushed])
        for key, value in pushed.items():
            current = await session.scalar(
                sa.select(_GOVERNANCE.c.value).where(_GOVERNANCE.c.key == key)
            )
            if current is None or str(current) != value:
                continue  # edited again meanwhile: the next round pushes that value
            row = sa.update(_GOVERNANCE).where(_GOVERNANCE.c.key == key)
            if confirmed:
                await session.execute(row.values(confirmed=True, updated_at=utcnow()))
            else:
                previous = _json_object(records.get(previous_value_key(key)))
                if isinstance(previous, dict) and "value" in previous:
                    restored, restored_confirmed = previous["value"], bool(previous["confirmed"])
                elif stored is not None:
                    restored, restored_confirmed = stored.get(key), True
                else:
                    continue
                if restored is None:
                    await session.execute(sa.delete(_GOVERNANCE).where(_GOVERNANCE.c.key == key))
                else:
                    await session.execute(
                        row.values(
                            value=str(restored), confirmed=restored_confirmed, updated_at=utcnow()
                        )
                    )
            await _delete_meta_key(session, previous_value_key(key))
        if confirmed:
            await write_meta(session, LAST_SYNCED_AT, utcnow().isoformat())

    await _transaction(services, settle)


# ---------------------------------------------------------------------------- subscribing


async def subscribe_governance_body(services: Services, governance_body_id: str) -> str:
    """subscribeGovernanceBody: subscribe to the main store and record it in Meta."""
    assert_writable(services)
    body = store_id_argument(governance_body_id, field="governanceBodyId")
    async with services.db.session() as session:
        meta = await _meta_values(session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID])
    owned = meta.get(MAIN_GOVERNANCE_BODY_ID)
    if owned:
        raise PreconditionFailed(
            f"This node owns governance body {owned}; it publishes its own values and cannot "
            "listen to another governance body"
        )
    configured = _normalized_or_none(services.settings.governance_body_id)
    recorded = _normalized_or_none(meta.get(GOVERNANCE_BODY_ID))
    for current in (configured, recorded):
        if current is not None and current != body:
            raise PreconditionFailed(f"{ALREADY_LISTENING} (listening to {current})")
    await assert_wallet_synced(services)
    try:
        await Subscriptions(services).ensure(body)
    except StoreNotOnChain as error:
        raise InvalidInput(error.message, field="governanceBodyId") from error

    async def record(session: AsyncSession) -> None:
        await write_meta(session, GOVERNANCE_BODY_ID, body)

    await _transaction(services, record)
    await services.queue.enqueue(SYNC_JOB, job_id=SYNC_NOW_JOB_ID)
    return (
        f"Subscribed to governance body {body}; its organization list, pick list and glossary "
        "sync in the background"
    )


async def request_sync(services: Services) -> str:
    """syncGovernance: enqueue the governance job now (CADT GET /governance/sync)."""
    assert_writable(services)
    async with services.db.session() as session:
        meta = await _meta_values(session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID])
    owned = meta.get(MAIN_GOVERNANCE_BODY_ID)
    if not owned and subscribed_body_id(services.settings, meta) is None:
        raise PreconditionFailed(
            "There is no governance body to sync: set CADT_GOVERNANCE_BODY_ID or call "
            "subscribeGovernanceBody"
        )
    await services.queue.enqueue(SYNC_JOB, job_id=SYNC_NOW_JOB_ID)
    if owned:
        return f"This node owns governance body {owned}; re-pushing unconfirmed values"
    return f"Syncing {_label(services.settings)} Governance Body"


# ---------------------------------------------------------------------------- syncing


class SyncResult(StrEnum):
    """What one governance job run did."""

    SYNCED = "SYNCED"
    #: DataLayer has not synced the main or version store yet; the cached rows stay.
    WAITING = "WAITING"
    #: The body has no version store for this node's data model (only warns, like CADT V2).
    NO_VERSION = "NO_VERSION"
    NOT_CONFIGURED = "NOT_CONFIGURED"
    #: This node owns the body: creation and pushes were resumed, nothing to download.
    OWNER = "OWNER"
    FAILED = "FAILED"


@dataclass(frozen=True)
class SyncOutcome:
    """The result of `run_governance_task`."""

    result: SyncResult
    message: str
    #: Local values existed before the run (a waiting run then changes nothing visible).
    had_values: bool = False
    #: Keys whose value changed in this run.
    changed: tuple[str, ...] = ()


async def run_governance_task(services: Services) -> SyncOutcome:
    """The periodic governance job: resume owner work, or sync the followed body once."""
    async with services.db.session() as session:
        meta = await _meta_values(session, [GOVERNANCE_BODY_ID, MAIN_GOVERNANCE_BODY_ID, CREATION])
        has_values = bool(await session.scalar(sa.select(sa.func.count()).select_from(_GOVERNANCE)))
    record = CreationRecord.from_json(meta.get(CREATION))
    if record is not None and record.in_progress:
        await services.queue.enqueue(CREATE_JOB, job_id=CREATE_JOB_ID)
    owned = meta.get(MAIN_GOVERNANCE_BODY_ID)
    if owned:
        if await _unconfirmed_rows(services):
            await services.queue.enqueue(PUSH_JOB, job_id=PUSH_JOB_ID)
        return SyncOutcome(SyncResult.OWNER, f"this node owns governance body {owned}", has_values)
    body = subscribed_body_id(services.settings, meta)
    if body is None:
        return SyncOutcome(SyncResult.NOT_CONFIGURED, "no governance body configured", has_values)
    try:
        outcome = await sync_governance(services, body, had_values=has_values)
    except DomainError as error:
        # One attempt per run: the next run tries again; the cached values stay.
        logger.warning("governance sync of %s failed: %s", body, error.message)
        outcome = SyncOutcome(SyncResult.FAILED, error.message, has_values)
    if outcome.result is not SyncResult.SYNCED:  # a synced run recorded it with the values
        await _record_sync_message(services, outcome.message)
    return outcome


async def sync_governance(
    services: Services, body: str, *, had_values: bool = False
) -> SyncOutcome:
    """One sync attempt of a followed body ([later #1600]): subscribe, check sync, copy."""
    subscriptions = Subscriptions(services)
    waiting = await _subscribed_and_synced(subscriptions, body, "main governance store")
    if waiting is not None:
        return SyncOutcome(SyncResult.WAITING, waiting, had_values)
    main_data = await read_store(services, body)
    version_store: str | None = None
    if not main_data:
        # Nothing readable yet (or an empty store): never mistake it for an empty legacy body.
        return SyncOutcome(
            SyncResult.WAITING, f"the main governance store {body} holds no data yet", had_values
        )
    if any(VERSION_KEY.match(key) for key in main_data):
        version = services.settings.data_model_version.value
        raw = main_data.get(version, main_data.get(version.removeprefix("v")))
        version_store = store_id_or_none(raw)
        if version_store is None:
            message = (
                f"governance body {body} has no {version} version store "
                f"(it has {', '.join(sorted(k for k in main_data if VERSION_KEY.match(k)))})"
            )
            logger.warning(message)
            return SyncOutcome(SyncResult.NO_VERSION, message, had_values)
        waiting = await _subscribed_and_synced(
            subscriptions, version_store, "version governance store"
        )
        if waiting is not None:
            return SyncOutcome(SyncResult.WAITING, waiting, had_values)
        data = await read_store(services, version_store)
    else:
        data = main_data  # legacy body: the values live in the main store
    values: dict[str, str] = {}
    for key in GOVERNANCE_KEYS:
        text = data.get(key)
        if text is None:
            logger.warning("governance body %s has no %s", body, key)
            continue
        try:
            json.loads(text)
        except ValueError:
            logger.warning(
                "governance body %s: %s is not JSON; keeping the cached value", body, key
            )
            continue
        values[key] = text
    message = f"synced governance body {body} ({', '.join(values) or 'no values'})"
    changed = await _store_synced_values(services, values, version_store, message)
    return SyncOutcome(SyncResult.SYNCED, message, had_values, changed)


async def _subscribed_and_synced(
    subscriptions: Subscriptions, store_id: str, what: str
) -> str | None:
    """Subscribe (first) and check DataLayer's sync; None when synced, else why we wait."""
    try:
        await subscriptions.ensure(store_id)
    except StoreNotOnChain as error:
        raise PreconditionFailed(
            f"The {what} {store_id} does not exist: {error.message}"
        ) from error
    status = await store_sync(subscriptions.services, store_id)
    if status.synced:
        return None
    return (
        f"waiting for DataLayer to sync the {what} {store_id} ({status.describe()}); "
        "the next run checks again"
    )


async def _store_synced_values(
    services: Services, values: Mapping[str, str], version_store: str | None, message: str
) -> tuple[str, ...]:
    """Upsert the values (confirmed) with the sync's Meta records in one transaction."""
    now = utcnow()

    async def store(session: AsyncSession) -> tuple[str, ...]:
        before = {
            str(key): str(value)
            for key, value in (
                await session.execute(sa.select(_GOVERNANCE.c.key, _GOVERNANCE.c.value))
            ).all()
        }
        if values:
            await session.execute(
                _upsert_rows(
                    services.db.dialect,
                    [
                        {"key": key, "value": value, "confirmed": True, "updated_at": now}
                        for key, value in values.items()
                    ],
                    only_changes=True,
                )
            )
        await write_meta(session, SUBSCRIBED_VERSION_STORE_ID, version_store or "")
        await write_meta(session, LAST_SYNCED_AT, now.isoformat())
        await write_meta(session, SYNC_MESSAGE, message)
        return tuple(key for key, value in values.items() if before.get(key) != value)

    return await _transaction(services, store)


async def _record_sync_message(services: Services, message: str) -> None:
    async def record(session: AsyncSession) -> None:
        if (await _meta_values(session, [SYNC_MESSAGE])).get(SYNC_MESSAGE) != message:
            await write_meta(session, SYNC_MESSAGE, message)

    try:
        await _transaction(services, record)
    except Exception:  # only a status line: never fail the sync run for it
        logger.warning("could not record the governance sync message", exc_info=True)
