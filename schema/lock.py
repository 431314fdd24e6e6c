"""Types of the org-operation lock and its progress events."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

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
