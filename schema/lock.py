"""Types of the org-operation lock and its progress events, and their Query/Subscription parts."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime
from enum import Enum

import strawberry

import resolvers.lock
from resolvers.context import Info
from schema.fanout import LastMapped, viewer_independent
from services import progress
from services.domain import LockSnapshot


@strawberry.enum(description="The long home-organization operations that take the lock.")
class OrgOperation(Enum):
    CREATE_HOME_ORGANIZATION = "CREATE_HOME_ORGANIZATION"
    UPGRADE_HOME_ORGANIZATION = "UPGRADE_HOME_ORGANIZATION"
    RECLAIM_HOME_ORGANIZATION = "RECLAIM_HOME_ORGANIZATION"
    RECOVER_HOME_ORGANIZATION = "RECOVER_HOME_ORGANIZATION"


@strawberry.type(description="Live status of the one org operation that holds the lock.")
class OperationStatus:
    operation: OrgOperation = strawberry.field(description="Which operation holds the lock.")
    label: str = strawberry.field(description='Human name, e.g. "V2 organization creation".')
    status: str = strawberry.field(description='Current step; "Starting..." at first.')
    started_at: datetime = strawberry.field(description="When the lock was taken.")
    elapsed_seconds: int = strawberry.field(description="Whole seconds since startedAt.")

    @classmethod
    def from_domain(cls, snapshot: LockSnapshot) -> OperationStatus:
        """Build from the lock's snapshot."""
        return cls(
            operation=OrgOperation(snapshot.operation.value),
            label=snapshot.label,
            status=snapshot.status,
            started_at=snapshot.started_at,
            elapsed_seconds=snapshot.elapsed_seconds(),
        )


@strawberry.enum(description="What happened to the org-operation lock.")
class OperationEventKind(Enum):
    STARTED = strawberry.enum_value("STARTED", description="An operation took the lock.")
    PROGRESS = strawberry.enum_value("PROGRESS", description="The holder reported a new step.")
    FINISHED = strawberry.enum_value("FINISHED", description="The holder released the lock.")
    FAILED = strawberry.enum_value("FAILED", description="The holder released it on failure.")


@viewer_independent
@strawberry.type(description="One change of the org operation holding the lock.")
class OperationEvent:
    kind: OperationEventKind = strawberry.field(description="What happened.")
    operation: OrgOperation = strawberry.field(description="Which operation.")
    label: str = strawberry.field(description='Human name, e.g. "V2 organization creation".')
    status: str = strawberry.field(description="The step at this event.")
    started_at: datetime = strawberry.field(description="When the operation took the lock.")
    elapsed_seconds: int = strawberry.field(description="Whole seconds from startedAt to at.")
    at: datetime = strawberry.field(description="When this event happened.")
    error: str | None = strawberry.field(description="Why it failed; set on FAILED only.")
    org_uid: strawberry.ID | None = strawberry.field(
        description="The organization the operation works on, once known."
    )

    @classmethod
    def from_domain(cls, event: progress.OperationEvent) -> OperationEvent:
        """Build from a lock event."""
        return cls(
            kind=OperationEventKind(event.kind.value),
            operation=OrgOperation(event.operation.value),
            label=event.label,
            status=event.status,
            started_at=event.started_at,
            elapsed_seconds=event.elapsed_seconds,
            at=event.at,
            error=event.error,
            org_uid=strawberry.ID(event.org_uid) if event.org_uid else None,
        )


_map_event = LastMapped(OperationEvent.from_domain)


@strawberry.type
class LockQuery:
    @strawberry.field(description="The org operation holding the lock; null when it is free.")
    async def operation_status(self, info: Info) -> OperationStatus | None:
        snapshot = await resolvers.lock.operation_status(info)
        return None if snapshot is None else OperationStatus.from_domain(snapshot)


@strawberry.type
class LockSubscription:
    @strawberry.subscription(
        description=(
            "First the current state (if an operation holds the lock), then every start, step, "
            "finish and failure."
        )
    )
    async def operation_progress(self, info: Info) -> AsyncGenerator[OperationEvent, None]:
        async with aclosing(resolvers.lock.operation_progress(info)) as events:
            async for event in events:
                # One event reaches every local subscriber: map it once (schema/fanout.py).
                yield _map_event(event)
