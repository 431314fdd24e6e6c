"""Value types shared by services, jobs and the GraphQL mapping (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class OrgOperation(StrEnum):
    """The long home-organization operations that take the org-operation lock."""

    CREATE_HOME_ORGANIZATION = "CREATE_HOME_ORGANIZATION"
    UPGRADE_HOME_ORGANIZATION = "UPGRADE_HOME_ORGANIZATION"
    RECLAIM_HOME_ORGANIZATION = "RECLAIM_HOME_ORGANIZATION"
    RECOVER_HOME_ORGANIZATION = "RECOVER_HOME_ORGANIZATION"


#: CADT's lock holder names (cadt-domain.md section 5) and the operation each one is.
LOCK_LABELS: dict[str, OrgOperation] = {
    "V1 organization creation": OrgOperation.CREATE_HOME_ORGANIZATION,
    "V2 organization creation": OrgOperation.CREATE_HOME_ORGANIZATION,
    "V1 to V2 upgrade": OrgOperation.UPGRADE_HOME_ORGANIZATION,
    "V1 home organization reclaim": OrgOperation.RECLAIM_HOME_ORGANIZATION,
    "V2 home organization reclaim": OrgOperation.RECLAIM_HOME_ORGANIZATION,
    "V1 organization recovery": OrgOperation.RECOVER_HOME_ORGANIZATION,
    "V2 organization recovery": OrgOperation.RECOVER_HOME_ORGANIZATION,
}


def operation_of(label: str) -> OrgOperation:
    """The operation a lock holder name stands for (creation when the name is unknown)."""
    return LOCK_LABELS.get(label, OrgOperation.CREATE_HOME_ORGANIZATION)


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class LockSnapshot:
    """What the org-operation lock holds: holder name, current step and start time."""

    label: str
    status: str
    started_at: datetime

    @property
    def operation(self) -> OrgOperation:
        """The operation of the holder."""
        return operation_of(self.label)

    def elapsed_seconds(self, now: datetime | None = None) -> int:
        """Whole seconds since the start, rounded, never negative (rule L12)."""
        delta = ((now or utcnow()) - self.started_at).total_seconds()
        return max(0, round(delta))
