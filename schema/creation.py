"""The persisted, resumable home-organization creation merged with the live lock status."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from enum import Enum

import strawberry

import resolvers.lock
from resolvers.context import Info
from schema.fanout import LastMapped, viewer_independent
from schema.lock import OperationStatus
from services.creation_state import CreationSummary, StoreProgress


@strawberry.enum(description="Steps of the resumable creation state machine.")
class CreationState(Enum):
    INITIALIZING = strawberry.enum_value("INITIALIZING", description="Checking and preparing.")
    STORES_CREATING = strawberry.enum_value(
        "STORES_CREATING", description="Creating the four stores and waiting for confirmation."
    )
    STORES_CONFIRMED = strawberry.enum_value(
        "STORES_CONFIRMED", description="All stores are confirmed on chain."
    )
    DATA_PUSHING = strawberry.enum_value(
        "DATA_PUSHING", description="Writing organization data into the stores."
    )
    FINALIZING = strawberry.enum_value(
        "FINALIZING", description="Recording the organization locally."
    )
    COMPLETE = strawberry.enum_value("COMPLETE", description="The organization exists.")
    FAILED = strawberry.enum_value("FAILED", description="The creation gave up; see error.")


@strawberry.type(description="One store of a creation.")
class CreationStore:
    id: strawberry.ID | None = strawberry.field(description="Store id once created (64 hex).")
    confirmed: bool = strawberry.field(description="The store's creation is confirmed on chain.")
    data_written: bool = strawberry.field(description="Its initial data has been written.")

    @classmethod
    def from_domain(cls, store: StoreProgress) -> CreationStore:
        """Build from the persisted store progress."""
        return cls(
            id=strawberry.ID(store.id) if store.id else None,
            confirmed=store.confirmed,
            data_written=store.data_written,
        )


@strawberry.type(description="The four stores a home organization owns.")
class CreationStores:
    org_uid: CreationStore = strawberry.field(description="The organization store.")
    registry: CreationStore = strawberry.field(description="The registry store.")
    data_model_version: CreationStore = strawberry.field(
        description="The data-model-version store."
    )
    file_store: CreationStore = strawberry.field(description="The file store.")

    @classmethod
    def from_domain(cls, stores: dict[str, StoreProgress]) -> CreationStores:
        """Build from the persisted stores (missing ones are not created yet)."""

        def store(kind: str) -> CreationStore:
            return CreationStore.from_domain(stores.get(kind) or StoreProgress())

        return cls(
            org_uid=store("orgUid"),
            registry=store("registry"),
            data_model_version=store("dataModelVersion"),
            file_store=store("fileStore"),
        )


@viewer_independent
@strawberry.type(
    description=(
        "The persisted, resumable home-organization creation, merged with the live lock status."
    )
)
class CreationStatus:
    in_progress: bool = strawberry.field(
        description="A creation is running, or an org operation holds the lock."
    )
    state: CreationState | None = strawberry.field(
        description="Null when no creation was ever started or it was cleared."
    )
    message: str = strawberry.field(
        description='Human summary, e.g. "V1 to V2 upgrade: Creating registry store".'
    )
    progress: int = strawberry.field(description="0..100; -1 on FAILED or stale.")
    retry_count: int = strawberry.field(description="Times the creation was resumed.")
    max_retries: int = strawberry.field(description="Resumes allowed before it fails.")
    started_at: datetime | None = strawberry.field(description="When the creation started.")
    updated_at: datetime | None = strawberry.field(description="When its state last changed.")
    stores: CreationStores | None = strawberry.field(description="Progress of each store.")
    error: str | None = strawberry.field(description="Why it failed, on FAILED.")
    live_status: OperationStatus | None = strawberry.field(
        description="The org operation holding the lock; null when the lock is free."
    )

    @classmethod
    def from_domain(cls, summary: CreationSummary) -> CreationStatus:
        """Build from the creation summary."""
        return cls(
            in_progress=summary.in_progress,
            state=CreationState(summary.state.value) if summary.state else None,
            message=summary.message,
            progress=summary.progress,
            retry_count=summary.retry_count,
            max_retries=summary.max_retries,
            started_at=summary.started_at,
            updated_at=summary.updated_at,
            stores=CreationStores.from_domain(summary.stores) if summary.stores else None,
            error=summary.error,
            live_status=(
                OperationStatus.from_domain(summary.live_status) if summary.live_status else None
            ),
        )


_map_summary = LastMapped(CreationStatus.from_domain)


@strawberry.type
class CreationQuery:
    @strawberry.field(
        description="The persisted home-organization creation merged with the live lock status."
    )
    async def creation_status(self, info: Info) -> CreationStatus:
        return CreationStatus.from_domain(await resolvers.lock.creation_status(info))


@strawberry.type
class CreationSubscription:
    @strawberry.subscription(
        description=(
            "First the current creation status, then one value on every change, until the "
            "client stops."
        )
    )
    async def creation_status(self, info: Info) -> AsyncGenerator[CreationStatus, None]:
        async with aclosing(resolvers.lock.creation_status_changes(info)) as changes:
            async for summary in changes:
                # Subscribers woken by one event share one summary: map it once.
                yield _map_summary(summary)
