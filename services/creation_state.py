"""The persisted, resumable home-organization creation state and its summary (domain 2.5, 3.1).

The state is CADT's Meta `pendingOrgCreation` JSON (camelCase keys kept for compatibility),
one per data-model version. `summarize` turns it into what `creationStatus` shows: message and
progress per state, stale detection [later #1546], and the merge with the live lock status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.domain import LockSnapshot, utcnow

PENDING_ORG_CREATION = "pendingOrgCreation"
STORE_KINDS = ("orgUid", "registry", "dataModelVersion", "fileStore")
#: Stores whose data is written during creation (org store and data-model-version store).
WRITTEN_STORES = ("orgUid", "dataModelVersion")


class CreationState(StrEnum):
    """Steps of the creation state machine."""

    INITIALIZING = "INITIALIZING"
    STORES_CREATING = "STORES_CREATING"
    STORES_CONFIRMED = "STORES_CONFIRMED"
    DATA_PUSHING = "DATA_PUSHING"
    FINALIZING = "FINALIZING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """COMPLETE and FAILED end a creation."""
        return self in (CreationState.COMPLETE, CreationState.FAILED)


def meta_key(data_model_version: str) -> str:
    """The Meta key of the creation state of one data-model version."""
    return f"{PENDING_ORG_CREATION}:{data_model_version}"


def _iso(value: datetime) -> str:
    return value.isoformat()


@dataclass
class StoreProgress:
    """One store of a creation."""

    id: str | None = None
    confirmed: bool = False
    data_written: bool = False


@dataclass
class CreationRecord:
    """The persisted creation state."""

    state: CreationState
    name: str
    icon: str | None
    data_version: str
    api_version: str
    retry_count: int = 0
    stores: dict[str, StoreProgress] = field(
        default_factory=lambda: {kind: StoreProgress() for kind in STORE_KINDS}
    )
    error: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    #: Transaction ids of our store creations, to detect rejection early.
    tx_ids: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """CADT's JSON shape."""
        payload: dict[str, Any] = {
            "state": self.state.value,
            "apiVersion": self.api_version,
            "name": self.name,
            "icon": self.icon,
            "dataVersion": self.data_version,
            "retryCount": self.retry_count,
            "stores": {
                kind: {"id": s.id, "confirmed": s.confirmed, "dataWritten": s.data_written}
                for kind, s in self.stores.items()
            },
            "error": self.error,
            "startedAt": _iso(self.started_at),
            "updatedAt": _iso(self.updated_at),
            "txIds": self.tx_ids,
        }
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> CreationRecord:
        """Parse the stored JSON."""
        data = json.loads(raw)
        stores = {
            kind: StoreProgress(
                id=(data.get("stores", {}).get(kind) or {}).get("id"),
                confirmed=bool((data.get("stores", {}).get(kind) or {}).get("confirmed")),
                data_written=bool((data.get("stores", {}).get(kind) or {}).get("dataWritten")),
            )
            for kind in STORE_KINDS
        }
        return cls(
            state=CreationState(data["state"]),
            name=str(data.get("name") or ""),
            icon=data.get("icon"),
            data_version=str(data.get("dataVersion") or "v2"),
            api_version=str(data.get("apiVersion") or data.get("dataVersion") or "v2"),
            retry_count=int(data.get("retryCount") or 0),
            stores=stores,
            error=data.get("error"),
            started_at=datetime.fromisoformat(data["startedAt"]),
            updated_at=datetime.fromisoformat(data.get("updatedAt") or data["startedAt"]),
            tx_ids=list(data.get("txIds") or []),
        )

    def is_stale(self, now: datetime, timeout: timedelta) -> bool:
        """A non-terminal state older than the creation timeout [later #1546]."""
        return not self.state.terminal and now - self.started_at > timeout


@dataclass(frozen=True)
class CreationSummary:
    """What `creationStatus` shows."""

    in_progress: bool
    state: CreationState | None
    message: str
    progress: int
    retry_count: int
    max_retries: int
    started_at: datetime | None
    updated_at: datetime | None
    stores: dict[str, StoreProgress] | None
    error: str | None
    live_status: LockSnapshot | None


def _message_and_progress(record: CreationRecord) -> tuple[str, int]:
    stores = record.stores.values()
    created = sum(1 for s in stores if s.id)
    confirmed = sum(1 for s in stores if s.confirmed)
    written = sum(1 for kind in WRITTEN_STORES if record.stores[kind].data_written)
    match record.state:
        case CreationState.INITIALIZING:
            return "Initializing organization creation", 0
        case CreationState.STORES_CREATING:
            return (
                f"Creating stores on blockchain ({created}/4 created, {confirmed}/4 confirmed)",
                round(confirmed / 4 * 50),
            )
        case CreationState.STORES_CONFIRMED:
            return "All stores confirmed, preparing to write data", 50
        case CreationState.DATA_PUSHING:
            return (
                f"Writing organization data ({written}/2 stores updated)",
                50 + round(written / 2 * 40),
            )
        case CreationState.FINALIZING:
            return "Finalizing organization record", 95
        case CreationState.COMPLETE:
            return "Organization creation complete", 100
        case CreationState.FAILED:
            return f"Organization creation failed: {record.error}", -1


def summarize(
    record: CreationRecord | None,
    lock: LockSnapshot | None,
    *,
    timeout: timedelta,
    max_retries: int,
    now: datetime | None = None,
) -> CreationSummary:
    """The creation status: persisted state, stale detection and the live lock merged."""
    now = now or utcnow()
    if record is None:
        summary = CreationSummary(
            in_progress=False,
            state=None,
            message="No organization creation in progress",
            progress=0,
            retry_count=0,
            max_retries=max_retries,
            started_at=None,
            updated_at=None,
            stores=None,
            error=None,
            live_status=lock,
        )
    else:
        message, progress = _message_and_progress(record)
        in_progress = not record.state.terminal
        if record.is_stale(now, timeout):
            in_progress, progress = False, -1
            message = (
                f"Organization creation appears stale (started {_iso(record.started_at)}). "
                "A new creation attempt will resume or retry."
            )
        summary = CreationSummary(
            in_progress=in_progress,
            state=record.state,
            message=message,
            progress=progress,
            retry_count=record.retry_count,
            max_retries=max_retries,
            started_at=record.started_at,
            updated_at=record.updated_at,
            stores=record.stores,
            error=record.error,
            live_status=lock,
        )
    if lock is not None and not summary.in_progress:
        # Lock merge [#1531]: an operation holding the lock is in progress whatever Meta says.
        return CreationSummary(
            **{
                **summary.__dict__,
                "in_progress": True,
                "message": f"{lock.label}: {lock.status}",
            }
        )
    return summary
