"""Read models: what queries show of organizations, their sync and their mirrors.

Batch functions take many keys and cost one query each, so a page of organizations with their
sync state and mirrors costs a constant number of queries (used by the per-request DataLoaders).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from services.db.engine import Database
from services.db.models import Audit, Mirror, Organization, SyncState


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
    """Sync state of many organizations (two queries)."""
    org_uids = [org.org_uid for org in organizations]
    if not org_uids:
        return {}
    async with db.session() as session:
        states = {
            state.org_uid: state
            for state in (
                await session.execute(
                    sa.select(SyncState).where(col(SyncState.org_uid).in_(org_uids))
                )
            ).scalars()
        }
        last_generation: dict[str, int] = dict(
            (
                await session.execute(
                    sa.select(col(Audit.org_uid), sa.func.max(col(Audit.generation)))
                    .where(col(Audit.org_uid).in_(org_uids))
                    .group_by(Audit.org_uid)
                )
            ).all()
        )
    views: dict[str, OrganizationSyncView] = {}
    for org in organizations:
        state = states.get(org.org_uid)
        backoff = None
        if (
            state is not None
            and state.backoff_since is not None
            and state.backoff_next_retry_at is not None
        ):
            backoff = SyncBackoffView(
                since=state.backoff_since,
                delay_seconds=round(state.backoff_delay_seconds or 0),
                next_retry_at=state.backoff_next_retry_at,
                reason=state.backoff_reason or "",
            )
        views[org.org_uid] = OrganizationSyncView(
            org_uid=org.org_uid,
            synced=org.synced,
            sync_remaining=org.sync_remaining,
            last_processed_generation=last_generation.get(org.org_uid),
            root_history_length=state.root_history_length if state else None,
            datalayer_generation=state.datalayer_generation if state else None,
            datalayer_target_generation=state.datalayer_target_generation if state else None,
            backoff=backoff,
            last_synced_at=state.last_synced_at if state else None,
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
            result[row.store_id].append(
                MirrorView(
                    coin_id=row.coin_id,
                    store_id=row.store_id,
                    urls=list(json.loads(row.urls_json or "[]")),
                    amount=int(row.amount),
                    ours=row.ours,
                )
            )
    return dict(result)
