"""Sync progress of organizations."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from typing import Annotated

import strawberry

import resolvers.sync
from resolvers.context import Info
from services.views import OrganizationSyncView, SyncBackoffView


@strawberry.type(description="An organization whose sync is backing off (DataLayer behind).")
class SyncBackoff:
    since: datetime = strawberry.field(description="When the current episode started.")
    delay_seconds: int = strawberry.field(description="Current delay between re-checks.")
    next_retry_at: datetime = strawberry.field(description="When sync is tried again.")
    reason: str = strawberry.field(description='Why, e.g. "generation 3 of 5 downloaded".')

    @classmethod
    def from_domain(cls, backoff: SyncBackoffView) -> SyncBackoff:
        """Build from the read model."""
        return cls(
            since=backoff.since,
            delay_seconds=backoff.delay_seconds,
            next_retry_at=backoff.next_retry_at,
            reason=backoff.reason,
        )


@strawberry.type(description="How far the local database is behind DataLayer for one organization.")
class OrganizationSync:
    org_uid: strawberry.ID = strawberry.field(description="The organization.")
    synced: bool = strawberry.field(description="Every generation of the registry is applied.")
    sync_remaining: int = strawberry.field(description="Generations still to apply.")
    last_processed_generation: int | None = strawberry.field(
        description="Highest applied generation index; null before the first."
    )
    root_history_length: int | None = strawberry.field(
        description="Length of the registry's root history; null when unknown."
    )
    datalayer_generation: int | None = strawberry.field(
        description="Generation DataLayer has downloaded (get_sync_status.generation)."
    )
    datalayer_target_generation: int | None = strawberry.field(
        description="Generation that exists on chain (get_sync_status.target_generation)."
    )
    backoff: SyncBackoff | None = strawberry.field(
        description="Set while the sync of this organization backs off."
    )
    last_synced_at: datetime | None = strawberry.field(description="Last sync run.")
    writes_blocked: str | None = strawberry.field(
        default=None,
        description=(
            "Home organization only: why writes are refused while DataLayer has lost its "
            "local data (generation 0, zero root, chain ahead); null when writes are allowed."
        ),
    )

    @classmethod
    def from_domain(cls, view: OrganizationSyncView) -> OrganizationSync:
        """Build from the read model."""
        return cls(
            org_uid=strawberry.ID(view.org_uid),
            synced=view.synced,
            sync_remaining=view.sync_remaining,
            last_processed_generation=view.last_processed_generation,
            root_history_length=view.root_history_length,
            datalayer_generation=view.datalayer_generation,
            datalayer_target_generation=view.datalayer_target_generation,
            backoff=SyncBackoff.from_domain(view.backoff) if view.backoff else None,
            last_synced_at=view.last_synced_at,
            writes_blocked=view.writes_blocked,
        )


@strawberry.type
class SyncSubscription:
    @strawberry.subscription(
        description=(
            "Sync changes of one organization, or of all when orgUid is omitted: first the "
            "current state, then one value per change (every sync run and every applied batch)."
        )
    )
    async def sync_progress(
        self,
        info: Info,
        org_uid: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The organization; omit for every subscribed one."),
        ] = None,
    ) -> AsyncGenerator[OrganizationSync, None]:
        async with aclosing(resolvers.sync.sync_progress(info, org_uid)) as views:
            async for view in views:
                yield OrganizationSync.from_domain(view)
