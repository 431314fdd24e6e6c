"""Read models: what queries show of organizations, their sync and their mirrors.

Batch functions take many keys and cost one query each, so a page of organizations with their
sync state and mirrors costs a constant number of queries (used by the per-request DataLoaders).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.db.engine import Database
from services.db.models import Audit, Meta, Mirror, Organization, RegistryRecord, SyncState


@dataclass(frozen=True)
class OrganizationView:
    """One organization row as clients see it."""

    org_uid: str
    name: str
    icon: str | None
    is_home: bool
    subscribed: bool
    data_model_version: str
    org_hash: str | None
    registry_id: str | None
    registry_hash: str | None
    data_model_version_store_id: str | None
    file_store_id: str | None
    metadata: dict[str, Any]
    synced: bool
    sync_remaining: int
    row_id: int

    @property
    def store_ids(self) -> list[str]:
        """Every store of the organization that is known."""
        ids = [self.org_uid, self.registry_id, self.data_model_version_store_id, self.file_store_id]
        return [store_id for store_id in ids if store_id]

    @classmethod
    def from_row(cls, row: Organization) -> OrganizationView:
        """Map a database row (metadata keys without the meta_ prefix)."""
        try:
            raw = json.loads(row.metadata_json or "{}")
        except ValueError:
            raw = {}
        metadata = {str(key).removeprefix("meta_"): value for key, value in (raw or {}).items()}
        return cls(
            org_uid=row.org_uid,
            name=row.name,
            icon=row.icon,
            is_home=row.is_home,
            subscribed=row.subscribed,
            data_model_version=row.data_model_version,
            org_hash=row.org_hash,
            registry_id=row.registry_id,
            registry_hash=row.registry_hash,
            data_model_version_store_id=row.data_model_version_store_id,
            file_store_id=row.file_store_id,
            metadata=metadata,
            synced=row.synced,
            sync_remaining=row.sync_remaining,
            row_id=row.id or 0,
        )


@dataclass(frozen=True)
class SyncBackoffView:
    """A backing-off sync of one organization."""

    since: datetime
    delay_seconds: int
    next_retry_at: datetime
    reason: str


@dataclass(frozen=True)
class OrganizationSyncView:
    """Sync progress of one organization."""

    org_uid: str
    synced: bool
    sync_remaining: int
    last_processed_generation: int | None
    root_history_length: int | None
    datalayer_generation: int | None
    datalayer_target_generation: int | None
    backoff: SyncBackoffView | None
    last_synced_at: datetime | None
    #: Set on the home organization while DataLayer has lost its local data (writes refused).
    writes_blocked: str | None = None


@dataclass(frozen=True)
class MirrorView:
    """A DataLayer mirror of a store."""

    coin_id: str
    store_id: str
    urls: list[str]
    amount: int
    ours: bool


async def organizations_by_uid(
    db: Database, org_uids: Sequence[str], data_model_version: str
) -> dict[str, OrganizationView]:
    """Organizations of one data-model version by orgUid (one query)."""
    if not org_uids:
        return {}
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(Organization)
                .where(col(Organization.org_uid).in_(list(org_uids)))
                .where(col(Organization.data_model_version) == data_model_version)
            )
        ).scalars()
        return {row.org_uid: OrganizationView.from_row(row) for row in rows}


async def sync_views(
    db: Database, organizations: Sequence[OrganizationView]
) -> dict[str, OrganizationSyncView]:
    """Sync state of many organizations.

    One SELECT reads the row's synced/sync_remaining, its SyncState and the highest applied
    generation together, so a sync run committing in between can never show a backoff of the
    new state next to a count of the old one (PostgreSQL's READ COMMITTED takes a snapshot
    per statement).
    """
    if not organizations:
        return {}
    orgs = Organization.__table__  # type: ignore[attr-defined]
    states = SyncState.__table__  # type: ignore[attr-defined]
    audit = Audit.__table__  # type: ignore[attr-defined]
    # The highest applied generation of the registry the organization syncs now (an upgraded
    # organization also has the audit of its former V1 registry).
    last_generation = (
        sa.select(sa.func.max(audit.c.generation))
        .where(audit.c.registry_id == orgs.c.registry_id)
        .scalar_subquery()
        .label("last_generation")
    )
    versions = {org.data_model_version for org in organizations}
    query = (
        sa.select(
            orgs.c.org_uid,
            orgs.c.data_model_version,
            orgs.c.synced,
            orgs.c.sync_remaining,
            last_generation,
            states.c.root_history_length,
            states.c.datalayer_generation,
            states.c.datalayer_target_generation,
            states.c.last_synced_at,
            states.c.backoff_since,
            states.c.backoff_delay_seconds,
            states.c.backoff_next_retry_at,
            states.c.backoff_reason,
        )
        .select_from(orgs.outerjoin(states, states.c.org_uid == orgs.c.org_uid))
        .where(orgs.c.org_uid.in_([org.org_uid for org in organizations]))
        .where(orgs.c.data_model_version.in_(versions))
    )
    async with db.session() as session:
        rows = {
            (row["org_uid"], row["data_model_version"]): row
            for row in (await session.execute(query)).mappings()
        }
        blocked = None
        homes = [org for org in organizations if org.is_home]
        if homes:
            blocked = await _writes_blocked(session, homes[0].data_model_version)
    views: dict[str, OrganizationSyncView] = {}
    for org in organizations:
        row = rows.get((org.org_uid, org.data_model_version))
        backoff = None
        if (
            row is not None
            and row["backoff_since"] is not None
            and row["backoff_next_retry_at"] is not None
        ):
            backoff = SyncBackoffView(
                since=row["backoff_since"],
                delay_seconds=round(row["backoff_delay_seconds"] or 0),
                next_retry_at=row["backoff_next_retry_at"],
                reason=row["backoff_reason"] or "",
            )
        views[org.org_uid] = OrganizationSyncView(
            org_uid=org.org_uid,
            synced=row["synced"] if row is not None else org.synced,
            sync_remaining=row["sync_remaining"] if row is not None else org.sync_remaining,
            last_processed_generation=row["last_generation"] if row is not None else None,
            root_history_length=row["root_history_length"] if row is not None else None,
            datalayer_generation=row["datalayer_generation"] if row is not None else None,
            datalayer_target_generation=(
                row["datalayer_target_generation"] if row is not None else None
            ),
            backoff=backoff,
            last_synced_at=row["last_synced_at"] if row is not None else None,
            writes_blocked=blocked if org.is_home else None,
        )
    return views


async def mirrors_by_store(db: Database, store_ids: Sequence[str]) -> dict[str, list[MirrorView]]:
    """Known mirrors of many stores (one query)."""
    result: defaultdict[str, list[MirrorView]] = defaultdict(list)
    if not store_ids:
        return {}
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(Mirror)
                .where(col(Mirror.store_id).in_(list(store_ids)))
                .order_by(col(Mirror.store_id), col(Mirror.coin_id))
            )
        ).scalars()
        for row in rows:
            result[row.store_id].append(mirror_view_of(row))
    return dict(result)


# ---------------------------------------------------------------------------- sync read models

#: Meta key (per data-model version) set while the home organization's DataLayer lost its data.
LOST_LOCAL_DATA_META_KEY = "homeLostLocalData"
#: orgUid of the placeholder row of a creation in progress (never synced).
PENDING_ORG_UID = "PENDING"
#: Largest page of auditLog and registryRecords.
MAX_PAGE_SIZE = 100


def lost_local_data_key(data_model_version: str) -> str:
    """The Meta key of the home organization's lost-local-data flag."""
    return f"{LOST_LOCAL_DATA_META_KEY}:{data_model_version}"


async def _writes_blocked(session: AsyncSession, data_model_version: str) -> str | None:
    meta = await session.get(Meta, lost_local_data_key(data_model_version))
    if meta is None or not meta.value:
        return None
    try:
        reason = json.loads(meta.value).get("reason")
    except (ValueError, AttributeError):
        return meta.value
    return str(reason) if reason else None


async def subscribed_organizations(db: Database, data_model_version: str) -> list[OrganizationView]:
    """Subscribed organizations of one data-model version, home first, then by name."""
    async with db.session() as session:
        rows = (
            await session.execute(
                sa.select(Organization)
                .where(col(Organization.subscribed).is_(True))
                .where(col(Organization.data_model_version) == data_model_version)
                .where(col(Organization.org_uid) != PENDING_ORG_UID)
                .order_by(
                    col(Organization.is_home).desc(),
                    col(Organization.name),
                    col(Organization.org_uid),
                )
            )
        ).scalars()
        return [OrganizationView.from_row(row) for row in rows]


async def home_organization(db: Database, data_model_version: str) -> OrganizationView | None:
    """The home organization of one data-model version, if there is one."""
    async with db.session() as session:
        row = (
            await session.execute(
                sa.select(Organization)
                .where(col(Organization.is_home).is_(True))
                .where(col(Organization.data_model_version) == data_model_version)
                .where(col(Organization.org_uid) != PENDING_ORG_UID)
            )
        ).scalar_one_or_none()
        return None if row is None else OrganizationView.from_row(row)


def sync_view_to_json(view: OrganizationSyncView) -> dict[str, Any]:
    """An OrganizationSyncView as a JSON-able event payload (Subscription.syncProgress)."""

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    backoff = view.backoff
    return {
        "orgUid": view.org_uid,
        "synced": view.synced,
        "syncRemaining": view.sync_remaining,
        "lastProcessedGeneration": view.last_processed_generation,
        "rootHistoryLength": view.root_history_length,
        "datalayerGeneration": view.datalayer_generation,
        "datalayerTargetGeneration": view.datalayer_target_generation,
        "backoff": None
        if backoff is None
        else {
            "since": iso(backoff.since),
            "delaySeconds": backoff.delay_seconds,
            "nextRetryAt": iso(backoff.next_retry_at),
            "reason": backoff.reason,
        },
        "lastSyncedAt": iso(view.last_synced_at),
        "writesBlocked": view.writes_blocked,
    }


def sync_view_from_json(payload: dict[str, Any]) -> OrganizationSyncView:
    """The inverse of sync_view_to_json."""

    def parse(value: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(str(value))

    raw_backoff = payload.get("backoff")
    backoff = None
    if isinstance(raw_backoff, dict):
        since, next_retry_at = parse(raw_backoff["since"]), parse(raw_backoff["nextRetryAt"])
        assert since is not None and next_retry_at is not None
        backoff = SyncBackoffView(
            since=since,
            delay_seconds=int(raw_backoff["delaySeconds"]),
            next_retry_at=next_retry_at,
            reason=str(raw_backoff["reason"]),
        )
    return OrganizationSyncView(
        org_uid=str(payload["orgUid"]),
        synced=bool(payload["synced"]),
        sync_remaining=int(payload["syncRemaining"]),
        last_processed_generation=payload.get("lastProcessedGeneration"),
        root_history_length=payload.get("rootHistoryLength"),
        datalayer_generation=payload.get("datalayerGeneration"),
        datalayer_target_generation=payload.get("datalayerTargetGeneration"),
        backoff=backoff,
        last_synced_at=parse(payload.get("lastSyncedAt")),
        writes_blocked=payload.get("writesBlocked"),
    )


# ---------------------------------------------------------------------------- pages

NodeT = TypeVar("NodeT")


class InvalidCursor(ValueError):
    """An `after` cursor that this gateway did not issue."""


@dataclass(frozen=True)
class Page(Generic[NodeT]):
    """One page of a Relay connection: (cursor, node) pairs and the pagination state."""

    edges: list[tuple[str, NodeT]]
    has_next_page: bool
    total_count: int

    @property
    def end_cursor(self) -> str | None:
        """Cursor of the last item of the page."""
        return self.edges[-1][0] if self.edges else None


def encode_cursor(kind: str, *values: Any) -> str:
    """An opaque cursor (base64 of the kind and the sort key)."""
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, arity: int) -> list[Any]:
    """The sort key of a cursor of `kind`; InvalidCursor when it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(f"invalid cursor {cursor!r}") from None
    if not isinstance(decoded, list) or len(decoded) != arity + 1 or decoded[0] != kind:
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return decoded[1:]


def page_size(first: int) -> int:
    """`first` clamped to 0..MAX_PAGE_SIZE (negative is refused)."""
    if first < 0:
        raise ValueError("first must not be negative")
    return min(first, MAX_PAGE_SIZE)


def parse_json_text(text: str | None) -> Any:
    """Stored JSON text as a value; text that is not JSON comes back as a string."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class AuditView:
    """One audit row: an applied change of a registry generation."""

    org_uid: str
    registry_id: str
    generation: int
    seq: int
    root_hash: str
    type: str
    table: str | None
    change: Any
    author: str | None
    comment: str | None
    onchain_confirmed_at: datetime | None


@dataclass(frozen=True)
class RegistryRecordView:
    """The current value of one registry key of an organization."""

    org_uid: str
    table: str
    key: str
    record: Any
    generation: int


async def audit_page(
    db: Database, org_uid: str, *, first: int, after: str | None
) -> Page[AuditView]:
    """Audit rows of an organization, newest generation first (keyset pagination)."""
    limit = page_size(first)
    table = Audit.__table__  # type: ignore[attr-defined]
    query = sa.select(table).where(table.c.org_uid == org_uid)
    if after is not None:
        generation, registry_id, seq = decode_cursor("audit", after, 3)
        # Newest generation first; within a generation the diff order (seq ascending).
        query = query.where(
            sa.or_(
                table.c.generation < generation,
                sa.and_(table.c.generation == generation, table.c.registry_id > registry_id),
                sa.and_(
                    table.c.generation == generation,
                    table.c.registry_id == registry_id,
                    table.c.seq > seq,
                ),
            )
        )
    query = query.order_by(table.c.generation.desc(), table.c.registry_id, table.c.seq).limit(
        limit + 1
    )
    async with db.session() as session:
        rows = (await session.execute(query)).mappings().all()
        total = (
            await session.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.org_uid == org_uid)
            )
        ).scalar_one()
    edges = [
        (
            encode_cursor("audit", row["generation"], row["registry_id"], row["seq"]),
            AuditView(
                org_uid=row["org_uid"],
                registry_id=row["registry_id"],
                generation=row["generation"],
                seq=row["seq"],
                root_hash=row["root_hash"],
                type=row["type"],
                table=row["table"],
                change=parse_json_text(row["change"]),
                author=row["author"],
                comment=row["comment"],
                onchain_confirmed_at=row["onchain_confirmed_at"],
            ),
        )
        for row in rows[:limit]
    ]
    return Page(edges=edges, has_next_page=len(rows) > limit, total_count=int(total))


async def registry_record_page(
    db: Database, org_uid: str, *, table_name: str | None, first: int, after: str | None
) -> Page[RegistryRecordView]:
    """Registry records of an organization (optionally one table), by table and key."""
    limit = page_size(first)
    table = RegistryRecord.__table__  # type: ignore[attr-defined]
    condition = table.c.org_uid == org_uid
    if table_name is not None:
        condition = sa.and_(condition, table.c.table == table_name)
    query = sa.select(table).where(condition)
    if after is not None:
        after_table, after_key = decode_cursor("record", after, 2)
        query = query.where(
            sa.or_(
                table.c.table > after_table,
                sa.and_(table.c.table == after_table, table.c.key > after_key),
            )
        )
    query = query.order_by(table.c.table, table.c.key).limit(limit + 1)
    async with db.session() as session:
        rows = (await session.execute(query)).mappings().all()
        total = (
            await session.execute(sa.select(sa.func.count()).select_from(table).where(condition))
        ).scalar_one()
    edges = [
        (
            encode_cursor("record", row["table"], row["key"]),
            RegistryRecordView(
                org_uid=row["org_uid"],
                table=row["table"],
                key=row["key"],
                record=parse_json_text(row["record"]),
                generation=row["generation"],
            ),
        )
        for row in rows[:limit]
    ]
    return Page(edges=edges, has_next_page=len(rows) > limit, total_count=int(total))


def mirror_view_of(row: Mirror) -> MirrorView:
    """Map a Mirror row."""
    return MirrorView(
        coin_id=row.coin_id,
        store_id=row.store_id,
        urls=list(json.loads(row.urls_json or "[]")),
        amount=int(row.amount),
        ours=row.ours,
    )
