"""The long-lived parts every service call needs, built once per process by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import Redis

from services.config import ServiceSettings
from services.db.engine import Database
from services.events import EventHub
from services.oplock import OrgOperationLock

if TYPE_CHECKING:
    from services.chia.datalayer import DataLayerClient
    from services.chia.wallet import WalletClient


class JobQueue(Protocol):
    """Enqueues background jobs (implemented with arq in jobs/)."""

    async def enqueue(self, function: str, *args: object, job_id: str | None = None) -> str | None:
        """Enqueue `function(*args)`; returns the job id, or None when that job id is queued."""
        ...


@dataclass
class Services:
    """Database, Redis, upstream clients, the job queue and the settings of one process."""

    settings: ServiceSettings
    db: Database
    redis: Redis
    datalayer: DataLayerClient
    wallet: WalletClient
    queue: JobQueue
    lock: OrgOperationLock
    events: EventHub
    #: Seconds between polls of confirmations and sync (fast against the built-in simulator).
    poll_interval: float = 2.0
    #: Names of parts started by this process, for the start-up banner and health details.
    embedded: dict[str, str] = field(default_factory=dict)
    version: str = "0.0.0"
